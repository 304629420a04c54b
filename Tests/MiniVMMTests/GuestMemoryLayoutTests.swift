import MiniVMM
import Testing

private let mib: UInt64 = 1 << 20
private let gib: UInt64 = 1 << 30

@Suite("GuestMemoryLayout")
struct GuestMemoryLayoutTests {
    @Test(
        "sizes below the gap give one region from 0",
        arguments: [2 * mib, 128 * mib, 3 * gib - 4096, 3 * gib] as [UInt64])
    func belowGap(size: UInt64) throws {
        let layout = try GuestMemoryLayout(memorySize: size)
        #expect(layout.regions == [.init(base: 0, size: size)])
        #expect(layout.memorySize == size)
        #expect(layout.endOfRAM == size)
        #expect(layout.maximumImageSize == size - 0x10_0000)
    }

    @Test(
        "sizes above 3 GiB continue at 4 GiB",
        arguments: [(3 * gib + 4096, 4096), (4 * gib, gib), (5 * gib, 2 * gib), (64 * gib, 61 * gib)] as [(UInt64, UInt64)])
    func aboveGap(size: UInt64, high: UInt64) throws {
        let layout = try GuestMemoryLayout(memorySize: size)
        #expect(layout.regions == [.init(base: 0, size: 3 * gib), .init(base: 4 * gib, size: high)])
        #expect(layout.lowRegion.lastAddress == 0xBFFF_FFFF)
        #expect(layout.endOfRAM == 4 * gib + high)
        #expect(layout.regions.map(\.size).reduce(0, +) == size)
    }

    @Test(
        "invalid sizes are refused with the reason",
        arguments: [
            (UInt64(0), ResourceError.MemorySizeProblem.tooSmall),
            (2 * mib - 4096, .tooSmall),
            (2 * mib + 1, .notPageMultiple),
            (128 * mib + 512, .notPageMultiple),
            (64 * gib + 4096, .tooLarge),
            (UInt64.max - 4095, .tooLarge),
            (UInt64.max, .notPageMultiple),
        ])
    func invalidSizes(size: UInt64, problem: ResourceError.MemorySizeProblem) {
        #expect(throws: ResourceError.invalidMemorySize(size, problem)) {
            try GuestMemoryLayout(memorySize: size)
        }
    }

    @Test("the messages say what is wrong and what is allowed")
    func messages() {
        #expect(ResourceError.invalidMemorySize(1 << 20, .tooSmall).description
            == "memory size 1 MiB is too small: at least 2 MiB is needed")
        #expect(ResourceError.invalidMemorySize(65 * gib, .tooLarge).description
            == "memory size 65 GiB is too large: at most 64 GiB is supported")
        #expect(ResourceError.invalidMemorySize(3_000_000, .notPageMultiple).description
            == "memory size 3000000 bytes is not a multiple of 4 KiB")
    }

    @Test("region containment is exact at the edges and never overflows")
    func containment() throws {
        let layout = try GuestMemoryLayout(memorySize: 5 * gib)
        let low = layout.regions[0], high = layout.regions[1]
        #expect(low.contains(address: 0xBFFF_FFFF, count: 1))
        #expect(!low.contains(address: 0xBFFF_FFFF, count: 2))
        #expect(low.contains(address: 0xC000_0000, count: 0))
        #expect(!low.contains(address: 0xC000_0001, count: 0))
        #expect(high.contains(address: 4 * gib, count: 2 * gib))
        #expect(!high.contains(address: 4 * gib - 1, count: 1))
        #expect(!high.contains(address: 4 * gib, count: .max))
        #expect(!high.contains(address: .max, count: 1))
        #expect(layout.region(containing: 6 * gib - 8, count: 8) == high)
        #expect(layout.region(containing: 0xBFFF_FFF8, count: 16) == nil)
    }

    @Test("ABI constants match docs/guest-abi.md")
    func constants() {
        #expect(GuestMemoryLayout.gdtAddress == 0x1000)
        #expect(GuestMemoryLayout.bootInfoAddress == 0x2000)
        #expect(GuestMemoryLayout.pageTablesAddress == 0x10000)
        #expect(GuestMemoryLayout.stackTop == 0x80000)
        #expect(GuestMemoryLayout.imageBase == 0x100000)
        #expect(GuestMemoryLayout.mmioGapStart == 0xC000_0000)
        #expect(GuestMemoryLayout.ioapicAddress == 0xFEC0_0000)
        #expect(GuestMemoryLayout.localAPICAddress == 0xFEE0_0000)
        #expect(GuestMemoryLayout.identityMapAddress == 0xFEFF_C000)
        #expect(GuestMemoryLayout.tssAddress == 0xFEFF_D000)
        #expect(GuestMemoryLayout.tssAddress + GuestMemoryLayout.tssSize == 0xFF00_0000)
    }
}
