import Testing

@testable import MiniVMM

@Suite("Identity page tables")
struct PageTableTests {
    private let base: UInt64 = 0x10000
    private let gib: UInt64 = 1 << 30

    @Test("identity-maps the low 4 GiB with 2 MiB pages", arguments: [
        UInt64(0), 0x1000, 0x10_0000, 0x1F_FFFF, 0x20_0000, 0xBFFF_FFFF, 0xFEC0_0000, 0xFFFF_FFFF,
    ])
    func identityLow(address: UInt64) throws {
        let tables = try IdentityPageTables(base: base, mappedEnd: 4 * gib, maxPages: 96)
        #expect(tables.translate(address) == address)
    }

    @Test func layoutIsPML4ThenPDPTThenOneDirectoryPerGiB() throws {
        let tables = try IdentityPageTables(base: base, mappedEnd: 4 * gib, maxPages: 96)
        #expect(tables.pageCount == 2 + 4)
        let flags = IdentityPageTables.present | IdentityPageTables.writable
        #expect(tables.entries[0] == (base + 0x1000) | flags)
        #expect(tables.entries[1...511].allSatisfy { $0 == 0 })
        for directory in 0..<4 {
            #expect(tables.entries[512 + directory] == (base + UInt64(2 + directory) * 0x1000) | flags)
        }
        #expect(tables.entries[516..<1024].allSatisfy { $0 == 0 })
        // The first and last 2 MiB pages: present, writable, PS, supervisor (bit 2 clear).
        #expect(tables.entries[1024] == 0x83)
        #expect(tables.entries[1024 + 2047] == 0xFFE0_0000 | 0x83)
        #expect(tables.entries.allSatisfy { $0 & 0x4 == 0 })
    }

    @Test func nothingPastTheMappedEndIsMapped() throws {
        let tables = try IdentityPageTables(base: base, mappedEnd: 4 * gib, maxPages: 96)
        #expect(tables.translate(4 * gib) == nil)
        #expect(tables.translate(512 * gib) == nil)
        #expect(tables.translate(1 << 48) == nil)
    }

    @Test("maps all RAM above 4 GiB", arguments: [UInt64(5), 17, 65])
    func highMemory(endGiB: UInt64) throws {
        let end = endGiB * gib
        let tables = try IdentityPageTables(base: base, mappedEnd: end, maxPages: 96)
        #expect(tables.pageCount == 2 + Int(endGiB))
        for address in [4 * gib, 4 * gib + 0x1234_5678, end - 1, end - 0x20_0000] {
            #expect(tables.translate(address) == address)
        }
        #expect(tables.translate(end) == nil)
    }

    @Test func partialGiBRoundsUpTo2MiB() throws {
        let tables = try IdentityPageTables(base: base, mappedEnd: 4 * gib + 0x30_0000, maxPages: 96)
        #expect(tables.mappedEnd == 4 * gib + 0x40_0000)
        #expect(tables.translate(4 * gib + 0x3F_FFFF) == 4 * gib + 0x3F_FFFF)
        #expect(tables.translate(4 * gib + 0x40_0000) == nil)
    }

    @Test func bytesAreLittleEndianEntries() throws {
        let tables = try IdentityPageTables(base: base, mappedEnd: 4 * gib, maxPages: 96)
        let bytes = tables.bytes
        #expect(bytes.count == tables.pageCount * 4096)
        #expect(Array(bytes[0..<8]) == [0x03, 0x10, 0x01, 0, 0, 0, 0, 0])
        #expect(Array(bytes[8192..<8200]) == [0x83, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func rejectsWhatCannotBeBuilt() {
        #expect(throws: IdentityPageTables.BuildError.unalignedBase(0x10001)) {
            try IdentityPageTables(base: 0x10001, mappedEnd: 4 * gib, maxPages: 96)
        }
        #expect(throws: IdentityPageTables.BuildError.unsupportedEnd(0)) {
            try IdentityPageTables(base: base, mappedEnd: 0, maxPages: 96)
        }
        #expect(throws: IdentityPageTables.BuildError.unsupportedEnd(513 * gib)) {
            try IdentityPageTables(base: base, mappedEnd: 513 * gib, maxPages: 600)
        }
        #expect(throws: IdentityPageTables.BuildError.tooManyPages(needed: 6, available: 5)) {
            try IdentityPageTables(base: base, mappedEnd: 4 * gib, maxPages: 5)
        }
    }

    @Test("the ABI's tables fit their 384 KiB for every memory size", arguments: [
        UInt64(2 << 20), 128 << 20, 3 << 30, 5 << 30, 64 << 30,
    ])
    func abiTablesForLayouts(memory: UInt64) throws {
        let layout = try GuestMemoryLayout(memorySize: memory)
        let tables = try BootState.pageTables(for: layout)
        #expect(tables.base == 0x10000)
        #expect(UInt64(tables.bytes.count) <= GuestMemoryLayout.pageTablesCapacity)
        for range in layout.ranges {
            #expect(tables.translate(range.start) == range.start)
            #expect(tables.translate(range.end) == range.end)
        }
        #expect(tables.translate(0xFEE0_0000) == 0xFEE0_0000)
    }
}
