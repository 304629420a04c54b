import Dispatch
import Logging
import Synchronization
import VMAllocator

/// The running machine as the control API sees it: its state, devices, RAM and resources,
/// pause/resume, and plugging and removing devices and RAM. One lock serialises every
/// request and every completion of a guest's EJECT, so a reader never sees a change
/// half-applied.
final class MachineController: VMControl {
    private struct State {
        var runState = VMRunState.running
        /// The control API's id of each device and RAM region: its owner's name for boot
        /// ones, the name given in `PUT /devices/{id}` or `PUT /memory/{id}` for plugged ones.
        var ids: [Owner: String] = [:]
        /// The last snapshot of this VM (or the one it was restored from): a diff's parent.
        var lastSnapshot: String?
        /// The RAM regions at that snapshot; a diff needs the same ones.
        var snapshotRAM: [RAMRegion] = []
        /// Pages read from KVM's dirty log since the last snapshot that was written
        /// completely, by slot (bitmap words): the kernel clears its log when it is read, so
        /// these stay here until a diff holding them is durable.
        var pendingDirty: [UInt32: [UInt64]] = [:]
    }

    private let plan: MachinePlan
    private let gate: PauseGate
    private let logger: Logger
    // Touched only with `state`'s lock held: the lock serialises every request.
    nonisolated(unsafe) private let deviceSet: DeviceSet
    private let state = Mutex(State())
    /// Where the guest's ejects are completed: off the vCPU thread that wrote EJECT, since
    /// completing one pauses every vCPU.
    private let ejects = DispatchQueue(label: "minivmm.hotplug")

    /// A controller for the machine `plan` describes, pausing through `gate`, with the
    /// devices and resources of `devices`; `source` gives the rest of a snapshot. A machine
    /// `restored` from a snapshot starts paused, with the snapshot's ids, and completes the
    /// removals the guest had ejected.
    init(
        plan: MachinePlan, gate: PauseGate, devices: DeviceSet, logger: Logger, source: SnapshotSource,
        restored: CheckedSnapshot? = nil
    ) {
        self.plan = plan
        self.gate = gate
        self.logger = logger
        self.deviceSet = devices
        self.source = source
        state.withLock { state in
            for plugged in devices.devices { state.ids[plugged.resources.owner] = "\(plugged.resources.owner)" }
            for region in devices.resources.liveRAM { state.ids[region.owner] = "\(region.owner)" }
            if let restored {
                state.ids.merge(restored.ids) { _, saved in saved }
                state.runState = .paused
            }
        }
        // A restored VM's next diff builds on the snapshot it came from.
        if restored != nil, let path = source.restoredFrom {
            let regions = devices.resources.liveRAM
            do {
                try source.logDirtyPages(of: regions)
                state.withLock { state in
                    state.lastSnapshot = Self.absolute(path)
                    state.snapshotRAM = regions
                }
            } catch {
                logger.warning("no dirty-page log for the restored VM, so diffs need a full snapshot first: \(error)")
            }
        }
        devices.controller.setEjectHandler { [weak self, ejects] entry in
            guard let self else { return }
            ejects.async { self.completeRemoval(of: entry) }
        }
        for entry in source.pendingEjects {
            ejects.async { [weak self] in self?.completeRemoval(of: entry) }
        }
    }

    /// Where the vCPUs', the VM's and COM1's state and the RAM's bytes come from.
    nonisolated(unsafe) private weak var source: SnapshotSource?

    func vmInfo() -> VMInfo {
        state.withLock { state in
            VMInfo(
                state: state.runState, memoryBytes: deviceSet.resources.liveRAM.reduce(0) { $0 + $1.size },
                devices: deviceList(state), memoryRegions: regionList(state))
        }
    }

    func resourcesInfo() -> ResourcesInfo {
        state.withLock { _ in deviceSet.resources.info }
    }

    func devices() -> [DeviceInfo] {
        state.withLock { state in deviceList(state) }
    }

    func memoryRegions() -> [MemoryRegionInfo] {
        state.withLock { state in regionList(state) }
    }

