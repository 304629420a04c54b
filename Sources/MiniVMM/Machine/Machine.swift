import KVM
import Logging
import Synchronization
import SystemPackage
import VMAllocator

/// One machine built from a ``MachinePlan``: the KVM objects, guest memory, devices and
/// buses, alive together. It only executes the plan; every resource it uses was decided there.
///
/// Some properties are never read after set-up; holding them keeps the KVM descriptors and
/// the guest's RAM alive for exactly as long as a vCPU may run.
final class Machine {
    /// The machine's outside world: where output goes, where input comes from, and the
    /// latch that stops everything.
    struct Host {
        /// The stop latch (`--timeout`, signals, the end of the machine).
        let stop: StopLatch
        /// The guest's console output (stdout).
        let console: ConsoleWriter
        /// What feeds COM1 (stdin).
        let input: FileDescriptor
        /// minivmm's messages (stderr).
        let logger: Logger
    }

    private let plan: MachinePlan
    private let host: Host
    let kvm: Kvm
    let vm: VirtualMachine
    let memory: GuestMemory
    /// Touched by other threads only while every vCPU is parked (snapshots).
    let vcpus: [Vcpu]
    private let exitPort = ExitPort()
    let serial: Serial16550
    private let ports: DeviceBus
    private let mmio: DeviceBus
    /// The pluggable devices and every resource's owner.
    let deviceSet: DeviceSet
    /// The snapshot this machine was restored from, if any.
    private let restored: CheckedSnapshot?
    /// Its directory.
    let restoredFrom: String?
    /// Holds every vCPU out of `KVM_RUN` on request.
    let pauseGate: PauseGate
    /// The machine as the control API sees it.
    private(set) lazy var controller: MachineController = MachineController(
        plan: plan, gate: pauseGate, devices: deviceSet, logger: host.logger, source: self, restored: restored)

