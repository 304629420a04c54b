import KVM
import Logging

/// One machine: the KVM objects, guest memory, devices and buses, alive together.
///
/// Some properties are never read after set-up; holding them keeps the KVM descriptors and
/// the guest's RAM alive for exactly as long as the vCPU may run.
final class Machine {
    private let configuration: MachineConfiguration
    private let logger: Logger
    private let kvm: Kvm
    private let vm: VirtualMachine
    private let memory: GuestMemory
    private let vcpu: Vcpu
    private let resources: MachineResources
    private let exitPort = ExitPort()
    private let stop: StopLatch
    private let console: ConsoleWriter
    private let ports: DeviceBus
    private let mmio: DeviceBus
    private let devices: AttachedDevices

    /// Enough memory slots for any layout, for checking the command line before KVM is open.
    private static let slotsAssumedForValidation: UInt32 = 64

    /// Builds the machine: KVM, guest memory, then the image read straight into that memory.
    /// `stop` ends any wait (a FIFO image, a blocked stdout) and the guest itself.
    init(configuration: MachineConfiguration, logger: Logger, stop: StopLatch) throws(MinivmmError) {
        let console = ConsoleWriter(descriptor: .standardOutput, stop: stop)
        let layout = try Self.resource { () throws(ResourceError) in try GuestMemoryLayout(memorySize: configuration.memorySize) }
        // Device counts are command-line errors: check them before KVM and the image
        // (the real layout below needs the host's slot count).
        _ = try Self.resource { () throws(ResourceError) in
            try MachineResources(
                memorySize: configuration.memorySize, timers: configuration.timers, consoles: configuration.consoles,
                maxMemorySlots: Self.slotsAssumedForValidation)
        }
        let kvm = try Self.kvm("open \(configuration.kvmDevicePath)") { () throws(KVMError) in
            let kvm = try Kvm(path: configuration.kvmDevicePath)
            try kvm.requireCapabilities(KVMCapability.monitorEssentials)
            return kvm
        }
        let maxSlots = try Self.kvm("KVM_CAP_NR_MEMSLOTS") { () throws(KVMError) in try kvm.maxMemorySlots() }
        logger.debug("opened \(configuration.kvmDevicePath): API version 12, \(maxSlots) memory slots")
        let resources = try Self.resource { () throws(ResourceError) in
            try MachineResources(
                memorySize: configuration.memorySize, timers: configuration.timers, consoles: configuration.consoles,
                maxMemorySlots: UInt32(clamping: maxSlots))
        }
        let vm = try Self.kvm("VM set-up") { () throws(KVMError) in
            let vm = try kvm.createVM()
            try vm.setTSSAddress(resources.tss.start)
            try vm.setIdentityMapAddress(resources.identityMap.start)
            try vm.createIRQChip()
            try vm.createPIT2()
            return vm
        }
        let memory = try Self.kvm("guest memory") { () throws(KVMError) in
            try GuestMemory(regions: resources.ramRegions.map { ($0.base, $0.size, $0.slot) }, vm: vm)
        }
        let imageSize = try Self.loadImage(configuration.imagePath, into: memory, layout: layout, stop: stop)
        logger.debug("image \(configuration.imagePath): \(imageSize) bytes; memory \(configuration.memorySize) bytes")
        try Self.loadBootStructures(into: memory, layout: layout, bootInformation: resources.bootInformation())
        // After the image, as before: a run that fails on its image prints no map.
        if configuration.describe {
            let text = resources.describe()
            let line = text.hasSuffix("\n") ? text : text + "\n"
            Array(line.utf8).withUnsafeBytes { console.write($0) }
        }

        let vcpu = try Self.kvm("vCPU set-up") { () throws(KVMError) in
            let vcpu = try vm.createVcpu(id: 0)
            try vcpu.setCPUID2(kvm.supportedCPUID())
            try vcpu.modifySpecialRegisters { BootState.apply(to: &$0) }
            try vcpu.setRegisters(BootState.generalRegisters())
            return vcpu
        }

        self.configuration = configuration
        self.logger = logger
        self.stop = stop
        self.console = console
        self.kvm = kvm
        self.vm = vm
        self.memory = memory
        self.vcpu = vcpu
        self.resources = resources
        ports = DeviceBus(spaceName: "port", windows: resources.ports, onUnclaimed: Self.unclaimedReporter("port", logger))
        mmio = DeviceBus(spaceName: "MMIO", windows: resources.mmio, onUnclaimed: Self.unclaimedReporter("MMIO", logger))
        devices = try Self.makeDevices(
            resources: resources, vm: vm, memory: memory, console: console, exitPort: exitPort, ports: ports, mmio: mmio)
        logger.debug(
            "machine ready: \(resources.ramRegions.count) RAM slots, \(resources.timers.count) timers, \(resources.consoles.count) DMA consoles")
    }

    private static func unclaimedReporter(_ space: String, _ logger: Logger) -> (DeviceBus.UnclaimedAccess) -> Void {
        { access in
            let kind = access.kind == .read ? "read" : "write"
            logger.warning(
                "unclaimed \(space) \(kind) at 0x\(String(access.address, radix: 16)) (\(access.width) bytes): reads return all ones, writes are ignored")
            if access.isLastReport {
                logger.warning("\(DeviceBus.defaultReportLimit) distinct unclaimed \(space) addresses reported; further ones are not")
            }
        }
    }

    /// Reads the image into low RAM at ``GuestMemoryLayout/imageBase``; returns its size.
    private static func loadImage(
        _ path: String, into memory: GuestMemory, layout: GuestMemoryLayout, stop: StopLatch
    ) throws(MinivmmError) -> Int {
        guard let destination = memory.hostBuffer(at: GuestMemoryLayout.imageBase, count: Int(layout.maximumImageSize)) else {
            throw MinivmmError(.internalError, "low RAM does not hold the image area")
        }
        do {
            return try GuestImage.load(path: path, into: destination, stop: stop)
        } catch {
            throw error.minivmmError
        }
    }

    /// Runs the guest until it exits, crashes or `stop` is requested; the vCPU's kick is an
    /// observer of the stop latch, and stdin is pumped into COM1 meanwhile.
    func run() -> MinivmmExitStatus {
        do {
            let kick = try vcpu.kickHandle()
            stop.addObserver { kick.kick() }
        } catch {
            logger.error("cannot prepare the vCPU for stopping: \(error)")
            return .hostFailure
        }
        let pump: InputPump
        do {
            pump = try InputPump(input: .standardInput, serial: devices.serial)
        } catch {
            logger.error("cannot start reading stdin: \(error)")
            return .hostFailure
        }
        let status = RunLoop(vcpu: vcpu, ports: ports, mmio: mmio, exitPort: exitPort, stop: stop, logger: logger).run()
        pump.stop()
        devices.shutdown()
        return status
    }
}

extension ImageError {
    /// The error that ends minivmm: a missing, unreadable or directory image is "not found"
    /// (66), an empty or too large one invalid (65). A stop is reported by its reason
    /// (``MachineRunner``), never by this status.
    var minivmmError: MinivmmError {
        switch self {
        case .notFound, .unreadable, .directory: MinivmmError(.imageNotFound, description)
        case .empty, .tooLarge: MinivmmError(.invalidImage, description)
        case .stopped: MinivmmError(.internalError, description)
        }
    }
}
