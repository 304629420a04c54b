import CKVM
import SystemPackage

extension KVMCapability {
    /// `KVM_CAP_XSAVE2`: `KVM_GET_XSAVE2`; the check returns the XSAVE area's size in bytes.
    public static let xsave2 = Self(rawValue: CKVM_CAP_XSAVE2)
    /// `KVM_CAP_GET_TSC_KHZ`: `KVM_GET_TSC_KHZ`.
    public static let getTSCKhz = Self(rawValue: KVM_CAP_GET_TSC_KHZ)
    /// `KVM_CAP_TSC_CONTROL`: `KVM_SET_TSC_KHZ` may set a rate other than the host's.
    public static let tscControl = Self(rawValue: KVM_CAP_TSC_CONTROL)
}

extension Kvm {
    /// The size in bytes of a vCPU's XSAVE area as `KVM_GET_XSAVE2` returns it: the
    /// `KVM_CAP_XSAVE2` result, or 4096 (`struct kvm_xsave`) on hosts without it.
    ///
    /// The kernel computes it from the host's XSAVE features and the process's permissions
    /// for dynamic ones (AMX, `arch_prctl(ARCH_REQ_XCOMP_GUEST_PERM)`), the same on the
    /// system and the VM descriptor. Permissions only grow, and a vCPU's own area never
    /// exceeds the value at the time of the call, which is why ``Vcpu/saveState(using:)``
    /// asks again each time instead of caching it.
    public func xsaveStateSize() -> Int {
        max(VcpuState.legacyXSaveSize, Int(checkExtension(.xsave2)))
    }
}

extension Vcpu {
    // MARK: Saving and restoring

