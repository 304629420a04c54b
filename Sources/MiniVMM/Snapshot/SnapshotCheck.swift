import VMAllocator

/// A snapshot's state file checked as a whole, before anything is created: the records
/// describe a machine minivmm can build, every device has its state, and the allocators
/// rebuilt from the records equal (`==`) the decoded ones, so a state file whose records
/// and allocators disagree is refused.
package struct CheckedSnapshot: Sendable {
    /// The state file.
    package let state: SnapshotState
    /// Where boot RAM goes.
    package let layout: GuestMemoryLayout
    /// The resource manager the records rebuild (equal to the decoded allocators).
    package let resources: ResourceManager
    /// Boot RAM regions, ascending.
    package let bootRAM: [RAMRegion]
    /// Hot-plugged RAM regions, ascending.
    package let hotplugRAM: [RAMRegion]
    /// Every device's resources, by kind then instance.
    package let devices: [DeviceResources]
    /// The API's id of every device and RAM region.
    package let ids: [Owner: String]

    /// The file every message names.
    static let file = SnapshotFileNames.state

    /// Checks `state`.
    ///
    /// - Throws: ``SnapshotError/invalid(file:field:reason:)`` naming the field.
    /// - Complexity: O(n log n) in the number of records.
    package init(_ state: SnapshotState) throws(SnapshotError) {
        func refuse(_ field: String, _ reason: String) -> SnapshotError {
            .invalid(file: Self.file, fieldPath: field, reason: reason)
        }
        let machine = state.machine
        let layout: GuestMemoryLayout
        do { layout = try GuestMemoryLayout(memorySize: machine.memorySize) } catch {
            throw refuse("machine.memory_size", "\(machine.memorySize) bytes cannot be laid out")
        }
        // Memory: boot RAM exactly as the layout places it, then hot-plugged RAM.
        let boot = machine.memory.filter { !$0.hotplugged }
        guard boot.map(\.range) == layout.ranges else {
            throw refuse("machine.memory", "the boot RAM regions are not the ones \(machine.memorySize) bytes of RAM get")
        }
        var ids: [Owner: String] = [:]
        for (index, record) in machine.memory.enumerated() {
            guard DeviceID.isValid(record.id), !ids.values.contains(record.id) else {
                throw refuse("machine.memory[\(index)].id", "'\(record.id)' is not a valid, unique id")
            }
            guard record.file == SnapshotFileNames.memory(slot: record.slot) else {
                throw refuse("machine.memory[\(index)].file", "the file of slot \(record.slot) is \(SnapshotFileNames.memory(slot: record.slot))")
            }
            ids[.ram(Int(record.slot))] = record.id
        }
        // Pages: only in a diff, ascending, apart, inside their region.
        for (index, record) in machine.memory.enumerated() {
            guard (record.pages != nil) == (state.header.type == .diff) else {
                throw refuse("machine.memory[\(index)].pages", "a diff lists the pages of each region, a full snapshot none")
            }
            var next: UInt64 = 0
            let regionPages = record.range.count / PageRun.pageSize
            for run in record.pages ?? [] {
                guard run.count > 0, run.first >= next, run.first <= regionPages, run.count <= regionPages - run.first else {
                    throw refuse("machine.memory[\(index)].pages", "the runs must be ascending, apart and inside the region")
                }
                next = run.first + run.count
            }
        }
        guard (state.header.parent != nil) == (state.header.type == .diff) else {
            throw refuse("header.parent", "a diff names its parent, a full snapshot none")
        }
        guard (1...MachineConfiguration.maximumCPUs).contains(machine.cpus.count),
              machine.cpus == Array(0..<UInt32(machine.cpus.count))
        else {
            throw refuse("machine.cpus", "the vCPU IDs must be 0 to N-1 for 1 to \(MachineConfiguration.maximumCPUs) vCPUs")
        }
        guard state.vcpus.map(\.id) == machine.cpus else {
            throw refuse("vcpus", "there must be one state per vCPU, in vCPU order")
        }
        var deviceIDs: Set<String> = []
        for (index, device) in machine.devices.enumerated() {
            guard DeviceID.isValid(device.id), deviceIDs.insert(device.id).inserted else {
                throw refuse("machine.devices[\(index)].id", "'\(device.id)' is not a valid, unique id")
            }
            guard (device.gsi != nil) == device.kind.descriptor.needsGSI else {
                throw refuse("machine.devices[\(index)].gsi", "a \(device.kind.rawValue) \(device.kind.descriptor.needsGSI ? "has" : "has no") GSI")
            }
            ids[.device(device.kind, instance: device.instance)] = device.id
        }
        guard ids.count == machine.memory.count + machine.devices.count else {
            throw refuse("machine.devices", "two devices have the same kind and instance")
        }
        let devices = machine.devices.map {
            DeviceResources(kind: $0.kind, instance: $0.instance, window: $0.window, gsi: $0.gsi)
        }
        // Device states: exactly one per device of each kind, by id.
        let timerIDs = Set(machine.devices.filter { $0.kind == .timer }.map(\.id))
        let consoleIDs = Set(machine.devices.filter { $0.kind == .dmaConsole }.map(\.id))
        guard Set(state.devices.timers.keys) == timerIDs else {
            throw refuse("devices.timers", "there must be one state per timer, by device id")
        }
        guard Set(state.devices.dmaConsoles.keys) == consoleIDs else {
            throw refuse("devices.dma_consoles", "there must be one state per DMA console, by device id")
        }

        // The allocators the records rebuild must be the ones decoded.
        let allocators = state.allocators
        let slotCount = UInt64(allocators.memorySlots.rangeEnd) - UInt64(allocators.memorySlots.rangeBase) + 1
        guard allocators.memorySlots.rangeBase == 0, slotCount <= UInt64(UInt32.max) else {
            throw refuse("allocators.memory_slots", "slots must be numbered from 0")
        }
        let window: RangeInclusive
        do { window = try RangeInclusive(start: allocators.hotplugRAM.base, end: allocators.hotplugRAM.end) } catch {
            throw refuse("allocators.hotplug_ram", "the window is empty")
        }
        guard window == layout.hotplugWindow else {
            throw refuse("allocators.hotplug_ram", "the window is not the one \(machine.memorySize) bytes of RAM get")
        }
        let quarantine = machine.quarantined
        let holdings = ResourceManager.Holdings(
            ram: machine.memory.map { ($0.slot, $0.range, $0.hotplugged) }, vcpus: machine.cpus, devices: devices,
            controller: FixedDeviceResources(
                owner: .hotplugController, window: machine.hotplugController.window, gsi: machine.hotplugController.gsi),
            quarantinedGSIs: quarantine.gsis, quarantinedRAM: quarantine.ram.map { ($0.slot, $0.range) })
        let rebuilt: ResourceManager
        do {
            rebuilt = try ResourceManager(memorySlotCount: UInt32(slotCount), hotplugWindow: window, holdings: holdings)
        } catch {
            throw refuse("machine", "the records overlap or leave their ranges: \(error)")
        }
        let comparisons: [(String, Bool)] = [
            ("memory_slots", rebuilt.memorySlots == allocators.memorySlots), ("ports", rebuilt.ports == allocators.ports),
            ("mmio", rebuilt.mmio == allocators.mmio), ("gsis", rebuilt.gsis == allocators.gsis),
            ("vcpu_ids", rebuilt.vcpuIDs == allocators.vcpuIDs), ("hotplug_ram", rebuilt.hotplugRAM == allocators.hotplugRAM),
        ] + DeviceKind.allCases.map { kind in
            ("instances.\(kind.rawValue)", rebuilt.instances[kind] == allocators.instances[kind.rawValue])
        }
        if let (name, _) = comparisons.first(where: { !$0.1 }) {
            throw refuse("allocators.\(name)", "does not match the device and RAM records")
        }
        guard Set(allocators.instances.keys) == Set(DeviceKind.allCases.map(\.rawValue)) else {
            throw refuse("allocators.instances", "there must be one allocator per device kind")
        }
        // The controller's removals name entries that exist.
        let entries = Set(MachinePlan.bootInformationEntries(resources: rebuilt, devices: devices, vcpus: machine.cpus).map(\.id))
        let removals = state.devices.hotplugController.requested + state.devices.hotplugController.ejected
        if let stray = removals.first(where: { !entries.contains($0) }) {
            throw refuse("devices.hotplug_controller", "a removal names \(stray), which the machine does not have")
        }

        self.state = state
        self.layout = layout
        self.resources = rebuilt
        self.bootRAM = layout.ranges.compactMap { range in rebuilt.liveRAM.first { $0.range == range } }
        self.hotplugRAM = rebuilt.liveRAM.filter(rebuilt.isHotplugged)
        self.devices = devices.sorted { ($0.kind, $0.instance) < ($1.kind, $1.instance) }
        self.ids = ids
    }
}
