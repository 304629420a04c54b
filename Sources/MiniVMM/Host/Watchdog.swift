import Dispatch
import Synchronization

/// `--timeout`: requests a ``StopLatch/Reason/timeout`` stop once the duration has passed.
///
/// It runs from the moment it is created, which is before the image is loaded, so a FIFO
/// image without a writer or a blocked console cannot outlast it. The timer is a Dispatch
/// deadline: no thread sleeps for it, and a pending one never keeps the process alive.
/// After ``cancel()`` it does nothing when it comes due; it then holds only a small flag
/// and the latch, not the machine.
final class Watchdog: Sendable {
    private final class Armed: Sendable {
        let isArmed = Atomic<Bool>(true)
    }

    /// How long the machine may run.
    let timeout: Duration
    private let armed = Armed()

    /// Arms the watchdog: after `timeout`, `latch.request(.timeout)` unless cancelled.
    init(timeout: Duration, latch: StopLatch) {
        self.timeout = timeout
        let (seconds, attoseconds) = timeout.components
        let nanoseconds = Int(clamping: seconds) &* 1_000_000_000 &+ Int(attoseconds / 1_000_000_000)
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(max(nanoseconds, 1))) { [armed] in
            if armed.isArmed.load(ordering: .acquiring) { latch.request(.timeout) }
        }
    }

    /// Disarms the watchdog (at shutdown): a timeout that has not fired yet never fires.
    func cancel() {
        armed.isArmed.store(false, ordering: .releasing)
    }

    deinit {
        cancel()
    }
}
