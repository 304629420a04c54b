import CKVM

/// The x87/SSE state (`struct kvm_fpu`).
public typealias FPUState = kvm_fpu
/// The extended control registers, XCR0 and friends (`struct kvm_xcrs`).
public typealias XCRs = kvm_xcrs
/// The in-kernel local APIC's register page (`struct kvm_lapic_state`, 1 KiB).
public typealias LAPICState = kvm_lapic_state
/// Pending exceptions, interrupts, NMIs and the interrupt shadow (`struct kvm_vcpu_events`).
public typealias VcpuEvents = kvm_vcpu_events
/// The debug registers DR0-DR3, DR6, DR7 (`struct kvm_debugregs`).
public typealias DebugRegisters = kvm_debugregs

/// Everything KVM needs to continue a vCPU exactly where it stopped, as saved by
/// ``Vcpu/saveState(using:)`` and restored by ``Vcpu/restoreState(_:using:)``.
///
/// Each register group is kept as the raw bytes of its kernel structure, so a snapshot
/// preserves every field KVM reports (including ones this module does not name) and can be
/// written to a file as it is. The bytes are in the host's layout: a state restores on a
/// host with the same KVM structures and the same XSAVE layout (CPUID leaf 0xD), which is
/// what ``validate(on:)`` checks as far as sizes go. The typed accessors
/// (``registers``, ``specialRegisters`` …) decode a blob, or return nil if its size is
/// wrong, for inspection.
///
/// Not included, because the caller sets them on a fresh vCPU before restoring: the CPUID
/// (``Vcpu/setCPUID2(_:)``) and the TSC frequency (``Vcpu/setTSCKhz(_:)``).
public struct VcpuState: Hashable, Sendable {
    /// One of the raw register groups, named after its `KVM_GET_*` ioctl.
    public enum Blob: String, CaseIterable, Hashable, Sendable {
        /// `struct kvm_regs` (`KVM_GET_REGS`).
        case registers
        /// `struct kvm_sregs` (`KVM_GET_SREGS`).
        case specialRegisters
        /// `struct kvm_fpu` (`KVM_GET_FPU`).
        case fpu
        /// The XSAVE area (`KVM_GET_XSAVE2`, or `KVM_GET_XSAVE`); its size is the host's,
        /// ``Kvm/xsaveStateSize()``, at least 4096 bytes.
        case xsave
        /// `struct kvm_xcrs` (`KVM_GET_XCRS`).
        case xcrs
        /// `struct kvm_lapic_state` (`KVM_GET_LAPIC`).
        case lapic
        /// `struct kvm_vcpu_events` (`KVM_GET_VCPU_EVENTS`).
        case events
        /// `struct kvm_debugregs` (`KVM_GET_DEBUGREGS`).
        case debugRegisters
    }

    /// `struct kvm_regs`: general-purpose registers, RIP, RFLAGS.
    public var registersBytes: [UInt8]
    /// `struct kvm_sregs`: segments, descriptor tables, control registers, EFER, APIC base.
    public var specialRegistersBytes: [UInt8]
    /// `struct kvm_fpu`: x87 and SSE state.
    public var fpuBytes: [UInt8]
    /// `struct kvm_xsave` (possibly longer than 4096 bytes): the full XSAVE area.
    public var xsaveBytes: [UInt8]
    /// `struct kvm_xcrs`: XCR0.
    public var xcrsBytes: [UInt8]
    /// `struct kvm_lapic_state`: the local APIC's registers, timer included.
    public var lapicBytes: [UInt8]
    /// `struct kvm_vcpu_events`: pending exception, interrupt, NMI, SIPI vector, shadow.
    public var eventsBytes: [UInt8]
    /// `struct kvm_debugregs`.
    public var debugRegistersBytes: [UInt8]
    /// Every MSR of ``Kvm/msrIndexList()`` that KVM could read for this vCPU, in list order.
    public var msrs: [MSREntry]
    /// The multiprocessing state (`KVM_MP_STATE_*`: 0 runnable, 1 uninitialized,
    /// 2 init-received, 3 halted, 4 SIPI-received …).
    public var mpState: UInt32

    /// A state from its parts, e.g. read back from a snapshot file. Nothing is checked
    /// here; ``validate(on:)`` and ``Vcpu/restoreState(_:using:)`` check the sizes.
    public init(
        registersBytes: [UInt8], specialRegistersBytes: [UInt8], fpuBytes: [UInt8], xsaveBytes: [UInt8],
        xcrsBytes: [UInt8], lapicBytes: [UInt8], eventsBytes: [UInt8], debugRegistersBytes: [UInt8],
        msrs: [MSREntry], mpState: UInt32
    ) {
        self.registersBytes = registersBytes
        self.specialRegistersBytes = specialRegistersBytes
        self.fpuBytes = fpuBytes
        self.xsaveBytes = xsaveBytes
        self.xcrsBytes = xcrsBytes
        self.lapicBytes = lapicBytes
        self.eventsBytes = eventsBytes
        self.debugRegistersBytes = debugRegistersBytes
        self.msrs = msrs
        self.mpState = mpState
    }

