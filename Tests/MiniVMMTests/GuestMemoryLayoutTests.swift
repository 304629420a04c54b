import Testing
import VMAllocator

@testable import MiniVMM

private let mib: UInt64 = 1 << 20
private let gib: UInt64 = 1 << 30

private func range(_ base: UInt64, size: UInt64) -> RangeInclusive {
    // Test literals are valid ranges.
    try! RangeInclusive(start: base, end: base + (size - 1))
}

@Suite("GuestMemoryLayout")
struct GuestMemoryLayoutTests {
    @Test(
        "sizes below the gap give one region from 0",
        arguments: [2 * mib, 128 * mib, 3 * gib - 4096, 3 * gib] as [UInt64])
    func belowGap(size: UInt64) throws {
        let layout = try GuestMemoryLayout(memorySize: size)
        #expect(layout.ranges == [range(0, size: size)])
        #expect(layout.memorySize == size)
        #expect(layout.endOfRAM == size)
        #expect(layout.maximumImageSize == size - 0x10_0000)
    }

    @Test(
        "sizes above 3 GiB continue at 4 GiB",
        arguments: [(3 * gib + 4096, 4096), (4 * gib, gib), (5 * gib, 2 * gib), (64 * gib, 61 * gib)] as [(UInt64, UInt64)])
    func aboveGap(size: UInt64, high: UInt64) throws {
        let layout = try GuestMemoryLayout(memorySize: size)
        #expect(layout.ranges == [range(0, size: 3 * gib), range(4 * gib, size: high)])
        #expect(layout.lowRange.end == 0xBFFF_FFFF)
        #expect(layout.endOfRAM == 4 * gib + high)
        #expect(layout.ranges.map(\.count).reduce(0, +) == size)
    }

    @Test(
        "invalid sizes are refused with the reason",
        arguments: [
            (UInt64(0), ConfigurationError.MemoryProblem.tooSmall),
            (2 * mib - 4096, .tooSmall),
            (2 * mib + 1, .notPageMultiple),
            (128 * mib + 512, .notPageMultiple),
            (64 * gib + 4096, .tooLarge),
            (UInt64.max - 4095, .tooLarge),
            // The limits are checked before the page multiple, in the order `--memory`
            // reports them.
            (UInt64.max, .tooLarge),
            (64 * gib + 1, .tooLarge),
            (2 * mib - 1, .tooSmall),
        ])
    func invalidSizes(size: UInt64, problem: ConfigurationError.MemoryProblem) {
        #expect(throws: problem) {
            try GuestMemoryLayout(memorySize: size)
        }
        // The blueprint reports the same problem with the size as given.
        #expect(throws: ConfigurationError.invalidMemory(text: "\(size)", problem)) {
            try MachinePlan.Blueprint(MachineConfiguration(imagePath: "g", memorySize: size))
        }
    }

    @Test("the messages say what is wrong and what is allowed")
    func messages() {
        // One wording for a bad size, wherever it is found: `--memory`'s.
        #expect(ConfigurationError.invalidMemory(text: "1M", .tooSmall).description
            == "invalid --memory '1M': at least 2M")
        #expect(ConfigurationError.invalidMemory(text: "65G", .tooLarge).description
            == "invalid --memory '65G': at most 64G")
        #expect(ConfigurationError.invalidMemory(text: "3000000", .notPageMultiple).description
            == "invalid --memory '3000000': must be a multiple of 4K")
        #expect(ConfigurationError.invalidMemory(text: "12X", .badSuffix).description
            == "invalid --memory '12X': the suffix must be K, M or G")
        #expect(ConfigurationError.invalidMemory(text: "lots", .notANumber).description
            == "invalid --memory 'lots': expected a number with an optional K, M or G suffix")
    }

    @Test("region containment is exact at the edges and never overflows")
    func containment() throws {
        let plan = try PlanFixtures.plan(memory: 5 * gib)
        let low = plan.ram[0], high = plan.ram[1]
        #expect(low.contains(address: 0xBFFF_FFFF, count: 1))
        #expect(!low.contains(address: 0xBFFF_FFFF, count: 2))
        #expect(low.contains(address: 0xC000_0000, count: 0))
        #expect(!low.contains(address: 0xC000_0001, count: 0))
        #expect(high.contains(address: 4 * gib, count: 2 * gib))
        #expect(!high.contains(address: 4 * gib - 1, count: 1))
        #expect(!high.contains(address: 4 * gib, count: .max))
        #expect(!high.contains(address: .max, count: 1))
        #expect(plan.ram.filter { $0.contains(address: 6 * gib - 8, count: 8) } == [high])
        #expect(plan.ram.filter { $0.contains(address: 0xBFFF_FFF8, count: 16) }.isEmpty)
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
