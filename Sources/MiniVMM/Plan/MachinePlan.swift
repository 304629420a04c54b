import VMAllocator

/// The whole machine decided before anything is built: the memory layout, every resource
/// with its owner, and the boot-information table the guest will read. ``Machine`` only
/// executes a plan.
///
/// Planning has two phases so the command line can refuse bad input before KVM is opened:
/// a ``Blueprint`` checks everything that needs only the configuration; the plan finishes it
/// once the host's limits are known. Pure value: it touches neither KVM nor memory.
package struct MachinePlan: Hashable, Sendable {
    /// Phase one: a configuration checked against everything that needs no host.
    package struct Blueprint: Hashable, Sendable {
        /// The configuration.
        package let configuration: MachineConfiguration
        /// Where the boot RAM goes.
        package let layout: GuestMemoryLayout

        /// Checks `configuration`: a memory size that can be laid out, and devices that fit
        /// the GSIs a machine has.
        ///
        /// - Throws: ``ConfigurationError``.
        package init(_ configuration: MachineConfiguration) throws(ConfigurationError) {
            var requested = 0
            for kind in DeviceKind.allCases where kind.descriptor.needsGSI {
                // Each count is at least 0 (the configuration checks); an absurd sum saturates.
                let (sum, overflow) = requested.addingReportingOverflow(configuration.count(of: kind))
                requested = overflow ? Int.max : sum
            }
            // One device GSI is the hot-plug controller's.
            let available = ResourceManager.deviceGSICount - 1
            if requested > available {
                throw .tooManyDevices(requested: requested, available: available)
            }
            do {
                layout = try GuestMemoryLayout(memorySize: configuration.memorySize)
            } catch {
                throw .invalidMemory(text: "\(configuration.memorySize)", error)
            }
            self.configuration = configuration
        }
    }

    /// What the host offers that the plan depends on.
    package struct HostLimits: Hashable, Sendable {
        /// KVM memory slots (`KVM_CAP_NR_MEMSLOTS`).
        package var memorySlots: UInt32
        /// The most vCPUs a VM may have (`KVM_CAP_MAX_VCPUS`).
        package var maxVcpus: Int

        /// Creates limits.
        package init(memorySlots: UInt32, maxVcpus: Int = MachineConfiguration.maximumCPUs) {
            self.memorySlots = memorySlots
            self.maxVcpus = maxVcpus
        }
    }

    /// The configuration planned for.
    package let configuration: MachineConfiguration
    /// Where the boot RAM goes.
    package let layout: GuestMemoryLayout
    /// Every resource and its owner.
    package private(set) var resources: ResourceManager
    /// Boot RAM, ascending, each with its memory slot.
    package private(set) var ram: [RAMRegion] = []
    /// Boot devices, by kind (registry order), then instance.
    package private(set) var devices: [DeviceResources] = []
    /// vCPU IDs (also local APIC IDs), ascending; the first is the bootstrap processor.
    package private(set) var vcpus: [UInt32] = []
    /// The hot-plug controller's window and GSI, taken after the boot devices.
    package let hotplugController: FixedDeviceResources

    /// Finishes `blueprint` for a host with `host` limits: a memory slot for each boot RAM
    /// range, a vCPU ID for each CPU, then for each device kind in registry order and each instance, its window and
    /// GSI (docs/guest-abi.md gives the order).
    ///
    /// - Throws: ``PlanError``.
    /// - Complexity: O(d log d) for d devices.
    package init(_ blueprint: Blueprint, host: HostLimits) throws(PlanError) {
        try self.init(blueprint, host: host, mmioSpace: nil)
    }

    /// Like ``init(_:host:)``, with device windows from `mmioSpace` (tests use it to run out
    /// of MMIO space).
    package init(_ blueprint: Blueprint, host: HostLimits, mmioSpace: AddressAllocator?) throws(PlanError) {
        let layout = blueprint.layout
        guard host.memorySlots >= UInt32(layout.ranges.count) else {
            throw .tooFewMemorySlots(needed: layout.ranges.count, available: host.memorySlots)
        }
        guard blueprint.configuration.cpus <= host.maxVcpus else {
            throw .tooManyCPUs(requested: blueprint.configuration.cpus, available: host.maxVcpus)
        }
        configuration = blueprint.configuration
        self.layout = layout
        do {
            let window = layout.hotplugWindow
            if let mmioSpace {
                resources = try ResourceManager(memorySlotCount: host.memorySlots, mmioSpace: mmioSpace, hotplugWindow: window)
            } else {
                resources = try ResourceManager(memorySlotCount: host.memorySlots, hotplugWindow: window)
            }
            for (index, range) in layout.ranges.enumerated() {
                ram.append(try resources.takeMemorySlot(for: range, owner: .ram(index)))
            }
            for _ in 0..<configuration.cpus {
                vcpus.append(try resources.takeVcpuID())
            }
            for kind in DeviceKind.allCases {
                for _ in 0..<configuration.count(of: kind) {
                    devices.append(try resources.attach(kind))
                }
            }
            hotplugController = try resources.attachHotplugController()
        } catch {
            throw .resources(error)
        }
    }

    /// The machine a checked snapshot describes, to be restored with `configuration`'s
    /// options (`--api-socket`, `--timeout`): its RAM, devices (boot and hot-plugged alike),
    /// vCPUs and resources are the snapshot's.
    package init(restoring snapshot: CheckedSnapshot, configuration: MachineConfiguration) {
        self.configuration = configuration
        layout = snapshot.layout
        resources = snapshot.resources
        ram = snapshot.bootRAM
        devices = snapshot.devices
        vcpus = snapshot.state.machine.cpus
        let controller = snapshot.state.machine.hotplugController
        hotplugController = FixedDeviceResources(owner: .hotplugController, window: controller.window, gsi: controller.gsi)
    }

    /// The boot-information entries in ABI order: RAM regions, exit port, COM1, IOAPIC,
    /// local APIC, the devices by kind and instance, the hot-plug controller, then one
    /// entry per CPU by APIC ID.
    ///
    /// - Complexity: O(number of regions and devices).
    package var bootInformationEntries: [BootInformation.Entry] {
        Self.bootInformationEntries(resources: resources, devices: devices, vcpus: vcpus)
    }

    /// The boot-information entries of a machine with these resources (its RAM regions
    /// and fixed devices), devices and vCPUs, in ABI order (the same order for the boot
    /// table and every rewrite); the entries `removing` names carry the REMOVING flag.
    ///
    /// - Complexity: O(n log n) in the number of regions and devices.
    package static func bootInformationEntries(
        resources: ResourceManager, devices: [DeviceResources], vcpus: [UInt32],
        removing: Set<BootInformation.EntryID> = []
    ) -> [BootInformation.Entry] {
        var entries = resources.liveRAM.map { region in
            // A RAM region's instance is its memory slot (boot RAM: 0, 1 in address order).
            BootInformation.Entry(
                kind: .ram, instance: UInt16(truncatingIfNeeded: region.slot), gsi: nil, base: region.base,
                size: region.size, memorySlot: region.slot)
        }
        let fixed: [(BootInformation.Kind, RangeInclusive?, UInt32?)] = [
            (.exitPort, resources.ports(of: .exitPort), nil),
            (.uart, resources.ports(of: .com1), ResourceManager.com1GSI),
            (.ioapic, resources.mmio(of: .ioapic), nil),
            (.localAPIC, resources.mmio(of: .localAPIC), nil),
        ]
        for case let (kind, range?, gsi) in fixed {
            entries.append(.init(kind: kind, instance: 0, gsi: gsi, base: range.start, size: range.count, memorySlot: nil))
        }
        for device in devices {
            entries.append(.init(
                kind: device.kind.descriptor.bootKind, instance: UInt16(truncatingIfNeeded: device.instance),
                gsi: device.gsi, base: device.window.start, size: device.window.count, memorySlot: nil))
        }
        if let window = resources.mmio(of: .hotplugController), let gsi = resources.gsi(of: .hotplugController) {
            entries.append(.init(
                kind: .hotplugController, instance: 0, gsi: gsi, base: window.start, size: window.count, memorySlot: nil))
        }
        for index in entries.indices where removing.contains(entries[index].id) {
            entries[index].flags |= BootInformation.removingFlag
        }
        for id in vcpus {
            entries.append(.init(kind: .cpu, instance: UInt16(id), gsi: nil, base: 0, size: 0, memorySlot: nil))
        }
        return entries
    }

    /// The encoded boot-information table to copy to ``GuestMemoryLayout/bootInfoAddress``.
    ///
    /// - Complexity: O(number of regions and devices).
    package func bootInformation() -> [UInt8] {
        BootInformation.encode(bootInformationEntries)
    }
}

/// Why a plan could not be finished.
package enum PlanError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The boot RAM needs more KVM memory slots than the host offers (a host limit).
    case tooFewMemorySlots(needed: Int, available: UInt32)
    /// More vCPUs than the host allows (`KVM_CAP_MAX_VCPUS`): a usage error.
    case tooManyCPUs(requested: Int, available: Int)
    /// A resource could not be handed out.
    case resources(ResourceError)

    /// A one-line explanation for the user.
    package var description: String {
        switch self {
        case .tooFewMemorySlots(let needed, let available):
            "guest RAM needs \(needed) KVM memory slots but the host offers only \(available)"
        case .tooManyCPUs(let requested, let available):
            "--cpus \(requested) is more than the \(available) vCPUs this host's KVM allows"
        case .resources(let error):
            error.description
        }
    }
}
