import Testing
import VMAllocator

@testable import MiniVMM

private typealias F = PlanFixtures
private let mib = F.mib
private let gib = F.gib
private let defaultSlots = F.defaultSlots

private func range(_ start: UInt64, _ end: UInt64) -> RangeInclusive { F.range(start, end) }

/// The owners' names as users see them.
private func names<Key>(_ owners: [Key: Owner]) -> [Key: String] { owners.mapValues(\.description) }

@Suite("MachinePlan: blueprint, host limits, placement")
struct MachinePlanTests {
    @Test("the default machine gets the documented resources")
    func defaultMachine() throws {
        let configuration = try MachineConfiguration(imagePath: "guest.bin")
        let plan = try MachinePlan(MachinePlan.Blueprint(configuration), host: .init(memorySlots: defaultSlots))
        let machine = plan.resources
        #expect(plan.ram == [RAMRegion(range: range(0, 128 * mib - 1), slot: 0, owner: .ram(0))])
        #expect(plan.ram.map(\.owner.description) == ["ram0"])
        #expect(machine.ports(of: .com1) == range(0x3F8, 0x3FF))
        #expect(machine.gsiOwners[ResourceManager.com1GSI] == .fixed(.com1) && ResourceManager.com1GSI == 4)
        #expect(machine.ports(of: .exitPort) == range(0xF4, 0xF7))
        #expect([FixedOwner.picMaster, .pit, .picSlave].map { machine.ports(of: $0) }
            == [range(0x20, 0x21), range(0x40, 0x43), range(0xA0, 0xA1)])
        #expect(plan.devices.filter { $0.kind == .timer } == [
            DeviceResources(kind: .timer, instance: 0, window: range(0xC000_0000, 0xC000_0FFF), gsi: 5),
        ])
        #expect(plan.devices.filter { $0.kind == .dmaConsole } == [
            DeviceResources(kind: .dmaConsole, instance: 0, window: range(0xC000_1000, 0xC000_1FFF), gsi: 6),
        ])
        #expect(plan.devices.map(\.owner.description) == ["timer0", "dma-console0"])
        #expect(machine.mmio(of: .ioapic) == range(0xFEC0_0000, 0xFEC0_0FFF))
        #expect(machine.mmio(of: .localAPIC) == range(0xFEE0_0000, 0xFEE0_0FFF))
        #expect(machine.mmio(of: .identityMap) == range(0xFEFF_C000, 0xFEFF_CFFF))
        #expect(machine.mmio(of: .tss) == range(0xFEFF_D000, 0xFEFF_FFFF))
        #expect(machine.ramRegions.mapValues(\.owner) == [0: .ram(0)])
        #expect(machine.ramRegions.mapValues(\.owner.description) == [0: "ram0"])
        #expect(machine.gsiOwners == [
            4: .fixed(.com1), 5: .device(.timer, instance: 0), 6: .device(.dmaConsole, instance: 0),
            7: .fixed(.hotplugController),
        ])
        #expect(names(machine.gsiOwners) == [4: "com1", 5: "timer0", 6: "dma-console0", 7: "hotplug-controller"])
        #expect(Set(names(machine.mmioOwners).values) == [
            "ioapic", "local-apic", "kvm-identity-map", "kvm-tss", "timer0", "dma-console0", "hotplug-controller",
        ])
        #expect(plan.hotplugController == FixedDeviceResources(
            owner: .hotplugController, window: range(0xC000_2000, 0xC000_2FFF), gsi: 7))
        #expect(machine.hotplugWindow == range(4 * gib, 20 * gib - 1))
        #expect(Set(names(machine.portOwners).values) == ["pic-master", "pic-slave", "pit", "exit-port", "com1"])
        #expect(plan.vcpus == [0] && machine.vcpuOwners == [0: .cpu(0)])
        #expect(plan.configuration == configuration)
        #expect(plan.layout == (try GuestMemoryLayout(memorySize: 128 * mib)))
    }

    @Test("the allocators are kept with everything taken in them")
    func allocatorsKept() throws {
        let machine = try F.plan(memory: 5 * gib, timers: 2, consoles: 1, slots: 509).resources
        #expect(machine.memorySlots.rangeBase == 0 && machine.memorySlots.rangeEnd == 508)
        #expect(machine.memorySlots.isAllocated(0) && machine.memorySlots.isAllocated(1))
        #expect(!machine.memorySlots.isAllocated(2))
        #expect((4...8).allSatisfy { machine.gsis.isAllocated($0) })
        #expect(!machine.gsis.isAllocated(9))
        #expect(machine.mmio.allocations.count == 8)
        #expect(machine.ports.allocations.count == 5)
        #expect(machine.owner(ofMMIOAddress: 0xFEC0_0010)?.description == "ioapic")
        #expect(machine.owner(ofMMIOAddress: 0xC000_2FFC)?.description == "dma-console0")
        #expect(machine.owner(ofMMIOAddress: 0xC000_3000)?.description == "hotplug-controller")
        #expect(machine.owner(ofMMIOAddress: 0xC000_4000) == nil)
        // 5 GiB of boot RAM ends at 6 GiB: the hot-plug window starts there.
        #expect(machine.hotplugWindow == range(6 * gib, 22 * gib - 1))
        #expect(machine.owner(ofPort: 0x3FD)?.description == "com1")
        #expect(machine.owner(ofPort: 0x80) == nil)
    }

    @Test("memory above the gap gets a second region and slot")
    func highMemory() throws {
        let plan = try F.plan(memory: 5 * gib, timers: 0, consoles: 0)
        #expect(plan.ram == [
            RAMRegion(range: range(0, 3 * gib - 1), slot: 0, owner: .ram(0)),
            RAMRegion(range: range(4 * gib, 6 * gib - 1), slot: 1, owner: .ram(1)),
        ])
        #expect(plan.ram.map(\.owner.description) == ["ram0", "ram1"])
        #expect(plan.devices.isEmpty)
        #expect(plan.resources.gsiOwners == [4: .fixed(.com1), 5: .fixed(.hotplugController)])
    }

    @Test("18 devices and the hot-plug controller fill GSIs 5...23: timers first, then consoles, windows in the same order")
    func fullGSIRange() throws {
        let plan = try F.plan(timers: 12, consoles: 6)
        let timers = plan.devices.filter { $0.kind == .timer }
        let consoles = plan.devices.filter { $0.kind == .dmaConsole }
        #expect(plan.devices == timers + consoles)
        #expect(plan.devices.map(\.gsi) == (5...22).map { UInt32?($0) })
        #expect(plan.devices.map(\.window.start) == (0..<18).map { 0xC000_0000 + UInt64($0) * 0x1000 })
        #expect(plan.hotplugController.gsi == 23 && plan.hotplugController.window.start == 0xC001_2000)
        #expect(timers.map(\.owner.description) == (0..<12).map { "timer\($0)" })
        #expect(consoles.map(\.instance) == Array(0..<6))
        #expect(consoles.last?.owner.description == "dma-console5")
    }

    @Test(
        "more devices than GSIs fail in the blueprint, before anything else, with the numbers",
        arguments: [(19, 0, 19), (0, 20, 20), (10, 9, 19), (30, 1, 31)])
    func tooManyDevices(timers: Int, consoles: Int, requested: Int) throws {
        // No host is known yet: the blueprint refuses.
        #expect(throws: ConfigurationError.tooManyDevices(requested: requested, available: 18)) {
            try MachinePlan.Blueprint(F.configuration(timers: timers, consoles: consoles))
        }
        // An invalid memory size as well: the device count is still reported.
        #expect(throws: ConfigurationError.tooManyDevices(requested: requested, available: 18)) {
            try MachinePlan.Blueprint(F.configuration(memory: 1, timers: timers, consoles: consoles))
        }
        let message = ConfigurationError.tooManyDevices(requested: requested, available: 18).description
        #expect(message.contains("\(requested) devices"))
        #expect(message.contains("only 18 are available"))
    }

    @Test("absurd device counts neither crash nor pass")
    func absurdCounts() {
        #expect(throws: ConfigurationError.tooManyDevices(requested: Int.max, available: 18)) {
            try MachinePlan.Blueprint(F.configuration(timers: .max, consoles: .max))
        }
        #expect(throws: ConfigurationError.negativeDeviceCount(.timer, -1)) {
            try F.configuration(timers: -1, consoles: 0)
        }
        #expect(throws: ConfigurationError.negativeDeviceCount(.dmaConsole, .min)) {
            try F.configuration(timers: 0, consoles: .min)
        }
        #expect(ConfigurationError.negativeDeviceCount(.timer, -1).description == "--timers must not be negative (got -1)")
        #expect(ConfigurationError.negativeDeviceCount(.dmaConsole, -3).description
            == "--consoles must not be negative (got -3)")
    }

    @Test("a bad memory size is refused by the blueprint", arguments: [
        (1 * mib, ConfigurationError.MemoryProblem.tooSmall), (0, .tooSmall), (65 * gib, .tooLarge),
        (128 * mib + 1, .notPageMultiple), (UInt64.max, .tooLarge),
    ])
    func badMemorySize(size: UInt64, problem: ConfigurationError.MemoryProblem) {
        #expect(throws: ConfigurationError.invalidMemory(text: "\(size)", problem)) {
            try MachinePlan.Blueprint(F.configuration(memory: size, timers: 1, consoles: 1))
        }
    }

    @Test("a blueprint is independent of the host: the same blueprint plans for any slot count")
    func blueprintWithoutHost() throws {
        let blueprint = try MachinePlan.Blueprint(F.configuration(memory: 5 * gib, timers: 18, consoles: 0))
        #expect(blueprint.layout.ranges.count == 2)
        #expect(try MachinePlan(blueprint, host: .init(memorySlots: 2)).ram.map(\.slot) == [0, 1])
        #expect(try MachinePlan(blueprint, host: .init(memorySlots: defaultSlots)).ram.map(\.slot) == [0, 1])
        #expect(throws: PlanError.tooFewMemorySlots(needed: 2, available: 1)) {
            try MachinePlan(blueprint, host: .init(memorySlots: 1))
        }
    }

    @Test("the memory-slot limit is respected")
    func memorySlotLimit() throws {
        // --memory 5G needs 2 slots.
        let large = try MachinePlan.Blueprint(F.configuration(memory: 5 * gib))
        #expect(throws: PlanError.tooFewMemorySlots(needed: 2, available: 1)) {
            try MachinePlan(large, host: .init(memorySlots: 1))
        }
        let small = try MachinePlan.Blueprint(F.configuration(memory: 128 * mib))
        #expect(throws: PlanError.tooFewMemorySlots(needed: 1, available: 0)) {
            try MachinePlan(small, host: .init(memorySlots: 0))
        }
        let single = try F.plan(memory: 3 * gib, slots: 1)
        #expect(single.ram.map(\.slot) == [0])
        #expect(PlanError.tooFewMemorySlots(needed: 2, available: 1).description
            == "guest RAM needs 2 KVM memory slots but the host offers only 1")
        #expect(ExitStatus(.failed(.plan(.tooFewMemorySlots(needed: 2, available: 1)))).code == 69)
    }

    @Test("more vCPUs than the host allows are refused by the plan")
    func vcpuLimit() throws {
        let blueprint = try MachinePlan.Blueprint(F.configuration(cpus: 8))
        #expect(throws: PlanError.tooManyCPUs(requested: 8, available: 4)) {
            try MachinePlan(blueprint, host: .init(memorySlots: 32, maxVcpus: 4))
        }
        #expect(try MachinePlan(blueprint, host: .init(memorySlots: 32, maxVcpus: 8)).vcpus == Array(0..<8))
        #expect(throws: ConfigurationError.invalidCPUCount(0)) { try F.configuration(cpus: 0) }
        #expect(throws: ConfigurationError.invalidCPUCount(65)) { try F.configuration(cpus: 65) }
    }

    @Test("reserved APIC, identity-map and TSS pages are never handed out, even when space is tight")
    func reservedPagesNeverHandedOut() throws {
        let plan = try F.plan(timers: 2, consoles: 1, mmioSpace: F.crowdedGap())
        #expect(plan.devices.map(\.window.start) + [plan.hotplugController.window.start] == F.crowdedGapFreePages)
        let reserved = try [FixedOwner.ioapic, .localAPIC, .identityMap, .tss].map { try #require(plan.resources.mmio(of: $0)) }
        for device in plan.devices {
            for page in reserved {
                #expect(!device.window.overlaps(page))
            }
        }
    }

    @Test("running out of MMIO space names the kind of the device that did not fit")
    func outOfMMIOSpace() throws {
        // Three timers and one console take the four free pages; the second console fails.
        #expect(throws: PlanError.resources(.outOfMMIOSpace(kind: .dmaConsole))) {
            try F.plan(timers: 3, consoles: 2, mmioSpace: F.crowdedGap())
        }
        #expect(ResourceError.outOfMMIOSpace(kind: .timer).description
            == "no free 4 KiB window left in the 32-bit MMIO gap for a timer")
        #expect(PlanError.resources(.outOfMMIOSpace(kind: .timer)).description
            == "no free 4 KiB window left in the 32-bit MMIO gap for a timer")
        // Four devices take the four pages: the hot-plug controller, taken last, does not fit.
        let noController = PlanError.resources(.outOfMMIOSpaceFor(.fixed(.hotplugController)))
        #expect(throws: noController) { try F.plan(timers: 2, consoles: 2, mmioSpace: F.crowdedGap()) }
        #expect(noController.description == "no free 4 KiB window left in the 32-bit MMIO gap for hotplug-controller")
        #expect(ExitStatus(.failed(.plan(noController))) == .usage)
    }

    @Test("a reserved page that is already taken is an internal error, not a crash")
    func reservedPageTaken() throws {
        var gap = try AddressAllocator(base: 0xC000_0000, size: 0x4000_0000)
        _ = try gap.allocate(size: 0x2000, alignment: 0x1000, policy: .exactMatch(0xFEDF_F000))
        let error = PlanError.resources(.reservedRangeTaken(owner: .fixed(.localAPIC), start: 0xFEE0_0000, end: 0xFEE0_0FFF))
        #expect(throws: error) { try F.plan(timers: 1, consoles: 1, mmioSpace: gap) }
        #expect(ExitStatus(.failed(.plan(error))) == .internalError)
    }

    @Test("the default plan's boot-information entries are the documented ones, in ABI order")
    func defaultBootInformation() throws {
        let plan = try F.plan()
        let none: UInt32? = nil
        #expect(plan.bootInformationEntries == [
            .init(kind: .ram, instance: 0, gsi: none, base: 0, size: 128 * mib, memorySlot: 0),
            .init(kind: .exitPort, instance: 0, gsi: none, base: 0xF4, size: 4, memorySlot: nil),
            .init(kind: .uart, instance: 0, gsi: 4, base: 0x3F8, size: 8, memorySlot: nil),
            .init(kind: .ioapic, instance: 0, gsi: none, base: 0xFEC0_0000, size: 0x1000, memorySlot: nil),
            .init(kind: .localAPIC, instance: 0, gsi: none, base: 0xFEE0_0000, size: 0x1000, memorySlot: nil),
            .init(kind: .timer, instance: 0, gsi: 5, base: 0xC000_0000, size: 0x1000, memorySlot: nil),
            .init(kind: .dmaConsole, instance: 0, gsi: 6, base: 0xC000_1000, size: 0x1000, memorySlot: nil),
            .init(kind: .hotplugController, instance: 0, gsi: 7, base: 0xC000_2000, size: 0x1000, memorySlot: nil),
            .init(kind: .cpu, instance: 0, gsi: none, base: 0, size: 0, memorySlot: nil),
        ])
        #expect(plan.bootInformation() == BootInformation.encode(plan.bootInformationEntries))
    }

    @Test("the entries follow the plan: two RAM regions, devices by kind then instance, one CPU entry per vCPU")
    func largerBootInformation() throws {
        let configuration = try F.configuration(memory: 5 * gib, timers: 3, consoles: 2, cpus: 3)
        let plan = try MachinePlan(MachinePlan.Blueprint(configuration), host: .init(memorySlots: 32))
        let entries = plan.bootInformationEntries
        #expect(entries.map(\.kind) == [
            .ram, .ram, .exitPort, .uart, .ioapic, .localAPIC, .timer, .timer, .timer, .dmaConsole, .dmaConsole,
            .hotplugController, .cpu, .cpu, .cpu,
        ])
        #expect(entries[0..<2].map(\.memorySlot) == [0, 1])
        #expect(entries[1].base == 4 * gib && entries[1].size == 2 * gib)
        #expect(entries[6..<11].map(\.instance) == [0, 1, 2, 0, 1])
        #expect(entries[6..<11].map(\.gsi) == [5, 6, 7, 8, 9])
        #expect(entries[11].gsi == 10 && entries[11].base == plan.hotplugController.window.start)
        #expect(entries[12...].map(\.instance) == [0, 1, 2])
        #expect(entries.allSatisfy { $0.flags == 0 })
        #expect(zip(entries[6..<11], plan.devices).allSatisfy { $0.base == $1.window.start && $0.gsi == $1.gsi })
    }

    @Test("random machines keep every invariant (seeded)")
    func randomMachines() throws {
        let seed: UInt64 = 0x5EED_0004
        print("MachinePlanTests.randomMachines seed: \(seed)")
        var random = SeededRandom(seed: seed)
        for _ in 0..<300 {
            let timers = Int.random(in: 0...18, using: &random)
            let consoles = Int.random(in: 0...(18 - timers), using: &random)
            let size = UInt64.random(in: 512...(16 * 1024), using: &random) * 4096 * 128
            let plan = try F.plan(memory: min(size, 64 * gib), timers: timers, consoles: consoles)
            let machine = plan.resources
            let devices = plan.devices
            let reserved = [FixedOwner.ioapic, .localAPIC, .identityMap, .tss].compactMap { machine.mmio(of: $0) }
            #expect(reserved.count == 4)
            #expect(devices.count == timers + consoles)
            #expect(Set(devices.map(\.gsi)).count == devices.count)
            #expect(devices.allSatisfy { (5...23).contains($0.gsi ?? 0) })
            #expect(devices.allSatisfy { $0.window.start % 0x1000 == 0 && $0.window.count == 0x1000 })
            #expect(devices.allSatisfy { d in reserved.allSatisfy { !$0.overlaps(d.window) } })
            #expect(machine.mmio.allocations.count == devices.count + 5)
            #expect(machine.gsiOwners.count == devices.count + 2)
            #expect(plan.ram.allSatisfy { $0.base + $0.size <= 0xC000_0000 || $0.base >= 4 * gib })
            #expect(plan.ram.map(\.size).reduce(0, +) == min(size, 64 * gib))
            // Detaching every device returns the manager a plan without devices has.
            // Detaching every device, in any order, leaves the same manager: only the fixed
            // resources and the hot-plug controller.
            var detached = machine
            for device in devices.shuffled(using: &random) { try detached.detach(device) }
            var inOrder = machine
            for device in devices { try inOrder.detach(device) }
            #expect(detached == inOrder)
            #expect(detached.mmio.allocations.count == 5 && detached.gsiOwners.count == 2)
        }
    }
}
