import SystemPackage

/// Feeds a descriptor (minivmm's stdin) to COM1 from a dedicated thread, so a guest can
/// read what the user types or a script pipes in.
///
/// The thread blocks in poll on the input and a private ``WakeEvent``: `EAGAIN` from an
/// `O_NONBLOCK` stdin means "wait again", not end of file. It stops at end of file, at a
/// read error, or when ``stop()`` wakes it; ``stop()`` also joins it, so no pump thread
/// outlives the machine. While more than ``backlogLimit`` bytes wait for the guest it stops
/// reading (a huge pipe cannot fill host memory) and waits, again in poll, until the UART
/// reports that the guest has read the backlog down below the limit.
final class InputPump: Sendable {
    /// How many unread bytes the UART may hold before the pump waits.
    static let backlogLimit = 1 << 20
    /// The size of one read(2).
    static let readSize = 4096

    private let input: FileDescriptor
    private let serial: Serial16550
    private let limit: Int
    /// Signalled by ``stop()``.
    private let wake: WakeEvent
    /// Signalled by the UART when the backlog drops below the limit.
    private let room: WakeEvent
    private let thread: HostThread

    /// Starts pumping `input` into `serial` on a new thread; `backlogLimit` is overridable
    /// for tests.
    /// - Throws: ``HostError`` when the eventfds or the thread cannot be created.
    init(input: FileDescriptor, serial: Serial16550, backlogLimit: Int = InputPump.backlogLimit) throws(HostError) {
        let wake = try WakeEvent()
        let room = try WakeEvent()
        let limit = max(backlogLimit, 1)
        thread = try HostThread {
            Self.pump(input: input, serial: serial, limit: limit, wake: wake, room: room)
        }
        self.input = input
        self.serial = serial
        self.limit = limit
        self.wake = wake
        self.room = room
    }

    /// Wakes the pump and waits until its thread has ended. Idempotent.
    func stop() {
        wake.signal()
        thread.join()
    }

    deinit {
        stop()
    }

    /// The thread's body; returns at end of file, on a read error or when `wake` fires.
    private static func pump(
        input: FileDescriptor, serial: Serial16550, limit: Int, wake: WakeEvent, room: WakeEvent
    ) {
        var buffer = [UInt8](repeating: 0, count: readSize)
        while true {
            // Backpressure: wait for the UART's signal (or stop) while the guest lags.
            while serial.pendingInputCount >= limit {
                room.drain()
                serial.notifyWhenPendingInput(below: limit) { room.signal() }
                guard let events = try? HostCall.wait(for: .readable, on: room.descriptor, orReadable: wake.descriptor),
                    events.wake.isEmpty
                else {
                    return
                }
            }
            guard let events = try? HostCall.wait(for: .readable, on: input, orReadable: wake.descriptor),
                events.wake.isEmpty
            else {
                return
            }
            let count: Int
            do {
                count = try HostCall.retrying("read") {
                    try buffer.withUnsafeMutableBytes { try input.read(into: $0, retryOnInterrupt: false) }
                }
            } catch where error.errno == .wouldBlock {
                continue  // O_NONBLOCK stdin after a spurious wake-up: wait again.
            } catch {
                return
            }
            guard count > 0 else { return }
            serial.receive(buffer[0..<count])
        }
    }
}
