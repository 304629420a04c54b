import CKVM
import Glibc
import Synchronization

/// A vCPU's mmapped `kvm_run` area plus the state a kick needs.
///
/// Shared by the ``Vcpu`` and its ``VcpuKick`` handles so that the mapping stays valid as
/// long as either exists; unmapped exactly once, in deinit. Only `immediate_exit` (written
/// atomically) and the mutex-protected thread id are touched from other threads, which is
/// why the unchecked `Sendable` is sound.
final class RunPage: @unchecked Sendable {
    let run: UnsafeMutablePointer<kvm_run>
    let size: Int
    /// The thread currently inside ``Vcpu/run()``, as a `pthread_t`, or nil.
    private let runningThread = Mutex<UInt?>(nil)

    init(vcpuDescriptor: Int32, size: Int) throws(KVMError) {
        let address = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpuDescriptor, 0)
        guard let address, address != MAP_FAILED else { throw lastError("mmap kvm_run") }
        run = address.bindMemory(to: kvm_run.self, capacity: 1)
        self.size = size
    }

    deinit {
        munmap(run, size)
    }

    /// Records the calling thread as the one to signal while it runs the vCPU.
    func enter(thread: UInt) {
        runningThread.withLock { $0 = thread }
    }

    /// Forgets the running thread.
    func leave() {
        runningThread.withLock { $0 = nil }
    }

    /// Sets `immediate_exit` and, if a thread is inside `run()`, interrupts it with the
    /// kick signal. Holding the lock while signalling guarantees the thread still exists.
    func kick() {
        ckvm_run_set_immediate_exit(run, 1)
        runningThread.withLock { thread in
            if let thread { _ = ckvm_pthread_kill(thread, ckvm_kick_signal()) }
        }
    }
}

/// The process-wide installation of the kick signal's no-op handler (without SA_RESTART),
/// done once, before the first kick handle exists.
let kickHandlerInstallation: Result<Void, KVMError> = {
    if ckvm_install_kick_handler(ckvm_kick_signal()) == 0 { return .success(()) }
    return .failure(lastError("sigaction"))
}()

/// A `Sendable` handle that stops a vCPU from any thread, e.g. a watchdog implementing a
/// timeout. Obtain it with ``Vcpu/kickHandle()``.
///
/// ``kick()`` sets `kvm_run.immediate_exit` and sends the vCPU thread a signal whose
/// handler does nothing, so a running ``Vcpu/run()`` returns ``VcpuExit/interrupted`` and
/// a later one returns it at once. The kick is sticky: every `run()` returns
/// `.interrupted` until ``Vcpu/clearKick()`` is called, so a kick can never be lost between
/// two runs. The handle keeps the `kvm_run` mapping alive, never the vCPU descriptor.
public struct VcpuKick: Sendable {
    let page: RunPage

    /// Interrupts the vCPU's current or next ``Vcpu/run()``. Safe from any thread, any time.
    public func kick() {
        page.kick()
    }
}
