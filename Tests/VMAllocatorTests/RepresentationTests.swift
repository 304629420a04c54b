import Foundation
import Testing
@testable import VMAllocator

/// The representation issue 11 introduced, seen from outside: the fresh-ID counter of
/// `IdAllocator` and the head (free space before the first allocation) of
/// `AddressAllocator`, each at the boundaries where a value moves between the counter or
/// head and the tree.
@Suite("Fresh IDs and the head of the address space")
struct RepresentationTests {
    @Test func debugBuildsCheckEveryMutation() {
        #if DEBUG
        #expect(invariantChecksAreCompiledIn)
        #endif
    }

    // MARK: IdAllocator: the fresh tail

    @Test func skippedIdsLeaveTheCounterAndAreHandedOutFirst() throws {
        var a = try IdAllocator(rangeBase: 10, rangeEnd: 20)
        #expect(try a.allocateID() == 10)
        try a.allocate(id: 15)                 // 11...14 stay free, never handed out
        #expect(a.freeCount == 10 - 1)
        #expect(try a.allocateID() == 11)
        #expect(throws: AllocatorError.neverAllocated(12)) { var b = a; try b.freeID(12) }
        #expect(throws: AllocatorError.neverAllocated(16)) { var b = a; try b.freeID(16) }
        for expected: UInt32 in [12, 13, 14, 16, 17, 18, 19, 20] {
            #expect(try a.allocateID() == expected)
        }
        #expect(a.freeCount == 0)
        #expect(throws: AllocatorError.resourceNotAvailable) { try a.allocateID() }
        #expect(a.checkInvariants() == nil)
    }

    @Test func reservingTheNextFreshIdKeepsTheCounterPath() throws {
        var a = try IdAllocator(rangeBase: 0, rangeEnd: 3)
        try a.allocate(id: 0)
        try a.allocate(id: 1)
        #expect(try a.allocateID() == 2)
        #expect(a == (try Self.decoded(#"{"rangeBase":0,"rangeEnd":3,"runs":[[3,3,0]]}"#)))
        try a.freeID(1)                       // released below the fresh tail
        #expect(try a.allocateID() == 1)
        #expect(try a.allocateID() == 3)
        #expect(throws: AllocatorError.resourceNotAvailable) { try a.allocateID() }
    }

    @Test func theFreshTailIsTheLastEncodedRunAndDecodesBackToTheCounter() throws {
        var a = try IdAllocator(rangeBase: 1, rangeEnd: 9)
        _ = try a.allocateID()
        _ = try a.allocateID()
        try a.freeID(1)
        try a.allocate(id: 5)
        let json = String(decoding: try JSONEncoder().encode(a), as: UTF8.self)
        #expect(json.contains(#""runs":[[1,1,1],[3,4,0],[6,9,0]]"#))
        let decoded = try Self.decoded(json)
        #expect(decoded == a && decoded.hashValue == a.hashValue)
        #expect(decoded.freeCount == a.freeCount && a.freeCount == 7)
        #expect(decoded.checkInvariants() == nil)
        var copy = decoded
        #expect(try copy.allocateID() == 1)
        #expect(try copy.allocateID() == 3)
    }

    @Test func aRangeEndingAtUInt32MaxRunsOutCleanly() throws {
        var a = try IdAllocator(rangeBase: .max - 1, rangeEnd: .max)
        #expect(try a.allocateID() == .max - 1)
        #expect(try a.allocateID() == .max)
        #expect(throws: AllocatorError.resourceNotAvailable) { try a.allocateID() }
        try a.freeID(.max)
        #expect(try a.allocateID() == .max)
        #expect(a.checkInvariants() == nil)
    }

    // MARK: AddressAllocator: the head

    @Test func lastMatchFillsTheHeadFromTheTopAndLeavesAlignmentSliversAsGaps() throws {
        var a = try AddressAllocator(base: 0x1000, size: 0x10000)  // [0x1000, 0x10FFF]
        #expect(try a.allocate(size: 0x1000, alignment: 0x1000, policy: .lastMatch) == r(0x10000, 0x10FFF))
        // 0x800 aligned to 0x1000 below 0x10000: [0xF000, 0xF7FF], leaving [0xF800, 0xFFFF] free.
        #expect(try a.allocate(size: 0x800, alignment: 0x1000, policy: .lastMatch) == r(0xF000, 0xF7FF))
        #expect(a.freeRanges == [r(0x1000, 0xEFFF), r(0xF800, 0xFFFF)])
        // The sliver is the highest fit for a small request.
        #expect(try a.allocate(size: 0x100, alignment: 0x100, policy: .lastMatch) == r(0xFF00, 0xFFFF))
        #expect(a.checkInvariants() == nil)
    }

    @Test func firstMatchAndExactMatchUseTheHeadBelowTheFirstAllocation() throws {
        var a = try AddressAllocator(base: 0, size: 0x10000)
        _ = try a.allocate(size: 0x1000, alignment: 1, policy: .exactMatch(0x8000))
        #expect(a.largestFreeRange == r(0, 0x7FFF))  // ties go to the lower block
        #expect(try a.allocate(size: 0x100, alignment: 0x100, policy: .firstMatch) == r(0, 0xFF))
        #expect(try a.allocate(size: 0x100, alignment: 1, policy: .exactMatch(0x7F00)) == r(0x7F00, 0x7FFF))
        #expect(a.freeRanges == [r(0x100, 0x7EFF), r(0x9000, 0xFFFF)])
        #expect(a.allocation(containing: 0x7F80) == r(0x7F00, 0x7FFF))
        #expect(a.checkInvariants() == nil)
    }

    @Test func freeingTheFirstAllocationGivesItsSpaceAndTheNextGapToTheHead() throws {
        var a = try AddressAllocator(base: 0, size: 0x10000)
        let first = try a.allocate(size: 0x1000, alignment: 1, policy: .exactMatch(0x2000))
        let second = try a.allocate(size: 0x1000, alignment: 1, policy: .exactMatch(0x5000))
        try a.free(first)
        #expect(a.freeRanges == [r(0, 0x4FFF), r(0x6000, 0xFFFF)])
        #expect(try a.allocate(size: 0x3000, alignment: 0x1000, policy: .lastMatch) == r(0xD000, 0xFFFF))
        #expect(try a.allocate(size: 0x5000, alignment: 0x1000, policy: .firstMatch) == r(0, 0x4FFF))
        try a.free(second)
        #expect(a.freeRanges == [r(0x5000, 0xCFFF)])
        try a.free(r(0, 0x4FFF))
        try a.free(r(0xD000, 0xFFFF))
        #expect(a == (try AddressAllocator(base: 0, size: 0x10000)))
        #expect(a.freeRanges == [r(0, 0xFFFF)] && a.checkInvariants() == nil)
    }

    private static func decoded(_ json: String) throws -> IdAllocator {
        try JSONDecoder().decode(IdAllocator.self, from: Data(json.utf8))
    }
}
