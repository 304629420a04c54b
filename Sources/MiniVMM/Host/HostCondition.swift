import Glibc

/// A mutex and a condition variable (pthread), for threads that must sleep until another
/// thread changes shared state — the one place MiniVMM uses them.
///
/// The pthread objects live at fixed heap addresses (they must never move), created in
/// `init` and destroyed in `deinit`; callers only see ``withLock(_:)``, ``wait()`` and
/// ``broadcast()``.
final class HostCondition: @unchecked Sendable {
    // Fixed heap addresses, touched only through pthread calls: why the unchecked Sendable is sound.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    /// A new mutex and condition.
    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Runs `body` with the mutex held.
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Sleeps until a ``broadcast()``; call only inside ``withLock(_:)``, in a loop that
    /// re-checks its condition (wake-ups may be spurious).
    func wait() {
        pthread_cond_wait(condition, mutex)
    }

    /// Wakes every thread sleeping in ``wait()``.
    func broadcast() {
        pthread_cond_broadcast(condition)
    }
}
