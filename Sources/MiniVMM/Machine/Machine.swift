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

    /// A device on the MMIO bus with what it holds.
    private struct Attached {
        let resources: DeviceResources
        let device: any BusDevice
        let line: IRQFDLine?
    }

    private let plan: MachinePlan
    private let host: Host
    private let kvm: Kvm
    private let vm: VirtualMachine
    private let memory: GuestMemory
    private let vcpus: [Vcpu]
    private let exitPort = ExitPort()
    private let serial: Serial16550
    private let ports: DeviceBus
    private let mmio: DeviceBus
    private var devices: [Attached] = []
    /// Holds every vCPU out of `KVM_RUN` on request.
    let pauseGate: PauseGate
    /// The machine as the control API sees it.
    private(set) lazy var controller: any VMControl = MachineController(
        plan: plan, gate: pauseGate, devices: devices.map(\.device))

    /// Builds everything `plan` describes, in order: the VM, guest RAM with the image read
    /// straight into it, the boot structures, the vCPUs, then the devices.
    ///
    /// - Throws: ``MinivmmFailure``; whatever was built is released again.
    init(plan: MachinePlan, kvm: Kvm, host: Host) throws(MinivmmFailure) {
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
            memory = try kvmStep(.mapMemory) { () throws(KVMError) in try GuestMemory(regions: plan.ram, vm: vm) }
        } catch {
            throw .machine(error)
        }
        try Self.load(plan: plan, into: memory, host: host)
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
                    if id == plan.vcpus[0] {
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
        pauseGate = PauseGate(vcpus: vcpus.count)
        let logger = host.logger
        ports = DeviceBus(spaceName: "port", onUnclaimed: Self.unclaimedReporter("port", logger))
        mmio = DeviceBus(spaceName: "MMIO", onUnclaimed: Self.unclaimedReporter("MMIO", logger))
        serial = Serial16550(output: host.console, interrupt: IRQLine(vm: vm, gsi: ResourceManager.com1GSI))
        do {
            try attachFixed(exitPort, .exitPort, resources: resources)
            try attachFixed(serial, .com1, resources: resources)
            for device in plan.devices { try attach(device) }
        } catch {
            shutDownDevices()
            throw .machine(error)
        }
        logger.debug("machine ready: \(plan.ram.count) RAM slots, \(plan.devices.count) devices, \(vcpus.count) vCPUs")
    }

    deinit {
        shutDownDevices()
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

    /// Puts a fixed device on the port bus at the range the plan gave its owner.
    private func attachFixed(_ device: any BusDevice, _ owner: FixedOwner, resources: ResourceManager) throws(MachineError) {
        guard let window = resources.ports(of: owner) else {
            throw MachineError(.attachDevice(.fixed(owner)), .inconsistent("the plan has no ports for it"))
        }
        do { try ports.attach(device, to: window) } catch {
            throw MachineError(.attachDevice(.fixed(owner)), .inconsistent("\(error)"))
        }
    }

    /// Makes the device `resources` describes, with an irqfd on its GSI, and puts it on the
    /// MMIO bus; all or nothing.
    private func attach(_ resources: DeviceResources) throws(MachineError) {
        let step = MachineError.Step.attachDevice(resources.owner)
        let line: IRQFDLine?
        if let gsi = resources.gsi {
            line = try kvmStep(step) { () throws(KVMError) in try IRQFDLine(vm: vm, gsi: gsi) }
        } else {
            line = nil
        }
        let parts = DeviceParts(interrupt: line ?? NoInterruptLine(), memory: memory, console: host.console)
        let device = resources.kind.descriptor.make(parts)
        do {
            try mmio.attach(device, to: resources.window)
        } catch {
            device.shutdown()
            if let line { try? vm.unregisterIRQFD(line.eventFD, gsi: line.gsi) }
            throw MachineError(step, .inconsistent("\(error)"))
        }
        devices.append(Attached(resources: resources, device: device, line: line))
    }

    private func shutDownDevices() {
        for attached in devices { attached.device.shutdown() }
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
            shutDownDevices()
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
