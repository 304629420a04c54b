import Glibc
import Synchronization

/// The process's signal set-up, and the watcher that turns SIGINT, SIGTERM and SIGHUP into
/// a stop request.
package enum Signals {
    /// The signals that stop the machine, each ending minivmm with status 128 + its number.
    static let stopping: [Int32] = [SIGINT, SIGTERM, SIGHUP]

    /// Prepares the process; call it first in `main`, before any thread exists, so every
    /// thread inherits the mask.
    ///
    /// - SIGPIPE and SIGXFSZ are ignored: a closed stdout or stderr (even for `--help` or a
    ///   usage error) and `ulimit -f` on an output file become write errors (`EPIPE`,
    ///   `EFBIG`) that the console handles, not a death by signal.
    /// - SIGINT, SIGTERM and SIGHUP are blocked in every thread, so only the
    ///   ``SignalWatcher`` takes them (with sigwait). The vCPU kick signal (the first
    ///   real-time signal) stays unblocked.
    package static func prepareProcess() {
        signal(SIGPIPE, SIG_IGN)
        signal(SIGXFSZ, SIG_IGN)
        var set = stoppingSet()
        _ = pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// The conventional name, e.g. `SIGINT`, or `signal N`.
    static func name(_ number: Int32) -> String {
        switch number {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        case SIGHUP: "SIGHUP"
        default: "signal \(number)"
        }
    }

    /// SIGINT, SIGTERM and SIGHUP as a `sigset_t`.
    static func stoppingSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for number in stopping { sigaddset(&set, number) }
        return set
    }
}

/// Turns SIGINT, SIGTERM and SIGHUP into `latch.request(.signal(n))`, from a dedicated
/// thread that waits for them in sigwait(3).
///
/// The signals must be blocked in every thread (``Signals/prepareProcess()``), otherwise the
/// kernel may act on them the default way. A signal that arrived before the watcher existed
/// is pending and taken as soon as it starts. ``stop()`` ends the thread by directing a
/// SIGHUP at it after setting a flag, so that one is not taken for a user's signal.
final class SignalWatcher: Sendable {
    /// Set by ``stop()`` before it wakes the thread.
    private final class Flag: Sendable {
        let isSet = Atomic<Bool>(false)
    }

    private let thread: HostThread
    private let stopping = Flag()

    /// Starts watching for the stopping signals on behalf of `latch`.
    /// - Throws: ``HostError`` when the thread cannot be created.
    init(latch: StopLatch) throws(HostError) {
        let stopping = self.stopping
        thread = try HostThread {
            var set = Signals.stoppingSet()
            while true {
                var number: Int32 = 0
                // sigwait fails only for an invalid set; the set is fixed and valid.
                guard sigwait(&set, &number) == 0 else { return }
                if stopping.isSet.load(ordering: .acquiring) { return }
                latch.request(.signal(number))
            }
        }
    }

    /// Ends the watcher thread and waits for it. Idempotent.
    func stop() {
        guard !stopping.isSet.exchange(true, ordering: .acquiringAndReleasing), let handle = thread.handle else { return }
        _ = pthread_kill(handle, SIGHUP)
        thread.join()
    }

    deinit {
        stop()
    }
}
