import Testing
@testable import VMAllocator

@Suite("AddressAllocator errors and argument-check order")
struct AddressAllocatorErrorTests {
    // MARK: init

    @Test func zeroSizeIsUnderflow() {
        #expect(throws: AllocatorError.underflow) { try AddressAllocator(base: 0x1000, size: 0) }
        #expect(throws: AllocatorError.underflow) { try AddressAllocator(base: 0, size: 0) }
        // size 0 is checked before any overflow arithmetic.
        #expect(throws: AllocatorError.underflow) { try AddressAllocator(base: .max, size: 0) }
    }

    @Test func spacePastUInt64MaxIsOverflow() {
        #expect(throws: AllocatorError.overflow) { try AddressAllocator(base: .max, size: 2) }
        #expect(throws: AllocatorError.overflow) { try AddressAllocator(base: 2, size: .max) }
        #expect(throws: AllocatorError.overflow) { try AddressAllocator(base: .max - 0xfff, size: 0x1001) }
    }

    @Test func spaceEndingExactlyAtUInt64MaxIsAccepted() throws {
        let top = try AddressAllocator(base: .max - 0xfff, size: 0x1000)
        #expect(top.base == UInt64.max - 0xfff)
        #expect(top.end == .max)
        let one = try AddressAllocator(base: .max, size: 1)
        #expect(one.base == .max && one.end == .max)
        #expect(one.freeRanges == [r(.max, .max)])
    }

    @Test func freshAllocatorIsOneFreeBlock() throws {
        let a = try AddressAllocator(base: 0x1000, size: 0x4000)
        #expect(a.base == 0x1000)
        #expect(a.end == 0x4fff)
        #expect(a.allocations.isEmpty)
        #expect(a.freeRanges == [r(0x1000, 0x4fff)])
        #expect(a.allocatedSize == 0)
        #expect(a.largestFreeRange == r(0x1000, 0x4fff))
        #expect(a.allocation(containing: 0x1000) == nil)
        #expect(a.checkInvariants() == nil)
    }

    // MARK: allocate argument checks, in spec order

    @Test func zeroSizeIsCheckedFirst() {
        let a = space(base: 0x1000, size: 0x1000)
        for policy: AllocPolicy in [.firstMatch, .lastMatch, .exactMatch(0x1000), .exactMatch(0x1001), .exactMatch(0)] {
            for alignment: UInt64 in [0, 3, 1, 0x1000] {
                expectFailure(.invalidSize(0), on: a) { a throws(AllocatorError) in
                    _ = try a.allocate(size: 0, alignment: alignment, policy: policy)
                }
            }
        }
    }

    @Test func zeroOrNonPowerOfTwoAlignmentIsInvalid() {
        let a = space(base: 0, size: 0x10000)
        let bad: [UInt64] = [0, 3, 5, 6, 0x1001, 0x3000, (1 << 63) + 1, (1 << 63) | (1 << 62), .max]
        for alignment in bad {
            for policy: AllocPolicy in [.firstMatch, .lastMatch, .exactMatch(0), .exactMatch(1)] {
                expectFailure(.invalidAlignment, on: a) { a throws(AllocatorError) in
                    _ = try a.allocate(size: 0x10, alignment: alignment, policy: policy)
                }
            }
        }
    }

