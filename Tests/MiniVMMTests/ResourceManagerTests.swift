import Testing
import VMAllocator

@testable import MiniVMM

private typealias F = PlanFixtures

/// Expects every part of `manager` to equal the same part of `expected`, then the whole
/// value (so a failure names the allocator or record that differs).
private func expectEqual(
    _ manager: ResourceManager, _ expected: ResourceManager, _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(manager.memorySlots == expected.memorySlots, comment, sourceLocation: sourceLocation)
    #expect(manager.ports == expected.ports, comment, sourceLocation: sourceLocation)
    #expect(manager.mmio == expected.mmio, comment, sourceLocation: sourceLocation)
    #expect(manager.gsis == expected.gsis, comment, sourceLocation: sourceLocation)
    #expect(manager.vcpuIDs == expected.vcpuIDs, comment, sourceLocation: sourceLocation)
    #expect(manager.instances == expected.instances, comment, sourceLocation: sourceLocation)
    for kind in DeviceKind.allCases {
        #expect(manager.instances[kind] == expected.instances[kind], comment, sourceLocation: sourceLocation)
    }
    #expect(manager.ramRegions == expected.ramRegions, comment, sourceLocation: sourceLocation)
    #expect(manager.portOwners == expected.portOwners, comment, sourceLocation: sourceLocation)
    #expect(manager.mmioOwners == expected.mmioOwners, comment, sourceLocation: sourceLocation)
    #expect(manager.gsiOwners == expected.gsiOwners, comment, sourceLocation: sourceLocation)
    #expect(manager.vcpuOwners == expected.vcpuOwners, comment, sourceLocation: sourceLocation)
    #expect(manager == expected, comment, sourceLocation: sourceLocation)
    #expect(manager.hashValue == expected.hashValue, comment, sourceLocation: sourceLocation)
}

/// Expects `body` to throw `error` and to leave `manager` exactly as it was.
private func expectRefused(
    _ manager: inout ResourceManager, _ error: ResourceError, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (inout ResourceManager) throws(ResourceError) -> Void
) {
    let before = manager
    #expect(throws: error, sourceLocation: sourceLocation) { try body(&manager) }
    expectEqual(manager, before, "unchanged after a refused call", sourceLocation: sourceLocation)
}

/// The first device window in a fresh gap: page `index` from its start.
private func page(_ index: Int) -> RangeInclusive {
    F.range(0xC000_0000 + UInt64(index) * 0x1000, 0xC000_0FFF + UInt64(index) * 0x1000)
}

@Suite("ResourceManager: attach, detach, exhaustion")
struct ResourceManagerTests {
    @Test("a fresh manager holds the fixed resources with their owners")
    func fixedResources() throws {
        let manager = try ResourceManager(memorySlotCount: 32)
        #expect(manager.memorySlots.rangeBase == 0 && manager.memorySlots.rangeEnd == 31)
        #expect(manager.memorySlots.allocatedCount == 0 && manager.ramRegions.isEmpty)
        #expect(manager.ports(of: .picMaster) == F.range(0x20, 0x21))
        #expect(manager.ports(of: .picSlave) == F.range(0xA0, 0xA1))
        #expect(manager.ports(of: .pit) == F.range(0x40, 0x43))
        #expect(manager.ports(of: .exitPort) == F.range(0xF4, 0xF7))
        #expect(manager.ports(of: .com1) == F.range(0x3F8, 0x3FF))
        #expect(manager.mmio(of: .ioapic) == F.range(0xFEC0_0000, 0xFEC0_0FFF))
        #expect(manager.mmio(of: .localAPIC) == F.range(0xFEE0_0000, 0xFEE0_0FFF))
        #expect(manager.mmio(of: .identityMap) == F.range(0xFEFF_C000, 0xFEFF_CFFF))
        #expect(manager.mmio(of: .tss) == F.range(0xFEFF_D000, 0xFEFF_FFFF))
        #expect(manager.ports(of: .ioapic) == nil && manager.mmio(of: .com1) == nil)
        #expect(manager.gsiOwners == [4: .fixed(.com1)])
        #expect(manager.gsis.rangeBase == 4 && manager.gsis.rangeEnd == 23)
        #expect(manager.owner(ofPort: 0x3FD) == .fixed(.com1))
        #expect(manager.owner(ofPort: 0xF7) == .fixed(.exitPort))
        #expect(manager.owner(ofPort: 0x80) == nil)
        #expect(manager.owner(ofMMIOAddress: 0xFEC0_0010) == .fixed(.ioapic))
        #expect(manager.owner(ofMMIOAddress: 0xFEFF_F123) == .fixed(.tss))
        #expect(manager.owner(ofMMIOAddress: 0xC000_0000) == nil)
        #expect(DeviceKind.allCases.allSatisfy { manager.instances[$0]?.allocatedCount == 0 })
        #expect(try ResourceManager(memorySlotCount: 32) == manager, "construction is deterministic")
        #expect(try ResourceManager(memorySlotCount: 33) != manager)
    }