    /// Call with the lock held.
    private func deviceList(_ state: State) -> [DeviceInfo] {
        let resources = deviceSet.resources
        var list: [DeviceInfo] = []
        for (owner, kind, gsi) in [(FixedOwner.exitPort, "exit-port", UInt32?.none), (.com1, "uart", ResourceManager.com1GSI)] {
            if let ports = resources.ports(of: owner) {
                list.append(DeviceInfo(
                    id: owner.rawValue, kind: kind, instance: 0, space: "port",
                    window: WindowInfo(start: ports.start, end: ports.end), gsi: gsi, state: "attached"))
            }
        }
        for device in deviceSet.devices.map(\.resources) {
            list.append(DeviceInfo(
                id: state.ids[device.owner] ?? "\(device.owner)", kind: device.kind.rawValue, instance: device.instance,
                space: "mmio", window: WindowInfo(start: device.window.start, end: device.window.end), gsi: device.gsi,
                state: Self.stateName(removing: deviceSet.isRemoving(device.owner))))
        }
        let controller = FixedOwner.hotplugController
        if let window = resources.mmio(of: controller) {
            list.append(DeviceInfo(
                id: controller.rawValue, kind: controller.rawValue, instance: 0, space: "mmio",
                window: WindowInfo(start: window.start, end: window.end), gsi: resources.gsi(of: controller),
                state: "attached"))
        }
        return list
    }

    /// Call with the lock held.
    private func regionList(_ state: State) -> [MemoryRegionInfo] {
        deviceSet.resources.liveRAM.map { region in
            MemoryRegionInfo(
                id: state.ids[region.owner] ?? "\(region.owner)", slot: region.slot, base: region.base, size: region.size,
                state: Self.stateName(removing: deviceSet.isRemoving(region.owner)))
        }
    }

    private static func stateName(removing: Bool) -> String {
        removing ? "removing" : "attached"
    }

    func setState(_ runState: VMRunState) throws(ControlError) {
        state.withLock { state in
            guard state.runState != runState else { return }
            switch runState {
            case .paused:
                gate.pause()
                for plugged in deviceSet.devices { plugged.device.suspend() }
            case .running:
                for plugged in deviceSet.devices { plugged.device.resume() }
                gate.resume()
            }
            state.runState = runState
        }
    }

    func plugDevice(id: String, kind: DeviceKind) throws(ControlError) -> DeviceInfo {
        try state.withLock { state throws(ControlError) in
            try Self.checkNewID(id, what: "device", inUse: deviceList(state).map(\.id))
            let taken = try whilePaused(state) { () throws(PlugError) in try deviceSet.plug(kind) }
            state.ids[taken.owner] = id
            guard let info = deviceList(state).first(where: { $0.id == id }) else {
                throw .internalFailure("Device \(id) was plugged in but is not listed.")
            }
            return info
        }
    }

    func unplugDevice(id: String) throws(ControlError) -> Unplugged<DeviceInfo> {
        try state.withLock { state throws(ControlError) in
            guard let info = deviceList(state).first(where: { $0.id == id }) else {
                throw .notFound("There is no device '\(id)'; GET /devices lists the devices.")
            }
            guard let owner = state.ids.first(where: { $0.value == id && !Self.isRAM($0.key) })?.key else {
                throw .conflict("\(info.id) cannot be removed: COM1, the exit port and the hot-plug controller are part of every machine.")
            }
            let removal = try whilePaused(state) { () throws(PlugError) in try deviceSet.remove(owner) }
            guard removal == .removing else {
                state.ids[owner] = nil
                return .removed
            }
            return .removing(deviceList(state).first { $0.id == id } ?? info)
        }
    }

    func plugMemory(id: String, size: UInt64) throws(ControlError) -> MemoryRegionInfo {
        try state.withLock { state throws(ControlError) in
            try Self.checkNewID(id, what: "memory region", inUse: regionList(state).map(\.id))
            let region = try whilePaused(state) { () throws(PlugError) in try deviceSet.plugRAM(size: size) }
            state.ids[region.owner] = id
            guard let info = regionList(state).first(where: { $0.id == id }) else {
                throw .internalFailure("Memory region \(id) was plugged in but is not listed.")
            }
            return info
        }
    }

    func unplugMemory(id: String) throws(ControlError) -> Unplugged<MemoryRegionInfo> {
        try state.withLock { state throws(ControlError) in
            guard let info = regionList(state).first(where: { $0.id == id }) else {
                throw .notFound("There is no memory region '\(id)'; GET /memory lists them.")
            }
            guard let owner = state.ids.first(where: { $0.value == id && Self.isRAM($0.key) })?.key,
                  deviceSet.entryID(of: owner) != nil
            else {
                throw .conflict("\(info.id) is boot RAM, which cannot be removed; only RAM added with PUT /memory can be.")
            }
            let removal = try whilePaused(state) { () throws(PlugError) in try deviceSet.remove(owner) }
            guard removal == .removing else {
                state.ids[owner] = nil
                return .removed
            }
            return .removing(regionList(state).first { $0.id == id } ?? info)
        }
    }

