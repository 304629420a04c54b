import Testing
@testable import VMAllocator

@Suite("AddressAllocator policies, freeing and queries")
struct AddressAllocatorPolicyTests {
    private func allocate(
        _ a: inout AddressAllocator, _ size: UInt64, _ alignment: UInt64, _ policy: AllocPolicy,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> RangeInclusive? {
        expectSuccess(on: &a, sourceLocation: sourceLocation) { a throws(AllocatorError) in
            try a.allocate(size: size, alignment: alignment, policy: policy)
        }
    }

    @Test func defaultPolicyIsFirstMatch() throws {
        var a = space(base: 0x1000, size: 0x10000)
        let got = try a.allocate(size: 0x10, alignment: 1)
        #expect(got == r(0x1000, 0x100f))
    }

    @Test func firstMatchTakesLowestAlignedSlot() {
        var a = space(base: 0x1001, size: 0x10000)
        #expect(allocate(&a, 0x100, 0x1000, .firstMatch) == r(0x2000, 0x20ff))
        #expect(allocate(&a, 0x10, 1, .firstMatch) == r(0x1001, 0x1010))
        #expect(allocate(&a, 0x10, 0x100, .firstMatch) == r(0x1100, 0x110f))
        #expect(allocate(&a, 0x100, 0x1000, .firstMatch) == r(0x3000, 0x30ff))
        #expect(a.allocations == [r(0x1001, 0x1010), r(0x1100, 0x110f), r(0x2000, 0x20ff), r(0x3000, 0x30ff)])
    }

    @Test func firstMatchSkipsBlocksTooSmallAfterAlignment() {
        var a = space(base: 0, size: 0x1000)
        // Free blocks: [0x10, 0x2f] (0x20 bytes) and [0x100, 0xfff].
        _ = allocate(&a, 0x10, 1, .exactMatch(0))
        _ = allocate(&a, 0xd0, 1, .exactMatch(0x30))
        #expect(a.freeRanges == [r(0x10, 0x2f), r(0x100, 0xfff)])
        // Aligned to 0x20 the first block only offers [0x20, 0x2f]: too small for 0x11.
        #expect(allocate(&a, 0x11, 0x20, .firstMatch) == r(0x100, 0x110))
        // But 0x10 fits there.
        #expect(allocate(&a, 0x10, 0x20, .firstMatch) == r(0x20, 0x2f))
        #expect(a.freeRanges == [r(0x10, 0x1f), r(0x111, 0xfff)])
    }

    @Test func lastMatchTakesHighestAlignedSlot() {
        var a = space(base: 0, size: 0x10000)
        #expect(allocate(&a, 0x100, 0x1000, .lastMatch) == r(0xf000, 0xf0ff))
        #expect(allocate(&a, 0x100, 0x100, .lastMatch) == r(0xff00, 0xffff))
        #expect(allocate(&a, 0x10, 1, .lastMatch) == r(0xfef0, 0xfeff))
        #expect(a.freeRanges == [r(0, 0xefff), r(0xf100, 0xfeef)])
    }

    @Test func lastMatchFallsBackToLowerBlockWhenAlignmentDoesNotFit() {
        var a = space(base: 0, size: 0x10000)
        _ = allocate(&a, 0x7ff0, 1, .exactMatch(0x8000))  // leaves [0, 0x7fff] and [0xfff0, 0xffff]
        #expect(a.freeRanges == [r(0, 0x7fff), r(0xfff0, 0xffff)])
        // The top block is big enough but its aligned-down start falls below it.
        #expect(allocate(&a, 0x10, 0x20, .lastMatch) == r(0x7fe0, 0x7fef))
        // Without the alignment constraint the top block is used.
        #expect(allocate(&a, 0x10, 0x10, .lastMatch) == r(0xfff0, 0xffff))
    }

    @Test func lastMatchSkipsHigherBlocksThatAreTooSmall() {
        var a = space(base: 0, size: 0x1000)
        _ = allocate(&a, 0x10, 1, .exactMatch(0xfe0))  // top free block [0xff0, 0xfff]
        #expect(allocate(&a, 0x20, 1, .lastMatch) == r(0xfc0, 0xfdf))
    }

    @Test func exactMatchTakesExactlyTheRequestedRange() {
        var a = space(base: 0x1000, size: 0x10000)
        #expect(allocate(&a, 0x1000, 0x1000, .exactMatch(0x5000)) == r(0x5000, 0x5fff))
        #expect(allocate(&a, 1, 1, .exactMatch(0x1000)) == r(0x1000, 0x1000))
        #expect(allocate(&a, 1, 1, .exactMatch(0x10fff)) == r(0x10fff, 0x10fff))
        #expect(a.freeRanges == [r(0x1001, 0x4fff), r(0x6000, 0x10ffe)])
    }

    @Test func exactMatchFillingAGapExactlyRemovesTheFreeBlock() {
        var a = space(base: 0, size: 0x3000)
        _ = allocate(&a, 0x1000, 1, .exactMatch(0))
        _ = allocate(&a, 0x1000, 1, .exactMatch(0x2000))
        #expect(a.freeRanges == [r(0x1000, 0x1fff)])
        #expect(allocate(&a, 0x1000, 0x1000, .exactMatch(0x1000)) == r(0x1000, 0x1fff))
        #expect(a.freeRanges.isEmpty)
        #expect(a.allocatedSize == 0x3000)
    }

    @Test func exactMatchIgnoresWhetherABetterSlotExists() {
        var a = space(base: 0, size: 0x10000)
        #expect(allocate(&a, 0x10, 0x10, .exactMatch(0x8000)) == r(0x8000, 0x800f))
        #expect(a.freeRanges == [r(0, 0x7fff), r(0x8010, 0xffff)])
    }

    @Test func freeCoalescesWithBothNeighbours() {
        var a = space(base: 0, size: 0x4000)
        let x = allocate(&a, 0x1000, 1, .firstMatch)!
        let y = allocate(&a, 0x1000, 1, .firstMatch)!
        let z = allocate(&a, 0x1000, 1, .firstMatch)!
        #expect([x, y, z] == [r(0, 0xfff), r(0x1000, 0x1fff), r(0x2000, 0x2fff)])
        #expect(a.freeRanges == [r(0x3000, 0x3fff)])

        expectSuccess(on: &a) { a throws(AllocatorError) in try a.free(y) }
        #expect(a.freeRanges == [r(0x1000, 0x1fff), r(0x3000, 0x3fff)])
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.free(z) }  // merges left and right
        #expect(a.freeRanges == [r(0x1000, 0x3fff)])
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.free(x) }
        #expect(a.freeRanges == [r(0, 0x3fff)])
        #expect(a.allocations.isEmpty)
        #expect(a == space(base: 0, size: 0x4000))
    }

    @Test func freeMergesOnlyWithTheLeftNeighbourWhenRightIsLive() {
        var a = space(base: 0, size: 0x3000)
        let x = allocate(&a, 0x1000, 1, .firstMatch)!
        _ = allocate(&a, 0x1000, 1, .firstMatch)!
        _ = allocate(&a, 0x1000, 1, .firstMatch)!
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.free(x) }
        #expect(a.freeRanges == [r(0, 0xfff)])
        #expect(a.allocations == [r(0x1000, 0x1fff), r(0x2000, 0x2fff)])
    }

    @Test func freedSpaceIsReusedByFirstMatch() {
        var a = space(base: 0, size: 0x10000)
        var got: [RangeInclusive] = []
        for _ in 0..<8 { got.append(allocate(&a, 0x100, 0x100, .firstMatch)!) }
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.free(got[2]) }
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.free(got[5]) }
        #expect(allocate(&a, 0x100, 0x100, .firstMatch) == got[2])
        #expect(allocate(&a, 0x100, 0x100, .lastMatch) == r(0xff00, 0xffff))
        #expect(allocate(&a, 0x100, 0x100, .firstMatch) == got[5])
    }

    @Test func allocationContainingFindsOnlyLiveAllocations() {
        var a = space(base: 0x1000, size: 0x10000)
        let x = allocate(&a, 0x100, 1, .exactMatch(0x2000))!
        let y = allocate(&a, 1, 1, .exactMatch(0x2100))!
        #expect(a.allocation(containing: 0x1fff) == nil)
        #expect(a.allocation(containing: 0x2000) == x)
        #expect(a.allocation(containing: 0x2080) == x)
        #expect(a.allocation(containing: 0x20ff) == x)
        #expect(a.allocation(containing: 0x2100) == y)
        #expect(a.allocation(containing: 0x2101) == nil)
        #expect(a.allocation(containing: 0) == nil)
        #expect(a.allocation(containing: .max) == nil)
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.free(x) }
        #expect(a.allocation(containing: 0x2080) == nil)
    }

    @Test func allocatedSizeAndLargestFreeRangeTrackChanges() {
        var a = space(base: 0, size: 0x10000)
        let x = allocate(&a, 0x3000, 1, .exactMatch(0x1000))!
        #expect(a.allocatedSize == 0x3000)
        #expect(a.largestFreeRange == r(0x4000, 0xffff))
        let y = allocate(&a, 0x1, 1, .exactMatch(0x8000))!
        #expect(a.allocatedSize == 0x3001)
        #expect(a.largestFreeRange == r(0x8001, 0xffff))
        _ = allocate(&a, 0x7fff, 1, .exactMatch(0x8001))
        #expect(a.largestFreeRange == r(0x4000, 0x7fff))
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.free(x) }
        #expect(a.largestFreeRange == r(0, 0x7fff))
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.free(y) }
        #expect(a.allocatedSize == 0x7fff)
        #expect(a.largestFreeRange == r(0, 0x8000))
    }

    @Test func policiesAreCodableAndHashable() throws {
        let all: [AllocPolicy] = [.firstMatch, .lastMatch, .exactMatch(0), .exactMatch(.max), .exactMatch(0x1000)]
        #expect(Set(all).count == all.count)
        #expect(AllocPolicy.exactMatch(1) != .exactMatch(2))
    }
}
