/// Holds every vCPU of a machine out of `KVM_RUN`: the pause machinery the control API and
/// snapshots build on.
///
/// ``pause()`` marks the machine paused, kicks every vCPU and returns once each one is
/// parked in ``park()`` (called by its run loop after an interrupted `KVM_RUN`) or has ended;
/// while paused no vCPU runs guest code. ``resume()`` lets them all go again. A stop request
/// (``release()``, from the stop latch) wakes parked vCPUs so the machine can end.
package final class PauseGate: Sendable {
    private struct State {
        var paused = false
        var released = false
        var parked = 0
        var running: Int
        var kicks: [@Sendable () -> Void] = []
    }

    private let condition = HostCondition()
    // Guarded by `condition`'s mutex.
    nonisolated(unsafe) private var state: State

    /// A gate for `vcpus` running vCPUs; with `startPaused`, each parks before its first
    /// `KVM_RUN` until ``resume()`` (a restored machine).
    package init(vcpus: Int, startPaused: Bool = false) {
        state = State(paused: startPaused, running: vcpus)
    }

    /// Registers how to kick one vCPU out of `KVM_RUN`.
    package func addKick(_ kick: @escaping @Sendable () -> Void) {
        condition.withLock { state.kicks.append(kick) }
    }

    /// Whether the machine is paused.
    package var isPaused: Bool { condition.withLock { state.paused } }

    /// Pauses every vCPU and waits until all are parked (or ended). Idempotent.
    package func pause() {
        let kicks = condition.withLock { () -> [@Sendable () -> Void] in
            state.paused = true
            return state.kicks
        }
        for kick in kicks { kick() }
        condition.withLock {
            while state.parked < state.running && !state.released { condition.wait() }
        }
    }

    /// Lets every parked vCPU run again.
    package func resume() {
        condition.withLock {
            state.paused = false
            condition.broadcast()
        }
    }

    /// Called by a run loop after an interrupted `KVM_RUN`: while the machine is paused,
    /// parks this vCPU; returns when it may run again or the machine stops.
    package func park() {
        condition.withLock {
            guard state.paused, !state.released else { return }
            state.parked += 1
            condition.broadcast()
            while state.paused && !state.released { condition.wait() }
            state.parked -= 1
        }
    }

    /// Called when a vCPU's run loop ends for good, so a pause does not wait for it.
    package func vcpuEnded() {
        condition.withLock {
            state.running -= 1
            condition.broadcast()
        }
    }

    /// Wakes every parked vCPU and every waiting ``pause()`` for good: the machine is stopping.
    package func release() {
        condition.withLock {
            state.released = true
            condition.broadcast()
        }
    }
}
