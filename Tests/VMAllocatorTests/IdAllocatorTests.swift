import Testing
@testable import VMAllocator

@Suite("IdAllocator")
struct IdAllocatorTests {
    private func next(_ a: inout IdAllocator, sourceLocation: SourceLocation = #_sourceLocation) -> UInt32? {
        expectSuccess(on: &a, sourceLocation: sourceLocation) { a throws(AllocatorError) in try a.allocateID() }
    }

    private func free(_ a: inout IdAllocator, _ id: UInt32, sourceLocation: SourceLocation = #_sourceLocation) {
        let returned = expectSuccess(on: &a, sourceLocation: sourceLocation) { a throws(AllocatorError) in
            try a.freeID(id)
        }
        #expect(returned == id, "freeID returns the freed ID", sourceLocation: sourceLocation)
    }

    // MARK: init

    @Test func endBelowBaseIsInvalidRange() {
        #expect(throws: AllocatorError.invalidRange(5, 4)) { try IdAllocator(rangeBase: 5, rangeEnd: 4) }
        #expect(throws: AllocatorError.invalidRange(UInt64(UInt32.max), 0)) {
            try IdAllocator(rangeBase: .max, rangeEnd: 0)
        }
    }

    @Test func singleIdAndFullRangesAreAccepted() throws {
        let one = try IdAllocator(rangeBase: 7, rangeEnd: 7)
        #expect(one.rangeBase == 7 && one.rangeEnd == 7)
        let all = try IdAllocator(rangeBase: 0, rangeEnd: .max)
        #expect(all.rangeBase == 0 && all.rangeEnd == .max)
        #expect(!all.isAllocated(0) && !all.isAllocated(.max))
        #expect(all.checkInvariants() == nil)
    }

    // MARK: allocateID

    @Test func idsAreHandedOutInOrderFromTheBase() {
        var a = ids(100, 200)
        #expect((0..<5).map { _ in next(&a) } == [100, 101, 102, 103, 104])
        #expect(a.isAllocated(100) && a.isAllocated(104) && !a.isAllocated(105))
    }

    @Test func smallestReleasedIdIsReusedFirst() {
        var a = ids(1, 100)
        for _ in 0..<10 { _ = next(&a) }  // 1...10
        free(&a, 7)
        free(&a, 3)
        free(&a, 9)
        #expect(!a.isAllocated(3) && !a.isAllocated(7) && !a.isAllocated(9))
        #expect(next(&a) == 3)
        #expect(next(&a) == 7)
        #expect(next(&a) == 9)
        #expect(next(&a) == 11)
    }

    @Test func exhaustionIsResourceNotAvailableAndRecoverable() {
        var a = ids(10, 12)
        for _ in 0..<3 { _ = next(&a) }
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in _ = try a.allocateID() }
        free(&a, 11)
        #expect(next(&a) == 11)
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in _ = try a.allocateID() }
    }

    // MARK: freeID

    @Test func freeOutsideTheRangeIsOutOfRange() {
        var a = ids(10, 20)
        _ = next(&a)
        for id: UInt32 in [0, 9, 21, .max] {
            expectFailure(.outOfRange(id), on: a) { a throws(AllocatorError) in _ = try a.freeID(id) }
        }
    }

    @Test func freeOfAnIdNeverHandedOutIsNeverAllocated() {
        var a = ids(10, 20)
        expectFailure(.neverAllocated(10), on: a) { a throws(AllocatorError) in _ = try a.freeID(10) }
        _ = next(&a)
        _ = next(&a)
        for id: UInt32 in [12, 13, 20] {
            expectFailure(.neverAllocated(id), on: a) { a throws(AllocatorError) in _ = try a.freeID(id) }
        }
    }

    @Test func secondFreeIsAlreadyReleased() {
        var a = ids(0, 20)
        for _ in 0..<5 { _ = next(&a) }
        free(&a, 2)
        expectFailure(.alreadyReleased(2), on: a) { a throws(AllocatorError) in _ = try a.freeID(2) }
        // Still "released", not "never allocated", after its neighbours are released too.
        free(&a, 1)
        free(&a, 3)
        free(&a, 4)
        free(&a, 0)
        for id: UInt32 in 0...4 {
            expectFailure(.alreadyReleased(id), on: a) { a throws(AllocatorError) in _ = try a.freeID(id) }
        }
        expectFailure(.neverAllocated(5), on: a) { a throws(AllocatorError) in _ = try a.freeID(5) }
    }

    @Test func outOfRangeIsCheckedBeforeState() {
        let a = ids(5, 5)
        expectFailure(.outOfRange(4), on: a) { a throws(AllocatorError) in _ = try a.freeID(4) }
        expectFailure(.outOfRange(6), on: a) { a throws(AllocatorError) in _ = try a.freeID(6) }
        expectFailure(.outOfRange(6), on: a) { a throws(AllocatorError) in try a.allocate(id: 6) }
    }

    // MARK: allocate(id:)

    @Test func allocateSpecificIdChecks() {
        var a = ids(10, 20)
        expectFailure(.outOfRange(9), on: a) { a throws(AllocatorError) in try a.allocate(id: 9) }
        expectFailure(.outOfRange(21), on: a) { a throws(AllocatorError) in try a.allocate(id: 21) }
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.allocate(id: 15) }
        #expect(a.isAllocated(15))
        expectFailure(.alreadyAllocated(15), on: a) { a throws(AllocatorError) in try a.allocate(id: 15) }
        _ = next(&a)  // 10
        expectFailure(.alreadyAllocated(10), on: a) { a throws(AllocatorError) in try a.allocate(id: 10) }
    }

    @Test func allocateIdStillReturnsTheSmallestFreeIdAfterASkip() {
        var a = ids(0, 10)
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.allocate(id: 4) }
        #expect((0..<6).map { _ in next(&a) } == [0, 1, 2, 3, 5, 6])
    }

    @Test func idsSkippedByAllocateIdAreNeverAllocated() {
        var a = ids(0, 10)
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.allocate(id: 6) }
        for id: UInt32 in [0, 3, 5, 7, 10] {
            expectFailure(.neverAllocated(id), on: a) { a throws(AllocatorError) in _ = try a.freeID(id) }
        }
        free(&a, 6)
        expectFailure(.alreadyReleased(6), on: a) { a throws(AllocatorError) in _ = try a.freeID(6) }
        // Handing out 0...2 does not turn the still-skipped 3...5 into released IDs.
        for _ in 0..<3 { _ = next(&a) }
        expectFailure(.neverAllocated(4), on: a) { a throws(AllocatorError) in _ = try a.freeID(4) }
    }

    @Test func smallestFreeWinsEvenOverALargerReleasedId() {
        // 6 was handed out and released; 0 was never handed out but is smaller and free.
        var a = ids(0, 10)
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.allocate(id: 6) }
        free(&a, 6)
        #expect(next(&a) == 0)
    }

    @Test func aReleasedIdCanBeReservedAgain() {
        var a = ids(0, 10)
        for _ in 0..<3 { _ = next(&a) }
        free(&a, 1)
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.allocate(id: 1) }
        #expect(a.isAllocated(1))
        #expect(next(&a) == 3)
        free(&a, 1)
        expectFailure(.alreadyReleased(1), on: a) { a throws(AllocatorError) in _ = try a.freeID(1) }
    }

    @Test func reservingEveryIdExhaustsTheAllocator() {
        var a = ids(3, 6)
        for id: UInt32 in [6, 4, 3, 5] {
            expectSuccess(on: &a) { a throws(AllocatorError) in try a.allocate(id: id) }
        }
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in _ = try a.allocateID() }
    }

    @Test func isAllocatedOutsideTheRangeIsFalse() {
        var a = ids(1, 1)
        _ = next(&a)
        #expect(a.isAllocated(1))
        #expect(!a.isAllocated(0))
        #expect(!a.isAllocated(2))
        #expect(!a.isAllocated(.max))
    }

    // MARK: UInt32 edges

    @Test func idsAtUInt32Max() {
        var a = ids(.max - 2, .max)
        #expect(next(&a) == UInt32.max - 2)
        #expect(next(&a) == UInt32.max - 1)
        #expect(next(&a) == .max)
        #expect(a.isAllocated(.max))
        free(&a, .max)
        expectFailure(.alreadyReleased(.max), on: a) { a throws(AllocatorError) in _ = try a.freeID(.max) }
        #expect(next(&a) == .max)
        expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in _ = try a.allocateID() }
    }

    @Test func reservingUInt32MaxInTheFullRange() {
        var a = ids(0, .max)
        expectSuccess(on: &a) { a throws(AllocatorError) in try a.allocate(id: .max) }
        #expect(next(&a) == 0)
        expectFailure(.neverAllocated(.max - 1), on: a) { a throws(AllocatorError) in _ = try a.freeID(.max - 1) }
        expectFailure(.alreadyAllocated(.max), on: a) { a throws(AllocatorError) in try a.allocate(id: .max) }
        free(&a, .max)
        expectFailure(.alreadyReleased(.max), on: a) { a throws(AllocatorError) in _ = try a.freeID(.max) }
        #expect(next(&a) == 1)
    }

    @Test func idZeroInTheFullRange() {
        var a = ids(0, .max)
        #expect(next(&a) == 0)
        free(&a, 0)
        expectFailure(.alreadyReleased(0), on: a) { a throws(AllocatorError) in _ = try a.freeID(0) }
        #expect(next(&a) == 0)
    }

    @Test func fillingAFullRangeTopDownLeavesOnlyTheBottom() {
        // Reserve the top 1000 IDs explicitly, then hand out from the bottom.
        var a = ids(0, .max)
        for id in (UInt32.max - 999)...UInt32.max {
            expectSuccess(on: &a) { a throws(AllocatorError) in try a.allocate(id: id) }
        }
        #expect(next(&a) == 0)
        #expect(a.isAllocated(.max - 999) && !a.isAllocated(.max - 1000))
    }

    // MARK: value semantics basics

    @Test func equalStatesAreEqualAndHashEqually() {
        // Same live set and history reached in different orders.
        var x = ids(0, 10)
        var y = ids(0, 10)
        for _ in 0..<4 { _ = next(&x) }
        free(&x, 1)
        free(&x, 2)
        expectSuccess(on: &y) { a throws(AllocatorError) in try a.allocate(id: 3) }
        expectSuccess(on: &y) { a throws(AllocatorError) in try a.allocate(id: 2) }
        expectSuccess(on: &y) { a throws(AllocatorError) in try a.allocate(id: 1) }
        expectSuccess(on: &y) { a throws(AllocatorError) in try a.allocate(id: 0) }
        free(&y, 2)
        free(&y, 1)
        #expect(x == y)
        #expect(x.hashValue == y.hashValue)
        var z = x
        _ = next(&z)
        #expect(z != x)
    }
}
