import KVM
import Logging
@testable import MiniVMM
import Synchronization
import Testing
import VMAllocator

/// A host whose every step can be made to fail, recording which GSIs are registered, which
/// memory slots KVM maps, and the table's bytes, so a test can compare the whole host state
/// before and after.
private final class FaultyHost: DeviceHost {
    enum Step: CaseIterable { case connect, disconnect, mapRAM, registerRAM, unregisterRAM, table }

    struct Line: ConnectedInterrupt {
        let gsi: UInt32
        func trigger() {}
        func setLevel(_ asserted: Bool) {}
    }

    var failing: Set<Step> = []
    private(set) var connected: Set<UInt32> = []
    /// KVM memory slots: slot → range.
    private(set) var slots: [UInt32: RangeInclusive] = [:]
    /// Host mappings made and not yet released by everyone.
    private(set) var mappings: [Weak] = []
    private(set) var table: [UInt8] = []

    struct Weak { weak var mapping: GuestMemoryMapping? }

    /// Mappings still alive (unmapped ones are gone).
    var liveMappings: Int { mappings.filter { $0.mapping != nil }.count }

    private func check(_ step: Step) throws(MachineError) {
        if failing.contains(step) { throw MachineError(.hotplug, .inconsistent("injected \(step)")) }
    }

    func connectInterrupt(gsi: UInt32) throws(MachineError) -> any ConnectedInterrupt {
        try check(.connect)
        connected.insert(gsi)
        return Line(gsi: gsi)
    }

    func disconnectInterrupt(_ line: any ConnectedInterrupt) throws(MachineError) {
        try check(.disconnect)
        connected.remove(line.gsi)
    }

    func mapRAM(for region: RAMRegion) throws(MachineError) -> GuestMemoryMapping {
        try check(.mapRAM)
        // A real MAP_NORESERVE mapping, one page: the host state under test is whether it goes.
        let mapping: GuestMemoryMapping
        do { mapping = try GuestMemoryMapping(size: 4096) } catch { throw MachineError(.hotplugRAM(region.owner), .kvm(error)) }
        mappings.append(Weak(mapping: mapping))
        return mapping
    }

    func registerRAM(_ region: RAMRegion, mapping: GuestMemoryMapping) throws(MachineError) {
        try check(.registerRAM)
        slots[region.slot] = region.range
    }

    func unregisterRAM(_ region: RAMRegion) throws(MachineError) {
        try check(.unregisterRAM)
        slots[region.slot] = nil
    }

    func writeBootTable(_ bytes: [UInt8]) throws(MachineError) {
        try check(.table)
        table = bytes
    }
}

/// Everything a plug or removal may touch, to compare with `==`.
private struct Snapshot: Equatable {
    let resources: ResourceManager
    let windows: [RangeInclusive]
    let connected: Set<UInt32>
    let slots: [UInt32: RangeInclusive]
    let liveMappings: Int
    let table: [UInt8]
    let devices: [Owner]
    let ram: [UInt32]
    let generation: UInt32
    let removing: Set<BootInformation.EntryID>
}

/// The entries a guest ejected, in order.
private final class EjectLog: Sendable {
    let list = Mutex<[BootInformation.EntryID]>([])
}

private final class Harness {
    let host = FaultyHost()
    let bus = DeviceBus(spaceName: "MMIO") { _ in }
    let interrupt = RecordingInterruptLine()
    let log = RecordingLogHandler.Store()
    let controller: HotplugController
    let set: DeviceSet
    /// Entries the guest ejected, in order.
    let ejected = EjectLog()

    init(memorySlots: UInt32 = 8) throws {
        var resources = try ResourceManager(memorySlotCount: memorySlots)
        _ = try resources.takeMemorySlot(for: RangeInclusive(start: 0, end: (128 << 20) - 1), owner: .ram(0))
        let fixed = try resources.attachHotplugController()
        controller = HotplugController(interrupt: interrupt)
        try bus.attach(controller, to: fixed.window)
        set = DeviceSet(
            resources: resources, bus: bus, host: host, controller: controller, vcpus: [0],
            logger: Logger(label: "test") { [log] _ in RecordingLogHandler(store: log) }, parts: { line in
                DeviceParts(interrupt: line, memory: InMemoryGuestMemory(base: 0, size: 16), console: RecordingConsoleOutput())
            })
        controller.setEjectHandler { [ejected] entry in ejected.list.withLock { $0.append(entry) } }
    }

