import CKVM
import Glibc
import SystemPackage

/// The general-purpose registers, RIP and RFLAGS (`struct kvm_regs`: `rax` … `r15`,
/// `rip`, `rflags`).
public typealias Registers = kvm_regs
/// The special registers (`struct kvm_sregs`): segments, descriptor tables, `cr0`, `cr2`,
/// `cr3`, `cr4`, `cr8`, `efer`, `apic_base`.
public typealias SpecialRegisters = kvm_sregs
/// A segment register as KVM describes it (`struct kvm_segment`).
public typealias Segment = kvm_segment
/// A descriptor-table register, GDTR or IDTR (`struct kvm_dtable`: `base`, `limit`).
public typealias DescriptorTable = kvm_dtable

/// One virtual CPU: its registers, CPUID and the run loop's `run()`.
///
/// A `Vcpu` belongs to the thread that runs it and is not `Sendable`; other threads stop
/// it through a ``VcpuKick`` from ``kickHandle()``. Create it with
/// ``VirtualMachine/createVcpu(id:)``.
public final class Vcpu {
    /// The vCPU's file descriptor, owned by this object.
    public let fileDescriptor: Int32
    /// The vCPU ID given to `KVM_CREATE_VCPU`.
    public let id: UInt32
    private let page: RunPage
    /// The last thread for which the kick signal was unblocked (0: none yet).
    private var signalReadyThread: UInt = 0

    init(fileDescriptor: Int32, runPage: RunPage, id: UInt32) {
        self.fileDescriptor = fileDescriptor
        self.page = runPage
        self.id = id
    }

    deinit {
        close(fileDescriptor)
    }

    // MARK: Registers

    /// Reads the general-purpose registers (`KVM_GET_REGS`).
    public func getRegisters() throws(KVMError) -> Registers {
        var registers = Registers()
        try ioctl(fileDescriptor, CKVM_GET_REGS, "KVM_GET_REGS", &registers)
        return registers
    }

    /// Writes the general-purpose registers (`KVM_SET_REGS`).
    public func setRegisters(_ registers: Registers) throws(KVMError) {
        var registers = registers
        try ioctl(fileDescriptor, CKVM_SET_REGS, "KVM_SET_REGS", &registers)
    }

    /// Reads the registers, lets `body` change them, and writes them back.
    public func modifyRegisters(_ body: (inout Registers) -> Void) throws(KVMError) {
        var registers = try getRegisters()
        body(&registers)
        try setRegisters(registers)
    }

    /// Reads the special registers (`KVM_GET_SREGS`).
    public func getSpecialRegisters() throws(KVMError) -> SpecialRegisters {
        var registers = SpecialRegisters()
        try ioctl(fileDescriptor, CKVM_GET_SREGS, "KVM_GET_SREGS", &registers)
        return registers
    }

    /// Writes the special registers (`KVM_SET_SREGS`).
    public func setSpecialRegisters(_ registers: SpecialRegisters) throws(KVMError) {
        var registers = registers
        try ioctl(fileDescriptor, CKVM_SET_SREGS, "KVM_SET_SREGS", &registers)
    }

    /// Reads the special registers, lets `body` change them, and writes them back.
    public func modifySpecialRegisters(_ body: (inout SpecialRegisters) -> Void) throws(KVMError) {
        var registers = try getSpecialRegisters()
        body(&registers)
        try setSpecialRegisters(registers)
    }

    /// Sets the CPUID leaves the guest sees (`KVM_SET_CPUID2`), typically
    /// ``Kvm/supportedCPUID()``. Call before the first `run()`.
    ///
    /// - Complexity: O(n) in the number of entries.
    public func setCPUID2(_ entries: [CPUIDEntry]) throws(KVMError) {
        let buffer = CPUIDBuffer(entries: entries)
        let result = buffer.withHeader { ckvm_ioctl_pointer(fileDescriptor, CKVM_SET_CPUID2, $0) }
        guard result == 0 else { throw lastError("KVM_SET_CPUID2") }
    }