    @Test("owners render as users read them")
    func ownerNames() {
        #expect(Owner.device(.timer, instance: 0).description == "timer0")
        #expect(Owner.device(.dmaConsole, instance: 12).description == "dma-console12")
        #expect(Owner.ram(1).description == "ram1")
        #expect(Owner.fixed(.com1).description == "com1")
        #expect(Owner.fixed(.identityMap).description == "kvm-identity-map")
        #expect(Owner.cpu(3).description == "cpu3")
    }

    @Test("attaching a device takes the lowest window, GSI and instance; detaching restores the manager",
          arguments: DeviceKind.allCases)
    func attachAndDetach(kind: DeviceKind) throws {
        let initial = try ResourceManager(memorySlotCount: 32)
        var manager = initial
        let device = try manager.attach(kind)
        let descriptor = kind.descriptor
        let owner = Owner.device(kind, instance: 0)
        #expect(device.kind == kind && device.instance == 0 && device.owner == owner)
        #expect(device.window.start == 0xC000_0000 && device.window.count == descriptor.windowSize)
        #expect(device.window.start % descriptor.windowAlignment == 0)
        #expect(device.gsi == (descriptor.needsGSI ? 5 : nil))
        #expect(manager.mmioOwners[device.window] == owner)
        #expect(manager.owner(ofMMIOAddress: device.window.start + 0x10) == owner)
        #expect(manager.owner(ofMMIOAddress: device.window.end) == owner)
        #expect(manager.owner(ofMMIOAddress: device.window.end + 1) == nil)
        if let gsi = device.gsi { #expect(manager.gsiOwners[gsi] == owner) }
        #expect(manager.instances[kind]?.isAllocated(0) == true)
        #expect("\(owner)" == "\(kind.rawValue)0")
        #expect(manager != initial)
        #expect(manager.mmio != initial.mmio)
        #expect(manager.instances[kind] != initial.instances[kind])
        if descriptor.needsGSI { #expect(manager.gsis != initial.gsis) }
        // Untouched allocators stay equal.
        #expect(manager.ports == initial.ports && manager.memorySlots == initial.memorySlots)

        try manager.detach(device)
        expectEqual(manager, initial)
        #expect(manager.owner(ofMMIOAddress: device.window.start) == nil)
    }

    @Test("detach restores the manager also when other resources are taken", arguments: DeviceKind.allCases)
    func detachAmongOthers(kind: DeviceKind) throws {
        var manager = try ResourceManager(memorySlotCount: 8)
        _ = try manager.takeMemorySlot(for: F.range(0, 128 * F.mib - 1), owner: .ram(0))
        _ = try manager.takeVcpuID()
        let others = try DeviceKind.allCases.flatMap { other in try (0..<3).map { _ in try manager.attach(other) } }
        let before = manager
        let device = try manager.attach(kind)
        #expect(device.instance == 3)
        #expect(device.window == page(others.count))
        #expect(device.gsi == (kind.descriptor.needsGSI ? 5 + UInt32(others.count) : nil))
        try manager.detach(device)
        expectEqual(manager, before)
        // And detaching the others, newest first or oldest first, ends where it started.
        var forward = manager
        var backward = manager
        for other in others { try forward.detach(other) }
        for other in others.reversed() { try backward.detach(other) }
        expectEqual(forward, backward)
        var fresh = try ResourceManager(memorySlotCount: 8)
        _ = try fresh.takeMemorySlot(for: F.range(0, 128 * F.mib - 1), owner: .ram(0))
        _ = try fresh.takeVcpuID()
        expectEqual(forward, fresh)
    }

    @Test("every kind attached and detached together returns the initial manager")
    func everyKindTogether() throws {
        let initial = try ResourceManager(memorySlotCount: 32)
        var manager = initial
        var devices: [DeviceResources] = []
        for round in 0..<2 {
            for kind in DeviceKind.allCases { devices.append(try manager.attach(kind)) }
            #expect(devices.suffix(DeviceKind.allCases.count).allSatisfy { $0.instance == UInt32(round) })
        }
        #expect(devices.map(\.window) == (0..<devices.count).map(page))
        #expect(Set(devices.map(\.owner)).count == devices.count)
        for device in devices.shuffled() { try manager.detach(device) }
        expectEqual(manager, initial)
    }

    @Test("a detached device's window, GSI and instance are reused lowest first")
    func lowestFirstReuse() throws {
        var manager = try ResourceManager(memorySlotCount: 32)
        let timer0 = try manager.attach(.timer)
        let console0 = try manager.attach(.dmaConsole)
        let timer1 = try manager.attach(.timer)
        let timer2 = try manager.attach(.timer)
        #expect([timer0, console0, timer1, timer2].map(\.gsi) == [5, 6, 7, 8])
        #expect([timer0, timer1, timer2].map(\.instance) == [0, 1, 2])

        try manager.detach(timer1)
        try manager.detach(timer0)
        // Timer instance 0, the first window and GSI 5 are the lowest free now.
        let again = try manager.attach(.timer)
        #expect(again == timer0)
        let next = try manager.attach(.timer)
        #expect(next == timer1)
        let fresh = try manager.attach(.timer)
        #expect(fresh.instance == 3 && fresh.window == page(4) && fresh.gsi == 9)

        // A freed window and GSI go to any kind; instance numbers are per kind.
        try manager.detach(timer2)
        let console1 = try manager.attach(.dmaConsole)
        #expect(console1.instance == 1 && console1.window == timer2.window && console1.gsi == timer2.gsi)
    }

    @Test("when every device GSI is taken, attach fails with the message and changes nothing",
          arguments: DeviceKind.allCases.filter(\.descriptor.needsGSI))
    func gsiExhaustion(kind: DeviceKind) throws {
        var manager = try ResourceManager(memorySlotCount: 32)
        var devices: [DeviceResources] = []
        for _ in 0..<ResourceManager.deviceGSICount { devices.append(try manager.attach(kind)) }
        #expect(ResourceManager.deviceGSICount == 19)
        #expect(devices.compactMap(\.gsi) == Array(5...23))
        #expect(devices.map(\.instance) == Array(0..<19))
        let error = ResourceError.noFreeGSI(owner: .device(kind, instance: 19), available: 19)
        expectRefused(&manager, error) { manager throws(ResourceError) in _ = try manager.attach(kind) }
        #expect(error.description == "no free GSI for \(kind.rawValue)19: all 19 device GSIs are in use")
        // Another kind fails the same way, naming its own first free instance.
        for other in DeviceKind.allCases where other != kind && other.descriptor.needsGSI {
            expectRefused(&manager, .noFreeGSI(owner: .device(other, instance: 0), available: 19)) {
                manager throws(ResourceError) in _ = try manager.attach(other)
            }
        }
        // Giving one back makes room for exactly one.
        try manager.detach(devices[7])
        let replacement = try manager.attach(kind)
        #expect(replacement == devices[7])
    }

    @Test("the GSI message for timers")
    func gsiMessage() {
        #expect(ResourceError.noFreeGSI(owner: .device(.timer, instance: 19), available: 19).description
            == "no free GSI for timer19: all 19 device GSIs are in use")
        #expect(ResourceError.noFreeGSI(owner: nil, available: 19).description
            == "no free GSI: all 19 device GSIs are in use")
    }