    var snapshot: Snapshot {
        Snapshot(
            resources: set.resources, windows: bus.windows, connected: host.connected, slots: host.slots,
            liveMappings: host.liveMappings, table: host.table, devices: set.devices.map(\.resources.owner),
            ram: set.ram.keys.sorted(), generation: controller.generation, removing: controller.removing)
    }

    /// The table a machine with the set's current state has.
    var expectedTable: [UInt8] {
        BootInformation.encode(MachinePlan.bootInformationEntries(
            resources: set.resources, devices: set.devices.map(\.resources), vcpus: [0], removing: controller.removing))
    }

    /// What the guest does to enable notifications.
    func enableNotifications() {
        controller.write(offset: HotplugController.Register.control, width: 4, value: 1)
    }

    /// What the guest does to eject `entry`.
    func eject(_ entry: BootInformation.EntryID) {
        controller.write(offset: HotplugController.Register.eject, width: 4, value: UInt64(entry.ejectValue))
    }
}

@Suite("DeviceSet: plug and removal are all or nothing")
struct DeviceSetTests {
    @Test("a plug takes window, GSI and instance, connects, attaches, rewrites the table and announces it", arguments: DeviceKind.allCases)
    func plug(kind: DeviceKind) throws {
        let harness = try Harness()
        let taken = try harness.set.plug(kind)
        // The controller took 0xC0000000 and GSI 5 at boot.
        #expect(taken.instance == 0 && taken.window.start == 0xC000_1000 && taken.gsi == 6)
        #expect(harness.host.connected == [6])
        #expect(harness.bus.windows.contains(taken.window))
        #expect(harness.set.resources.mmioOwners[taken.window] == .device(kind, instance: 0))
        #expect(harness.host.table == harness.expectedTable)
        let entries = MachinePlan.bootInformationEntries(resources: harness.set.resources, devices: [taken], vcpus: [0])
        #expect(entries.contains { $0.kind == kind.descriptor.bootKind && $0.base == 0xC000_1000 && $0.gsi == 6 })
        #expect(harness.controller.generation == 1)
        #expect(harness.controller.read(offset: HotplugController.Register.status, width: 4) == 1)
        #expect(harness.interrupt.triggerCount == 0, "no interrupt until the guest sets NOTIFY")
        harness.enableNotifications()
        try harness.set.plug(kind)
        #expect(harness.interrupt.triggerCount == 1 && harness.controller.generation == 2)
    }

    @Test("a plug that fails at any step leaves resources, bus, interrupts, table and generation as they were")
    func plugFailsAtEveryStep() throws {
        for kind in DeviceKind.allCases {
            for step in [FaultyHost.Step.connect, .table] {
                let harness = try Harness()
                try harness.set.plug(.timer)  // something there already
                let before = harness.snapshot
                harness.host.failing = [step]
                #expect(throws: PlugError.self) { try harness.set.plug(kind) }
                #expect(harness.snapshot == before, "\(kind) failing at \(step)")
            }
            // The bus refuses the window (another device sits there: an inconsistency).
            let harness = try Harness()
            try harness.bus.attach(ExitPort(), to: RangeInclusive(start: 0xC000_1000, end: 0xC000_1FFF))
            let before = harness.snapshot
            #expect(throws: PlugError.self) { try harness.set.plug(kind) }
            #expect(harness.snapshot == before, "\(kind) failing at the bus")
        }
    }

    @Test("a plug whose rollback cannot release the interrupt quarantines that GSI for good")
    func rollbackQuarantines() throws {
        let harness = try Harness()
        harness.host.failing = [.table, .disconnect]
        #expect(throws: PlugError.self) { try harness.set.plug(.timer) }
        #expect(harness.set.resources.gsiOwners[6] == .quarantined)
        #expect(harness.set.devices.isEmpty && harness.bus.windows.count == 1)
        #expect(harness.log.lines.count == 1 && harness.log.lines[0].contains("GSI 6 is quarantined"))
        harness.host.failing = []
        let next = try harness.set.plug(.timer)
        #expect(next.gsi == 7, "a quarantined GSI is never handed out again")
        #expect(harness.set.resources.info.gsis.allocations.contains { $0.id == 6 && $0.owner == "quarantined" })
    }

