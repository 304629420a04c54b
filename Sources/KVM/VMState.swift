import CKVM

/// One in-kernel interrupt controller's state (`struct kvm_irqchip`: `chip_id` and the
/// PIC or IOAPIC state in `chip`).
public typealias IRQChipState = kvm_irqchip
/// The in-kernel 8254 PIT's state (`struct kvm_pit_state2`: three channels and flags).
public typealias PITState = kvm_pit_state2
/// The VM's kvmclock (`struct kvm_clock_data`: `clock` in ns, `flags`, `realtime`,
/// `host_tsc`).
public typealias ClockData = kvm_clock_data

/// The VM-wide device state KVM keeps in the kernel, as saved by
/// ``VirtualMachine/saveState()``: the two 8259 PICs, the IOAPIC, the 8254 PIT and
/// kvmclock. With each vCPU's ``VcpuState`` and the guest RAM it is a whole snapshot.
///
/// Like ``VcpuState`` it keeps the kernel structures' raw bytes, in the host's layout; the
/// typed accessors decode them (nil for a blob of the wrong size).
public struct VMState: Hashable, Sendable {
    /// One of the raw blobs, named after the device.
    public enum Blob: String, CaseIterable, Hashable, Sendable {
        /// `struct kvm_irqchip` with `chip_id` `KVM_IRQCHIP_PIC_MASTER` (0).
        case picMaster
        /// `struct kvm_irqchip` with `chip_id` `KVM_IRQCHIP_PIC_SLAVE` (1).
        case picSlave
        /// `struct kvm_irqchip` with `chip_id` `KVM_IRQCHIP_IOAPIC` (2).
        case ioapic
        /// `struct kvm_pit_state2`.
        case pit
        /// `struct kvm_clock_data`.
        case clock

        /// The `chip_id` of an IRQ-chip blob, nil for the others.
        var chipID: UInt32? {
            switch self {
            case .picMaster: CKVM_IRQCHIP_PIC_MASTER
            case .picSlave: CKVM_IRQCHIP_PIC_SLAVE
            case .ioapic: CKVM_IRQCHIP_IOAPIC
            case .pit, .clock: nil
            }
        }
    }

    /// `KVM_GET_IRQCHIP` of the master 8259 PIC.
    public var picMasterBytes: [UInt8]
    /// `KVM_GET_IRQCHIP` of the slave 8259 PIC.
    public var picSlaveBytes: [UInt8]
    /// `KVM_GET_IRQCHIP` of the IOAPIC.
    public var ioapicBytes: [UInt8]
    /// `KVM_GET_PIT2`.
    public var pitBytes: [UInt8]
    /// `KVM_GET_CLOCK`.
    public var clockBytes: [UInt8]

    /// A state from its parts, e.g. read back from a snapshot file. Nothing is checked
    /// here; ``validate()`` and ``VirtualMachine/restoreState(_:advanceClockByElapsedRealtime:)``
    /// check it.
    public init(
        picMasterBytes: [UInt8], picSlaveBytes: [UInt8], ioapicBytes: [UInt8], pitBytes: [UInt8], clockBytes: [UInt8]
    ) {
        self.picMasterBytes = picMasterBytes
        self.picSlaveBytes = picSlaveBytes
        self.ioapicBytes = ioapicBytes
        self.pitBytes = pitBytes
        self.clockBytes = clockBytes
    }

    /// The bytes of `blob`, for serialising every blob in a loop over ``Blob/allCases``.
    public subscript(blob: Blob) -> [UInt8] {
        get {
            switch blob {
            case .picMaster: picMasterBytes
            case .picSlave: picSlaveBytes
            case .ioapic: ioapicBytes
            case .pit: pitBytes
            case .clock: clockBytes
            }
        }
        set {
            switch blob {
            case .picMaster: picMasterBytes = newValue
            case .picSlave: picSlaveBytes = newValue
            case .ioapic: ioapicBytes = newValue
            case .pit: pitBytes = newValue
            case .clock: clockBytes = newValue
            }
        }
    }

    /// The number of bytes `blob` must have (its kernel structure's size).
    public static func expectedSize(of blob: Blob) -> Int {
        switch blob {
        case .picMaster, .picSlave, .ioapic: MemoryLayout<kvm_irqchip>.size
        case .pit: MemoryLayout<kvm_pit_state2>.size
        case .clock: MemoryLayout<kvm_clock_data>.size
        }
    }

    /// Checks that every blob has its structure's size and that each IRQ-chip blob names
    /// the chip it is restored to, so a corrupt snapshot is refused before any ioctl.
    ///
    /// - Throws: ``KVMError/failed(operation:errno:)`` with errno `EINVAL` and an operation
    ///   such as `"validate VMState.pit (12 bytes, expected 112)"`.
    /// - Complexity: O(1).
    public func validate() throws(KVMError) {
        for blob in Blob.allCases {
            let expected = Self.expectedSize(of: blob)
            guard self[blob].count == expected else {
                throw blobSizeError("VMState.\(blob.rawValue)", actual: self[blob].count, expected: expected)
            }
            if let chipID = blob.chipID, let chip = decodeKernelStruct(self[blob], into: kvm_irqchip()),
                chip.chip_id != chipID
            {
                throw .failed(
                    operation: "validate VMState.\(blob.rawValue) (chip_id \(chip.chip_id), expected \(chipID))",
                    errno: .invalidArgument)
            }
        }
    }