    /// Builds everything `plan` describes, in order: the VM, guest RAM with the image read
    /// straight into it, the boot structures, the vCPUs, then the devices.
    ///
    /// With `restoring`, the machine is the snapshot's instead: RAM mapped copy-on-write
    /// from its memory files, no image, every vCPU, device and the VM in their saved state,
    /// paused until the controller lets it run.
    ///
    /// - Throws: ``MinivmmFailure``; whatever was built is released again.
    init(plan: MachinePlan, kvm: Kvm, host: Host, restoring: RestoreInput? = nil) throws(MinivmmFailure) {
        let resources = plan.resources
        let vm: VirtualMachine
        let memory: GuestMemory
        do {
            vm = try kvmStep(.createVM) { () throws(KVMError) in
                let vm = try kvm.createVM()
                try vm.setTSSAddress(GuestMemoryLayout.tssAddress)
                try vm.setIdentityMapAddress(GuestMemoryLayout.identityMapAddress)
                try vm.createIRQChip()
                try vm.createPIT2()
                return vm
            }
            memory = try kvmStep(.mapMemory) { () throws(KVMError) in
                if let restoring {
                    try GuestMemory(regions: plan.ram, vm: vm, files: restoring.files)
                } else {
                    try GuestMemory(regions: plan.ram, vm: vm)
                }
            }
        } catch {
            throw .machine(error)
        }
        if let restoring {
            do { try SnapshotOverlay.apply(restoring.overlays, to: memory) } catch {
                throw .snapshot(error)
            }
        } else {
            try Self.load(plan: plan, into: memory, host: host)
        }
        // After the image, as before: a run that fails on its image prints no map.
        if plan.configuration.describe {
            Array(plan.resources.describe().utf8).withUnsafeBytes { host.console.write($0) }
        }

        // The bootstrap processor starts in the ABI's entry state; the APs stay as KVM
        // creates them with an in-kernel irqchip, waiting for the guest's INIT-SIPI-SIPI.
        var vcpus: [Vcpu] = []
        do {
            let supported = try kvmStep(.setUpVcpu(0)) { () throws(KVMError) in try kvm.supportedCPUID() }
            for id in plan.vcpus {
                vcpus.append(try kvmStep(.setUpVcpu(id)) { () throws(KVMError) in
                    let vcpu = try vm.createVcpu(id: id)
                    try vcpu.setCPUID2(BootState.cpuid(supported, apicID: id))
                    if let record = restoring?.snapshot.state.vcpus.first(where: { $0.id == id }) {
                        try vcpu.setTSCKhz(record.tscKhz)
                        try vcpu.restoreState(record.vcpuState, using: kvm)
                    } else if id == plan.vcpus[0] {
                        try vcpu.modifySpecialRegisters { BootState.apply(to: &$0) }
                        try vcpu.setRegisters(BootState.generalRegisters())
                    }
                    return vcpu
                })
            }
        } catch {
            throw .machine(error)
        }

        self.plan = plan
        self.host = host
        self.kvm = kvm
        self.vm = vm
        self.memory = memory
        self.vcpus = vcpus
        self.restored = restoring?.snapshot
        self.restoredFrom = restoring?.path
        // A restored machine starts paused; the runner lets it go unless --paused.
        pauseGate = PauseGate(vcpus: vcpus.count, startPaused: restoring != nil)
        let logger = host.logger
        ports = DeviceBus(spaceName: "port", onUnclaimed: Self.unclaimedReporter("port", logger))
        mmio = DeviceBus(spaceName: "MMIO", onUnclaimed: Self.unclaimedReporter("MMIO", logger))
        serial = Serial16550(output: host.console, interrupt: IRQLine(vm: vm, gsi: ResourceManager.com1GSI))
        let kvmHost = KVMDeviceHost(vm: vm, memory: memory)
        let hotplug: HotplugController
        do throws(MachineError) {
            let controller = plan.hotplugController
            hotplug = HotplugController(interrupt: try kvmHost.connectInterrupt(gsi: controller.gsi))
            try Self.attach(hotplug, to: mmio, at: controller.window, owner: controller.owner)
            try Self.attach(exitPort, to: ports, at: resources.ports(of: .exitPort), owner: .exitPort)
            try Self.attach(serial, to: ports, at: resources.ports(of: .com1), owner: .com1)
        } catch {
            throw .machine(error)
        }
        deviceSet = DeviceSet(
            resources: resources, bus: mmio, host: kvmHost, controller: hotplug, vcpus: plan.vcpus, logger: logger,
            parts: { [memory, console = host.console] line in DeviceParts(interrupt: line, memory: memory, console: console) })
        do throws(PlugError) {
            for device in plan.devices { try deviceSet.attachPlanned(device) }
        } catch {
            deviceSet.shutDown()
            switch error {
            case .machine(let error): throw .machine(error)
            case .resources(let error): throw .plan(.resources(error))
            case .notPlugged(let owner):
                throw .machine(MachineError(.attachDevice(owner), .inconsistent("not in the plan")))
            case .tableFull:
                throw .machine(MachineError(.loadBootStructures, .inconsistent(error.description)))
            }
        }
        if let restoring {
            do {
                try restore(restoring.snapshot, files: restoring.files, hotplug: hotplug, kvmHost: kvmHost)
            } catch {
                deviceSet.shutDown()
                throw .machine(error)
            }
        }
        logger.debug("machine ready: \(plan.ram.count) RAM slots, \(plan.devices.count) devices, \(vcpus.count) vCPUs")
    }

    /// Puts the snapshot's hot-plugged RAM back, then every device's state and the VM's
    /// (after the vCPUs', the order KVM needs).
    private func restore(
        _ snapshot: CheckedSnapshot, files: [UInt32: String], hotplug: HotplugController, kvmHost: KVMDeviceHost
    ) throws(MachineError) {
        for region in snapshot.hotplugRAM {
            let mapping: GuestMemoryMapping
            do { mapping = try GuestMemory.mapFile(files[region.slot], size: region.size) } catch {
                throw MachineError(.hotplugRAM(region.owner), .kvm(error))
            }
            try kvmHost.registerRAM(region, mapping: mapping)
            deviceSet.adoptRAM(region, mapping: mapping)
        }
        let states = snapshot.state.devices
        serial.restore(states.com1)
        for plugged in deviceSet.devices {
            guard let id = snapshot.ids[plugged.resources.owner] else { continue }
            if let timer = plugged.device as? TimerDevice, let state = states.timers[id] { timer.restore(state) }
            if let console = plugged.device as? DMAConsole, let state = states.dmaConsoles[id] { console.restore(state) }
        }
        pendingEjects = hotplug.restore(states.hotplugController)
        try kvmStep(.createVM) { () throws(KVMError) in try vm.restoreState(snapshot.state.vm.vmState) }
    }

