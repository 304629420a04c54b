import Logging
import MiniVMM
import Synchronization

/// A `ConsoleOutput` that keeps everything written to it, and how many write calls came.
final class RecordingConsoleOutput: ConsoleOutput {
    private let recorded = Mutex<(bytes: [UInt8], writes: Int)>(([], 0))

    func write(_ bytes: UnsafeRawBufferPointer) {
        recorded.withLock { $0.bytes.append(contentsOf: bytes); $0.writes += 1 }
    }

    /// Every byte written so far, in order.
    var bytes: [UInt8] { recorded.withLock { $0.bytes } }
    /// The bytes as UTF-8 text.
    var text: String { String(decoding: bytes, as: UTF8.self) }
    /// How many `write` calls were made.
    var writeCount: Int { recorded.withLock { $0.writes } }
}

/// An `InterruptLine` that records every call.
final class RecordingInterruptLine: InterruptLine {
    enum Event: Equatable, Sendable {
        case trigger
        case level(Bool)
    }

    private let recorded = Mutex<(events: [Event], level: Bool)>(([], false))

    func trigger() { recorded.withLock { $0.events.append(.trigger) } }
    func setLevel(_ asserted: Bool) { recorded.withLock { $0.events.append(.level(asserted)); $0.level = asserted } }

    /// Every call so far, in order.
    var events: [Event] { recorded.withLock { $0.events } }
    /// How many edge pulses were raised.
    var triggerCount: Int { events.filter { $0 == .trigger }.count }
    /// The level calls only, in order.
    var levels: [Bool] {
        events.compactMap { if case .level(let high) = $0 { high } else { nil } }
    }
    /// The line's current level (low before any call).
    var isAsserted: Bool { recorded.withLock { $0.level } }

    /// Forgets the calls recorded so far (the current level stays).
    func reset() { recorded.withLock { $0.events.removeAll() } }

    /// Waits until at least `count` pulses were raised, polling every millisecond for at most
    /// `timeout`; returns whether they came.
    func waitForTriggers(_ count: Int, timeout: Duration = .seconds(2)) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if triggerCount >= count { return true }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return triggerCount >= count
    }
}

/// Guest RAM held in arrays: `withBytes` succeeds only for ranges inside one region,
/// like the real guest memory.
final class InMemoryGuestMemory: GuestMemoryReader {
    struct Region: Sendable {
        let base: UInt64
        let bytes: [UInt8]
    }

    let regions: [Region]
    private let calls = Mutex(0)

    init(regions: [Region]) {
        self.regions = regions
    }

    /// One region at `base` whose byte `i` is `pattern(i)`.
    convenience init(base: UInt64, size: Int, pattern: (Int) -> UInt8 = { UInt8(truncatingIfNeeded: $0) }) {
        self.init(regions: [Region(base: base, bytes: (0..<size).map(pattern))])
    }

    /// How many times the body was called (how many accesses succeeded).
    var successfulAccesses: Int { calls.withLock { $0 } }

    func withBytes(at address: UInt64, count: Int, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard count >= 0 else { return false }
        for region in regions where address >= region.base {
            let offset = address - region.base
            let size = UInt64(region.bytes.count)
            guard offset <= size, UInt64(count) <= size - offset else { continue }
            let start = Int(offset)
            region.bytes[start..<(start + count)].withUnsafeBytes(body)
            calls.withLock { $0 += 1 }
            return true
        }
        return false
    }
}

/// A small deterministic generator (SplitMix64) so randomised tests can print and reuse
/// their seed.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A log handler that keeps every message.
struct RecordingLogHandler: LogHandler {
    final class Store: Sendable {
        let messages = Mutex<[(Logger.Level, String)]>([])
        var lines: [String] { messages.withLock { $0.map { "\($0.0): \($0.1)" } } }
    }

    let store: Store
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        store.messages.withLock { $0.append((event.level, event.message.description)) }
    }
}
