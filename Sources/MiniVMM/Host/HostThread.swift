import Glibc
import Synchronization
import SystemPackage

/// A dedicated POSIX thread that can be joined, for the host layer's long blocking waits
/// (the stdin pump, the signal watcher), which must not occupy a Dispatch worker and must
/// not outlive the machine.
///
/// It inherits the creating thread's signal mask, which is how it gets SIGINT, SIGTERM and
/// SIGHUP blocked (see ``Signals/prepareProcess()``).
final class HostThread: Sendable {
    private final class Start {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// The pthread, until it is joined.
    private let thread: Mutex<pthread_t?>

    /// The pthread, for directing a signal at it (``SignalWatcher``); `nil` once joined.
    var handle: pthread_t? { thread.withLock { $0 } }

    /// Starts a thread that runs `body`.
    /// - Throws: ``HostError`` when pthread_create fails.
    init(_ body: @escaping @Sendable () -> Void) throws(HostError) {
        let start = Unmanaged.passRetained(Start(body))
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { context in
            let start = Unmanaged<Start>.fromOpaque(context!).takeRetainedValue()
            start.body()
            return nil
        }, start.toOpaque())
        guard result == 0 else {
            start.release()
            throw HostError("pthread_create", Errno(rawValue: result))
        }
        self.thread = Mutex(thread)
    }

    /// Waits until the thread has finished. Only the first call waits; later ones return at
    /// once. Must not be called from the thread itself.
    func join() {
        guard let thread = self.thread.withLock({ thread in
            defer { thread = nil }
            return thread
        }) else { return }
        _ = pthread_join(thread, nil)
    }
}
