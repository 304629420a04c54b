import KVM

// Between the snapshot model's records and the KVM module's state values: the blobs go
// into the JSON by their ioctl's name, base64.

/// What ``Machine`` needs to restore a snapshot: the checked state and where each memory
/// slot's file is.
package struct RestoreInput: Sendable {
    /// The checked state file.
    package var snapshot: CheckedSnapshot
    /// The memory file of each slot (boot and hot-plugged RAM): the full snapshot's at the
    /// root of the chain.
    package var files: [UInt32: String]
    /// The diffs to lay over those, oldest first: each slot's diff file and its pages.
    package var overlays: [[UInt32: (path: String, pages: [PageRun])]]
    /// The snapshot restored (the newest of the chain), the parent of the next diff.
    package var path: String

    /// An input.
    package init(
        snapshot: CheckedSnapshot, files: [UInt32: String], overlays: [[UInt32: (path: String, pages: [PageRun])]] = [],
        path: String
    ) {
        self.snapshot = snapshot
        self.files = files
        self.overlays = overlays
        self.path = path
    }
}

extension VcpuRecord {
    /// The record of vCPU `id`'s `state`.
    init(id: UInt32, tscKhz: UInt32, state: VcpuState) {
        self.init(
            id: id, tscKhz: tscKhz, mpState: state.mpState,
            registers: Dictionary(uniqueKeysWithValues: VcpuState.Blob.allCases.map { (snakeCase($0.rawValue), Base64Bytes(state[$0])) }),
            msrs: state.msrs.map { MSRRecord(index: $0.index, value: $0.value) })
    }

    /// The KVM state this record holds (sizes are checked when it is restored, or by
    /// ``VcpuState/validate(on:)``).
    var vcpuState: VcpuState {
        VcpuState(
            registersBytes: bytes(.registers), specialRegistersBytes: bytes(.specialRegisters), fpuBytes: bytes(.fpu),
            xsaveBytes: bytes(.xsave), xcrsBytes: bytes(.xcrs), lapicBytes: bytes(.lapic), eventsBytes: bytes(.events),
            debugRegistersBytes: bytes(.debugRegisters), msrs: msrs.map { MSREntry(index: $0.index, value: $0.value) },
            mpState: mpState)
    }

    private func bytes(_ blob: VcpuState.Blob) -> [UInt8] {
        registers[snakeCase(blob.rawValue)]?.bytes ?? []
    }
}

extension VMRecord {
    /// The record of `state`.
    init(_ state: VMState) {
        self.init(blocks: Dictionary(uniqueKeysWithValues: VMState.Blob.allCases.map { (snakeCase($0.rawValue), Base64Bytes(state[$0])) }))
    }

    /// The KVM state this record holds.
    var vmState: VMState {
        func bytes(_ blob: VMState.Blob) -> [UInt8] { blocks[snakeCase(blob.rawValue)]?.bytes ?? [] }
        return VMState(
            picMasterBytes: bytes(.picMaster), picSlaveBytes: bytes(.picSlave), ioapicBytes: bytes(.ioapic),
            pitBytes: bytes(.pit), clockBytes: bytes(.clock))
    }
}

/// What a snapshot needs from the machine besides its devices and resources: the vCPUs',
/// the VM's and COM1's state and the RAM's bytes. Called only while every vCPU is parked.
package protocol SnapshotSource: AnyObject {
    /// The state of everything that runs on its own: vCPUs, the VM's irqchips and clock, COM1.
    typealias Capture = (vcpus: [VcpuRecord], vm: VMRecord, com1: SerialState.Snapshot)

    /// Reads every vCPU's and the VM's state (completing any pending I/O first) and COM1's.
    func capture() throws(MachineError) -> Capture
    /// The host bytes of each region, in order, or nil if one is not mapped.
    func memory(of regions: [RAMRegion]) -> [UnsafeRawBufferPointer]?
    /// Ejects a restored machine must still complete.
    var pendingEjects: [BootInformation.EntryID] { get }
    /// Turns KVM's dirty-page log on for `regions` and clears it: from now on, what the
    /// guest writes is what the next diff holds.
    func logDirtyPages(of regions: [RAMRegion]) throws(MachineError)
    /// The pages of `region` written since the log was last read (reading clears it).
    func dirtyPages(of region: RAMRegion) throws(MachineError) -> DirtyBitmap
    /// The snapshot this machine was restored from, if any (the parent of its first diff).
    var restoredFrom: String? { get }
}

extension Machine: SnapshotSource {
    func capture() throws(MachineError) -> Capture {
        var records: [VcpuRecord] = []
        for vcpu in vcpus {
            let record = try kvmStep(.runVcpu(vcpu.id)) { () throws(KVMError) -> VcpuRecord in
                // A parked vCPU left KVM_RUN through an interrupted entry, which completes a
                // pending I/O; one more immediate exit makes sure (the host note's recipe).
                if let exit = try vcpu.completePendingIO() {
                    throw .failed(operation: "KVM_RUN (pending \(exit))", errno: .resourceBusy)
                }
                return VcpuRecord(id: vcpu.id, tscKhz: try vcpu.getTSCKhz(), state: try vcpu.saveState(using: kvm))
            }
            records.append(record)
        }
        let vmState = try kvmStep(.createVM) { () throws(KVMError) in try vm.saveState() }
        return (records, VMRecord(vmState), serial.snapshot())
    }

    func logDirtyPages(of regions: [RAMRegion]) throws(MachineError) {
        for region in regions {
            guard let mapped = memory.mapping(slot: region.slot) else {
                throw MachineError(.hotplugRAM(region.owner), .inconsistent("no host memory for slot \(region.slot)"))
            }
            try kvmStep(.hotplugRAM(region.owner)) { () throws(KVMError) in
                try vm.setUserMemoryRegion(
                    slot: region.slot, guestAddress: region.base, mapping: mapped.mapping, flags: .logDirtyPages)
                _ = try vm.dirtyLog(slot: region.slot, pageCount: Int(region.size / PageRun.pageSize))
            }
        }
    }

    func dirtyPages(of region: RAMRegion) throws(MachineError) -> DirtyBitmap {
        try kvmStep(.hotplugRAM(region.owner)) { () throws(KVMError) in
            try vm.dirtyLog(slot: region.slot, pageCount: Int(region.size / PageRun.pageSize))
        }
    }

    func memory(of regions: [RAMRegion]) -> [UnsafeRawBufferPointer]? {
        var buffers: [UnsafeRawBufferPointer] = []
        for region in regions {
            guard region.size <= UInt64(Int.max),
                  let buffer = memory.hostBuffer(at: region.base, count: Int(region.size))
            else { return nil }
            buffers.append(UnsafeRawBufferPointer(buffer))
        }
        return buffers
    }
}

/// `specialRegisters` as the state file spells it: `special_registers`.
private func snakeCase(_ name: String) -> String {
    var result = ""
    for character in name {
        if character.isUppercase {
            result += "_" + character.lowercased()
        } else {
            result.append(character)
        }
    }
    return result
}
