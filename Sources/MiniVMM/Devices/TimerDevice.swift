import Dispatch
import Synchronization

// Timer register map (4 KiB MMIO window; aligned 32-bit accesses only):
//
// | off  | name     | access  | meaning                                                   |
// |------|----------|---------|-----------------------------------------------------------|
// | 0x00 | MAGIC    | R       | 0x524D4954 ("TIMR")                                       |
// | 0x04 | DELAY_US | RW      | n > 0 arms a one-shot timer n µs from now (replacing any   |
// |      |          |         | armed one); 0 disarms; reads return the last value written |
// | 0x08 | STATUS   | R, W1C  | bit 0 FIRED (write 1 to clear), bit 1 ARMED (read-only)    |
// | 0x0C | COUNT    | R       | how many times the timer has fired                        |
//
// On expiry the timer sets FIRED, clears ARMED, counts, and pulses its interrupt (an irqfd).

/// A one-shot microsecond timer that raises an edge-triggered interrupt when it expires.
///
/// Expirations run on a private dispatch queue. Each arming gets a new generation number;
/// an expiry whose generation is no longer current (the timer was re-armed, disarmed or
/// shut down meanwhile) does nothing, so a stale expiration can never fire.
package final class TimerDevice: BusDevice {
    /// MAGIC register value, `"TIMR"`.
    package static let magic: UInt32 = 0x524D_4954

    /// Register offsets.
    package enum Register {
        /// MAGIC (R).
        package static let magic: UInt64 = 0x00
        /// DELAY_US (RW).
        package static let delayMicroseconds: UInt64 = 0x04
        /// STATUS (R, W1C).
        package static let status: UInt64 = 0x08
        /// COUNT (R).
        package static let count: UInt64 = 0x0C
    }

    /// STATUS bits.
    package enum Status {
        /// Set on expiry; cleared by writing 1.
        package static let fired: UInt32 = 0x1
        /// Set while a timer is pending.
        package static let armed: UInt32 = 0x2
    }

    private struct State {
        var delay: UInt32 = 0
        var fired = false
        var count: UInt32 = 0
        var generation: UInt64 = 0
        var pending: (any DispatchSourceTimer)?
        /// When the pending expiry is due.
        var deadline: ContinuousClock.Instant?
        /// While the machine is paused: the time an armed timer had left when it froze.
        var frozenRemaining: Duration?
        var isSuspended = false
        var isShutDown = false

        var isArmed: Bool { pending != nil || frozenRemaining != nil }
    }

    private let interrupt: any InterruptLine
    private let queue: DispatchQueue
    private let state = Mutex(State())

    /// Creates a disarmed timer that pulses `interrupt` on each expiry.
    package init(interrupt: some InterruptLine) {
        self.interrupt = interrupt
        self.queue = DispatchQueue(label: "minivmm.timer")
    }

    deinit {
        shutdown()
    }

    /// Cancels any pending expiry and ignores arming from now on (the machine is stopping).
    package func shutdown() {
        state.withLock { state in
            state.isShutDown = true
            state.generation &+= 1
            state.pending?.cancel()
            state.pending = nil
            state.frozenRemaining = nil
        }
    }

    /// Whether an expiry is pending (frozen or not).
    package var isArmed: Bool { state.withLock { $0.isArmed } }

    /// Freezes the timer while the machine is paused: a pending expiry is cancelled and its
    /// remaining time kept, so it fires that much later after ``resume()``.
    package func suspend() {
        state.withLock { state in
            guard !state.isSuspended else { return }
            state.isSuspended = true
            guard let pending = state.pending, let deadline = state.deadline else { return }
            pending.cancel()
            state.pending = nil
            state.generation &+= 1
            state.frozenRemaining = max(deadline - ContinuousClock.now, .zero)
        }
    }

    /// Lets a frozen timer run on with the time it had left.
    package func resume() {
        state.withLock { state in
            guard state.isSuspended else { return }
            state.isSuspended = false
            if let remaining = state.frozenRemaining {
                state.frozenRemaining = nil
                schedule(after: remaining, &state)
            }
        }
    }

    /// What a snapshot keeps of a timer: its registers and, if armed, the time it has left.
    package struct Snapshot: Codable, Hashable, Sendable {
        /// DELAY_US as last written.
        package var delayMicroseconds: UInt32
        /// STATUS.FIRED.
        package var fired: Bool
        /// COUNT.
        package var count: UInt32
        /// Microseconds until an armed timer fires; nil when disarmed.
        package var remainingMicroseconds: UInt32?

        enum CodingKeys: String, CodingKey {
            case fired, count
            case delayMicroseconds = "delay_us"
            case remainingMicroseconds = "remaining_us"
        }

        /// A snapshot.
        package init(delayMicroseconds: UInt32, fired: Bool, count: UInt32, remainingMicroseconds: UInt32?) {
            self.delayMicroseconds = delayMicroseconds
            self.fired = fired
            self.count = count
            self.remainingMicroseconds = remainingMicroseconds
        }

        /// Decodes only a state a timer can be in: time left at most the delay armed.
        package init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            delayMicroseconds = try container.decode(UInt32.self, forKey: .delayMicroseconds)
            fired = try container.decode(Bool.self, forKey: .fired)
            count = try container.decode(UInt32.self, forKey: .count)
            remainingMicroseconds = try container.decodeIfPresent(UInt32.self, forKey: .remainingMicroseconds)
            if let remaining = remainingMicroseconds, remaining > delayMicroseconds {
                throw DecodingError.dataCorruptedError(
                    forKey: .remainingMicroseconds, in: container,
                    debugDescription: "\(remaining) µs left is more than the \(delayMicroseconds) µs armed")
            }
        }
    }

    /// The timer's state; call while the machine is paused (the time left is frozen then).
    package func snapshot() -> Snapshot {
        state.withLock { state in
            let remaining = state.frozenRemaining ?? state.deadline.map { max($0 - ContinuousClock.now, .zero) }
            let microseconds = remaining.map { remaining -> UInt32 in
                let (seconds, attoseconds) = remaining.components
                let total = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
                return UInt32(clamping: min(max(total, 0), Int64(state.delay)))
            }
            return Snapshot(
                delayMicroseconds: state.delay, fired: state.fired, count: state.count,
                remainingMicroseconds: state.isArmed ? microseconds ?? 0 : nil)
        }
    }

    /// Takes `snapshot`'s state, frozen: an armed timer runs on from ``resume()``, the way a
    /// paused machine's timers do.
    package func restore(_ snapshot: Snapshot) {
        state.withLock { state in
            state.generation &+= 1
            state.pending?.cancel()
            state.pending = nil
            state.deadline = nil
            state.delay = snapshot.delayMicroseconds
            state.fired = snapshot.fired
            state.count = snapshot.count
            state.isSuspended = true
            state.frozenRemaining = snapshot.remainingMicroseconds.map { .microseconds(Int64($0)) }
        }
    }

    /// Handles a guest read; only aligned 32-bit reads of listed registers are answered.
    package func read(offset: UInt64, width: Int) -> UInt64 {
        guard let register = DeviceAccess.register(offset: offset, width: width) else {
            return DeviceBus.mask(width: width)
        }
        return state.withLock { state in
            switch register {
            case Register.magic: return UInt64(Self.magic)
            case Register.delayMicroseconds: return UInt64(state.delay)
            case Register.status:
                return UInt64((state.fired ? Status.fired : 0) | (state.isArmed ? Status.armed : 0))
            case Register.count: return UInt64(state.count)
            default: return DeviceBus.mask(width: width)
            }
        }
    }

    /// Handles a guest write; only aligned 32-bit writes to DELAY_US and STATUS do anything.
    package func write(offset: UInt64, width: Int, value: UInt64) {
        guard let register = DeviceAccess.register(offset: offset, width: width) else { return }
        let word = UInt32(truncatingIfNeeded: value)
        switch register {
        case Register.delayMicroseconds:
            arm(microseconds: word)
        case Register.status where word & Status.fired != 0:
            state.withLock { $0.fired = false }
        default:
            break
        }
    }

    private func arm(microseconds: UInt32) {
        state.withLock { state in
            state.delay = microseconds
            state.generation &+= 1
            state.pending?.cancel()
            state.pending = nil
            state.frozenRemaining = nil
            guard microseconds > 0 else { return }
            let delay = Duration.microseconds(Int64(microseconds))
            if state.isSuspended {
                state.frozenRemaining = delay
            } else {
                schedule(after: delay, &state)
            }
        }
    }

    /// Schedules an expiry `delay` from now under a new generation.
    private func schedule(after delay: Duration, _ state: inout State) {
        guard !state.isShutDown else { return }
        state.generation &+= 1
        let generation = state.generation
        let (seconds, attoseconds) = delay.components
        let nanoseconds = Int(clamping: seconds) &* 1_000_000_000 &+ Int(attoseconds / 1_000_000_000)
        let source = DispatchSource.makeTimerSource(queue: queue)
        source.schedule(deadline: .now() + .nanoseconds(nanoseconds), repeating: .never, leeway: .microseconds(50))
        // Weak: a pending expiry must not keep a discarded device alive.
        source.setEventHandler { [weak self] in self?.expire(generation: generation) }
        state.pending = source
        state.deadline = .now + delay
        source.resume()
    }

    private func expire(generation: UInt64) {
        let current = state.withLock { state in
            guard state.generation == generation, state.pending != nil else { return false }
            state.pending?.cancel()
            state.pending = nil
            state.deadline = nil
            state.fired = true
            state.count &+= 1
            return true
        }
        if current { interrupt.trigger() }
    }
}
