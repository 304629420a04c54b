import Dispatch
import KVM
import Synchronization

/// Stops the vCPU once `timeout` has passed, for `--timeout`.
final class Watchdog: Sendable {
    /// How long the guest may run.
    let timeout: Duration
    private let fired = Atomic<Bool>(false)

    /// Arms the watchdog: after `timeout` it marks itself fired and kicks the vCPU.
    init(timeout: Duration, kick: VcpuKick) {
        self.timeout = timeout
        let (seconds, attoseconds) = timeout.components
        let nanoseconds = Int(clamping: seconds) &* 1_000_000_000 &+ Int(attoseconds / 1_000_000_000)
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(max(nanoseconds, 1))) { [self] in
            fired.store(true, ordering: .sequentiallyConsistent)
            kick.kick()
        }
    }

    /// Whether the timeout has expired.
    var hasFired: Bool { fired.load(ordering: .sequentiallyConsistent) }
}
