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
    private let console = FileDescriptorConsole()
    private let ports: DeviceBus
    private let mmio: DeviceBus
    private let devices: AttachedDevices

    /// Enough memory slots for any layout, for checking the command line before KVM is open.
    private static let slotsAssumedForValidation: UInt32 = 64

    init(configuration: MachineConfiguration, logger: Logger) throws(MinivmmError) {
        let layout = try Self.resource { () throws(ResourceError) in try GuestMemoryLayout(memorySize: configuration.memorySize) }
        // Device counts are command-line errors: check them before the image and KVM
        // (the real layout below needs the host's slot count).
        _ = try Self.resource { () throws(ResourceError) in
            try MachineResources(
                memorySize: configuration.memorySize, timers: configuration.timers, consoles: configuration.consoles,
                maxMemorySlots: Self.slotsAssumedForValidation)
        }
        let image = try GuestImage.load(path: configuration.imagePath, maximumSize: layout.maximumImageSize)
        logger.debug("image \(configuration.imagePath): \(image.count) bytes; memory \(configuration.memorySize) bytes")

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
        if configuration.describe {
            let text = resources.describe()
            let line = text.hasSuffix("\n") ? text : text + "\n"
            Array(line.utf8).withUnsafeBytes { FileDescriptorConsole().write($0) }
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
        try Self.loadBootStructures(into: memory, layout: layout, bootInformation: resources.bootInformation(), image: image)

        let vcpu = try Self.kvm("vCPU set-up") { () throws(KVMError) in
            let vcpu = try vm.createVcpu(id: 0)
            try vcpu.setCPUID2(kvm.supportedCPUID())
            try vcpu.modifySpecialRegisters { BootState.apply(to: &$0) }
            try vcpu.setRegisters(BootState.generalRegisters())
            return vcpu
        }

        self.configuration = configuration
        self.logger = logger
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

    /// Runs the guest to the end.
    func run() -> MinivmmExitStatus {
        let watchdog: Watchdog?
        if let timeout = configuration.timeout {
            do {
                watchdog = Watchdog(timeout: timeout, kick: try vcpu.kickHandle())
            } catch {
                logger.error("cannot arm the --timeout watchdog: \(error)")
                return .hostFailure
            }
        } else {
            watchdog = nil
        }
        devices.startInput()
        let status = RunLoop(vcpu: vcpu, ports: ports, mmio: mmio, exitPort: exitPort, watchdog: watchdog, logger: logger).run()
        devices.shutdown()
        return status
    }
}
