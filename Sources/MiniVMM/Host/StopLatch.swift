import Synchronization
import SystemPackage

/// The machine's one stop request: the watchdog, the signal watcher or the machine itself
/// sets it once, and everything that may wait (vCPUs in `KVM_RUN`, console writes, the
/// stdin pump, image loading) notices.
///
/// The first ``request(_:)`` wins; later ones change nothing. A request stores the reason,
/// makes ``pollDescriptor`` readable for good, then calls every observer once, so a waiter
/// either sees the reason before it blocks or is woken. The vCPU run loop clears its kick
/// first and then reads ``reason``, so a request between the two is never lost.
package final class StopLatch: Sendable {
    /// Why the machine is asked to stop.
    package enum Reason: Hashable, Sendable {
        /// `--timeout` expired.
        case timeout
        /// minivmm received this signal (SIGINT, SIGTERM or SIGHUP).
        case signal(Int32)
        /// The machine finished on its own and is shutting down.
        case finished
    }

    private struct State {
        var reason: Reason?
        var observers: [@Sendable () -> Void] = []
    }

    private let state = Mutex(State())
    private let event: WakeEvent

    /// Creates an unset latch.
    /// - Throws: ``HostError`` when the eventfd behind ``pollDescriptor`` cannot be created.
    package init() throws(HostError) {
        event = try WakeEvent()
    }

    /// A descriptor that becomes readable, and stays so, once a stop is requested; poll(2)
    /// it next to a descriptor that may block. Never read from it.
    var pollDescriptor: FileDescriptor { event.descriptor }

    /// The reason of the first request, or `nil` while none was made.
    package var reason: Reason? { state.withLock { $0.reason } }

    /// Whether a stop was requested.
    var isRequested: Bool { reason != nil }

    /// Requests a stop for `reason`, unless one was requested already. Safe from any thread.
    package func request(_ reason: Reason) {
        let observers: [@Sendable () -> Void]? = state.withLock { state in
            guard state.reason == nil else { return nil }
            state.reason = reason
            defer { state.observers = [] }
            return state.observers
        }
        guard let observers else { return }
        event.signal()
        for observer in observers { observer() }
    }

    /// Calls `body` once when a stop is requested, or at once if one was requested already.
    /// `body` runs on the requesting thread and must not block (e.g. `VcpuKick.kick()`).
    func addObserver(_ body: @escaping @Sendable () -> Void) {
        let alreadyRequested = state.withLock { state in
            if state.reason != nil { return true }
            state.observers.append(body)
            return false
        }
        if alreadyRequested { body() }
    }
}