    @Test("a RAM plug takes the lowest slot and window range, maps, registers and lists it")
    func plugRAM() throws {
        let harness = try Harness()
        let window = harness.set.resources.hotplugWindow
        let first = try harness.set.plugRAM(size: 256 << 20)
        #expect(first == RAMRegion(range: try RangeInclusive(start: window.start, end: window.start + (256 << 20) - 1), slot: 1, owner: .ram(1)))
        let second = try harness.set.plugRAM(size: 2 << 20)
        #expect(second.slot == 2 && second.base == window.start + (256 << 20))
        #expect(harness.host.slots == [1: first.range, 2: second.range] && harness.host.liveMappings == 2)
        #expect(harness.host.table == harness.expectedTable)
        let ram = MachinePlan.bootInformationEntries(resources: harness.set.resources, devices: [], vcpus: [0])
            .filter { $0.kind == .ram }
        #expect(ram.map(\.instance) == [0, 1, 2] && ram.map(\.memorySlot) == [0, 1, 2])
        #expect(harness.controller.generation == 2)
        #expect(throws: PlugError.resources(.badHotplugSize(3 << 20))) { try harness.set.plugRAM(size: 3 << 20) }
        #expect(throws: PlugError.resources(.badHotplugSize(0))) { try harness.set.plugRAM(size: 0) }
        #expect(throws: PlugError.resources(.outOfHotplugSpace(size: 16 << 30, window: window))) {
            try harness.set.plugRAM(size: 16 << 30)
        }
    }

    @Test("a RAM plug that fails at any step leaves slots, ranges, mappings, KVM slots and table as they were")
    func plugRAMFailsAtEveryStep() throws {
        for step in [FaultyHost.Step.mapRAM, .registerRAM, .table] {
            let harness = try Harness()
            try harness.set.plugRAM(size: 64 << 20)
            try harness.set.plug(.timer)
            let before = harness.snapshot
            harness.host.failing = [step]
            #expect(throws: PlugError.self) { try harness.set.plugRAM(size: 128 << 20) }
            #expect(harness.snapshot == before, "failing at \(step)")
        }
        // Out of memory slots: nothing is touched either.
        let harness = try Harness(memorySlots: 2)
        try harness.set.plugRAM(size: 2 << 20)
        let before = harness.snapshot
        #expect(throws: PlugError.resources(.noFreeHotplugSlot(available: 2))) { try harness.set.plugRAM(size: 2 << 20) }
        #expect(harness.snapshot == before)
    }

    @Test("a RAM plug whose rollback cannot delete the KVM slot quarantines slot and range, keeping the memory")
    func ramRollbackQuarantines() throws {
        let harness = try Harness()
        harness.host.failing = [.table, .unregisterRAM]
        #expect(throws: PlugError.self) { try harness.set.plugRAM(size: 2 << 20) }
        #expect(harness.set.resources.ramRegions[1]?.owner == .quarantined)
        #expect(harness.set.ram.isEmpty && harness.host.liveMappings == 1, "KVM may still map it: never unmapped")
        harness.host.failing = []
        let next = try harness.set.plugRAM(size: 2 << 20)
        #expect(next.slot == 2 && next.base == harness.set.resources.hotplugWindow.start + (2 << 20))
        #expect(harness.set.resources.info.memorySlots.allocations.contains { $0.id == 1 && $0.owner == "quarantined" })
        #expect(!MachinePlan.bootInformationEntries(resources: harness.set.resources, devices: [], vcpus: [0])
            .contains { $0.memorySlot == 1 }, "a quarantined region is no RAM to the guest")
    }

    @Test("a surprise removal gives everything back; a failed one changes nothing")
    func surpriseRemoval() throws {
        let harness = try Harness()
        let empty = harness.snapshot
        try harness.set.plug(.timer)
        let withTimer = harness.snapshot
        try harness.set.plug(.dmaConsole)
        let region = try harness.set.plugRAM(size: 32 << 20)
        let withAll = harness.snapshot
        harness.host.failing = [.table]
        #expect(throws: PlugError.self) { try harness.set.remove(.device(.dmaConsole, instance: 0)) }
        #expect(throws: PlugError.self) { try harness.set.remove(region.owner) }
        #expect(harness.snapshot == withAll)
        harness.host.failing = []
        #expect(throws: PlugError.notPlugged(.device(.timer, instance: 7))) {
            try harness.set.remove(.device(.timer, instance: 7))
        }
        #expect(throws: PlugError.notPlugged(.ram(0)), "boot RAM is never removed") { try harness.set.remove(.ram(0)) }
        #expect(try harness.set.remove(region.owner) == .removed)
        #expect(harness.host.slots.isEmpty && harness.host.liveMappings == 0, "slot deleted, memory unmapped")
        #expect(try harness.set.remove(.device(.dmaConsole, instance: 0)) == .removed)
        #expect(harness.snapshot.resources == withTimer.resources)
        #expect(harness.snapshot.windows == withTimer.windows && harness.snapshot.connected == withTimer.connected)
        #expect(try harness.set.remove(.device(.timer, instance: 0)) == .removed)
        #expect(harness.snapshot.resources == empty.resources && harness.bus.windows == empty.windows)
        #expect(harness.host.connected.isEmpty && harness.host.table == harness.expectedTable)
    }

    @Test("a removal whose release the host refuses quarantines the GSI or the memory slot")
    func removalQuarantines() throws {
        let harness = try Harness()
        try harness.set.plug(.timer)
        let region = try harness.set.plugRAM(size: 2 << 20)
        harness.host.failing = [.disconnect, .unregisterRAM]
        #expect(try harness.set.remove(.device(.timer, instance: 0)) == .removed)
        #expect(try harness.set.remove(region.owner) == .removed)
        #expect(harness.set.devices.isEmpty && harness.set.ram.isEmpty)
        #expect(harness.set.resources.gsiOwners[6] == .quarantined)
        #expect(harness.set.resources.ramRegions[region.slot]?.owner == .quarantined)
        #expect(harness.host.liveMappings == 1)
        let lines = harness.log.lines
        #expect(lines.count == 2 && lines.allSatisfy { $0.hasPrefix("error: ") && $0.contains("quarantined") })
        #expect(lines.first?.contains("GSI 6") == true && lines.last?.contains("memory slot 1") == true)
    }

    @Test("with notifications on, a removal is two-phase: flagged, announced, freed only by the guest's EJECT")
    func twoPhaseRemoval() throws {
        let harness = try Harness()
        let beforeTimer = harness.snapshot.resources
        try harness.set.plug(.timer)
        let region = try harness.set.plugRAM(size: 2 << 20)
        harness.enableNotifications()
        let plugged = harness.snapshot
        let timerEntry = BootInformation.EntryID(kind: .timer, instance: 0)
        let ramEntry = BootInformation.EntryID(kind: .ram, instance: UInt16(region.slot))

        // A failing table write changes nothing, not even the flag.
        harness.host.failing = [.table]
        #expect(throws: PlugError.self) { try harness.set.remove(.device(.timer, instance: 0)) }
        #expect(harness.snapshot == plugged)
        harness.host.failing = []

        #expect(try harness.set.remove(.device(.timer, instance: 0)) == .removing)
        #expect(try harness.set.remove(region.owner) == .removing)
        #expect(try harness.set.remove(region.owner) == .removing, "asking again changes nothing")
        #expect(harness.controller.removing == [timerEntry, ramEntry])
        #expect(harness.set.resources == plugged.resources && harness.host.connected == plugged.connected)
        #expect(harness.controller.generation == plugged.generation + 2 && harness.interrupt.triggerCount == 2)
        let flagged = MachinePlan.bootInformationEntries(
            resources: harness.set.resources, devices: harness.set.devices.map(\.resources), vcpus: [0],
            removing: harness.controller.removing)
        #expect(flagged.filter { $0.flags & BootInformation.removingFlag != 0 }.map(\.id) == [ramEntry, timerEntry])
        #expect(harness.host.table == BootInformation.encode(flagged))

        // A wrong EJECT sets EJECT_ERROR and changes nothing.
        let waiting = harness.snapshot
        harness.eject(BootInformation.EntryID(kind: .timer, instance: 3))
        harness.controller.write(offset: HotplugController.Register.eject, width: 4, value: 0xFFFF_0000)
        #expect(harness.controller.read(offset: HotplugController.Register.status, width: 4) & 2 == 2)
        #expect(harness.ejected.list.withLock { $0 }.isEmpty && harness.snapshot == waiting)

        harness.eject(timerEntry)
        harness.eject(timerEntry)  // a second EJECT of the same entry is an error, not a second removal
        #expect(harness.ejected.list.withLock { $0 } == [timerEntry])
        try harness.set.completeRemoval(of: timerEntry)
        harness.eject(ramEntry)
        try harness.set.completeRemoval(of: ramEntry)
        #expect(harness.set.resources == beforeTimer && harness.host.connected.isEmpty && harness.host.slots.isEmpty)
        #expect(harness.controller.removing.isEmpty && harness.host.table == harness.expectedTable)
        #expect(throws: PlugError.self) { try harness.set.completeRemoval(of: timerEntry) }
    }

    @Test("fill to exhaustion, remove all, plug again: the same windows and GSIs come back, lowest first")
    func exhaustion() throws {
        let harness = try Harness()
        var first: [DeviceResources] = []
        for index in 0..<18 { first.append(try harness.set.plug(index % 2 == 0 ? .timer : .dmaConsole)) }
        let full = harness.snapshot
        let error = PlugError.resources(.noFreeGSI(owner: .device(.timer, instance: 9), available: 19))
        #expect(throws: error) { try harness.set.plug(.timer) }
        #expect(error.description == "no free GSI for timer9: all 19 device GSIs are in use")
        #expect(harness.snapshot == full)
        for device in first.reversed() { _ = try harness.set.remove(device.owner) }
        var again: [DeviceResources] = []
        for index in 0..<18 { again.append(try harness.set.plug(index % 2 == 0 ? .timer : .dmaConsole)) }
        #expect(again == first)
    }

    @Test("a plug that would overflow the table's 8 KiB is refused and changes nothing")
    func tableFull() throws {
        let harness = try Harness(memorySlots: 1000)
        // ram0, exit port, COM1, IOAPIC, local APIC, controller, cpu0: 7 entries.
        for _ in 0..<(BootInformation.maximumEntries - 7) { try harness.set.plugRAM(size: 2 << 20) }
        let full = harness.snapshot
        #expect(throws: PlugError.tableFull(entries: BootInformation.maximumEntries + 1)) {
            try harness.set.plugRAM(size: 2 << 20)
        }
        #expect(throws: PlugError.tableFull(entries: BootInformation.maximumEntries + 1)) { try harness.set.plug(.timer) }
        #expect(harness.snapshot == full)
        #expect(harness.host.table.count == 16 + 32 * BootInformation.maximumEntries)
    }

    @Test("10,000 random plugs and removals of every kind and of RAM end with every allocator equal to its start")
    func randomCycles() throws {
        let seed: UInt64 = 0xD0_5E7_2026
        print("DeviceSet random cycles: seed \(seed)")
        var random = SeededRandom(seed: seed)
        let harness = try Harness(memorySlots: 16)
        let initial = harness.snapshot
        for _ in 0..<10_000 {
            let plugged = harness.set.devices.map(\.resources.owner) + harness.set.ram.keys.map { Owner.ram(Int($0)) }
            // Now and then the guest turns notifications on or off; removals follow.
            if random.next() % 50 == 0 {
                harness.controller.write(offset: HotplugController.Register.control, width: 4, value: random.next() % 2)
            }
            if !plugged.isEmpty && (plugged.count >= 18 || random.next() % 2 == 0) {
                let owner = plugged[Int(random.next() % UInt64(plugged.count))]
                if try harness.set.remove(owner) == .removing, let entry = harness.set.entryID(of: owner) {
                    harness.eject(entry)
                    try harness.set.completeRemoval(of: entry)
                }
            } else if random.next() % 3 == 0 {
                try harness.set.plugRAM(size: (random.next() % 8 + 1) * (2 << 20))
            } else {
                try harness.set.plug(DeviceKind.allCases[Int(random.next() % UInt64(DeviceKind.allCases.count))])
            }
            #expect(harness.host.connected == Set(harness.set.devices.compactMap(\.resources.gsi)))
            #expect(Set(harness.host.slots.keys) == Set(harness.set.ram.keys) && harness.host.liveMappings == harness.set.ram.count)
        }
        for owner in harness.set.devices.map(\.resources.owner) + harness.set.ram.keys.map({ Owner.ram(Int($0)) }) {
            if try harness.set.remove(owner) == .removing, let entry = harness.set.entryID(of: owner) {
                harness.eject(entry)
                try harness.set.completeRemoval(of: entry)
            }
        }
        #expect(harness.set.resources == initial.resources)
        #expect(harness.bus.windows == initial.windows && harness.host.connected.isEmpty && harness.host.slots.isEmpty)
        #expect(harness.host.liveMappings == 0 && harness.controller.removing.isEmpty)
    }
}
