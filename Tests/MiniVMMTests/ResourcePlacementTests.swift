@testable import MiniVMM
import Testing
import VMAllocator

private let mib: UInt64 = 1 << 20
private let gib: UInt64 = 1 << 30
private let defaultSlots: UInt32 = 32764

private func range(_ start: UInt64, _ end: UInt64) -> RangeInclusive {
    // Test literals are valid ranges.
    try! RangeInclusive(start: start, end: end)
}

@Suite("MachineResources placement")
struct ResourcePlacementTests {
    @Test("the default machine gets the documented resources")
    func defaultMachine() throws {
        let machine = try MachineResources(memorySize: 128 * mib, timers: 1, consoles: 1, maxMemorySlots: defaultSlots)
        #expect(machine.ramRegions == [.init(base: 0, size: 128 * mib, slot: 0, owner: "ram0")])
        #expect(machine.com1 == .init(ports: range(0x3F8, 0x3FF), gsi: 4))
        #expect(machine.exitPort == range(0xF4, 0xF7))
        #expect(machine.legacyPorts.map(\.range) == [range(0x20, 0x21), range(0x40, 0x43), range(0xA0, 0xA1)])
        #expect(machine.timers == [.init(window: range(0xC000_0000, 0xC000_0FFF), gsi: 5, owner: "timer0", instance: 0)])
        #expect(machine.consoles == [
            .init(window: range(0xC000_1000, 0xC000_1FFF), gsi: 6, owner: "dma-console0", instance: 0),
        ])
        #expect(machine.ioapic == range(0xFEC0_0000, 0xFEC0_0FFF))
        #expect(machine.localAPIC == range(0xFEE0_0000, 0xFEE0_0FFF))
        #expect(machine.identityMap == range(0xFEFF_C000, 0xFEFF_CFFF))
        #expect(machine.tss == range(0xFEFF_D000, 0xFEFF_FFFF))
        #expect(machine.slotOwners == [0: "ram0"])
        #expect(machine.gsiOwners == [4: "com1", 5: "timer0", 6: "dma-console0"])
        #expect(Set(machine.mmioOwners.values) == [
            "ioapic", "local-apic", "kvm-identity-map", "kvm-tss", "timer0", "dma-console0",
        ])
        #expect(Set(machine.portOwners.values) == ["pic-master", "pic-slave", "pit", "exit-port", "com1"])
    }

    @Test("the allocators are kept with everything taken in them")
    func allocatorsKept() throws {
        let machine = try MachineResources(memorySize: 5 * gib, timers: 2, consoles: 1, maxMemorySlots: 509)
        #expect(machine.memorySlots.rangeBase == 0 && machine.memorySlots.rangeEnd == 508)
        #expect(machine.memorySlots.isAllocated(0) && machine.memorySlots.isAllocated(1))
        #expect(!machine.memorySlots.isAllocated(2))
        #expect((4...7).allSatisfy { machine.gsis.isAllocated($0) })
        #expect(!machine.gsis.isAllocated(8))
        #expect(machine.mmio.allocations.count == 7)
        #expect(machine.ports.allocations.count == 5)
        #expect(machine.owner(ofMMIOAddress: 0xFEC0_0010) == "ioapic")
        #expect(machine.owner(ofMMIOAddress: 0xC000_2FFC) == "dma-console0")
        #expect(machine.owner(ofMMIOAddress: 0xC000_3000) == nil)
        #expect(machine.owner(ofPort: 0x3FD) == "com1")
        #expect(machine.owner(ofPort: 0x80) == nil)
    }

    @Test("memory above the gap gets a second region and slot")
    func highMemory() throws {
        let machine = try MachineResources(memorySize: 5 * gib, timers: 0, consoles: 0, maxMemorySlots: defaultSlots)
        #expect(machine.ramRegions == [
            .init(base: 0, size: 3 * gib, slot: 0, owner: "ram0"),
            .init(base: 4 * gib, size: 2 * gib, slot: 1, owner: "ram1"),
        ])
        #expect(machine.timers.isEmpty && machine.consoles.isEmpty)
        #expect(machine.gsiOwners == [4: "com1"])
    }

    @Test("19 devices fill GSIs 5...23: timers first, then consoles, windows in the same order")
    func fullGSIRange() throws {
        let machine = try MachineResources(memorySize: 128 * mib, timers: 12, consoles: 7, maxMemorySlots: defaultSlots)
        let devices = machine.timers + machine.consoles
        #expect(devices.map(\.gsi) == Array(5...23))
        #expect(devices.map(\.window.start) == (0..<19).map { 0xC000_0000 + UInt64($0) * 0x1000 })
        #expect(machine.timers.map(\.owner) == (0..<12).map { "timer\($0)" })
        #expect(machine.consoles.map(\.instance) == Array(0..<7))
        #expect(machine.consoles.last?.owner == "dma-console6")
    }

    @Test(
        "more devices than GSIs fail before anything else, with the numbers",
        arguments: [(20, 0, 20), (0, 20, 20), (10, 10, 20), (30, 1, 31)])
    func tooManyDevices(timers: Int, consoles: Int, requested: Int) {
        // An invalid memory size and no memory slots: the device count is still reported.
        #expect(throws: ResourceError.tooManyDevices(requested: requested, available: 19)) {
            try MachineResources(memorySize: 1, timers: timers, consoles: consoles, maxMemorySlots: 0)
        }
        let message = ResourceError.tooManyDevices(requested: requested, available: 19).description
        #expect(message.contains("\(requested) devices"))
        #expect(message.contains("only 19 are available"))
    }

    @Test("absurd device counts neither crash nor pass")
    func absurdCounts() {
        #expect(throws: ResourceError.tooManyDevices(requested: Int.max, available: 19)) {
            try MachineResources(memorySize: 128 * mib, timers: .max, consoles: .max, maxMemorySlots: defaultSlots)
        }
        #expect(throws: ResourceError.invalidDeviceCount(kind: "timers", count: -1)) {
            try MachineResources(memorySize: 128 * mib, timers: -1, consoles: 0, maxMemorySlots: defaultSlots)
        }
        #expect(throws: ResourceError.invalidDeviceCount(kind: "consoles", count: .min)) {
            try MachineResources(memorySize: 128 * mib, timers: 0, consoles: .min, maxMemorySlots: defaultSlots)
        }
    }

    @Test("a bad memory size is reported")
    func badMemorySize() {
        #expect(throws: ResourceError.invalidMemorySize(1 * mib, .tooSmall)) {
            try MachineResources(memorySize: 1 * mib, timers: 1, consoles: 1, maxMemorySlots: defaultSlots)
        }
    }

    @Test("the memory-slot limit is respected")
    func memorySlotLimit() throws {
        #expect(throws: ResourceError.outOfMemorySlots(needed: 2, available: 1)) {
            try MachineResources(memorySize: 5 * gib, timers: 1, consoles: 1, maxMemorySlots: 1)
        }
        #expect(throws: ResourceError.outOfMemorySlots(needed: 1, available: 0)) {
            try MachineResources(memorySize: 128 * mib, timers: 1, consoles: 1, maxMemorySlots: 0)
        }
        let single = try MachineResources(memorySize: 3 * gib, timers: 1, consoles: 1, maxMemorySlots: 1)
        #expect(single.ramRegions.map(\.slot) == [0])
        #expect(ResourceError.outOfMemorySlots(needed: 2, available: 1).description
            == "guest RAM needs 2 KVM memory slots but the host offers only 1")
    }

    /// An MMIO gap already full except for the reserved pages and one page next to each.
    private static func crowdedGap() throws -> AddressAllocator {
        var gap = try AddressAllocator(base: 0xC000_0000, size: 0x4000_0000)
        for (start, end) in [
            (0xC000_0000, 0xFEBF_EFFF), (0xFEC0_1000, 0xFEDF_EFFF), (0xFEE0_1000, 0xFEFF_AFFF),
            (0xFF00_0000, 0xFFFF_EFFF),
        ] as [(UInt64, UInt64)] {
            _ = try gap.allocate(size: end - start + 1, alignment: 0x1000, policy: .exactMatch(start))
        }
        return gap
    }

    @Test("reserved APIC, identity-map and TSS pages are never handed out, even when space is tight")
    func reservedPagesNeverHandedOut() throws {
        let machine = try MachineResources(
            memorySize: 128 * mib, timers: 2, consoles: 2, maxMemorySlots: defaultSlots, mmioSpace: Self.crowdedGap())
        let windows = (machine.timers + machine.consoles).map(\.window.start)
        #expect(windows == [0xFEBF_F000, 0xFEDF_F000, 0xFEFF_B000, 0xFFFF_F000])
        for device in machine.timers + machine.consoles {
            for reserved in [machine.ioapic, machine.localAPIC, machine.identityMap, machine.tss] {
                #expect(!device.window.overlaps(reserved))
            }
        }
    }

    @Test("running out of MMIO space names the device that did not fit")
    func outOfMMIOSpace() throws {
        #expect(throws: ResourceError.outOfMMIOSpace(owner: "dma-console1")) {
            try MachineResources(
                memorySize: 128 * mib, timers: 3, consoles: 2, maxMemorySlots: defaultSlots,
                mmioSpace: Self.crowdedGap())
        }
        #expect(ResourceError.outOfMMIOSpace(owner: "timer3").description
            == "no free 4 KiB window left in the 32-bit MMIO gap for timer3")
    }

    @Test("a reserved page that is already taken is an internal error, not a crash")
    func reservedPageTaken() throws {
        var gap = try AddressAllocator(base: 0xC000_0000, size: 0x4000_0000)
        _ = try gap.allocate(size: 0x2000, alignment: 0x1000, policy: .exactMatch(0xFEDF_F000))
        #expect(throws: ResourceError.reservedRangeTaken(owner: "local-apic", start: 0xFEE0_0000, end: 0xFEE0_0FFF)) {
            try MachineResources(memorySize: 128 * mib, timers: 1, consoles: 1, maxMemorySlots: defaultSlots, mmioSpace: gap)
        }
    }

    @Test("random machines keep every invariant (seeded)")
    func randomMachines() throws {
        let seed: UInt64 = 0x5EED_0004
        print("ResourcePlacementTests.randomMachines seed: \(seed)")
        var random = SeededRandom(seed: seed)
        for _ in 0..<300 {
            let timers = Int.random(in: 0...19, using: &random)
            let consoles = Int.random(in: 0...(19 - timers), using: &random)
            let size = UInt64.random(in: 512...(16 * 1024), using: &random) * 4096 * 128
            let machine = try MachineResources(
                memorySize: min(size, 64 * gib), timers: timers, consoles: consoles, maxMemorySlots: defaultSlots)
            let devices = machine.timers + machine.consoles
            let reserved = [machine.ioapic, machine.localAPIC, machine.identityMap, machine.tss]
            #expect(Set(devices.map(\.gsi)).count == devices.count)
            #expect(devices.allSatisfy { (5...23).contains($0.gsi) })
            #expect(devices.allSatisfy { $0.window.start % 0x1000 == 0 && $0.window.count == 0x1000 })
            #expect(devices.allSatisfy { d in reserved.allSatisfy { !$0.overlaps(d.window) } })
            #expect(machine.mmio.allocations.count == devices.count + 4)
            #expect(machine.gsiOwners.count == devices.count + 1)
            #expect(machine.ramRegions.allSatisfy { $0.base + $0.size <= 0xC000_0000 || $0.base >= 4 * gib })
        }
    }
}
