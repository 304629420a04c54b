import Foundation
import Testing
@testable import VMAllocator

/// One test per behaviour where rust-vmm vm-allocator v0.1.4 is buggy and this library
/// deliberately differs (the README's "Differences from rust-vmm" table).
@Suite("Differences from rust-vmm vm-allocator")
struct RustVMMDifferenceTests {
    @Test func exactMatchOverAllocatedSpaceIsRejectedNotDoubleAllocated() throws {
        var a = space(base: 0x1000, size: 0x10000)
        let first = try a.allocate(size: 0x2000, alignment: 0x1000, policy: .exactMatch(0x4000))
        #expect(first == r(0x4000, 0x5fff))
        // Same start, inside, and a range that starts free but runs over the allocation.
        for (size, at): (UInt64, UInt64) in [(0x2000, 0x4000), (0x1000, 0x5000), (0x2000, 0x3000), (1, 0x5fff)] {
            expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in
                _ = try a.allocate(size: size, alignment: 1, policy: .exactMatch(at))
            }
        }
        #expect(a.allocations == [r(0x4000, 0x5fff)])
    }

    @Test func exactMatchAtTheLastAddressOfAFreeBlockWorks() throws {
        var a = space(base: 0, size: 0x1000)
        _ = try a.allocate(size: 0x100, alignment: 1, policy: .exactMatch(0x800))
        // Last address of the lower free block [0, 0x7ff] and of the upper one [0x900, 0xfff].
        #expect(try a.allocate(size: 1, alignment: 1, policy: .exactMatch(0x7ff)) == r(0x7ff, 0x7ff))
        #expect(try a.allocate(size: 1, alignment: 1, policy: .exactMatch(0xfff)) == r(0xfff, 0xfff))
        var top = space(base: .max - 0xf, size: 0x10)
        #expect(try top.allocate(size: 1, alignment: 1, policy: .exactMatch(.max)) == r(.max, .max))
        #expect(a.checkInvariants() == nil && top.checkInvariants() == nil)
    }

    @Test func oneByteFreeNeighboursAreMerged() throws {
        var a = space(base: 0x100, size: 4)
        var bytes: [RangeInclusive] = []
        for _ in 0..<4 { bytes.append(try a.allocate(size: 1, alignment: 1)) }
        #expect(bytes == [r(0x100, 0x100), r(0x101, 0x101), r(0x102, 0x102), r(0x103, 0x103)])
        try a.free(bytes[1])
        try a.free(bytes[2])
        #expect(a.freeRanges == [r(0x101, 0x102)])
        try a.free(bytes[0])
        try a.free(bytes[3])
        #expect(a.freeRanges == [r(0x100, 0x103)])
        // A merged 4-byte block can serve a 4-byte request again.
        #expect(try a.allocate(size: 4, alignment: 4) == r(0x100, 0x103))
        #expect(a.checkInvariants() == nil)
    }

    @Test func freeingARangeStartingAtOneIsNotLost() throws {
        var a = space(base: 0, size: 0x1000)
        let one = try a.allocate(size: 0x10, alignment: 1, policy: .exactMatch(1))
        #expect(one == r(1, 0x10))
        try a.free(one)
        #expect(a.freeRanges == [r(0, 0xfff)])
        #expect(a.allocatedSize == 0)
        #expect(try a.allocate(size: 0x1000, alignment: 1) == r(0, 0xfff))
    }

    @Test func freeingARangeEndingAtMaxMinusOneIsNotLost() throws {
        var a = space(base: .max - 0xff, size: 0x100)
        let below = try a.allocate(size: 0x10, alignment: 1, policy: .exactMatch(.max - 0x10))
        #expect(below == r(.max - 0x10, .max - 1))
        try a.free(below)
        #expect(a.freeRanges == [r(.max - 0xff, .max)])
        #expect(try a.allocate(size: 0x100, alignment: 1) == r(.max - 0xff, .max))
    }

    @Test func freeingAFreeBlockIsRejected() {
        var a = space(base: 0, size: 0x3000)
        _ = try? a.allocate(size: 0x1000, alignment: 1, policy: .exactMatch(0x1000))
        #expect(a.freeRanges == [r(0, 0xfff), r(0x2000, 0x2fff)])
        for block in a.freeRanges {
            expectFailure(.resourceNotAvailable, on: a) { a throws(AllocatorError) in try a.free(block) }
        }
    }

    @Test func anAllocationCanEndAtUInt64Max() throws {
        for policy: AllocPolicy in [.firstMatch, .lastMatch, .exactMatch(.max - 0xfff)] {
            var a = space(base: .max - 0xfff, size: 0x1000)
            #expect(try a.allocate(size: 0x1000, alignment: 0x1000, policy: policy) == r(.max - 0xfff, .max))
            try a.free(r(.max - 0xfff, .max))
            #expect(a.freeRanges == [r(.max - 0xfff, .max)])
        }
    }

    @Test func lastMatchOfAWholeFreeBlockStartingAtZeroWorks() throws {
        var a = space(base: 0, size: 0x1000)
        #expect(try a.allocate(size: 0x1000, alignment: 0x1000, policy: .lastMatch) == r(0, 0xfff))
        var b = space(base: 0, size: 0x3000)
        _ = try b.allocate(size: 0x1000, alignment: 1, policy: .exactMatch(0x2000))
        _ = try b.allocate(size: 0x1000, alignment: 1, policy: .exactMatch(0x1000))
        #expect(try b.allocate(size: 0x1000, alignment: 1, policy: .lastMatch) == r(0, 0xfff))
    }

    @Test func exhaustedIdAllocatorEndingAtUInt32MaxSaysResourceNotAvailable() throws {
        var pair = ids(.max - 1, .max)
        #expect(try pair.allocateID() == .max - 1)
        #expect(try pair.allocateID() == .max)
        expectFailure(.resourceNotAvailable, on: pair) { ids throws(AllocatorError) in _ = try ids.allocateID() }
        var single = ids(.max, .max)
        #expect(try single.allocateID() == .max)
        expectFailure(.resourceNotAvailable, on: single) { ids throws(AllocatorError) in _ = try ids.allocateID() }
    }

    @Test func freedIDStateDoesNotGrowWithTheNumberOfFreedIDs() throws {
        // Memory must be proportional to runs of free IDs; the snapshot is a faithful proxy.
        let count: UInt32 = 20_000
        var small = ids(0, .max)
        for _ in 0..<count { _ = try small.allocateID() }
        var big = small
        try small.freeID(7)
        var order = Array(0..<count)
        print("RustVMMDifferenceTests.freedIDStateDoesNotGrowWithTheNumberOfFreedIDs shuffle seed 0xf4ee")
        var rng = SplitMix64(fixedSeed: 0xF4EE)
        order.shuffle(using: &rng)
        for id in order { try big.freeID(id) }
        let oneFreed = try JSONEncoder().encode(small).count
        let allFreed = try JSONEncoder().encode(big).count
        #expect(allFreed <= 4 * max(oneFreed, 256), "\(count) freed IDs encode to \(allFreed) bytes")
        // Every ID was handed out and released: the state must still remember that.
        #expect(throws: AllocatorError.alreadyReleased(123)) { try big.freeID(123) }
        #expect(throws: AllocatorError.neverAllocated(count)) { try big.freeID(count) }
        #expect(try big.allocateID() == 0)
    }

    @Test func decodingACorruptedSnapshotThrowsInsteadOfCrashing() throws {
        // Two live allocations rewritten to overlap: detailed variants live in CodableTests.
        var a = space(base: 0, size: 0x10000)
        _ = try a.allocate(size: 0x100, alignment: 1, policy: .exactMatch(0x1000))
        _ = try a.allocate(size: 0x100, alignment: 1, policy: .exactMatch(0x2000))
        let json = String(decoding: try JSONEncoder().encode(a), as: UTF8.self)
        #expect(json.contains("\(0x2000)"), "snapshot format unexpected: \(json)")
        let corrupted = json.replacingOccurrences(of: "\(0x2000)", with: "\(0x1080)")
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(AddressAllocator.self, from: Data(corrupted.utf8))
        }
    }
}
