import KVM
import Logging
import VMAllocator

/// An interrupt line wired to a GSI in the host (an irqfd), which must be disconnected when
/// its device goes.
package protocol ConnectedInterrupt: InterruptLine {
    /// The GSI the line raises.
    var gsi: UInt32 { get }
}

/// What plugging devices and RAM in needs from the host besides the resource manager and
/// the bus: the seam through which tests make each host step fail.
package protocol DeviceHost: AnyObject {
    /// Creates an interrupt line for `gsi` and registers it with KVM (an irqfd).
    func connectInterrupt(gsi: UInt32) throws(MachineError) -> any ConnectedInterrupt
    /// Unregisters `line` from KVM.
    func disconnectInterrupt(_ line: any ConnectedInterrupt) throws(MachineError)
    /// Maps anonymous host memory (`MAP_NORESERVE`) for RAM `region`.
    func mapRAM(for region: RAMRegion) throws(MachineError) -> GuestMemoryMapping
    /// Registers `mapping` as `region`'s KVM memory slot and makes it guest RAM for devices.
    func registerRAM(_ region: RAMRegion, mapping: GuestMemoryMapping) throws(MachineError)
    /// Deletes `region`'s KVM memory slot and takes it out of guest RAM for devices.
    func unregisterRAM(_ region: RAMRegion) throws(MachineError)
    /// Rewrites the boot-information table in guest RAM with `bytes`.
    func writeBootTable(_ bytes: [UInt8]) throws(MachineError)
}

/// Why a plug or removal was refused or failed; nothing changed in either case (except a
/// resource quarantined because the host would not release it).
package enum PlugError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A resource ran out, or the device holds nothing.
    case resources(ResourceError)
    /// A host step failed.
    case machine(MachineError)
    /// Nothing with that owner is plugged in (or it cannot be removed).
    case notPlugged(Owner)
    /// The boot-information table would need more entries than its 8 KiB hold.
    case tableFull(entries: Int)

    /// One line for the user.
    package var description: String {
        switch self {
        case .resources(let error): error.description
        case .machine(let error): error.description
        case .notPlugged(let owner): "\(owner) is not plugged in"
        case .tableFull(let entries):
            "the boot-information table would need \(entries) entries but holds \(BootInformation.maximumEntries)"
        }
    }
}

