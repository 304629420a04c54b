@testable import MiniVMM
import Testing
import VMAllocator

/// A host whose every step can be made to fail, recording which GSIs are registered and the
/// table's bytes, so a test can compare the whole host state before and after.
private final class FaultyHost: DeviceHost {
    enum Step: CaseIterable { case connect, disconnect, table }

    struct Line: ConnectedInterrupt {
        let gsi: UInt32
        func trigger() {}
        func setLevel(_ asserted: Bool) {}
    }

    var failing: Set<Step> = []
    private(set) var connected: Set<UInt32> = []
    private(set) var table: [UInt8] = []

    private func check(_ step: Step) throws(MachineError) {
        if failing.contains(step) { throw MachineError(.connectInterrupt(gsi: 0), .inconsistent("injected \(step)")) }
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

    func writeBootTable(_ bytes: [UInt8]) throws(MachineError) {
        try check(.table)
        table = bytes
    }
}

/// Everything a plug or unplug may touch, to compare with `==`.
private struct Snapshot: Equatable {
    let resources: ResourceManager
    let windows: [RangeInclusive]
    let connected: Set<UInt32>
    let table: [UInt8]
    let devices: [Owner]
}

private final class Harness {
    let host = FaultyHost()
    let bus = DeviceBus(spaceName: "MMIO") { _ in }
    let set: DeviceSet

    init() throws {
        let resources = try ResourceManager(memorySlotCount: 8)
        set = DeviceSet(
            resources: resources, bus: bus, host: host,
            parts: { line in
                DeviceParts(interrupt: line, memory: InMemoryGuestMemory(base: 0, size: 16), console: RecordingConsoleOutput())
            },
            table: { resources, devices in
                BootInformation.encode(MachinePlan.bootInformationEntries(
                    ram: [], resources: resources, devices: devices, vcpus: [0]))
            })
    }

    var snapshot: Snapshot {
        Snapshot(
            resources: set.resources, windows: bus.windows, connected: host.connected, table: host.table,
            devices: set.devices.map(\.resources.owner))
    }
}

@Suite("DeviceSet: plug and unplug are all or nothing")
struct DeviceSetTests {
    @Test("a plug takes window, GSI and instance, connects, attaches and rewrites the table", arguments: DeviceKind.allCases)
    func plug(kind: DeviceKind) throws {
        let harness = try Harness()
        let taken = try harness.set.plug(kind)
        #expect(taken.instance == 0 && taken.window.start == 0xC000_0000 && taken.gsi == 5)
        #expect(harness.host.connected == [5])
        #expect(harness.bus.windows == [taken.window])
        #expect(harness.set.resources.mmioOwners[taken.window] == .device(kind, instance: 0))
        let entries = MachinePlan.bootInformationEntries(
            ram: [], resources: harness.set.resources, devices: [taken], vcpus: [0])
        #expect(harness.host.table == BootInformation.encode(entries))
        #expect(entries.contains { $0.kind == kind.descriptor.bootKind && $0.base == 0xC000_0000 && $0.gsi == 5 })
    }

    @Test("a plug that fails at any step leaves resources, bus, interrupts and table as they were")
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
            try harness.bus.attach(ExitPort(), to: RangeInclusive(start: 0xC000_0000, end: 0xC000_0FFF))
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
        #expect(harness.set.resources.gsiOwners[5] == .quarantined)
        #expect(harness.set.devices.isEmpty && harness.bus.windows.isEmpty)
        harness.host.failing = []
        let next = try harness.set.plug(.timer)
        #expect(next.gsi == 6, "a quarantined GSI is never handed out again")
        #expect(harness.set.resources.info.gsis.allocations.contains { $0.id == 5 && $0.owner == "quarantined" })
    }

    @Test("an unplug gives everything back; a failed one changes nothing")
    func unplug() throws {
        let harness = try Harness()
        let empty = harness.snapshot
        try harness.set.plug(.timer)
        let withTimer = harness.snapshot
        try harness.set.plug(.dmaConsole)
        let withBoth = harness.snapshot
        harness.host.failing = [.table]
        #expect(throws: PlugError.self) { try harness.set.unplug(.device(.dmaConsole, instance: 0)) }
        #expect(harness.snapshot == withBoth)
        harness.host.failing = []
        #expect(throws: PlugError.notPlugged(.device(.timer, instance: 7))) {
            try harness.set.unplug(.device(.timer, instance: 7))
        }
        try harness.set.unplug(.device(.dmaConsole, instance: 0))
        #expect(harness.snapshot.resources == withTimer.resources)
        #expect(harness.snapshot.windows == withTimer.windows && harness.snapshot.connected == withTimer.connected)
        try harness.set.unplug(.device(.timer, instance: 0))
        #expect(harness.snapshot.resources == empty.resources && harness.bus.windows.isEmpty)
        #expect(harness.host.connected.isEmpty)
    }

    @Test("an unplug whose interrupt the host will not release quarantines the GSI")
    func unplugQuarantines() throws {
        let harness = try Harness()
        try harness.set.plug(.timer)
        harness.host.failing = [.disconnect]
        try harness.set.unplug(.device(.timer, instance: 0))
        #expect(harness.set.devices.isEmpty && harness.bus.windows.isEmpty)
        #expect(harness.set.resources.gsiOwners == [4: .fixed(.com1), 5: .quarantined])
    }

    @Test("fill to exhaustion, unplug all, plug again: the same windows and GSIs come back, lowest first")
    func exhaustion() throws {
        let harness = try Harness()
        var first: [DeviceResources] = []
        for index in 0..<19 { first.append(try harness.set.plug(index % 2 == 0 ? .timer : .dmaConsole)) }
        let full = harness.snapshot
        #expect(throws: PlugError.resources(.noFreeGSI(owner: .device(.timer, instance: 10), available: 19))) {
            try harness.set.plug(.timer)
        }
        #expect(PlugError.resources(.noFreeGSI(owner: .device(.timer, instance: 10), available: 19)).description
            == "no free GSI for timer10: all 19 device GSIs are in use")
        #expect(harness.snapshot == full)
        for device in first.reversed() { try harness.set.unplug(device.owner) }
        var again: [DeviceResources] = []
        for index in 0..<19 { again.append(try harness.set.plug(index % 2 == 0 ? .timer : .dmaConsole)) }
        #expect(again == first)
    }

    @Test("10,000 random plugs and unplugs of every kind end with every allocator equal to its start")
    func randomCycles() throws {
        let seed: UInt64 = 0xD0_5E7_2026
        print("DeviceSet random cycles: seed \(seed)")
        var random = SeededRandom(seed: seed)
        let harness = try Harness()
        let initial = harness.set.resources
        for _ in 0..<10_000 {
            let plugged = harness.set.devices.map(\.resources.owner)
            if !plugged.isEmpty && (plugged.count >= 19 || random.next() % 2 == 0) {
                try harness.set.unplug(plugged[Int(random.next() % UInt64(plugged.count))])
            } else {
                let kind = DeviceKind.allCases[Int(random.next() % UInt64(DeviceKind.allCases.count))]
                try harness.set.plug(kind)
            }
            #expect(harness.host.connected == Set(harness.set.devices.compactMap(\.resources.gsi)))
        }
        for owner in harness.set.devices.map(\.resources.owner) { try harness.set.unplug(owner) }
        #expect(harness.set.resources == initial)
        #expect(harness.bus.windows.isEmpty && harness.host.connected.isEmpty)
    }
}