    @Test("out of MMIO space: attach fails naming the kind and changes nothing", arguments: DeviceKind.allCases)
    func mmioExhaustion(kind: DeviceKind) throws {
        let initial = try ResourceManager(memorySlotCount: 32, mmioSpace: F.crowdedGap())
        var manager = initial
        var devices: [DeviceResources] = []
        for _ in F.crowdedGapFreePages { devices.append(try manager.attach(kind)) }
        #expect(devices.map(\.window.start) == F.crowdedGapFreePages)
        for device in devices {
            for reserved in [FixedOwner.ioapic, .localAPIC, .identityMap, .tss] {
                #expect(!device.window.overlaps(try #require(manager.mmio(of: reserved))))
            }
        }
        expectRefused(&manager, .outOfMMIOSpace(kind: kind)) { manager throws(ResourceError) in
            _ = try manager.attach(kind)
        }
        #expect(ResourceError.outOfMMIOSpace(kind: kind).description
            == "no free 4 KiB window left in the 32-bit MMIO gap for a \(kind.rawValue)")
        try manager.detach(devices[2])
        #expect(try manager.attach(kind) == devices[2])
        for device in devices { try manager.detach(device) }
        expectEqual(manager, initial)
    }

    @Test("a reserved page that is already taken is an internal error, not a crash")
    func reservedPageTaken() throws {
        var gap = try AddressAllocator(base: 0xC000_0000, size: 0x4000_0000)
        _ = try gap.allocate(size: 0x2000, alignment: 0x1000, policy: .exactMatch(0xFEDF_F000))
        #expect(throws: ResourceError.reservedRangeTaken(owner: .fixed(.localAPIC), start: 0xFEE0_0000, end: 0xFEE0_0FFF)) {
            try ResourceManager(memorySlotCount: 32, mmioSpace: gap)
        }
        #expect(ResourceError.reservedRangeTaken(owner: .fixed(.localAPIC), start: 0xFEE0_0000, end: 0xFEE0_0FFF)
            .description.hasPrefix("internal error: "))
    }

    @Test("detaching what is not attached fails with .notAttached and changes nothing")
    func detachNotAttached() throws {
        var manager = try ResourceManager(memorySlotCount: 32)
        let never = DeviceResources(kind: .timer, instance: 0, window: page(0), gsi: 5)
        expectRefused(&manager, .notAttached(.device(.timer, instance: 0))) { manager throws(ResourceError) in
            try manager.detach(never)
        }
        let timer = try manager.attach(.timer)
        let console = try manager.attach(.dmaConsole)
        #expect(timer == never)
        let impostors: [DeviceResources] = [
            // Another device's window.
            DeviceResources(kind: .timer, instance: 0, window: console.window, gsi: timer.gsi),
            // A window nobody holds.
            DeviceResources(kind: .timer, instance: 0, window: page(5), gsi: timer.gsi),
            // Part of the window.
            DeviceResources(kind: .timer, instance: 0, window: F.range(0xC000_0000, 0xC000_07FF), gsi: timer.gsi),
            // Another device's GSI, or one nobody holds.
            DeviceResources(kind: .timer, instance: 0, window: timer.window, gsi: console.gsi),
            DeviceResources(kind: .timer, instance: 0, window: timer.window, gsi: 20),
            // No GSI, though the timer holds one.
            DeviceResources(kind: .timer, instance: 0, window: timer.window, gsi: nil),
            // Another instance or kind.
            DeviceResources(kind: .timer, instance: 1, window: timer.window, gsi: timer.gsi),
            DeviceResources(kind: .dmaConsole, instance: 0, window: timer.window, gsi: timer.gsi),
        ]
        for impostor in impostors {
            expectRefused(&manager, .notAttached(impostor.owner)) { manager throws(ResourceError) in
                try manager.detach(impostor)
            }
        }
        // Detaching twice: the second time it is not attached.
        try manager.detach(timer)
        expectRefused(&manager, .notAttached(timer.owner)) { manager throws(ResourceError) in try manager.detach(timer) }
        #expect(ResourceError.notAttached(timer.owner).description == "timer0 does not hold the resources it was given")
    }

    @Test("memory slots are taken lowest first until the host's count runs out")
    func memorySlots() throws {
        var manager = try ResourceManager(memorySlotCount: 2)
        let low = try manager.takeMemorySlot(for: F.range(0, 3 * F.gib - 1), owner: .ram(0))
        let high = try manager.takeMemorySlot(for: F.range(4 * F.gib, 6 * F.gib - 1), owner: .ram(1))
        #expect(low == RAMRegion(range: F.range(0, 3 * F.gib - 1), slot: 0, owner: .ram(0)))
        #expect(high.slot == 1 && high.base == 4 * F.gib && high.size == 2 * F.gib)
        #expect(manager.ramRegions == [0: low, 1: high])
        let error = ResourceError.noFreeMemorySlot(owner: .ram(2), available: 2)
        expectRefused(&manager, error) { manager throws(ResourceError) in
            _ = try manager.takeMemorySlot(for: F.range(8 * F.gib, 9 * F.gib - 1), owner: .ram(2))
        }
        #expect(error.description == "no free KVM memory slot for ram2: all 2 slots the host offers are in use")
    }

    @Test("hot-plugged RAM takes the lowest slot and 2 MiB-aligned range; detach restores the manager exactly")
    func hotplugRAM() throws {
        var manager = try ResourceManager(memorySlotCount: 4, hotplugWindow: F.range(8 * F.gib, 9 * F.gib - 1))
        _ = try manager.takeMemorySlot(for: F.range(0, 128 * F.mib - 1), owner: .ram(0))
        let initial = manager
        let first = try manager.attachRAM(size: 2 * F.mib)
        let second = try manager.attachRAM(size: 256 * F.mib)
        #expect(first == RAMRegion(range: F.range(8 * F.gib, 8 * F.gib + 2 * F.mib - 1), slot: 1, owner: .ram(1)))
        #expect(second.slot == 2 && second.base == 8 * F.gib + 2 * F.mib)
        #expect(manager.isHotplugged(first) && !manager.isHotplugged(manager.ramRegions[0]!))
        #expect(manager.liveRAM.map(\.slot) == [0, 1, 2])
        #expect(manager.info.hotplugRAM.allocations.map(\.owner) == ["ram1", "ram2"])
        let afterBoth = manager
        #expect(throws: ResourceError.badHotplugSize(F.mib)) { try manager.attachRAM(size: F.mib) }
        #expect(throws: ResourceError.outOfHotplugSpace(size: F.gib, window: F.range(8 * F.gib, 9 * F.gib - 1))) {
            try manager.attachRAM(size: F.gib)
        }
        _ = try manager.attachRAM(size: 2 * F.mib)
        #expect(throws: ResourceError.noFreeHotplugSlot(available: 4)) { try manager.attachRAM(size: 2 * F.mib) }
        #expect(ResourceError.noFreeHotplugSlot(available: 4).description
            == "no free KVM memory slot for more RAM: all 4 slots the host offers are in use")
        try manager.detachRAM(manager.ramRegions[3]!)
        #expect(manager == afterBoth, "a failed attach changed nothing; a detach undoes an attach")
        // Boot RAM and regions the manager did not hand out are refused.
        #expect(throws: ResourceError.notAttached(.ram(0))) { try manager.detachRAM(manager.ramRegions[0]!) }
        let stranger = RAMRegion(range: F.range(8 * F.gib, 8 * F.gib + 4 * F.mib - 1), slot: 1, owner: .ram(1))
        #expect(throws: ResourceError.notAttached(.ram(1))) { try manager.detachRAM(stranger) }
        #expect(manager == afterBoth)
        try manager.detachRAM(first)
        try manager.detachRAM(second)
        #expect(manager == initial)
        // In the other order too, and the lowest slot comes back first.
        let again = try manager.attachRAM(size: 2 * F.mib)
        #expect(again == first)
    }

    @Test("quarantined RAM keeps its slot and range for good and is no RAM to the guest")
    func quarantinedRAM() throws {
        var manager = try ResourceManager(memorySlotCount: 4)
        let region = try manager.attachRAM(size: 2 * F.mib)
        try manager.quarantine(ram: region)
        #expect(manager.ramRegions[region.slot]?.owner == .quarantined && manager.liveRAM.isEmpty)
        #expect(throws: ResourceError.notAttached(.ram(0))) { try manager.detachRAM(region) }
        let next = try manager.attachRAM(size: 2 * F.mib)
        #expect(next.slot == region.slot + 1 && next.base == region.range.end + 1)
        #expect(manager.info.memorySlots.allocations.map(\.owner) == ["quarantined", "ram1"])
    }

    @Test("the hot-plug controller takes the lowest window and GSI like a device")
    func hotplugController() throws {
        var manager = try ResourceManager(memorySlotCount: 4)
        _ = try manager.attach(.timer)
        let controller = try manager.attachHotplugController()
        #expect(controller == FixedDeviceResources(
            owner: .hotplugController, window: F.range(0xC000_1000, 0xC000_1FFF), gsi: 6))
        #expect(manager.mmio(of: .hotplugController) == controller.window && manager.gsi(of: .hotplugController) == 6)
        #expect(manager.owner(ofMMIOAddress: 0xC000_1004) == .fixed(.hotplugController))
    }

    @Test("vCPU IDs are taken lowest first, up to 64")
    func vcpuIDs() throws {
        var manager = try ResourceManager(memorySlotCount: 2)
        let ids = try (0..<64).map { _ in try manager.takeVcpuID() }
        #expect(ids == Array(0..<64))
        #expect(manager.vcpuOwners[0] == .cpu(0) && manager.vcpuOwners[63] == .cpu(63))
        expectRefused(&manager, .noFreeVcpuID(available: 64)) { manager throws(ResourceError) in
            _ = try manager.takeVcpuID()
        }
    }

    @Test("random attach and detach sequences keep the model's lowest-first answers and end where they began (seeded)")
    func randomSequence() throws {
        let seed: UInt64 = 0x5EED_0007
        print("ResourceManagerTests.randomSequence seed: \(seed)")
        var random = SeededRandom(seed: seed)
        let initial = try ResourceManager(memorySlotCount: 16)
        var manager = initial
        var attached: [DeviceResources] = []
        var attaches = 0, detaches = 0, refusals = 0

        for step in 0..<2_000 {
            let roll = Int.random(in: 0..<100, using: &random)
            if roll < 55 || attached.isEmpty {
                let kind = DeviceKind.allCases.randomElement(using: &random)!
                let gsiCount = attached.filter { $0.gsi != nil }.count
                if kind.descriptor.needsGSI && gsiCount == ResourceManager.deviceGSICount {
                    let instance = (0...).first { n in !attached.contains { $0.kind == kind && $0.instance == UInt32(n) } }!
                    expectRefused(&manager, .noFreeGSI(owner: .device(kind, instance: UInt32(instance)), available: 19)) {
                        manager throws(ResourceError) in _ = try manager.attach(kind)
                    }
                    refusals += 1
                    continue
                }
                let device = try manager.attach(kind)
                attaches += 1
                // The model: the lowest free instance of the kind, page and GSI.
                let instance = (0...).first { n in !attached.contains { $0.kind == kind && $0.instance == UInt32(n) } }!
                let pageIndex = (0...).first { n in !attached.contains { $0.window == page(n) } }!
                let gsi = (UInt32(5)...23).first { g in !attached.contains { $0.gsi == g } }
                #expect(device.instance == UInt32(instance), "step \(step)")
                #expect(device.window == page(pageIndex), "step \(step)")
                #expect(device.gsi == (kind.descriptor.needsGSI ? gsi : nil), "step \(step)")
                attached.append(device)
            } else if roll < 95 {
                let index = Int.random(in: 0..<attached.count, using: &random)
                try manager.detach(attached.remove(at: index))
                detaches += 1
            } else {
                // Something not attached: a device already detached, or a wrong GSI.
                let device = attached.randomElement(using: &random)!
                let bogus = DeviceResources(kind: device.kind, instance: device.instance, window: device.window,
                                            gsi: device.gsi.map { $0 == 23 ? 22 : $0 + 1 })
                if !attached.contains(bogus) {
                    expectRefused(&manager, .notAttached(bogus.owner)) { manager throws(ResourceError) in
                        try manager.detach(bogus)
                    }
                    refusals += 1
                }
            }
            #expect(manager.mmioOwners.count == attached.count + 4, "step \(step)")
            #expect(manager.gsiOwners.count == attached.filter { $0.gsi != nil }.count + 1, "step \(step)")
            for device in attached {
                #expect(manager.owner(ofMMIOAddress: device.window.start) == device.owner, "step \(step)")
            }
        }
        print("ResourceManagerTests.randomSequence: \(attaches) attaches, \(detaches) detaches, "
              + "\(refusals) refusals, \(attached.count) left")
        #expect(attaches > 500 && detaches > 500 && refusals > 50)
        for device in attached.shuffled(using: &random) { try manager.detach(device) }
        expectEqual(manager, initial)
    }
}