/// The machine's pluggable devices and hot-plugged RAM, with the resource manager that
/// owns everything they hold: plug and removal as transactions.
///
/// A plug takes its resources on a copy of the resource manager (window, GSI and instance
/// number; or memory slot and range), does each host step (interrupt, bus; or mapping,
/// KVM slot), rewrites the table, then commits by storing the copy; a step that fails
/// undoes the earlier ones in reverse order, so the resources, the bus, the host's
/// registrations and the table's bytes are what they were. A removal gives every resource
/// back; with the guest's notifications on it is two-phase (``remove(_:)`` marks,
/// ``completeRemoval(of:)`` frees after the guest's EJECT). Every table change is announced
/// through the hot-plug controller. Calls must be serialised and made while no vCPU runs
/// (the machine pauses them).
package final class DeviceSet {
    /// A plugged device and what it holds.
    package struct Plugged {
        /// Its resources.
        package let resources: DeviceResources
        /// The device on the bus.
        package let device: any BusDevice
        /// Its interrupt line, if it has a GSI.
        package let line: (any ConnectedInterrupt)?
    }

    /// What a removal did.
    package enum Removal: Hashable, Sendable {
        /// Gone, every resource free (a surprise removal).
        case removed
        /// Marked REMOVING; freed when the guest ejects it.
        case removing
    }

    /// Every resource of the machine and its owner.
    package private(set) var resources: ResourceManager
    /// The plugged devices, by kind (registry order), then instance.
    package private(set) var devices: [Plugged] = []
    /// Hot-plugged RAM with its host memory, by slot.
    package private(set) var ram: [UInt32: GuestMemoryMapping] = [:]
    /// Host memory of quarantined RAM: KVM may still map it, so it is never unmapped.
    private var quarantinedMappings: [GuestMemoryMapping] = []
    /// The hot-plug controller that announces every table change.
    package let controller: HotplugController
    private let bus: DeviceBus
    private let host: DeviceHost
    private let vcpus: [UInt32]
    private let parts: (any InterruptLine) -> DeviceParts
    private let logger: Logger

    /// A set with no devices yet over `resources` and the MMIO `bus`, for a machine with
    /// `vcpus` (the table lists them).
    ///
    /// - Parameters:
    ///   - parts: what a new device gets besides its interrupt line (memory, console).
    ///   - logger: where a quarantined resource is reported.
    package init(
        resources: ResourceManager, bus: DeviceBus, host: DeviceHost, controller: HotplugController, vcpus: [UInt32],
        logger: Logger, parts: @escaping (any InterruptLine) -> DeviceParts
    ) {
        self.logger = logger
        self.resources = resources
        self.bus = bus
        self.host = host
        self.controller = controller
        self.vcpus = vcpus
        self.parts = parts
    }

    /// The table entry id of what `owner` names, if it is a plugged device or hot-plugged RAM.
    package func entryID(of owner: Owner) -> BootInformation.EntryID? {
        switch owner {
        case .device(let kind, let instance) where devices.contains(where: { $0.resources.owner == owner }):
            BootInformation.EntryID(kind: kind.descriptor.bootKind, instance: UInt16(truncatingIfNeeded: instance))
        case .ram(let slot) where ram[UInt32(slot)] != nil:
            BootInformation.EntryID(kind: .ram, instance: UInt16(truncatingIfNeeded: slot))
        default:
            nil
        }
    }

    /// Whether `owner`'s removal has been asked of the guest and is not complete.
    package func isRemoving(_ owner: Owner) -> Bool {
        entryID(of: owner).map { controller.removing.contains($0) } ?? false
    }

    /// Puts a device whose resources the manager already holds (a boot device of the plan)
    /// on the bus with its interrupt; all or nothing. The table is not rewritten: the boot
    /// table already lists it.
    package func attachPlanned(_ taken: DeviceResources) throws(PlugError) {
        guard resources.mmioOwners[taken.window] == taken.owner else { throw .resources(.notAttached(taken.owner)) }
        let plugged = try connect(taken)
        devices = Self.sorted(devices + [plugged])
    }

    /// Plugs in a new device of `kind`, taking the lowest free instance number, window and
    /// GSI; all or nothing.
    ///
    /// - Throws: ``PlugError``; nothing changed then.
    /// - Complexity: O(n log n) in the number of devices.
    @discardableResult
    package func plug(_ kind: DeviceKind) throws(PlugError) -> DeviceResources {
        var next = resources
        let taken: DeviceResources
        do { taken = try next.attach(kind) } catch { throw .resources(error) }
        let table = try encodeTable(next, devices.map(\.resources) + [taken], removing: controller.removing)
        let plugged = try connect(taken)
        do {
            try host.writeBootTable(table)
        } catch {
            disconnect(plugged)
            throw .machine(error)
        }
        resources = next
        devices = Self.sorted(devices + [plugged])
        controller.tableChanged()
        return taken
    }

    /// Plugs in `size` bytes of RAM (a positive multiple of 2 MiB): the lowest free memory
    /// slot and range of the hot-plug window, host memory mapped with `MAP_NORESERVE`, a
    /// KVM memory slot; all or nothing.
    ///
    /// - Throws: ``PlugError``; nothing changed then (except a slot quarantined because
    ///   the host would not delete it during the rollback).
    /// - Complexity: O(n log n) in the number of devices and regions.
    @discardableResult
    package func plugRAM(size: UInt64) throws(PlugError) -> RAMRegion {
        var next = resources
        let region: RAMRegion
        do { region = try next.attachRAM(size: size) } catch { throw .resources(error) }
        let table = try encodeTable(next, devices.map(\.resources), removing: controller.removing)
        let mapping: GuestMemoryMapping
        do {
            mapping = try host.mapRAM(for: region)
            try host.registerRAM(region, mapping: mapping)
        } catch {
            throw .machine(error)  // an unregistered mapping is unmapped as it goes
        }
        do {
            try host.writeBootTable(table)
        } catch {
            do { try host.unregisterRAM(region) } catch let release {
                // KVM keeps the slot: so does the manager, for good, with its host memory.
                try? next.quarantine(ram: region)
                resources = next
                quarantinedMappings.append(mapping)
                logQuarantine("memory slot \(region.slot)", release)
            }
            throw .machine(error)
        }
        resources = next
        ram[region.slot] = mapping
        controller.tableChanged()
        return region
    }

    /// Takes over hot-plugged RAM a restored machine already registered with KVM (the
    /// manager already holds its slot and range).
    package func adoptRAM(_ region: RAMRegion, mapping: GuestMemoryMapping) {
        ram[region.slot] = mapping
    }

    /// Removes what `owner` names: with the guest's notifications on, marks it REMOVING
    /// and tells the guest (``Removal/removing``; ``completeRemoval(of:)`` frees it after
    /// the guest's EJECT); otherwise a surprise removal that frees everything at once (its
    /// window, or RAM range, reads all ones from now on).
    ///
    /// - Throws: ``PlugError``; nothing changed then.
    /// - Complexity: O(n log n) in the number of devices and regions.
    package func remove(_ owner: Owner) throws(PlugError) -> Removal {
        guard let id = entryID(of: owner) else { throw .notPlugged(owner) }
        let removing = controller.removing
        if controller.notificationsEnabled {
            if removing.contains(id) { return .removing }
            var flagged = removing
            flagged.insert(id)
            try host.writeBootTable(try encodeTable(resources, devices.map(\.resources), removing: flagged), as: PlugError.machine)
            controller.requestRemoval(of: id)
            controller.tableChanged()
            return .removing
        }
        try removeNow(owner, id: id)
        return .removed
    }

    /// Completes the removal the guest ejected: frees everything the entry `id` names.
    ///
    /// - Throws: ``PlugError``; nothing changed then.
    package func completeRemoval(of id: BootInformation.EntryID) throws(PlugError) {
        let owner: Owner? = if id.kind == .ram {
            ram[UInt32(id.instance)] != nil ? .ram(Int(id.instance)) : nil
        } else {
            devices.first { $0.resources.kind.descriptor.bootKind == id.kind && $0.resources.instance == UInt32(id.instance) }?
                .resources.owner
        }
        guard let owner else { throw .machine(MachineError(.hotplug, .inconsistent("no \(id) to remove"))) }
        try removeNow(owner, id: id)
    }

    /// Frees `owner` at once: the table without it first, then the host steps, which
    /// cannot be undone; a resource the host will not release is quarantined.
    private func removeNow(_ owner: Owner, id: BootInformation.EntryID) throws(PlugError) {
        let removing = controller.removing.subtracting([id])
        var next = resources
        if case .ram(let slot) = owner, let region = resources.ramRegions[UInt32(slot)], let mapping = ram[region.slot] {
            do { try next.detachRAM(region) } catch { throw .resources(error) }
            try host.writeBootTable(try encodeTable(next, devices.map(\.resources), removing: removing), as: PlugError.machine)
            do { try host.unregisterRAM(region) } catch {
                next = resources
                try? next.quarantine(ram: region)
                quarantinedMappings.append(mapping)
                logQuarantine("memory slot \(region.slot)", error)
            }
            ram[region.slot] = nil
        } else if let index = devices.firstIndex(where: { $0.resources.owner == owner }) {
            let plugged = devices[index]
            do { try next.detach(plugged.resources) } catch { throw .resources(error) }
            var list = devices
            list.remove(at: index)
            try host.writeBootTable(try encodeTable(next, list.map(\.resources), removing: removing), as: PlugError.machine)
            // From here on nothing can fail: the device leaves the bus and the host.
            _ = try? bus.detach(plugged.resources.window)
            plugged.device.shutdown()
            if let line = plugged.line {
                do { try host.disconnectInterrupt(line) } catch {
                    try? next.quarantine(gsi: line.gsi)
                    logQuarantine("GSI \(line.gsi)", error)
                }
            }
            devices = list
        } else {
            throw .notPlugged(owner)
        }
        resources = next
        controller.forgetRemoval(of: id)
        controller.tableChanged()
    }

    /// The table of a machine with `resources` and `devices`, or ``PlugError/tableFull(entries:)``.
    private func encodeTable(
        _ resources: ResourceManager, _ devices: [DeviceResources], removing: Set<BootInformation.EntryID>
    ) throws(PlugError) -> [UInt8] {
        let entries = MachinePlan.bootInformationEntries(
            resources: resources, devices: devices.sorted { ($0.kind, $0.instance) < ($1.kind, $1.instance) },
            vcpus: vcpus, removing: removing)
        guard entries.count <= BootInformation.maximumEntries else { throw .tableFull(entries: entries.count) }
        return BootInformation.encode(entries)
    }

    /// Makes the device, connects its interrupt and puts it on the bus; undoes what it did
    /// if a step fails.
    private func connect(_ taken: DeviceResources) throws(PlugError) -> Plugged {
        var line: (any ConnectedInterrupt)?
        if let gsi = taken.gsi {
            do { line = try host.connectInterrupt(gsi: gsi) } catch { throw .machine(error) }
        }
        let device = taken.kind.descriptor.make(parts(line ?? NoInterruptLine()))
        let plugged = Plugged(resources: taken, device: device, line: line)
        do {
            try bus.attach(device, to: taken.window)
        } catch {
            device.shutdown()
            if let line { releaseOrQuarantine(line) }
            throw .machine(MachineError(.attachDevice(taken.owner), .inconsistent("\(error)")))
        }
        return plugged
    }

    /// Undoes ``connect(_:)`` for a device that was never committed.
    private func disconnect(_ plugged: Plugged) {
        _ = try? bus.detach(plugged.resources.window)
        plugged.device.shutdown()
        if let line = plugged.line { releaseOrQuarantine(line) }
    }

    /// Releases an interrupt during a rollback; if the host refuses, the GSI stays taken
    /// for good in the committed resources.
    private func releaseOrQuarantine(_ line: any ConnectedInterrupt) {
        do { try host.disconnectInterrupt(line) } catch {
            try? resources.quarantine(gsi: line.gsi)
            logQuarantine("GSI \(line.gsi)", error)
        }
    }

    /// Reports a resource the host would not release: it is never handed out again.
    private func logQuarantine(_ what: String, _ error: MachineError) {
        logger.error("\(what) is quarantined (never handed out again): the host would not release it: \(error)")
    }

    /// Shuts every device's background work down (the machine is stopping).
    package func shutDown() {
        for plugged in devices { plugged.device.shutdown() }
    }

    private static func sorted(_ list: [Plugged]) -> [Plugged] {
        list.sorted { ($0.resources.kind, $0.resources.instance) < ($1.resources.kind, $1.resources.instance) }
    }
}

extension DeviceHost {
    /// Writes the table, a failure becoming a ``PlugError``.
    fileprivate func writeBootTable(_ bytes: [UInt8], as wrap: (MachineError) -> PlugError) throws(PlugError) {
        do { try writeBootTable(bytes) } catch { throw wrap(error) }
    }
}
