import Testing
@testable import VMAllocator

/// The benchmark workloads (issue 2, W1-W3) at a size where the tree is deep, with
/// results predicted from first principles rather than from a model run.
@Suite("AddressAllocator at scale")
struct AddressAllocatorScaleTests {
    static let count: UInt64 = 4_000
    static let page: UInt64 = 0x1000

    @Test func firstMatchWorkloadPacksPagesAndSkipsHoles() throws {
        var a = try AddressAllocator(base: 0, size: 1 << 48)
        for i in 0..<Self.count {
            let got = try a.allocate(size: Self.page, alignment: Self.page)
            #expect(got == r(i * Self.page, i * Self.page + Self.page - 1))
        }
        #expect(a.checkInvariants() == nil)
        #expect(a.allocatedSize == Self.count * Self.page)
        for i in stride(from: 0, to: Self.count, by: 2) {
            try a.free(r(i * Self.page, i * Self.page + Self.page - 1))
        }
        #expect(a.checkInvariants() == nil)
        #expect(a.allocations.count == Int(Self.count / 2))
        #expect(a.freeRanges.count == Int(Self.count / 2) + 1)
        #expect(a.allocation(containing: 3 * Self.page + 5) == r(3 * Self.page, 4 * Self.page - 1))
        #expect(a.allocation(containing: 2 * Self.page + 5) == nil)
        // Every 0x1000 hole is too small: 0x2000 blocks land after the last page, in order.
        let top = Self.count * Self.page
        for j in 0..<Self.count / 2 {
            let got = try a.allocate(size: 2 * Self.page, alignment: Self.page)
            #expect(got == r(top + j * 2 * Self.page, top + (j + 1) * 2 * Self.page - 1))
        }
        #expect(a.checkInvariants() == nil)
        // The holes are still there and a single page still goes into the lowest one.
        #expect(try a.allocate(size: Self.page, alignment: Self.page) == r(0, Self.page - 1))
    }

    @Test func lastMatchWorkloadPacksPagesDownwardsAndSkipsHoles() throws {
        let end: UInt64 = (1 << 48) - 1
        var a = try AddressAllocator(base: 0, size: 1 << 48)
        for i in 1...Self.count {
            let got = try a.allocate(size: Self.page, alignment: Self.page, policy: .lastMatch)
            #expect(got == r(end + 1 - i * Self.page, end - (i - 1) * Self.page))
        }
        for i in stride(from: 1, through: Self.count, by: 2) {
            try a.free(r(end + 1 - i * Self.page, end - (i - 1) * Self.page))
        }
        #expect(a.checkInvariants() == nil)
        let bottom = end + 1 - Self.count * Self.page
        for j in 1...Self.count / 2 {
            let got = try a.allocate(size: 2 * Self.page, alignment: Self.page, policy: .lastMatch)
            #expect(got == r(bottom - j * 2 * Self.page, bottom - (j - 1) * 2 * Self.page - 1))
        }
        #expect(a.checkInvariants() == nil)
        #expect(try a.allocate(size: Self.page, alignment: Self.page, policy: .lastMatch)
                == r(end + 1 - Self.page, end))
    }

    @Test func randomOrderFreesOfManyAllocationsCoalesceBackToOneBlock() throws {
        let seed: UInt64 = 0x5CA1E
        print("AddressAllocatorScaleTests.randomOrderFrees seed 0x\(String(seed, radix: 16))")
        var rng = SplitMix64(fixedSeed: seed)
        var a = try AddressAllocator(base: 0x1000, size: 1 << 40)
        var live: [RangeInclusive] = []
        for _ in 0..<3_000 {
            let size = rng.uint64(in: 1...0x3000)
            let policy: AllocPolicy = rng.chance(50) ? .firstMatch : .lastMatch
            live.append(try a.allocate(size: size, alignment: 1 << rng.uint64(in: 0...12), policy: policy))
        }
        #expect(a.checkInvariants() == nil)
        #expect(a.allocations == live.sorted())
        live.shuffle(using: &rng)
        for (i, range) in live.enumerated() {
            try a.free(range)
            if i % 250 == 0 {
                #expect(a.checkInvariants() == nil, "after \(i) frees")
            }
        }
        #expect(a.checkInvariants() == nil)
        #expect(a == (try AddressAllocator(base: 0x1000, size: 1 << 40)))
        #expect(a.freeRanges == [r(0x1000, 0x1000 + (1 << 40) - 1)])
    }

    @Test func manyIdsAllocateFreeAndReallocate() throws {
        let n: UInt32 = 20_000
        var ids = try IdAllocator(rangeBase: 0, rangeEnd: .max)
        for i in 0..<n { #expect(try ids.allocateID() == i) }
        for i in stride(from: 0, to: n, by: 2) { try ids.freeID(i) }
        #expect(ids.checkInvariants() == nil)
        for i in stride(from: 0, to: n, by: 2) { #expect(try ids.allocateID() == i) }
        #expect(try ids.allocateID() == n)
        #expect(ids.checkInvariants() == nil)
    }
}
