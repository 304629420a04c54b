import VMAllocator

/// The one owner of every resource of a machine — KVM memory slots, port-I/O ranges, MMIO
/// windows, GSIs and device instance numbers — and of the record of who holds each.
///
/// Every resource comes from a `VMAllocator` allocator; nothing else in minivmm keeps a copy.
/// A device takes its window, GSI and instance number in ``attach(_:)`` and gives all of
/// them back in ``detach(_:)``. Every mutation is all or nothing: it works on a copy (the
/// allocators are copy-on-write values, so that is O(1)) and stores it only when every step
/// succeeded. In debug builds every mutation ends by checking that the owner records match
/// the allocators exactly.
///
/// Pure value: it touches neither KVM nor memory.
package struct ResourceManager: Hashable, Sendable {
    /// The first GSI of the IOAPIC range the machine hands out.
    package static let firstGSI: UInt32 = 4
    /// COM1's GSI (ISA IRQ 4), taken before any device.
    package static let com1GSI: UInt32 = 4
    /// The first GSI a device can get.
    package static let firstDeviceGSI: UInt32 = 5
    /// The last IOAPIC pin.
    package static let lastGSI: UInt32 = 23
    /// How many devices with a GSI fit together.
    package static let deviceGSICount = Int(lastGSI - firstDeviceGSI + 1)
    /// The largest instance number of any kind (the boot-information table has 16 bits).
    package static let lastInstance = UInt32(UInt16.max)

    /// The fixed port ranges, taken by exact match in this order.
    package static let fixedPorts: [(owner: FixedOwner, range: ClosedRange<UInt64>)] = [
        (.picMaster, 0x20...0x21), (.picSlave, 0xA0...0xA1), (.pit, 0x40...0x43),
        (.exitPort, 0xF4...0xF7), (.com1, 0x3F8...0x3FF),
    ]
    /// The reserved pages in the MMIO gap, taken by exact match before any device window.
    package static let fixedMMIO: [(owner: FixedOwner, range: ClosedRange<UInt64>)] = [
        (.ioapic, GuestMemoryLayout.ioapicAddress...(GuestMemoryLayout.ioapicAddress + 0xFFF)),
        (.localAPIC, GuestMemoryLayout.localAPICAddress...(GuestMemoryLayout.localAPICAddress + 0xFFF)),
        (.identityMap, GuestMemoryLayout.identityMapAddress...(GuestMemoryLayout.identityMapAddress + 0xFFF)),
        (.tss, GuestMemoryLayout.tssAddress...(GuestMemoryLayout.tssAddress + 0x2FFF)),
    ]

    /// Memory-slot IDs over `0..<memorySlotCount`.
    package private(set) var memorySlots: IdAllocator
    /// RAM plugged in while the guest runs, over the layout's hot-plug window.
    package private(set) var hotplugRAM: AddressAllocator
    /// Port I/O over `[0, 0xFFFF]`.
    package private(set) var ports: AddressAllocator
    /// MMIO over the 32-bit gap.
    package private(set) var mmio: AddressAllocator
    /// GSIs over `4...23`.
    package private(set) var gsis: IdAllocator
    /// Allocations `mmioSpace` already had (tests only): taken, but owned by nobody.
    private let foreignMMIO: Set<RangeInclusive>
    /// vCPU IDs, which are also local APIC IDs, over `0..<64`.
    package private(set) var vcpuIDs: IdAllocator
    /// Instance numbers, one allocator per device kind.
    package private(set) var instances: [DeviceKind: IdAllocator]

    /// The RAM region behind each taken memory slot.
    package private(set) var ramRegions: [UInt32: RAMRegion] = [:]
    /// Owner of each taken port range.
    package private(set) var portOwners: [RangeInclusive: Owner] = [:]
    /// Owner of each taken MMIO range.
    package private(set) var mmioOwners: [RangeInclusive: Owner] = [:]
    /// Owner of each taken GSI.
    package private(set) var gsiOwners: [UInt32: Owner] = [:]
    /// Owner of each taken vCPU ID.
    package private(set) var vcpuOwners: [UInt32: Owner] = [:]

    /// A manager with the fixed resources taken: legacy and COM1 ports, the exit port, the
    /// reserved MMIO pages and COM1's GSI.
    ///
    /// - Parameters:
    ///   - memorySlotCount: how many KVM memory slots the host offers
    ///     (`KVM_CAP_NR_MEMSLOTS`), at least 1.
    ///   - hotplugWindow: where hot-plugged RAM goes (``GuestMemoryLayout/hotplugWindow``);
    ///     by default the window of a machine with at most 3 GiB of boot RAM.
    package init(
        memorySlotCount: UInt32, hotplugWindow: RangeInclusive = GuestMemoryLayout.hotplugWindow(endOfRAM: 0)
    ) throws(ResourceError) {
        try self.init(memorySlotCount: memorySlotCount, mmioSpace: Self.makeAddressAllocator(
            GuestMemoryLayout.mmioGapStart...GuestMemoryLayout.mmioGapLastAddress), hotplugWindow: hotplugWindow)
    }

    /// Like ``init(memorySlotCount:hotplugWindow:)``, but device windows come from
    /// `mmioSpace`, which may already have allocations (tests use it to run out of MMIO
    /// space). The reserved pages must still be free in it.
    package init(
        memorySlotCount: UInt32, mmioSpace: AddressAllocator,
        hotplugWindow: RangeInclusive = GuestMemoryLayout.hotplugWindow(endOfRAM: 0)
    ) throws(ResourceError) {
        // The plan refuses a host without slots before it gets here.
        memorySlots = Self.makeIdAllocator(0...max(memorySlotCount, 1) - 1)
        hotplugRAM = Self.makeAddressAllocator(hotplugWindow.start...hotplugWindow.end)
        ports = Self.makeAddressAllocator(0...0xFFFF)
        mmio = mmioSpace
        foreignMMIO = Set(mmioSpace.allocations)
        gsis = Self.makeIdAllocator(Self.firstGSI...Self.lastGSI)
        vcpuIDs = Self.makeIdAllocator(0...UInt32(MachineConfiguration.maximumCPUs - 1))
        instances = Dictionary(uniqueKeysWithValues: DeviceKind.allCases.map {
            ($0, Self.makeIdAllocator(0...Self.lastInstance))
        })
        for (owner, range) in Self.fixedPorts {
            portOwners[try Self.take(range, owner: .fixed(owner), from: &ports)] = .fixed(owner)
        }
        for (owner, range) in Self.fixedMMIO {
            mmioOwners[try Self.take(range, owner: .fixed(owner), from: &mmio)] = .fixed(owner)
        }
        do { try gsis.allocate(id: Self.com1GSI) } catch {
            throw .reservedRangeTaken(owner: .fixed(.com1), start: UInt64(Self.com1GSI), end: UInt64(Self.com1GSI))
        }
        gsiOwners[Self.com1GSI] = .fixed(.com1)
        checkInvariants()
    }

    // MARK: Restore

    /// What a snapshot's records say the manager holds, besides the fixed resources.
    package struct Holdings: Hashable, Sendable {
        /// Every RAM region (boot and hot-plugged) with its slot; hot-plugged ones lie in
        /// `hotplugWindow`.
        package var ram: [(slot: UInt32, range: RangeInclusive, hotplugged: Bool)]
        /// vCPU IDs.
        package var vcpus: [UInt32]
        /// Devices.
        package var devices: [DeviceResources]
        /// The hot-plug controller.
        package var controller: FixedDeviceResources
        /// Quarantined GSIs.
        package var quarantinedGSIs: [UInt32]
        /// Quarantined RAM.
        package var quarantinedRAM: [(slot: UInt32, range: RangeInclusive)]

        /// Holdings.
        package init(
            ram: [(slot: UInt32, range: RangeInclusive, hotplugged: Bool)], vcpus: [UInt32], devices: [DeviceResources],
            controller: FixedDeviceResources, quarantinedGSIs: [UInt32],
            quarantinedRAM: [(slot: UInt32, range: RangeInclusive)]
        ) {
            self.ram = ram
            self.vcpus = vcpus
            self.devices = devices
            self.controller = controller
            self.quarantinedGSIs = quarantinedGSIs
            self.quarantinedRAM = quarantinedRAM
        }

        package static func == (lhs: Holdings, rhs: Holdings) -> Bool {
            lhs.ram.elementsEqual(rhs.ram) { $0 == $1 } && lhs.vcpus == rhs.vcpus && lhs.devices == rhs.devices
                && lhs.controller == rhs.controller && lhs.quarantinedGSIs == rhs.quarantinedGSIs
                && lhs.quarantinedRAM.elementsEqual(rhs.quarantinedRAM) { $0 == $1 }
        }

        package func hash(into hasher: inout Hasher) {
            hasher.combine(vcpus)
            hasher.combine(devices)
            hasher.combine(controller)
        }
    }

    /// A manager holding exactly `holdings` (a snapshot's records), each taken by exact
    /// match, with no history: what a machine with those resources has. A snapshot's
    /// decoded allocators must equal this manager's.
    ///
    /// - Throws: ``ResourceError/reservedRangeTaken(owner:start:end:)`` naming the first
    ///   record that overlaps another or lies outside its allocator's range.
    /// - Complexity: O(n log n) in the number of records.
    package init(memorySlotCount: UInt32, hotplugWindow: RangeInclusive, holdings: Holdings) throws(ResourceError) {
        try self.init(memorySlotCount: memorySlotCount, hotplugWindow: hotplugWindow)
        func refuse(_ owner: Owner, _ start: UInt64, _ end: UInt64) -> ResourceError {
            .reservedRangeTaken(owner: owner, start: start, end: end)
        }
        for (slot, range, hotplugged) in holdings.ram {
            let owner = Owner.ram(Int(slot))
            do { try memorySlots.allocate(id: slot) } catch { throw refuse(owner, UInt64(slot), UInt64(slot)) }
            if hotplugged {
                do {
                    _ = try hotplugRAM.allocate(size: range.count, alignment: 1, policy: .exactMatch(range.start))
                } catch {
                    throw refuse(owner, range.start, range.end)
                }
            }
            ramRegions[slot] = RAMRegion(range: range, slot: slot, owner: owner)
        }
        for (slot, range) in holdings.quarantinedRAM {
            do {
                try memorySlots.allocate(id: slot)
                _ = try hotplugRAM.allocate(size: range.count, alignment: 1, policy: .exactMatch(range.start))
            } catch {
                throw refuse(.quarantined, range.start, range.end)
            }
            ramRegions[slot] = RAMRegion(range: range, slot: slot, owner: .quarantined)
        }
        for id in holdings.vcpus {
            do { try vcpuIDs.allocate(id: id) } catch { throw refuse(.cpu(id), UInt64(id), UInt64(id)) }
            vcpuOwners[id] = .cpu(id)
        }
        var windows = holdings.devices.map { ($0.owner, $0.window, $0.gsi) }
        windows.append((.fixed(.hotplugController), holdings.controller.window, holdings.controller.gsi))
        for (owner, window, gsi) in windows {
            do {
                _ = try mmio.allocate(size: window.count, alignment: 1, policy: .exactMatch(window.start))
            } catch {
                throw refuse(owner, window.start, window.end)
            }
            mmioOwners[window] = owner
            if let gsi {
                do { try gsis.allocate(id: gsi) } catch { throw refuse(owner, UInt64(gsi), UInt64(gsi)) }
                gsiOwners[gsi] = owner
            }
        }
        for device in holdings.devices {
            do { try instances[device.kind]?.allocate(id: device.instance) } catch {
                throw refuse(device.owner, UInt64(device.instance), UInt64(device.instance))
            }
        }
        for gsi in holdings.quarantinedGSIs {
            do { try gsis.allocate(id: gsi) } catch { throw refuse(.quarantined, UInt64(gsi), UInt64(gsi)) }
            gsiOwners[gsi] = .quarantined
        }
        checkInvariants()
    }

    /// The holdings that rebuild this manager (what a snapshot records).
    ///
    /// - Complexity: O(n log n) in the number of allocations.
    package func holdings(devices: [DeviceResources]) -> Holdings? {
        guard let window = mmio(of: .hotplugController), let gsi = gsi(of: .hotplugController) else { return nil }
        let regions = ramRegions.values.sorted { $0.slot < $1.slot }
        return Holdings(
            ram: regions.filter { $0.owner != .quarantined }.map { ($0.slot, $0.range, isHotplugged($0)) },
            vcpus: vcpuOwners.keys.sorted(), devices: devices,
            controller: FixedDeviceResources(owner: .hotplugController, window: window, gsi: gsi),
            quarantinedGSIs: gsiOwners.filter { $0.value == .quarantined }.keys.sorted(),
            quarantinedRAM: regions.filter { $0.owner == .quarantined }.map { ($0.slot, $0.range) })
    }

    // MARK: RAM

    /// Gives `range` of RAM the lowest free memory slot.
    ///
    /// - Throws: ``ResourceError/noFreeMemorySlot(owner:available:)``; nothing changes then.
    /// - Complexity: O(log s) for s runs of free slots.
    package mutating func takeMemorySlot(for range: RangeInclusive, owner: Owner) throws(ResourceError) -> RAMRegion {
        let slot: UInt32
        do { slot = try memorySlots.allocateID() } catch {
            throw .noFreeMemorySlot(owner: owner, available: memorySlots.rangeEnd - memorySlots.rangeBase + 1)
        }
        let region = RAMRegion(range: range, slot: slot, owner: owner)
        ramRegions[slot] = region
        checkInvariants()
        return region
    }

    /// Takes the lowest free memory slot and the lowest free 2 MiB-aligned range of the
    /// hot-plug window for `size` bytes of RAM plugged in while the guest runs; all or
    /// nothing. The region's owner is `ram<slot>`.
    ///
    /// - Throws: ``ResourceError/badHotplugSize(_:)``,
    ///   ``ResourceError/noFreeHotplugSlot(available:)`` or
    ///   ``ResourceError/outOfHotplugSpace(size:window:)``; nothing changes then.
    /// - Complexity: O(log n) in the number of allocations.
    package mutating func attachRAM(size: UInt64) throws(ResourceError) -> RAMRegion {
        let granule = GuestMemoryLayout.hotplugAlignment
        guard size > 0, size % granule == 0 else { throw .badHotplugSize(size) }
        var next = self
        let slot: UInt32
        do { slot = try next.memorySlots.allocateID() } catch {
            throw .noFreeHotplugSlot(available: memorySlots.rangeEnd - memorySlots.rangeBase + 1)
        }
        let range: RangeInclusive
        do { range = try next.hotplugRAM.allocate(size: size, alignment: granule, policy: .firstMatch) } catch {
            throw .outOfHotplugSpace(size: size, window: hotplugWindow)
        }
        let region = RAMRegion(range: range, slot: slot, owner: .ram(Int(slot)))
        next.ramRegions[slot] = region
        next.checkInvariants()
        self = next
        return region
    }

    /// Gives back the slot and range of hot-plugged RAM `region`; all or nothing.
    ///
    /// - Throws: ``ResourceError/notAttached(_:)`` unless `region` is hot-plugged RAM the
    ///   manager handed out (boot RAM is never detached); nothing changes then.
    /// - Complexity: O(log n) in the number of allocations plus O(s) for s taken slots.
    package mutating func detachRAM(_ region: RAMRegion) throws(ResourceError) {
        guard ramRegions[region.slot] == region, isHotplugged(region) else { throw .notAttached(region.owner) }
        var next = self
        do {
            try next.hotplugRAM.free(region.range)
            _ = try next.memorySlots.freeID(region.slot)
        } catch {
            throw .notAttached(region.owner)
        }
        next.ramRegions[region.slot] = nil
        // As for GSIs: forget the released slot so the value is the one before the attach.
        next.memorySlots = Self.withoutHistory(next.memorySlots, live: next.ramRegions.keys)
        next.checkInvariants()
        self = next
    }

    /// Keeps hot-plugged RAM `region`'s slot and range taken for good, owned by
    /// ``Owner/quarantined``: the host would not delete its KVM memory slot.
    ///
    /// - Throws: ``ResourceError/notAttached(_:)`` unless `region` is hot-plugged RAM of
    ///   this manager; nothing changes then.
    package mutating func quarantine(ram region: RAMRegion) throws(ResourceError) {
        guard ramRegions[region.slot]?.range == region.range, isHotplugged(region) else { throw .notAttached(region.owner) }
        ramRegions[region.slot] = RAMRegion(range: region.range, slot: region.slot, owner: .quarantined)
        checkInvariants()
    }

    /// Whether `region` is hot-plugged RAM: an allocation of the hot-plug window (boot RAM
    /// never is).
    ///
    /// - Complexity: O(log n) in the number of hot-plugged regions.
    package func isHotplugged(_ region: RAMRegion) -> Bool {
        hotplugRAM.allocation(containing: region.base) == region.range
    }

    /// The range hot-plugged RAM comes from.
    package var hotplugWindow: RangeInclusive {
        do { return try RangeInclusive(start: hotplugRAM.base, end: hotplugRAM.end) } catch {
            fatalError("an allocator's range is valid: \(error)")
        }
    }

    // MARK: vCPUs

    /// Takes the lowest free vCPU ID (also the vCPU's local APIC ID).
    ///
    /// - Throws: ``ResourceError/noFreeVcpuID(available:)``; nothing changes then.
    /// - Complexity: O(log r) for r runs of free IDs.
    package mutating func takeVcpuID() throws(ResourceError) -> UInt32 {
        let id: UInt32
        do { id = try vcpuIDs.allocateID() } catch {
            throw .noFreeVcpuID(available: MachineConfiguration.maximumCPUs)
        }
        vcpuOwners[id] = .cpu(id)
        checkInvariants()
        return id
    }

    // MARK: Devices

    /// Takes an instance number, a window and (if the kind needs one) a GSI for a new device
    /// of `kind`, each the lowest free; all or nothing.
    ///
    /// - Throws: ``ResourceError`` naming what ran out; nothing changes then.
    /// - Complexity: O(log n) in the number of allocations.
    package mutating func attach(_ kind: DeviceKind) throws(ResourceError) -> DeviceResources {
        let descriptor = kind.descriptor
        var next = self
        let instance: UInt32
        do { instance = try next.instances[kind, default: Self.makeIdAllocator(0...Self.lastInstance)].allocateID() } catch {
            throw .noFreeInstance(kind: kind)
        }
        let owner = Owner.device(kind, instance: instance)
        let window: RangeInclusive
        do {
            window = try next.mmio.allocate(
                size: descriptor.windowSize, alignment: descriptor.windowAlignment, policy: .firstMatch)
        } catch {
            throw .outOfMMIOSpace(kind: kind)
        }
        next.mmioOwners[window] = owner
        var gsi: UInt32?
        if descriptor.needsGSI {
            do { gsi = try next.gsis.allocateID() } catch {
                throw .noFreeGSI(owner: owner, available: Self.deviceGSICount)
            }
            next.gsiOwners[gsi!] = owner
        }
        next.checkInvariants()
        self = next
        return DeviceResources(kind: kind, instance: instance, window: window, gsi: gsi)
    }

    /// Takes the hot-plug controller's window and GSI, each the lowest free, like a
    /// device's; the plan does this after the boot devices.
    ///
    /// - Throws: ``ResourceError`` naming what ran out; nothing changes then.
    /// - Complexity: O(log n) in the number of allocations.
    package mutating func attachHotplugController() throws(ResourceError) -> FixedDeviceResources {
        let owner = Owner.fixed(.hotplugController)
        var next = self
        let window: RangeInclusive
        do {
            window = try next.mmio.allocate(
                size: HotplugController.windowSize, alignment: HotplugController.windowSize, policy: .firstMatch)
        } catch {
            throw .outOfMMIOSpaceFor(owner)
        }
        next.mmioOwners[window] = owner
        let gsi: UInt32
        do { gsi = try next.gsis.allocateID() } catch {
            throw .noFreeGSI(owner: owner, available: Self.deviceGSICount)
        }
        next.gsiOwners[gsi] = owner
        next.checkInvariants()
        self = next
        return FixedDeviceResources(owner: .hotplugController, window: window, gsi: gsi)
    }

    /// Gives back everything `device` took in ``attach(_:)``; all or nothing.
    ///
    /// - Throws: ``ResourceError/notAttached(_:)`` when `device` does not hold exactly these
    ///   resources; nothing changes then.
    /// - Complexity: O(log n) in the number of allocations.
    package mutating func detach(_ device: DeviceResources) throws(ResourceError) {
        let owner = device.owner
        var next = self
        guard next.mmioOwners[device.window] == owner else { throw .notAttached(owner) }
        do {
            try next.mmio.free(device.window)
            if let gsi = device.gsi {
                guard next.gsiOwners[gsi] == owner else { throw ResourceError.notAttached(owner) }
                _ = try next.gsis.freeID(gsi)
                next.gsiOwners[gsi] = nil
            }
            _ = try next.instances[device.kind]?.freeID(device.instance)
        } catch {
            throw .notAttached(owner)
        }
        next.mmioOwners[device.window] = nil
        // A device that holds a GSI must name it (at most 20 GSIs to look through).
        guard !next.gsiOwners.values.contains(owner) else { throw .notAttached(owner) }
        // IdAllocator remembers released IDs; forget them, so that a detach restores exactly
        // the value the manager had before the attach.
        if device.gsi != nil { next.gsis = Self.withoutHistory(next.gsis, live: next.gsiOwners.keys) }
        let liveInstances = next.mmioOwners.values.compactMap { if case .device(device.kind, let n) = $0 { n } else { nil } }
        next.instances[device.kind] = Self.withoutHistory(next.instances[device.kind]!, live: liveInstances)
        next.checkInvariants()
        self = next
    }

    /// Keeps `gsi` taken for good, owned by ``Owner/quarantined``: its release failed in
    /// the host, so handing it out again could wire a new device to a stale interrupt.
    ///
    /// - Throws: ``ResourceError/notAttached(_:)`` unless `gsi` is taken; nothing changes then.
    package mutating func quarantine(gsi: UInt32) throws(ResourceError) {
        var next = self
        if next.gsiOwners[gsi] == nil {
            do { try next.gsis.allocate(id: gsi) } catch { throw .notAttached(.quarantined) }
        }
        next.gsiOwners[gsi] = .quarantined
        next.checkInvariants()
        self = next
    }

    // MARK: Lookups

    /// The owner of the MMIO allocation containing `address`, if any.
    ///
    /// - Complexity: O(log n) in the number of MMIO allocations.
    package func owner(ofMMIOAddress address: UInt64) -> Owner? {
        mmio.allocation(containing: address).flatMap { mmioOwners[$0] }
    }

    /// The owner of the port range containing `port`, if any.
    ///
    /// - Complexity: O(log n) in the number of port allocations.
    package func owner(ofPort port: UInt64) -> Owner? {
        ports.allocation(containing: port).flatMap { portOwners[$0] }
    }

    /// The port range of a fixed owner (COM1, the exit port, …).
    package func ports(of owner: FixedOwner) -> RangeInclusive? {
        portOwners.first { $0.value == .fixed(owner) }?.key
    }

    /// The MMIO range of a fixed owner (the IOAPIC, KVM's TSS, …).
    package func mmio(of owner: FixedOwner) -> RangeInclusive? {
        mmioOwners.first { $0.value == .fixed(owner) }?.key
    }

    /// The GSI of a fixed owner (COM1, the hot-plug controller).
    package func gsi(of owner: FixedOwner) -> UInt32? {
        gsiOwners.first { $0.value == .fixed(owner) }?.key
    }

    /// The RAM regions, ascending by base (boot RAM, then hot-plugged RAM), quarantined
    /// ones left out.
    ///
    /// - Complexity: O(s log s) for s taken slots.
    package var liveRAM: [RAMRegion] {
        ramRegions.values.filter { $0.owner != .quarantined }.sorted { $0.base < $1.base }
    }

    // MARK: Invariants

    /// In debug builds, traps unless the owner records name exactly the allocations.
    ///
    /// - Complexity: O(n) in debug builds; nothing in release builds.
    func checkInvariants() {
        assert(Set(mmio.allocations) == Set(mmioOwners.keys).union(foreignMMIO), "MMIO owners \(mmioOwners) vs \(mmio.allocations)")
        assert(Set(ports.allocations) == Set(portOwners.keys), "port owners vs allocations")
        assert(gsiOwners.keys.allSatisfy { gsis.isAllocated($0) } && gsis.allocatedCount == UInt64(gsiOwners.count),
               "GSI owners vs allocations")
        assert(ramRegions.keys.allSatisfy { memorySlots.isAllocated($0) }
               && memorySlots.allocatedCount == UInt64(ramRegions.count), "RAM regions vs slot allocations")
        assert(hotplugRAM.allocations.count == ramRegions.values.filter(isHotplugged).count,
               "hot-plug RAM allocations vs regions")
        assert(vcpuOwners.keys.allSatisfy { vcpuIDs.isAllocated($0) }
               && vcpuIDs.allocatedCount == UInt64(vcpuOwners.count), "vCPU owners vs IDs")
        assert(DeviceKind.allCases.allSatisfy { kind in
            let live = mmioOwners.values.filter { if case .device(kind, _) = $0 { true } else { false } }
            return instances[kind]?.allocatedCount == UInt64(live.count)
        }, "instance numbers vs devices")
    }

    // MARK: Helpers

    private static func take(
        _ range: ClosedRange<UInt64>, owner: Owner, from allocator: inout AddressAllocator
    ) throws(ResourceError) -> RangeInclusive {
        do {
            return try allocator.allocate(
                size: range.upperBound - range.lowerBound + 1, alignment: 1, policy: .exactMatch(range.lowerBound))
        } catch {
            throw .reservedRangeTaken(owner: owner, start: range.lowerBound, end: range.upperBound)
        }
    }

    /// An allocator over `allocator`'s range with exactly the IDs `live` handed out and no
    /// released ones.
    private static func withoutHistory(_ allocator: IdAllocator, live: some Sequence<UInt32>) -> IdAllocator {
        var fresh = makeIdAllocator(allocator.rangeBase...allocator.rangeEnd)
        for id in live {
            do { try fresh.allocate(id: id) } catch { fatalError("live IDs are distinct and in range: \(error)") }
        }
        return fresh
    }

    private static func makeIdAllocator(_ ids: ClosedRange<UInt32>) -> IdAllocator {
        do { return try IdAllocator(rangeBase: ids.lowerBound, rangeEnd: ids.upperBound) } catch {
            fatalError("callers pass a valid range: \(error)")
        }
    }

    private static func makeAddressAllocator(_ range: ClosedRange<UInt64>) -> AddressAllocator {
        do { return try AddressAllocator(base: range.lowerBound, size: range.upperBound - range.lowerBound + 1) } catch {
            fatalError("callers pass a valid range: \(error)")
        }
    }
}

/// What a fixed MMIO device with an interrupt holds (the hot-plug controller).
package struct FixedDeviceResources: Hashable, Sendable {
    /// Who holds them.
    package let owner: FixedOwner
    /// The register window.
    package let window: RangeInclusive
    /// The GSI it raises.
    package let gsi: UInt32
}

/// What one device holds: its kind and instance number, its MMIO window and its GSI.
package struct DeviceResources: Hashable, Sendable {
    /// The device kind.
    package let kind: DeviceKind
    /// The instance number among devices of the kind.
    package let instance: UInt32
    /// The device's MMIO register window.
    package let window: RangeInclusive
    /// The GSI (IOAPIC pin) it raises, if the kind has one.
    package let gsi: UInt32?

    /// The typed owner of these resources.
    package var owner: Owner { .device(kind, instance: instance) }
}