    /// Saves everything needed to continue this vCPU exactly: registers, special
    /// registers, FPU, XSAVE, XCRs, the readable MSRs of ``Kvm/msrIndexList()``, LAPIC,
    /// pending events, MP state and debug registers. Tens of microseconds.
    ///
    /// The vCPU must not be running (call from its thread, between runs), and a pending
    /// port or MMIO exit must be completed first with ``completePendingIO()``: until then
    /// KVM's RIP still points at the port or MMIO instruction, so a restored guest would
    /// execute it again (a second device access) and an input value the monitor already
    /// supplied would be lost. Needs
    /// the in-kernel irqchip (for the LAPIC). `kvm` provides the MSR list and the XSAVE
    /// size, which are system-level facts a vCPU descriptor cannot be asked for.
    ///
    /// - Complexity: O(m) in the number of MSRs; about 15 ioctls.
    public func saveState(using kvm: Kvm) throws(KVMError) -> VcpuState {
        let xsaveSize = kvm.xsaveStateSize()
        // KVM_GET_XSAVE2 writes as many bytes as the vCPU's area has, which never exceeds
        // the size just queried; the legacy call writes exactly 4096.
        let xsave =
            kvm.supports(.xsave2)
            ? try getKernelBytes(fileDescriptor, CKVM_GET_XSAVE2, "KVM_GET_XSAVE2", size: xsaveSize)
            : try getKernelBytes(fileDescriptor, CKVM_GET_XSAVE, "KVM_GET_XSAVE", size: VcpuState.legacyXSaveSize)
        return VcpuState(
            registersBytes: kernelBytes(of: try getRegisters()),
            specialRegistersBytes: kernelBytes(of: try getSpecialRegisters()),
            fpuBytes: try getKernelBytes(fileDescriptor, CKVM_GET_FPU, "KVM_GET_FPU", size: MemoryLayout<kvm_fpu>.size),
            xsaveBytes: xsave,
            xcrsBytes: try getKernelBytes(fileDescriptor, CKVM_GET_XCRS, "KVM_GET_XCRS", size: MemoryLayout<kvm_xcrs>.size),
            lapicBytes: try getKernelBytes(
                fileDescriptor, CKVM_GET_LAPIC, "KVM_GET_LAPIC", size: MemoryLayout<kvm_lapic_state>.size),
            eventsBytes: try getKernelBytes(
                fileDescriptor, CKVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", size: MemoryLayout<kvm_vcpu_events>.size),
            debugRegistersBytes: try getKernelBytes(
                fileDescriptor, CKVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS", size: MemoryLayout<kvm_debugregs>.size),
            msrs: try getMSRs(try kvm.msrIndexList()),
            mpState: try getMPState())
    }

    /// Restores a state saved by ``saveState(using:)``, typically into a fresh vCPU of a
    /// fresh VM whose memory holds the saved RAM.
    ///
    /// Order of the whole restore (measured to continue the guest exactly): set up the VM
    /// (TSS, identity map, irqchip, PIT, memory), create the vCPU, ``setCPUID2(_:)``,
    /// ``setTSCKhz(_:)``, then this method, which writes SREGS, REGS, FPU, XSAVE, XCRS,
    /// MSRS, DEBUGREGS, LAPIC, MP_STATE and VCPU_EVENTS in that order (SREGS first: it
    /// sets the APIC base and the CPU mode the later groups are interpreted in), and after
    /// every vCPU,
    /// ``VirtualMachine/restoreState(_:advanceClockByElapsedRealtime:)``.
    ///
    /// Every blob's size is checked before the first ioctl, so a corrupt state throws
    /// without changing the vCPU. A state of the right sizes that KVM rejects throws from
    /// the ioctl that rejected it, with the earlier groups already written.
    ///
    /// The guest TSC is not part of the state KVM restores on every host: some nested
    /// KVMs keep it equal to the host TSC, ignoring the saved `IA32_TSC` MSR.
    ///
    /// - Throws: ``KVMError/failed(operation:errno:)``: errno `EINVAL` with an operation
    ///   `"validate VcpuState.<blob> (…)"` for a blob of the wrong size, otherwise the
    ///   failing ioctl's.
    /// - Complexity: O(m) in the number of MSRs; about 11 ioctls.
    public func restoreState(_ state: VcpuState, using kvm: Kvm) throws(KVMError) {
        // From here on every buffer is exactly as long as the kernel reads.
        try state.validate(on: kvm)
        guard var events = state.events else {
            throw blobSizeError("VcpuState.events", actual: state.eventsBytes.count, expected: MemoryLayout<kvm_vcpu_events>.size)
        }
        var specialRegisters = state.specialRegistersBytes
        try ioctl(fileDescriptor, CKVM_SET_SREGS, "KVM_SET_SREGS", buffer: &specialRegisters)
        var registers = state.registersBytes
        try ioctl(fileDescriptor, CKVM_SET_REGS, "KVM_SET_REGS", buffer: &registers)
        var fpu = state.fpuBytes
        try ioctl(fileDescriptor, CKVM_SET_FPU, "KVM_SET_FPU", buffer: &fpu)
        var xsave = state.xsaveBytes
        try ioctl(fileDescriptor, CKVM_SET_XSAVE, "KVM_SET_XSAVE", buffer: &xsave)
        var xcrs = state.xcrsBytes
        try ioctl(fileDescriptor, CKVM_SET_XCRS, "KVM_SET_XCRS", buffer: &xcrs)
        try setMSRs(state.msrs)
        var debugRegisters = state.debugRegistersBytes
        try ioctl(fileDescriptor, CKVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS", buffer: &debugRegisters)
        var lapic = state.lapicBytes
        try ioctl(fileDescriptor, CKVM_SET_LAPIC, "KVM_SET_LAPIC", buffer: &lapic)
        try setMPState(state.mpState)
        // KVM_GET_VCPU_EVENTS does not set these two "valid" flags, but without them
        // KVM_SET_VCPU_EVENTS ignores the saved pending-NMI count and SIPI vector and the
        // fresh vCPU would keep its own (none).
        events.flags |= CKVM_VCPUEVENT_VALID_NMI_PENDING | CKVM_VCPUEVENT_VALID_SIPI_VECTOR
        try ioctl(fileDescriptor, CKVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS", &events)
    }

    /// Completes a port-I/O or MMIO exit the guest is still waiting for, without running
    /// guest code: one `KVM_RUN` with `kvm_run.immediate_exit` set, which lets KVM finish
    /// the instruction (storing the data of an input exit the caller filled in) and then
    /// return `EINTR` before entering the guest. Call it on a stopped vCPU before
    /// ``saveState(using:)``; it is harmless when nothing is pending.
    ///
    /// It leaves the vCPU kicked (``isKickPending``), like a ``VcpuKick``, so no concurrent
    /// kick is lost: call ``clearKick()`` before running the guest again.
    ///
    /// - Returns: nil once nothing is pending. Otherwise finishing the instruction needed
    ///   user space again (e.g. the second half of an MMIO access wider than 8 bytes):
    ///   handle that exit like any from ``run()`` (fill in input data) and call this again.
    /// - Complexity: one `KVM_RUN`.
    public func completePendingIO() throws(KVMError) -> VcpuExit? {
        // The kick handle sets immediate_exit atomically; no thread is inside run() to signal.
        try kickHandle().kick()
        let exit = try run()
        if case .interrupted = exit { return nil }
        return exit
    }

    // MARK: Single state groups

    /// Reads the multiprocessing state (`KVM_GET_MP_STATE`; `KVM_MP_STATE_*`).
    public func getMPState() throws(KVMError) -> UInt32 {
        var state = kvm_mp_state()
        try ioctl(fileDescriptor, CKVM_GET_MP_STATE, "KVM_GET_MP_STATE", &state)
        return state.mp_state
    }

    /// Writes the multiprocessing state (`KVM_SET_MP_STATE`), e.g. `KVM_MP_STATE_RUNNABLE`
    /// (0) to start an application processor the host has set up.
    public func setMPState(_ mpState: UInt32) throws(KVMError) {
        var state = kvm_mp_state(mp_state: mpState)
        try ioctl(fileDescriptor, CKVM_SET_MP_STATE, "KVM_SET_MP_STATE", &state)
    }

    /// The guest TSC frequency in kHz (`KVM_GET_TSC_KHZ`, needs ``KVMCapability/getTSCKhz``).
    public func getTSCKhz() throws(KVMError) -> UInt32 {
        let khz = ckvm_ioctl_none(fileDescriptor, CKVM_GET_TSC_KHZ)
        guard khz >= 0 else { throw lastError("KVM_GET_TSC_KHZ") }
        return UInt32(khz)
    }

    /// Sets the guest TSC frequency in kHz (`KVM_SET_TSC_KHZ`); when restoring, call it
    /// with the saved ``getTSCKhz()`` after ``setCPUID2(_:)`` and before
    /// ``restoreState(_:using:)``. Without ``KVMCapability/tscControl`` KVM cannot scale
    /// the TSC: a rate below the host's fails with `EINVAL`, and one above it is accepted
    /// but only approximated (KVM advances the TSC to catch up on each entry).
    public func setTSCKhz(_ khz: UInt32) throws(KVMError) {
        guard ckvm_ioctl_value(fileDescriptor, CKVM_SET_TSC_KHZ, UInt(khz)) == 0 else {
            throw lastError("KVM_SET_TSC_KHZ")
        }
    }
}