    /// The master PIC's state, or nil if the blob has the wrong size.
    public var picMaster: IRQChipState? { decodeKernelStruct(picMasterBytes, into: kvm_irqchip()) }
    /// The slave PIC's state, or nil if the blob has the wrong size.
    public var picSlave: IRQChipState? { decodeKernelStruct(picSlaveBytes, into: kvm_irqchip()) }
    /// The IOAPIC's state, or nil if the blob has the wrong size.
    public var ioapic: IRQChipState? { decodeKernelStruct(ioapicBytes, into: kvm_irqchip()) }
    /// The PIT's state, or nil if the blob has the wrong size.
    public var pit: PITState? { decodeKernelStruct(pitBytes, into: kvm_pit_state2()) }
    /// The kvmclock, or nil if the blob has the wrong size.
    public var clock: ClockData? { decodeKernelStruct(clockBytes, into: kvm_clock_data()) }
}

extension VirtualMachine {
    /// Saves the in-kernel devices: both PICs and the IOAPIC (`KVM_GET_IRQCHIP` x3), the
    /// PIT (`KVM_GET_PIT2`) and kvmclock (`KVM_GET_CLOCK`). Needs ``createIRQChip()`` and
    /// ``createPIT2(dummySpeaker:)``. Save while every vCPU is stopped, so the devices and
    /// the vCPUs describe the same instant.
    ///
    /// - Complexity: 5 ioctls.
    public func saveState() throws(KVMError) -> VMState {
        VMState(
            picMasterBytes: try irqChipBytes(CKVM_IRQCHIP_PIC_MASTER),
            picSlaveBytes: try irqChipBytes(CKVM_IRQCHIP_PIC_SLAVE),
            ioapicBytes: try irqChipBytes(CKVM_IRQCHIP_IOAPIC),
            pitBytes: try getKernelBytes(fileDescriptor, CKVM_GET_PIT2, "KVM_GET_PIT2", size: MemoryLayout<kvm_pit_state2>.size),
            clockBytes: try getKernelBytes(fileDescriptor, CKVM_GET_CLOCK, "KVM_GET_CLOCK", size: MemoryLayout<kvm_clock_data>.size))
    }

    /// Restores the in-kernel devices saved by ``saveState()``: `KVM_SET_IRQCHIP` for the
    /// master PIC, slave PIC and IOAPIC, then `KVM_SET_PIT2`, then `KVM_SET_CLOCK`. Call it
    /// after every vCPU's ``Vcpu/restoreState(_:using:)`` and before running them:
    /// restoring the IOAPIC re-delivers its pending lines to the local APICs, which must
    /// already hold their saved state, and kvmclock counts from the moment it is set.
    ///
    /// The PIT restarts its counters at the saved counts (KVM stamps a new load time), so
    /// a saved-and-restored PIT state differs from the original in `count_load_time` only.
    ///
    /// - Parameter advanceClockByElapsedRealtime: false (the default) makes kvmclock
    ///   continue from the saved value, as if the guest had been paused in between. True
    ///   passes `KVM_CLOCK_REALTIME` so KVM adds the wall-clock time elapsed since the
    ///   save (only when the save recorded it, i.e. the host clock is TSC-based): the
    ///   guest's clock then stays in step with real time.
    /// - Throws: ``KVMError/failed(operation:errno:)``; errno `EINVAL` with an operation
    ///   `"validate VMState.<blob> (…)"` for a corrupt state, before any ioctl.
    /// - Complexity: 5 ioctls.
    public func restoreState(_ state: VMState, advanceClockByElapsedRealtime: Bool = false) throws(KVMError) {
        try state.validate()
        guard var clock = state.clock else {
            throw blobSizeError("VMState.clock", actual: state.clockBytes.count, expected: VMState.expectedSize(of: .clock))
        }
        for blob in [VMState.Blob.picMaster, .picSlave, .ioapic] {
            var chip = state[blob]
            try ioctl(fileDescriptor, CKVM_SET_IRQCHIP, "KVM_SET_IRQCHIP (\(blob.rawValue))", buffer: &chip)
        }
        var pit = state.pitBytes
        try ioctl(fileDescriptor, CKVM_SET_PIT2, "KVM_SET_PIT2", buffer: &pit)
        // KVM_GET_CLOCK reports flags (TSC_STABLE, HOST_TSC) that mean nothing to
        // KVM_SET_CLOCK; only REALTIME changes what it does, so it alone is passed on.
        clock.flags = advanceClockByElapsedRealtime ? clock.flags & CKVM_CLOCK_REALTIME : 0
        try ioctl(fileDescriptor, CKVM_SET_CLOCK, "KVM_SET_CLOCK", &clock)
    }

    /// `KVM_GET_IRQCHIP` of chip `chipID` as raw bytes.
    private func irqChipBytes(_ chipID: UInt32) throws(KVMError) -> [UInt8] {
        var chip = kvm_irqchip()
        chip.chip_id = chipID
        try ioctl(fileDescriptor, CKVM_GET_IRQCHIP, "KVM_GET_IRQCHIP", &chip)
        return kernelBytes(of: chip)
    }
}