    /// The bytes of `blob`, for serialising every group in a loop over ``Blob/allCases``.
    public subscript(blob: Blob) -> [UInt8] {
        get {
            switch blob {
            case .registers: registersBytes
            case .specialRegisters: specialRegistersBytes
            case .fpu: fpuBytes
            case .xsave: xsaveBytes
            case .xcrs: xcrsBytes
            case .lapic: lapicBytes
            case .events: eventsBytes
            case .debugRegisters: debugRegistersBytes
            }
        }
        set {
            switch blob {
            case .registers: registersBytes = newValue
            case .specialRegisters: specialRegistersBytes = newValue
            case .fpu: fpuBytes = newValue
            case .xsave: xsaveBytes = newValue
            case .xcrs: xcrsBytes = newValue
            case .lapic: lapicBytes = newValue
            case .events: eventsBytes = newValue
            case .debugRegisters: debugRegistersBytes = newValue
            }
        }
    }

    // MARK: Sizes

    /// The size of `struct kvm_xsave`, the legacy XSAVE area and the least
    /// `KVM_CAP_XSAVE2` reports.
    public static let legacyXSaveSize = MemoryLayout<kvm_xsave>.size

    /// The number of bytes `blob` must have to be restored with the XSAVE area size
    /// `xsaveSize` (``Kvm/xsaveStateSize()`` on the restoring host).
    public static func expectedSize(of blob: Blob, xsaveSize: Int) -> Int {
        switch blob {
        case .registers: MemoryLayout<kvm_regs>.size
        case .specialRegisters: MemoryLayout<kvm_sregs>.size
        case .fpu: MemoryLayout<kvm_fpu>.size
        case .xsave: xsaveSize
        case .xcrs: MemoryLayout<kvm_xcrs>.size
        case .lapic: MemoryLayout<kvm_lapic_state>.size
        case .events: MemoryLayout<kvm_vcpu_events>.size
        case .debugRegisters: MemoryLayout<kvm_debugregs>.size
        }
    }

    /// The number of bytes `blob` must have to be restored through `kvm`.
    public static func expectedSize(of blob: Blob, on kvm: Kvm) -> Int {
        expectedSize(of: blob, xsaveSize: kvm.xsaveStateSize())
    }

    /// Checks that every blob has exactly the size the kernel expects with the XSAVE area
    /// size `xsaveSize`. A snapshot file may be truncated or corrupt: this is what stands
    /// between its bytes and the kernel.
    ///
    /// - Throws: ``KVMError/failed(operation:errno:)`` with errno `EINVAL` and an operation
    ///   such as `"validate VcpuState.xsave (100 bytes, expected 4096)"`.
    /// - Complexity: O(1).
    public func validate(xsaveSize: Int) throws(KVMError) {
        for blob in Blob.allCases {
            let expected = Self.expectedSize(of: blob, xsaveSize: xsaveSize)
            if self[blob].count != expected {
                throw blobSizeError("VcpuState.\(blob.rawValue)", actual: self[blob].count, expected: expected)
            }
        }
    }

    /// Checks the blob sizes against what `kvm`'s host expects (see ``validate(xsaveSize:)``).
    public func validate(on kvm: Kvm) throws(KVMError) {
        try validate(xsaveSize: kvm.xsaveStateSize())
    }

    // MARK: Typed views

    /// The general-purpose registers, or nil if the blob has the wrong size.
    public var registers: Registers? { decodeKernelStruct(registersBytes, into: kvm_regs()) }
    /// The special registers, or nil if the blob has the wrong size.
    public var specialRegisters: SpecialRegisters? { decodeKernelStruct(specialRegistersBytes, into: kvm_sregs()) }
    /// The x87/SSE state, or nil if the blob has the wrong size.
    public var fpu: FPUState? { decodeKernelStruct(fpuBytes, into: kvm_fpu()) }
    /// The extended control registers, or nil if the blob has the wrong size.
    public var xcrs: XCRs? { decodeKernelStruct(xcrsBytes, into: kvm_xcrs()) }
    /// The local APIC's registers, or nil if the blob has the wrong size.
    public var lapic: LAPICState? { decodeKernelStruct(lapicBytes, into: kvm_lapic_state()) }
    /// The pending events, or nil if the blob has the wrong size.
    public var events: VcpuEvents? { decodeKernelStruct(eventsBytes, into: kvm_vcpu_events()) }
    /// The debug registers, or nil if the blob has the wrong size.
    public var debugRegisters: DebugRegisters? { decodeKernelStruct(debugRegistersBytes, into: kvm_debugregs()) }

    /// The value saved for MSR `index`, or nil if it was not saved.
    ///
    /// - Complexity: O(n) in the number of saved MSRs.
    public func msr(_ index: UInt32) -> UInt64? {
        msrs.first { $0.index == index }?.value
    }
}
