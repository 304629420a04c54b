import Testing

@testable import MiniVMM

/// Decodes a boot-information table the way a guest would, straight from the byte layout
/// in docs/guest-abi.md (independent of the encoder).
private struct DecodedTable {
    struct Entry: Equatable {
        var kind: UInt16, instance: UInt16, gsi: UInt32, base: UInt64, size: UInt64, slot: UInt32, reserved: UInt32
    }

    var magic: UInt32, version: UInt16, headerSize: UInt16, count: UInt16, entrySize: UInt16, totalSize: UInt32
    var entries: [Entry] = []

    init(_ bytes: [UInt8]) {
        func le<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            (0..<MemoryLayout<T>.size).reduce(T.zero) { $0 | T(bytes[offset + $1]) << ($1 * 8) }
        }
        magic = le(0, UInt32.self)
        version = le(4, UInt16.self)
        headerSize = le(6, UInt16.self)
        count = le(8, UInt16.self)
        entrySize = le(10, UInt16.self)
        totalSize = le(12, UInt32.self)
        for index in 0..<Int(count) {
            let at = Int(headerSize) + index * Int(entrySize)
            entries.append(Entry(
                kind: le(at, UInt16.self), instance: le(at + 2, UInt16.self), gsi: le(at + 4, UInt32.self),
                base: le(at + 8, UInt64.self), size: le(at + 16, UInt64.self), slot: le(at + 24, UInt32.self),
                reserved: le(at + 28, UInt32.self)))
        }
    }
}

private let none: UInt32 = 0xFFFF_FFFF

/// The finished plan for a machine with `memory` bytes and the given devices and vCPUs, on
/// a host with 32 memory slots.
private func plan(memory: UInt64, timers: Int, consoles: Int, cpus: Int = 1) throws -> MachinePlan {
    let configuration = try MachineConfiguration(
        imagePath: "image.bin", memorySize: memory, deviceCounts: [.timer: timers, .dmaConsole: consoles], cpus: cpus)
    return try MachinePlan(MachinePlan.Blueprint(configuration), host: .init(memorySlots: 32))
}

@Suite("Boot-information table")
struct BootInfoTests {
    @Test("header bytes spell MVMB and describe the table")
    func header() throws {
        let machine = try plan(memory: 128 << 20, timers: 1, consoles: 1)
        let bytes = machine.bootInformation()
        #expect(Array(bytes[0..<4]) == Array("MVMB".utf8))
        let table = DecodedTable(bytes)
        #expect(table.magic == 0x424D_564D)
        #expect(table.version == 1)
        #expect(table.headerSize == 16)
        #expect(table.entrySize == 32)
        // Seven entries, the hot-plug controller (ABI version 2), and the CPU entry every
        // table has since SMP (docs/guest-abi.md).
        #expect(table.count == 9)
        #expect(table.totalSize == 16 + 9 * 32)
        #expect(bytes.count == Int(table.totalSize))
    }

    @Test("default machine: RAM, exit port, COM1, IOAPIC, local APIC, timer, console, CPU")
    func defaultMachine() throws {
        let machine = try plan(memory: 128 << 20, timers: 1, consoles: 1)
        let entries = DecodedTable(machine.bootInformation()).entries
        typealias E = DecodedTable.Entry
        #expect(entries == [
            E(kind: 1, instance: 0, gsi: none, base: 0, size: 128 << 20, slot: 0, reserved: 0),
            E(kind: 2, instance: 0, gsi: none, base: 0xF4, size: 4, slot: none, reserved: 0),
            E(kind: 3, instance: 0, gsi: 4, base: 0x3F8, size: 8, slot: none, reserved: 0),
            E(kind: 4, instance: 0, gsi: none, base: 0xFEC0_0000, size: 0x1000, slot: none, reserved: 0),
            E(kind: 5, instance: 0, gsi: none, base: 0xFEE0_0000, size: 0x1000, slot: none, reserved: 0),
            E(kind: 6, instance: 0, gsi: 5, base: 0xC000_0000, size: 0x1000, slot: none, reserved: 0),
            E(kind: 7, instance: 0, gsi: 6, base: 0xC000_1000, size: 0x1000, slot: none, reserved: 0),
            E(kind: 9, instance: 0, gsi: 7, base: 0xC000_2000, size: 0x1000, slot: none, reserved: 0),
            E(kind: 8, instance: 0, gsi: none, base: 0, size: 0, slot: none, reserved: 0),
        ])
    }

    @Test("5 GiB with 3 timers and 2 consoles: two RAM entries, instances counted per kind")
    func largerMachine() throws {
        let machine = try plan(memory: 5 << 30, timers: 3, consoles: 2)
        let entries = DecodedTable(machine.bootInformation()).entries
        #expect(entries.count == 2 + 4 + 5 + 1 + 1)
        #expect(entries.map(\.kind) == [1, 1, 2, 3, 4, 5, 6, 6, 6, 7, 7, 9, 8])
        #expect(entries[0].base == 0 && entries[0].size == 3 << 30 && entries[0].slot == 0)
        #expect(entries[1].base == 4 << 30 && entries[1].size == 2 << 30 && entries[1].slot == 1)
        #expect(entries[0].instance == 0 && entries[1].instance == 1)
        #expect(entries[6..<11].map(\.instance) == [0, 1, 2, 0, 1])
        #expect(entries[6..<11].map(\.gsi) == [5, 6, 7, 8, 9])
        let windows: [UInt64] = (0..<5).map { 0xC000_0000 + UInt64($0) * 0x1000 }
        #expect(entries[6..<11].map(\.base) == windows)
        #expect(entries.allSatisfy { $0.reserved == 0 })
    }

    @Test("the largest table fits the 8 KiB the ABI reserves")
    func largestTableFits() throws {
        let machine = try plan(memory: 64 << 30, timers: 10, consoles: 8)
        let bytes = machine.bootInformation()
        #expect(bytes.count == 16 + 26 * 32)
        #expect(UInt64(bytes.count) <= GuestMemoryLayout.bootInfoCapacity)
        // 18 devices, then the hot-plug controller.
        #expect(DecodedTable(bytes).entries[6..<25].map(\.gsi) == Array(5...23))
        #expect(DecodedTable(bytes).entries[24].kind == 9)
        // With the most vCPUs: one CPU entry each, APIC IDs 0...63, still within 8 KiB.
        let smp = try plan(memory: 64 << 30, timers: 10, consoles: 8, cpus: 64).bootInformation()
        #expect(smp.count == 16 + (25 + 64) * 32)
        #expect(UInt64(smp.count) <= GuestMemoryLayout.bootInfoCapacity)
        let cpus = DecodedTable(smp).entries.suffix(64)
        #expect(cpus.allSatisfy { $0.kind == 8 && $0.gsi == none && $0.base == 0 && $0.size == 0 && $0.slot == none })
        #expect(cpus.map(\.instance) == Array(0..<64))
    }

    @Test("the encoder writes entries exactly as given")
    func encoderRoundTrip() {
        let entry = BootInformation.Entry(
            kind: .dmaConsole, instance: 0xBEEF, gsi: 0x1234_5678, base: 0x0102_0304_0506_0708,
            size: .max, memorySlot: nil)
        let table = DecodedTable(BootInformation.encode([entry]))
        #expect(table.entries == [.init(
            kind: 7, instance: 0xBEEF, gsi: 0x1234_5678, base: 0x0102_0304_0506_0708, size: .max, slot: none,
            reserved: 0)])
        #expect(BootInformation.encode([]).count == 16)
    }
}