    // MARK: Running

    /// Runs the vCPU until the next exit that needs user space (`KVM_RUN`).
    ///
    /// For ``VcpuExit/io(_:)`` input and ``VcpuExit/mmio(_:)`` reads, fill the exit's data
    /// before calling `run()` again: KVM completes the instruction with it then.
    /// - Throws: ``KVMError/failed(operation:errno:)`` for a failing `KVM_RUN` other than
    ///   EINTR (which is ``VcpuExit/interrupted``).
    public func run() throws(KVMError) -> VcpuExit {
        let thread = ckvm_pthread_self()
        if thread != signalReadyThread {
            // A kick must be able to reach whichever thread runs the vCPU.
            _ = ckvm_unblock_signal(ckvm_kick_signal())
            signalReadyThread = thread
        }
        page.enter(thread: thread)
        let result = ckvm_ioctl_none(fileDescriptor, CKVM_RUN)
        let errno = ckvm_errno()
        page.leave()
        guard result == 0 else {
            if errno == EINTR { return .interrupted }
            throw .failed(operation: "KVM_RUN", errno: Errno(rawValue: errno))
        }
        return VcpuExit(decoding: page.run, pageSize: page.size)
    }

    /// A handle another thread can use to stop this vCPU's `run()`.
    ///
    /// - Throws: ``KVMError/failed(operation:errno:)`` if the kick signal's handler could
    ///   not be installed.
    public func kickHandle() throws(KVMError) -> VcpuKick {
        try kickHandlerInstallation.get()
        return VcpuKick(page: page)
    }

    /// Whether a kick is pending (`kvm_run.immediate_exit` is set).
    public var isKickPending: Bool {
        ckvm_run_immediate_exit(page.run) != 0
    }

    /// Clears a pending kick so `run()` enters the guest again.
    public func clearKick() {
        ckvm_run_set_immediate_exit(page.run, 0)
    }

    // MARK: Diagnostics

    /// A multi-line dump of the registers and special registers for crash reports;
    /// failures to read them are reported inline rather than thrown.
    public func stateDescription() -> String {
        var lines: [String] = []
        do {
            let r = try getRegisters()
            lines.append("rip=\(hex(r.rip)) rflags=\(hex(r.rflags)) rsp=\(hex(r.rsp)) rbp=\(hex(r.rbp))")
            lines.append("rax=\(hex(r.rax)) rbx=\(hex(r.rbx)) rcx=\(hex(r.rcx)) rdx=\(hex(r.rdx))")
            lines.append("rsi=\(hex(r.rsi)) rdi=\(hex(r.rdi)) r8=\(hex(r.r8)) r9=\(hex(r.r9))")
            lines.append("r10=\(hex(r.r10)) r11=\(hex(r.r11)) r12=\(hex(r.r12)) r13=\(hex(r.r13))")
            lines.append("r14=\(hex(r.r14)) r15=\(hex(r.r15))")
        } catch {
            lines.append("registers unavailable: \(error)")
        }
        do {
            let s = try getSpecialRegisters()
            lines.append("cr0=\(hex(s.cr0)) cr2=\(hex(s.cr2)) cr3=\(hex(s.cr3)) cr4=\(hex(s.cr4)) efer=\(hex(s.efer))")
            lines.append("cs=\(hex(UInt64(s.cs.selector))) ds=\(hex(UInt64(s.ds.selector))) ss=\(hex(UInt64(s.ss.selector))) "
                + "gdt=\(hex(s.gdt.base))/\(hex(UInt64(s.gdt.limit))) idt=\(hex(s.idt.base))/\(hex(UInt64(s.idt.limit)))")
        } catch {
            lines.append("special registers unavailable: \(error)")
        }
        return lines.joined(separator: "\n")
    }

    private func hex(_ value: UInt64) -> String {
        "0x" + String(value, radix: 16)
    }
}
