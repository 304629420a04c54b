import Testing
@testable import VMAllocator

@Suite("Value semantics, snapshots and rollback")
struct ValueSemanticsTests {
    @Test func mutatingACopyLeavesTheOriginalUntouched() throws {
        var original = space(base: 0, size: 0x100000)
        for _ in 0..<50 { _ = try original.allocate(size: 0x1000, alignment: 0x1000) }
        let before = original.allocations
        var copy = original
        _ = try copy.allocate(size: 0x10, alignment: 1, policy: .lastMatch)
        try copy.free(before[10])
        #expect(original.allocations == before)
        #expect(original.checkInvariants() == nil)
        #expect(copy.checkInvariants() == nil)
        #expect(copy.allocations.count == before.count)
        #expect(copy != original)
        // And the other way round: mutating the original leaves the copy alone.
        let copyState = copy.allocations
        try original.free(before[0])
        #expect(copy.allocations == copyState)
    }

    @Test func snapshotAndRollbackRestoresExactBehaviour() throws {
        var vmm = space(base: 0x1_0000_0000, size: 1 << 32)
        for _ in 0..<20 { _ = try vmm.allocate(size: 0x2000, alignment: 0x1000) }
        let snapshot = vmm
        // A device hot-plug that fails half-way must roll back completely.
        let probe1 = try vmm.allocate(size: 0x3000, alignment: 0x1000, policy: .lastMatch)
        try vmm.free(vmm.allocations[3])
        let probe2 = try vmm.allocate(size: 0x1000, alignment: 0x1000)
        vmm = snapshot
        #expect(vmm == snapshot)
        #expect(vmm.checkInvariants() == nil)
        #expect(vmm.allocations.count == 20)
        // Replaying the same operations from the snapshot gives the same results.
        #expect(try vmm.allocate(size: 0x3000, alignment: 0x1000, policy: .lastMatch) == probe1)
        try vmm.free(vmm.allocations[3])
        #expect(try vmm.allocate(size: 0x1000, alignment: 0x1000) == probe2)
        #expect(snapshot.allocations.count == 20)
    }

    @Test func manySnapshotsStayIndependent() throws {
        var rng = SplitMix64(fixedSeed: 0x5A9)
        print("ValueSemanticsTests.manySnapshotsStayIndependent seed 0x5a9")
        var a = space(base: 0, size: 1 << 20)
        var snapshots: [(AddressAllocator, [RangeInclusive], [RangeInclusive])] = []
        for step in 0..<300 {
            snapshots.append((a, a.allocations, a.freeRanges))
            if a.allocations.isEmpty || rng.chance(60) {
                _ = try? a.allocate(size: rng.uint64(in: 1...0x4000), alignment: 1 << rng.uint64(in: 0...12),
                                    policy: rng.chance(50) ? .firstMatch : .lastMatch)
            } else {
                try a.free(rng.pick(a.allocations))
            }
            #expect(a.checkInvariants() == nil, "step \(step)")
        }
        for (i, (snap, allocations, free)) in snapshots.enumerated() {
            #expect(snap.allocations == allocations, "snapshot \(i)")
            #expect(snap.freeRanges == free, "snapshot \(i)")
            #expect(snap.checkInvariants() == nil, "snapshot \(i)")
        }
    }