    /// Ejects the guest made whose removal was not complete when the snapshot was taken;
    /// the controller completes them once it exists.
    private(set) var pendingEjects: [BootInformation.EntryID] = []

    deinit {
        deviceSet.shutDown()
    }

    /// Reads the image into low RAM and copies the boot structures.
    private static func load(plan: MachinePlan, into memory: GuestMemory, host: Host) throws(MinivmmFailure) {
        let path = plan.configuration.imagePath
        guard let destination = memory.hostBuffer(
            at: GuestMemoryLayout.imageBase, count: Int(plan.layout.maximumImageSize))
        else {
            throw .machine(MachineError(.loadBootStructures, .inconsistent("low RAM does not hold the image area")))
        }
        do {
            let size = try GuestImage.load(path: path, into: destination, stop: host.stop)
            host.logger.debug("image \(path): \(size) bytes; memory \(plan.layout.memorySize) bytes")
        } catch {
            throw .image(error)
        }
        do {
            for piece in try BootImage.pieces(for: plan) where !memory.write(piece.bytes, at: piece.address) {
                throw BootImage.LoadError.doesNotFit(piece.name, address: piece.address, bytes: piece.bytes.count)
            }
        } catch {
            throw .machine(MachineError(.loadBootStructures, .inconsistent("\(error)")))
        }
    }

    /// Puts a fixed device on `bus` at the range the plan gave its owner.
    private static func attach(
        _ device: any BusDevice, to bus: DeviceBus, at window: RangeInclusive?, owner: FixedOwner
    ) throws(MachineError) {
        guard let window else {
            throw MachineError(.attachDevice(.fixed(owner)), .inconsistent("the plan has no range for it"))
        }
        do { try bus.attach(device, to: window) } catch {
            throw MachineError(.attachDevice(.fixed(owner)), .inconsistent("\(error)"))
        }
    }

    private static func unclaimedReporter(_ space: String, _ logger: Logger) -> @Sendable (DeviceBus.UnclaimedAccess) -> Void {
        { access in
            let kind = access.kind == .read ? "read" : "write"
            logger.warning(
                "unclaimed \(space) \(kind) at 0x\(String(access.address, radix: 16)) (\(access.width) bytes): reads return all ones, writes are ignored")
            if access.isLastReport {
                logger.warning("\(DeviceBus.defaultReportLimit) distinct unclaimed \(space) addresses reported; further ones are not")
            }
        }
    }

    /// Runs the guest until it exits, crashes or the stop latch is set, one thread per vCPU
    /// (the bootstrap processor on the calling thread). Each vCPU's kick is an observer of
    /// the latch; stdin is pumped into COM1 meanwhile.
    ///
    /// The first vCPU to end the machine (an exit-port write, a crash, a failing `KVM_RUN`)
    /// decides how it ends; it then sets the latch, which kicks every other vCPU out of
    /// `KVM_RUN`. Every vCPU thread is joined before this returns.
    func run() -> MachineEnd {
        do {
            for vcpu in vcpus {
                let kick = try kvmStep(.runVcpu(vcpu.id)) { () throws(KVMError) in try vcpu.kickHandle() }
                // A restored or snapshotted vCPU may hold a kick from completing its I/O.
                vcpu.clearKick()
                host.stop.addObserver { kick.kick() }
                pauseGate.addKick { kick.kick() }
            }
            host.stop.addObserver { [pauseGate] in pauseGate.release() }
        } catch {
            return .failed(.machine(error))
        }
        let pump: InputPump
        do {
            pump = try InputPump(input: host.input, serial: serial)
        } catch {
            return .failed(.machine(MachineError(.startHostIO, .host(error))))
        }
        defer {
            pump.stop()
            deviceSet.shutDown()
        }
        let first = FirstEnd()
        var threads: [HostThread] = []
        var startFailure: MachineEnd?
        let stop = host.stop
        let epoch = ContinuousClock.now
        for vcpu in vcpus.dropFirst() {
            // Each vCPU and its loop are handed to exactly one thread and not touched here
            // again; the buses, devices and latch they share are Sendable.
            nonisolated(unsafe) let loop = runLoop(for: vcpu, epoch: epoch)
            do {
                threads.append(try HostThread { first.record(loop.run(), stop: stop) })
            } catch {
                startFailure = .failed(.machine(MachineError(.startHostIO, .host(error))))
                host.stop.request(.finished)
                break
            }
        }
        if startFailure == nil { first.record(runLoop(for: vcpus[0], epoch: epoch).run(), stop: host.stop) }
        for thread in threads { thread.join() }
        return startFailure ?? first.end ?? .stopped(host.stop.reason ?? .finished)
    }

