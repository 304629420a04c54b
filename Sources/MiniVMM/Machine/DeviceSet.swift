import VMAllocator

/// An interrupt line wired to a GSI in the host (an irqfd), which must be disconnected when
/// its device goes.
package protocol ConnectedInterrupt: InterruptLine {
    /// The GSI the line raises.
    var gsi: UInt32 { get }
}

/// What plugging a device in needs from the host besides the resource manager and the bus:
/// the seam through which tests make each host step fail.
package protocol DeviceHost: AnyObject {
    /// Creates an interrupt line for `gsi` and registers it with KVM (an irqfd).
    func connectInterrupt(gsi: UInt32) throws(MachineError) -> any ConnectedInterrupt
    /// Unregisters `line` from KVM.
    func disconnectInterrupt(_ line: any ConnectedInterrupt) throws(MachineError)
    /// Rewrites the boot-information table in guest RAM with `bytes`.
    func writeBootTable(_ bytes: [UInt8]) throws(MachineError)
}

/// Why a plug or unplug was refused or failed; nothing changed in either case (except a
/// GSI quarantined because the host would not release it).
package enum PlugError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A resource ran out, or the device holds nothing.
    case resources(ResourceError)
    /// A host step failed.
    case machine(MachineError)
    /// No device with that owner is plugged in.
    case notPlugged(Owner)

    /// One line for the user.
    package var description: String {
        switch self {
        case .resources(let error): error.description
        case .machine(let error): error.description
        case .notPlugged(let owner): "no device \(owner) is attached"
        }
    }
}

/// The machine's pluggable devices, with the resource manager that owns everything they
/// hold: plug and unplug as transactions.
///
/// A plug takes the window, GSI and instance number on a copy of the resource manager,
/// makes the device, connects its interrupt, puts it on the bus and rewrites the table, then
/// commits by storing the copy; a step that fails undoes the earlier ones in reverse order,
/// so the resources, the bus, the host's interrupt registrations and the table's bytes are
/// what they were. An unplug gives every resource back. Calls must be serialised and made
/// while no vCPU runs (the machine pauses them).
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

    /// Every resource of the machine and its owner.
    package private(set) var resources: ResourceManager
    /// The plugged devices, by kind (registry order), then instance.
    package private(set) var devices: [Plugged] = []
    private let bus: DeviceBus
    private let host: DeviceHost
    private let parts: (any InterruptLine) -> DeviceParts
    private let table: (ResourceManager, [DeviceResources]) -> [UInt8]

    /// A set with no devices yet over `resources` and the MMIO `bus`.
    ///
    /// - Parameters:
    ///   - parts: what a new device gets besides its interrupt line (memory, console).
    ///   - table: the boot-information table of a machine with these resources and devices.
    package init(
        resources: ResourceManager, bus: DeviceBus, host: DeviceHost,
        parts: @escaping (any InterruptLine) -> DeviceParts,
        table: @escaping (ResourceManager, [DeviceResources]) -> [UInt8]
    ) {
        self.resources = resources
        self.bus = bus
        self.host = host
        self.parts = parts
        self.table = table
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
        let plugged = try connect(taken)
        let list = Self.sorted(devices + [plugged])
        do {
            try host.writeBootTable(table(next, list.map(\.resources)))
        } catch {
            disconnect(plugged)
            throw .machine(error)
        }
        resources = next
        devices = list
        return taken
    }

    /// Unplugs the device `owner` names (a surprise removal: its window reads all ones from
    /// now on) and gives back everything it held. If the host refuses to release its
    /// interrupt, the GSI is quarantined instead of freed.
    ///
    /// - Throws: ``PlugError``; nothing changed then.
    /// - Complexity: O(n log n) in the number of devices.
    package func unplug(_ owner: Owner) throws(PlugError) {
        guard let index = devices.firstIndex(where: { $0.resources.owner == owner }) else { throw .notPlugged(owner) }
        let plugged = devices[index]
        var next = resources
        do { try next.detach(plugged.resources) } catch { throw .resources(error) }
        var list = devices
        list.remove(at: index)
        do { try host.writeBootTable(table(next, list.map(\.resources))) } catch { throw .machine(error) }
        // From here on nothing can fail: the device leaves the bus and the host.
        _ = try? bus.detach(plugged.resources.window)
        plugged.device.shutdown()
        if let line = plugged.line {
            do { try host.disconnectInterrupt(line) } catch {
                try? next.quarantine(gsi: line.gsi)
            }
        }
        resources = next
        devices = list
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
        }
    }

    /// Shuts every device's background work down (the machine is stopping).
    package func shutDown() {
        for plugged in devices { plugged.device.shutdown() }
    }

    private static func sorted(_ list: [Plugged]) -> [Plugged] {
        list.sorted { ($0.resources.kind, $0.resources.instance) < ($1.resources.kind, $1.resources.instance) }
    }
}