    @Test func invalidAlignmentComesBeforeResourceChecks() {
        // The request could never fit, but the bad alignment must be reported first.
        let a = space(base: 0, size: 0x10)
        expectFailure(.invalidAlignment, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: .max, alignment: 6, policy: .firstMatch)
        }
    }

    @Test func everyPowerOfTwoAlignmentIsAccepted() {
        for shift in UInt64(0)...63 {
            var a = space(base: 0, size: .max)
            let got = expectSuccess(on: &a) { a throws(AllocatorError) in
                try a.allocate(size: 1, alignment: 1 << shift, policy: .lastMatch)
            }
            // The highest 1-byte slot aligned to 2^shift below UInt64.max - 1.
            let expected = (UInt64.max - 1) & ~((UInt64(1) << shift) - 1)
            #expect(got == r(expected, expected), "alignment 2^\(shift)")
        }
    }

    @Test func exactMatchAddressNotMultipleOfAlignmentIsUnaligned() {
        let a = space(base: 0x1000, size: 0x10000)
        expectFailure(.unalignedAddress, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 0x1000, alignment: 0x1000, policy: .exactMatch(0x1800))
        }
        // Argument checks come before any lookup: an address outside the space, or a size
        // that would overflow, still reports the misalignment.
        expectFailure(.unalignedAddress, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 0x10, alignment: 0x10, policy: .exactMatch(0x3))
        }
        expectFailure(.unalignedAddress, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: .max, alignment: 2, policy: .exactMatch(.max))
        }
    }

    @Test func invalidAlignmentComesBeforeUnalignedAddress() {
        let a = space(base: 0, size: 0x1000)
        expectFailure(.invalidAlignment, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 1, alignment: 3, policy: .exactMatch(1))
        }
        expectFailure(.invalidAlignment, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 1, alignment: 0, policy: .exactMatch(1))
        }
    }

    // MARK: allocate resource errors

    @Test func requestLargerThanSpaceIsNotAvailable() {
        let a = space(base: 0x1000, size: 0x1000)
        for policy: AllocPolicy in [.firstMatch, .lastMatch, .exactMatch(0x1000)] {
            expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
                _ = try a.allocate(size: 0x1001, alignment: 1, policy: policy)
            }
        }
    }

    @Test func hugeSizesDoNotTrap() {
        let a = space(base: 0x1000, size: 0x1000)
        for policy: AllocPolicy in [.firstMatch, .lastMatch] {
            expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
                _ = try a.allocate(size: .max, alignment: 1, policy: policy)
            }
            expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
                _ = try a.allocate(size: .max, alignment: 1 << 63, policy: policy)
            }
        }
    }

    @Test func exactMatchOutsideAnyFreeBlockIsNotAvailable() {
        var a = space(base: 0x1000, size: 0x1000)
        // Below and above the space.
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 1, alignment: 1, policy: .exactMatch(0xfff))
        }
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 1, alignment: 1, policy: .exactMatch(0x2000))
        }
        // Inside a live allocation.
        expectSuccess(on: &a) { a throws(AllocatorError) in
            try a.allocate(size: 0x100, alignment: 1, policy: .exactMatch(0x1400))
        }
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 1, alignment: 1, policy: .exactMatch(0x1480))
        }
    }

    @Test func exactMatchOutsideSpaceIsNotAvailableEvenIfItWouldOverflow() {
        // "Not inside a free block" is checked before the overflow of a+size-1.
        let a = space(base: 0x1000, size: 0x1000)
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: .max, alignment: 1, policy: .exactMatch(.max))
        }
    }

    @Test func exactMatchInsideFreeBlockThatOverflowsIsOverflow() {
        let a = space(base: .max - 0xfff, size: 0x1000)
        expectFailure(.overflow, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 2, alignment: 1, policy: .exactMatch(.max))
        }
        expectFailure(.overflow, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 0x1001, alignment: 0x1000, policy: .exactMatch(.max - 0xfff))
        }
        // Even a low free block reports overflow when the arithmetic overflows.
        let low = space(base: 0, size: 0x1000)
        expectFailure(.overflow, on: low) { a throws(AllocatorError) in
            _ = try a.allocate(size: .max, alignment: 1, policy: .exactMatch(0x10))
        }
    }

    @Test func exactMatchRunningPastItsFreeBlockIsNotAvailable() {
        var a = space(base: 0, size: 0x10000)
        expectSuccess(on: &a) { a throws(AllocatorError) in
            try a.allocate(size: 0x1000, alignment: 1, policy: .exactMatch(0x4000))
        }
        // Starts in [0, 0x3fff] but runs into the allocation.
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 0x1001, alignment: 1, policy: .exactMatch(0x3000))
        }
        // Starts in the last free block but runs past the end of the space.
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 0x11, alignment: 1, policy: .exactMatch(0xfff0))
        }
        // Spans a live allocation entirely.
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 0x3000, alignment: 0x1000, policy: .exactMatch(0x3000))
        }
    }

    @Test func fragmentedSpaceWithEnoughTotalFreeIsStillNotAvailable() {
        var a = space(base: 0, size: 0x3000)
        expectSuccess(on: &a) { a throws(AllocatorError) in
            try a.allocate(size: 0x1000, alignment: 1, policy: .exactMatch(0x1000))
        }
        // 0x2000 bytes are free, but in two blocks of 0x1000.
        for policy: AllocPolicy in [.firstMatch, .lastMatch, .exactMatch(0)] {
            expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
                _ = try a.allocate(size: 0x1001, alignment: 1, policy: policy)
            }
        }
    }

    @Test func alignmentCanMakeAFreeBlockUnusable() {
        var a = space(base: 0x10, size: 0x30)  // [0x10, 0x3f]
        expectSuccess(on: &a) { a throws(AllocatorError) in
            try a.allocate(size: 0x20, alignment: 1, policy: .exactMatch(0x20))  // leaves [0x10,0x1f]
        }
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 1, alignment: 0x40, policy: .firstMatch)
        }
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
            _ = try a.allocate(size: 1, alignment: 0x40, policy: .lastMatch)
        }
    }

    @Test func fullAllocatorRejectsEverything() {
        var a = space(base: 0x1000, size: 0x100)
        expectSuccess(on: &a) { a throws(AllocatorError) in
            try a.allocate(size: 0x100, alignment: 1, policy: .firstMatch)
        }
        #expect(a.freeRanges.isEmpty)
        #expect(a.largestFreeRange == nil)
        for policy: AllocPolicy in [.firstMatch, .lastMatch, .exactMatch(0x1000), .exactMatch(0x10ff)] {
            expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
                _ = try a.allocate(size: 1, alignment: 1, policy: policy)
            }
        }
    }

    // MARK: free

    @Test func freeingAnythingButAnExactLiveAllocationIsNotAvailable() {
        var a = space(base: 0x1000, size: 0x10000)
        expectSuccess(on: &a) { a throws(AllocatorError) in
            try a.allocate(size: 0x100, alignment: 1, policy: .exactMatch(0x2000))
        }
        expectSuccess(on: &a) { a throws(AllocatorError) in
            try a.allocate(size: 0x100, alignment: 1, policy: .exactMatch(0x2100))
        }
        let notLive: [RangeInclusive] = [
            r(0x2000, 0x20fe),  // strict prefix
            r(0x2001, 0x20ff),  // strict suffix
            r(0x2010, 0x2020),  // interior
            r(0x1fff, 0x20ff),  // superset reaching into free space
            r(0x2000, 0x21ff),  // union of two neighbours
            r(0x2080, 0x217f),  // straddles two neighbours
            r(0x3000, 0x30ff),  // free space
            r(0x1000, 0x10ff0),  // the whole space
            r(0, 0xff),  // below the space
            r(.max - 1, .max),  // far above the space
        ]
        for range in notLive {
            expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in try a.free(range) }
        }
    }

    @Test func doubleFreeIsNotAvailable() {
        var a = space(base: 0, size: 0x1000)
        let got = expectSuccess(on: &a) { a throws(AllocatorError) in
            try a.allocate(size: 0x10, alignment: 1, policy: .firstMatch)
        }
        guard let got else { return }
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.free(got) }
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in try a.free(got) }
    }

    @Test func freeOnFreshAllocatorIsNotAvailable() {
        let a = space(base: 0, size: 0x1000)
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in try a.free(r(0, 0xfff)) }
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in try a.free(r(0, 0)) }
    }

    @Test func everyErrorDescribesItselfOnOneLine() {
        let all: [AllocatorError] = [
            .overflow, .underflow, .resourceNotAvailable, .invalidAlignment, .unalignedAddress,
            .outOfRange(7), .alreadyReleased(7), .neverAllocated(7), .alreadyAllocated(7),
            .invalidRange(5, 4), .invalidSize(0),
        ]
        let texts = all.map { String(describing: $0) }
        for text in texts {
            #expect(!text.isEmpty && !text.contains("\n"), "\(text)")
        }
        #expect(Set(texts).count == all.count, "descriptions must tell the errors apart")
        #expect(Set(all).count == all.count)
    }
}
