import Testing
@testable import VMAllocator

@Suite("AddressAllocator at the edges of the 64-bit space")
struct AddressAllocatorEdgeTests {
    private func allocate(
        _ a: inout AddressAllocator, _ size: UInt64, _ alignment: UInt64, _ policy: AllocPolicy,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> RangeInclusive? {
        expectSuccess(on: &a, sourceLocation: sourceLocation) { a throws(AllocatorError) in
            try a.allocate(size: size, alignment: alignment, policy: policy)
        }
    }

    @Test func fullSpaceFromZeroCanBeAllocatedInOnePiece() {
        var a = space(base: 0, size: .max)
        #expect(a.end == UInt64.max - 1)
        #expect(a.largestFreeRange == r(0, .max - 1))
        let all = allocate(&a, .max, 1, .firstMatch)
        #expect(all == r(0, .max - 1))
        #expect(a.allocatedSize == .max)
        #expect(a.freeRanges.isEmpty)
        #expect(a.allocation(containing: 0) == all)
        #expect(a.allocation(containing: .max - 1) == all)
        #expect(a.allocation(containing: .max) == nil)
        if let all { expectSuccess(on: &a) { a throws(AllocatorError) in try a.free(all) } }
        #expect(a == space(base: 0, size: .max))
    }

    @Test func fullSpaceEndingAtMaxCanBeAllocatedByEachPolicy() {
        for policy: AllocPolicy in [.firstMatch, .lastMatch, .exactMatch(1)] {
            var a = space(base: 1, size: .max)
            #expect(a.end == .max)
            #expect(allocate(&a, .max, 1, policy) == r(1, .max), "\(policy)")
            #expect(a.allocatedSize == .max)
            #expect(a.largestFreeRange == nil)
        }
    }

    @Test func rangesAtAddressZero() {
        var a = space(base: 0, size: 0x1000)
        #expect(allocate(&a, 1, 1, .exactMatch(0)) == r(0, 0))
        #expect(a.allocation(containing: 0) == r(0, 0))
        #expect(a.freeRanges == [r(1, 0xfff)])
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.free(r(0, 0)) }
        #expect(a.freeRanges == [r(0, 0xfff)])
        #expect(allocate(&a, 0x10, 0x10, .firstMatch) == r(0, 0xf))
    }

    @Test func rangesAtUInt64Max() {
        var a = space(base: .max - 0xfff, size: 0x1000)
        #expect(allocate(&a, 1, 1, .exactMatch(.max)) == r(.max, .max))
        #expect(a.allocation(containing: .max) == r(.max, .max))
        #expect(allocate(&a, 0x10, 1, .lastMatch) == r(.max - 0x10, .max - 1))
        #expect(a.freeRanges == [r(.max - 0xfff, .max - 0x11)])
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.free(r(.max, .max)) }
        #expect(a.freeRanges == [r(.max - 0xfff, .max - 0x11), r(.max, .max)])
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.free(r(.max - 0x10, .max - 1)) }
        #expect(a.freeRanges == [r(.max - 0xfff, .max)])
        #expect(allocate(&a, 0x1000, 0x1000, .firstMatch) == r(.max - 0xfff, .max))
    }

    @Test func singleAddressSpaceAtMax() {
        var a = space(base: .max, size: 1)
        #expect(allocate(&a, 1, 1, .lastMatch) == r(.max, .max))
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 1, alignment: 1, policy: .firstMatch)
        }
    }

    @Test func firstMatchAlignUpOverflowIsNotAFit() {
        // No address at or above .max - 0xff is a multiple of 2^63 so aligning up overflows.
        let a = space(base: .max - 0xff, size: 0x100)
        for policy: AllocPolicy in [.firstMatch, .lastMatch] {
            expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
                _ = try a.allocate(size: 1, alignment: 1 << 63, policy: policy)
            }
        }
        var b = a
        #expect(allocate(&b, 0x100, 0x100, .firstMatch) == r(.max - 0xff, .max))
    }

    @Test func largestAlignmentInTheFullSpace() {
        var a = space(base: 0, size: .max)
        #expect(allocate(&a, 1, 1 << 63, .firstMatch) == r(0, 0))
        #expect(allocate(&a, 1, 1 << 63, .firstMatch) == r(1 << 63, 1 << 63))
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 1, alignment: 1 << 63, policy: .firstMatch)
        }
        var b = space(base: 1, size: .max)
        #expect(allocate(&b, 1 << 62, 1 << 63, .lastMatch) == r(1 << 63, (1 << 63) + (1 << 62) - 1))
        expectFailure(.resourceNotAvailable, on: b) { a throws(AllocatorError) in
            _ = try a.allocate(size: 1, alignment: 1 << 63, policy: .lastMatch)
        }
    }

    @Test func halfSpaceAllocationsAtBothEnds() {
        var a = space(base: 0, size: .max)
        #expect(allocate(&a, 1 << 63, 1 << 63, .firstMatch) == r(0, (1 << 63) - 1))
        // The remaining block [2^63, 2^64 - 2] holds 2^63 - 1 bytes.
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 1 << 63, alignment: 1, policy: .lastMatch)
        }
        #expect(allocate(&a, (1 << 63) - 1, 1, .lastMatch) == r(1 << 63, .max - 1))
        #expect(a.allocatedSize == .max)
    }

    @Test func exactMatchAtZeroAndMaxInFullSpace() {
        var a = space(base: 1, size: .max)
        #expect(allocate(&a, 1, 1, .exactMatch(.max)) == r(.max, .max))
        #expect(allocate(&a, 1, 1, .exactMatch(1)) == r(1, 1))
        #expect(a.freeRanges == [r(2, .max - 1)])
        var b = space(base: 0, size: .max)
        #expect(allocate(&b, 1, 1, .exactMatch(0)) == r(0, 0))
        expectFailure(.resourceNotAvailable, on: b) { a throws(AllocatorError) in
            _ = try a.allocate(size: 1, alignment: 1, policy: .exactMatch(.max))
        }
    }
}