    @Test func failedCallOnASharedCopyDoesNotDisturbEither() throws {
        var a = space(base: 0, size: 0x10000)
        _ = try a.allocate(size: 0x100, alignment: 1)
        let shared = a
        #expect(throws: AllocatorError.resourceNotAvailable) { try a.free(r(0x500, 0x5ff)) }
        #expect(throws: AllocatorError.resourceNotAvailable) {
            try a.allocate(size: 0x10000, alignment: 1)
        }
        #expect(a == shared)
        #expect(a.allocations == [r(0, 0xff)])
        #expect(shared.checkInvariants() == nil)
    }

    @Test func equalAddressStatesReachedDifferentlyAreEqualAndHashEqually() throws {
        var x = space(base: 0, size: 0x10000)
        var y = space(base: 0, size: 0x10000)
        for i: UInt64 in 0..<16 { _ = try x.allocate(size: 0x100, alignment: 1, policy: .exactMatch(i * 0x1000)) }
        for i: UInt64 in (0..<16).reversed() {
            _ = try y.allocate(size: 0x100, alignment: 1, policy: .exactMatch(i * 0x1000))
        }
        _ = try y.allocate(size: 0x500, alignment: 1, policy: .exactMatch(0x8100))
        try y.free(r(0x8100, 0x85ff))
        // Shape of any internal tree differs; the observable state does not.
        #expect(x == y)
        #expect(x.hashValue == y.hashValue)
        #expect(x != space(base: 0, size: 0x10001))
        #expect(space(base: 0, size: 0x10) != space(base: 1, size: 0x10))
    }

    @Test func idAllocatorSnapshotAndRollback() throws {
        var a = ids(0, 1000)
        for _ in 0..<100 { _ = try a.allocateID() }
        try a.freeID(50)
        let snapshot = a
        #expect(try a.allocateID() == 50)
        try a.allocate(id: 500)
        try a.freeID(7)
        a = snapshot
        #expect(a == snapshot)
        #expect(!a.isAllocated(50) && a.isAllocated(7) && !a.isAllocated(500))
        #expect(throws: AllocatorError.alreadyReleased(50)) { try a.freeID(50) }
        #expect(throws: AllocatorError.neverAllocated(500)) { try a.freeID(500) }
        #expect(try a.allocateID() == 50)
        #expect(snapshot.checkInvariants() == nil && a.checkInvariants() == nil)
    }

    @Test func idAllocatorCopiesAreIndependent() throws {
        var a = ids(0, .max)
        for _ in 0..<64 { _ = try a.allocateID() }
        var b = a
        try b.freeID(10)
        try a.freeID(20)
        #expect(a.isAllocated(10) && !a.isAllocated(20))
        #expect(!b.isAllocated(10) && b.isAllocated(20))
        #expect(try a.allocateID() == 20)
        #expect(try b.allocateID() == 10)
    }

    /// Copies sent to concurrent tasks share storage until each first mutates; every task
    /// must see exactly what a sequential run from the same snapshot sees.
    @Test func copiesMutatedConcurrentlyStayIndependent() async throws {
        var shared = space(base: 0, size: 1 << 32)
        for _ in 0..<200 { _ = try shared.allocate(size: 0x1000, alignment: 0x1000) }
        let snapshot = shared
        @Sendable func workload(_ seed: UInt64, _ start: AddressAllocator) -> [RangeInclusive] {
            var rng = SplitMix64(fixedSeed: seed)
            var a = start
            for _ in 0..<300 {
                if rng.chance(50), let victim = a.allocations.randomElement(using: &rng) {
                    try? a.free(victim)
                } else {
                    _ = try? a.allocate(size: rng.uint64(in: 1...0x3000), alignment: 0x1000,
                                        policy: rng.chance(50) ? .firstMatch : .lastMatch)
                }
            }
            return a.allocations
        }
        let seeds: [UInt64] = [1, 2, 3, 4, 5, 6]
        print("ValueSemanticsTests.copiesMutatedConcurrentlyStayIndependent seeds \(seeds)")
        let concurrent = await withTaskGroup(of: (UInt64, [RangeInclusive]).self) { group in
            for seed in seeds { group.addTask { (seed, workload(seed, snapshot)) } }
            var results: [UInt64: [RangeInclusive]] = [:]
            for await (seed, allocations) in group { results[seed] = allocations }
            return results
        }
        for seed in seeds {
            #expect(concurrent[seed] == workload(seed, snapshot), "seed \(seed)")
        }
        #expect(snapshot == shared)
        #expect(snapshot.allocations.count == 200)
        #expect(snapshot.checkInvariants() == nil)
    }
}