    private func runLoop(for vcpu: Vcpu, epoch: ContinuousClock.Instant) -> RunLoop<Vcpu> {
        RunLoop(
            vcpu: vcpu, ports: ports, mmio: mmio, exitPort: exitPort, stop: host.stop, pause: pauseGate,
            logger: host.logger, epoch: epoch)
    }
}

/// How the machine ended, as decided by the first vCPU to end it.
private final class FirstEnd: Sendable {
    private let first = Mutex<MachineEnd?>(nil)

    /// The recorded end, if a vCPU ended the machine.
    var end: MachineEnd? { first.withLock { $0 } }

    /// Records how a vCPU ended the machine, unless another did first, and stops the rest.
    /// A vCPU that was stopped by the latch records nothing.
    func record(_ end: MachineEnd, stop: StopLatch) {
        if case .stopped = end { return }
        first.withLock { first in
            if first == nil { first = end }
        }
        stop.request(.finished)
    }
}

/// The KVM side of plugging devices in: irqfds on the VM, the table in guest RAM.
private final class KVMDeviceHost: DeviceHost {
    private let vm: VirtualMachine
    private let memory: GuestMemory

    init(vm: VirtualMachine, memory: GuestMemory) {
        self.vm = vm
        self.memory = memory
    }

    func connectInterrupt(gsi: UInt32) throws(MachineError) -> any ConnectedInterrupt {
        do { return try IRQFDLine(vm: vm, gsi: gsi) } catch {
            throw MachineError(.connectInterrupt(gsi: gsi), .kvm(error))
        }
    }

    func disconnectInterrupt(_ line: any ConnectedInterrupt) throws(MachineError) {
        guard let irqfd = line as? IRQFDLine else {
            throw MachineError(.connectInterrupt(gsi: line.gsi), .inconsistent("not an irqfd of this VM"))
        }
        do { try vm.unregisterIRQFD(irqfd.eventFD, gsi: irqfd.gsi) } catch {
            throw MachineError(.connectInterrupt(gsi: line.gsi), .kvm(error))
        }
    }

    func mapRAM(for region: RAMRegion) throws(MachineError) -> GuestMemoryMapping {
        guard region.size <= UInt64(Int.max) else {
            throw MachineError(.hotplugRAM(region.owner), .kvm(.failed(operation: "mmap", errno: .invalidArgument)))
        }
        do { return try GuestMemoryMapping(size: Int(region.size)) } catch {
            throw MachineError(.hotplugRAM(region.owner), .kvm(error))
        }
    }

    func registerRAM(_ region: RAMRegion, mapping: GuestMemoryMapping) throws(MachineError) {
        do { try vm.setUserMemoryRegion(slot: region.slot, guestAddress: region.base, mapping: mapping) } catch {
            throw MachineError(.hotplugRAM(region.owner), .kvm(error))
        }
        memory.insert(GuestMemory.Mapped(region: region, mapping: mapping))
    }

    func unregisterRAM(_ region: RAMRegion) throws(MachineError) {
        do { try vm.deleteUserMemoryRegion(slot: region.slot) } catch {
            throw MachineError(.hotplugRAM(region.owner), .kvm(error))
        }
        memory.remove(slot: region.slot)
    }

    func writeBootTable(_ bytes: [UInt8]) throws(MachineError) {
        guard UInt64(bytes.count) <= GuestMemoryLayout.bootInfoCapacity,
              memory.write(bytes, at: GuestMemoryLayout.bootInfoAddress)
        else {
            throw MachineError(.hotplug, .inconsistent("the boot-information table (\(bytes.count) bytes) does not fit"))
        }
    }
}