    func createSnapshot(path: String, kind: SnapshotKind) throws(ControlError) {
        try state.withLock { state throws(ControlError) in
            guard state.runState == .paused else {
                throw .conflict(#"The VM must be paused for a snapshot; send PATCH /vm {"state": "paused"} first."#)
            }
            guard let source else { throw .internalFailure("The machine is gone.") }
            let regions = deviceSet.resources.liveRAM
            if kind == .diff {
                guard state.lastSnapshot != nil else {
                    throw .conflict("This VM has no snapshot yet for a diff to build on; take a full one first.")
                }
                guard regions == state.snapshotRAM else {
                    throw .conflict("RAM was plugged in or removed since the last snapshot; take a full one.")
                }
            }
            let capture: SnapshotSource.Capture
            do { capture = try source.capture() } catch {
                throw .internalFailure(Self.sentence("cannot read the machine's state: \(error)"))
            }
            var snapshot = snapshotState(state, capture: capture)
            guard let buffers = source.memory(of: regions) else {
                throw .internalFailure("A RAM region has no host memory.")
            }
            var files = zip(regions, buffers).map { region, bytes in
                MemoryFile(name: SnapshotFileNames.memory(slot: region.slot), bytes: bytes)
            }
            // A diff holds the pages written since the last durable snapshot, packed.
            var packed: [UnsafeMutableRawBufferPointer] = []
            defer { for buffer in packed { buffer.deallocate() } }
            if kind == .diff {
                do {
                    for region in regions {
                        let bitmap = try source.dirtyPages(of: region)
                        let pending = state.pendingDirty[region.slot] ?? []
                        state.pendingDirty[region.slot] = pending.count == bitmap.words.count
                            ? zip(bitmap.words, pending).map { $0 | $1 } : bitmap.words
                    }
                } catch {
                    throw .internalFailure(Self.sentence("cannot read the dirty-page log: \(error)"))
                }
                for (index, (region, buffer)) in zip(regions, buffers).enumerated() {
                    let pages = Self.pages(in: state.pendingDirty[region.slot] ?? [])
                    let runs = PageRun.runs(of: pages)
                    snapshot.machine.memory[index].pages = runs
                    let bytes = UnsafeMutableRawBufferPointer.allocate(
                        byteCount: pages.count * Int(PageRun.pageSize), alignment: Int(PageRun.pageSize))
                    var offset = 0
                    for run in runs {
                        let start = Int(run.first * PageRun.pageSize)
                        let length = Int(run.count * PageRun.pageSize)
                        UnsafeMutableRawBufferPointer(rebasing: bytes[offset..<offset + length])
                            .copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[start..<start + length]))
                        offset += length
                    }
                    packed.append(bytes)
                    files[index].bytes = UnsafeRawBufferPointer(bytes)
                }
                snapshot.header.type = .diff
                snapshot.header.parent = state.lastSnapshot
            }
            do throws(SnapshotError) {
                try SnapshotDirectory.write(state: snapshot, memory: files, to: path)
            } catch {
                switch error {
                case .exists, .partialExists: throw .conflict(Self.sentence(error.description))
                default: throw .internalFailure(Self.sentence(error.description))
                }
            }
            // Durable: the pages it holds are no longer pending. After a full snapshot the
            // log starts now (turning it on clears it).
            if kind == .full {
                do { try source.logDirtyPages(of: regions) } catch {
                    logger.warning("no dirty-page log after the snapshot, so the next diff cannot be taken: \(error)")
                    state.lastSnapshot = nil
                    return
                }
            }
            state.pendingDirty = [:]
            state.lastSnapshot = Self.absolute(path)
            state.snapshotRAM = regions
        }
    }

    /// The numbers of the set bits of `words`, ascending.
    private static func pages(in words: [UInt64]) -> [UInt64] {
        var pages: [UInt64] = []
        for (index, word) in words.enumerated() where word != 0 {
            var bits = word
            while bits != 0 {
                pages.append(UInt64(index * 64 + bits.trailingZeroBitCount))
                bits &= bits - 1
            }
        }
        return pages
    }

    /// `path` made absolute (a diff names its parent so, whatever the working directory
    /// of the process that restores it).
    private static func absolute(_ path: String) -> String {
        HostCall.absolutePath(path)
    }

    /// The state file of the machine as it is; call with the lock held and the vCPUs parked.
    private func snapshotState(_ state: State, capture: SnapshotSource.Capture) -> SnapshotState {
        let resources = deviceSet.resources
        let devices = deviceSet.devices
        var timers: [String: TimerDevice.Snapshot] = [:]
        var consoles: [String: DMAConsole.Snapshot] = [:]
        for plugged in devices {
            let id = state.ids[plugged.resources.owner] ?? "\(plugged.resources.owner)"
            if let timer = plugged.device as? TimerDevice { timers[id] = timer.snapshot() }
            if let console = plugged.device as? DMAConsole { consoles[id] = console.snapshot() }
        }
        let holdings = resources.holdings(devices: devices.map(\.resources))
        let controller = holdings?.controller ?? plan.hotplugController
        let machine = MachineRecord(
            memorySize: plan.layout.memorySize,
            memory: resources.liveRAM.map { region in
                MemoryRecord(
                    id: state.ids[region.owner] ?? "\(region.owner)", slot: region.slot, range: region.range,
                    hotplugged: resources.isHotplugged(region), file: SnapshotFileNames.memory(slot: region.slot))
            },
            cpus: plan.vcpus,
            devices: devices.map { plugged in
                let device = plugged.resources
                return DeviceRecord(
                    id: state.ids[device.owner] ?? "\(device.owner)", kind: device.kind, instance: device.instance,
                    window: device.window, gsi: device.gsi)
            },
            hotplugController: FixedDeviceRecord(window: controller.window, gsi: controller.gsi),
            quarantined: QuarantineRecord(
                gsis: holdings?.quarantinedGSIs ?? [],
                ram: (holdings?.quarantinedRAM ?? []).map { .init(slot: $0.slot, range: $0.range) }))
        let allocators = AllocatorsRecord(
            memorySlots: resources.memorySlots, ports: resources.ports, mmio: resources.mmio, gsis: resources.gsis,
            vcpuIDs: resources.vcpuIDs, hotplugRAM: resources.hotplugRAM,
            instances: Dictionary(uniqueKeysWithValues: resources.instances.map { ($0.key.rawValue, $0.value) }))
        return SnapshotState(
            header: SnapshotHeader.now(),
            machine: machine, allocators: allocators,
            devices: DeviceStatesRecord(
                com1: capture.com1, hotplugController: deviceSet.controller.snapshot(), timers: timers,
                dmaConsoles: consoles),
            vcpus: capture.vcpus, vm: capture.vm)
    }

    /// Frees what the guest ejected, on the eject queue.
    private func completeRemoval(of entry: BootInformation.EntryID) {
        state.withLock { state in
            do throws(ControlError) {
                let owner = state.ids.keys.first { deviceSet.entryID(of: $0) == entry }
                try whilePaused(state) { () throws(PlugError) in try deviceSet.completeRemoval(of: entry) }
                if let owner { state.ids[owner] = nil }
            } catch {
                logger.error("cannot complete the removal the guest ejected (\(entry)): \(error)")
            }
        }
    }

    /// Runs `change` with every vCPU out of `KVM_RUN`, resuming them after if they ran.
    private func whilePaused<T>(_ state: State, _ change: () throws(PlugError) -> T) throws(ControlError) -> T {
        let running = state.runState == .running
        if running { gate.pause() }
        defer { if running { gate.resume() } }
        do { return try change() } catch { throw Self.controlError(error) }
    }

    private static func checkNewID(_ id: String, what: String, inUse: [String]) throws(ControlError) {
        guard DeviceID.isValid(id) else {
            throw .invalid("The \(what) id '\(id)' is not 1 to 32 characters of a-z, 0-9, '_' and '-'.")
        }
        guard !inUse.contains(id) else {
            throw .conflict("The \(what) id '\(id)' is in use; choose another id or delete that \(what) first.")
        }
    }

    private static func isRAM(_ owner: Owner) -> Bool {
        if case .ram = owner { true } else { false }
    }

    private static func controlError(_ error: PlugError) -> ControlError {
        let sentence = Self.sentence(error.description)
        return switch error {
        case .resources(.notAttached), .notPlugged: .notFound(sentence)
        case .resources(.badHotplugSize): .invalid(sentence)
        case .resources, .tableFull: .conflict(sentence)
        case .machine: .internalFailure(sentence)
        }
    }

    /// A one-line message as a `fault_message` sentence: capitalised, with a full stop.
    static func sentence(_ text: String) -> String {
        guard let first = text.first else { return text }
        return first.uppercased() + text.dropFirst() + (text.hasSuffix(".") ? "" : ".")
    }
}
