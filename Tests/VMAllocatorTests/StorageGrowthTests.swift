import Foundation
import Testing
@testable import VMAllocator

/// Large states, so that internal storage grows through several allocation steps, with
/// snapshots taken along the way that must stay intact while the original keeps changing.
@Suite("Storage growth and copy-on-write at scale")
struct StorageGrowthTests {
    static let page: UInt64 = 0x1000

    /// Every allocation leaves a one-page hole after it, so each adds two tree segments.
    private static func expected(_ i: UInt64) -> RangeInclusive { r(2 * i * page, 2 * i * page + page - 1) }

    @Test func addressSnapshotsSurviveGrowthAndLaterMutation() throws {
        let total: UInt64 = 5_200
        var a = try AddressAllocator(base: 0, size: 1 << 40)
        var snapshots: [(count: UInt64, allocator: AddressAllocator)] = []
        for i in 0..<total {
            // exactMatch keeps this O(log n): a firstMatch search would have to pass over
            // every one-page hole (the documented degenerate case for aligned requests).
            let got = try a.allocate(size: Self.page, alignment: 2 * Self.page, policy: .exactMatch(2 * i * Self.page))
            if got != Self.expected(i) {
                Issue.record("allocation \(i) is \(got), expected \(Self.expected(i))")
                return
            }
            if i.isMultiple(of: 512) || [1_023, 1_024, 2_047, 2_048, 4_095, 4_096].contains(i) {
                snapshots.append((i + 1, a))
            }
        }
        #expect(a.checkInvariants() == nil)
        // Shrink the original again, in an order that touches every part of the tree.
        for i in stride(from: total - 1, through: 0, by: -3) { try a.free(Self.expected(i)) }
        for i in stride(from: 0, to: total, by: 7) where (total - 1 - i) % 3 != 0 {
            try a.free(Self.expected(i))
        }
        #expect(a.checkInvariants() == nil)
        for (count, snap) in snapshots {
            #expect(snap.checkInvariants() == nil, "snapshot of \(count)")
            let allocations = snap.allocations
            #expect(allocations.count == Int(count), "snapshot of \(count)")
            #expect(allocations.first == Self.expected(0))
            #expect(allocations.last == Self.expected(count - 1), "snapshot of \(count)")
            #expect(snap.allocation(containing: (count - 1) * 2 * Self.page + 1) == Self.expected(count - 1))
            #expect(snap.allocation(containing: count * 2 * Self.page) == nil)
        }
        // The largest snapshot still allocates exactly where it would have.
        var last = snapshots[snapshots.count - 1].allocator
        let n = snapshots[snapshots.count - 1].count
        #expect(try last.allocate(size: Self.page, alignment: 2 * Self.page) == Self.expected(n))
        #expect(try last.allocate(size: Self.page, alignment: 1) == r((2 * 0 + 1) * Self.page, 2 * Self.page - 1))
    }

    @Test func largeAddressStateRoundTripsThroughCodable() throws {
        var a = try AddressAllocator(base: 0x1000, size: 1 << 40)
        for _ in 0..<5_000 { _ = try a.allocate(size: Self.page, alignment: Self.page, policy: .lastMatch) }
        for (i, range) in a.allocations.enumerated() where i % 3 == 0 { try a.free(range) }
        let decoded = try JSONDecoder().decode(AddressAllocator.self, from: JSONEncoder().encode(a))
        #expect(decoded == a)
        #expect(decoded.checkInvariants() == nil)
        var x = a
        var y = decoded
        for _ in 0..<100 {
            #expect(try x.allocate(size: 0x800, alignment: 0x800) == y.allocate(size: 0x800, alignment: 0x800))
        }
        let victims = x.allocations.enumerated().filter { $0.offset % 5 == 0 }.map(\.element)
        for v in victims {
            try x.free(v)
            try y.free(v)
        }
        #expect(x == y)
        #expect(y.checkInvariants() == nil)
    }

    @Test func idSnapshotsSurviveGrowthOfFreeRuns() throws {
        // Freeing every second ID creates one released run per freed ID.
        let n: UInt32 = 20_000
        var a = try IdAllocator(rangeBase: 0, rangeEnd: .max)
        for _ in 0..<n { _ = try a.allocateID() }
        var snapshots: [(freed: UInt32, allocator: IdAllocator)] = []
        for i in stride(from: UInt32(0), to: n, by: 2) {
            try a.freeID(i)
            if (i / 2).isMultiple(of: 1_024) { snapshots.append((i / 2 + 1, a)) }
        }
        #expect(a.checkInvariants() == nil)
        let full = a
        for _ in 0..<n / 2 { _ = try a.allocateID() }
        #expect(try a.allocateID() == n)
        for (freed, snap) in snapshots {
            #expect(snap.checkInvariants() == nil, "snapshot with \(freed) freed")
            let lastFreed = 2 * (freed - 1)
            #expect(!snap.isAllocated(lastFreed), "snapshot with \(freed) freed")
            #expect(snap.isAllocated(lastFreed + 1))
            #expect(lastFreed + 2 >= n || snap.isAllocated(lastFreed + 2), "snapshot with \(freed) freed")
            var copy = snap
            #expect(try copy.allocateID() == 0)
        }
        #expect(full.checkInvariants() == nil)
        let decoded = try JSONDecoder().decode(IdAllocator.self, from: JSONEncoder().encode(full))
        #expect(decoded == full)
        #expect(decoded.checkInvariants() == nil)
    }
}
