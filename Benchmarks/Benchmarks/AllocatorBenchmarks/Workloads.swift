import VMAllocator

/// The workloads of issue 2's "Benchmarks" section, written so that setup and the
/// measured phase are separate calls and every result is checked, not just timed.
enum Workload {
    /// The address space every address workload allocates in: [0, 2^48).
    static let spaceSize: UInt64 = 1 << 48
    static let small: UInt64 = 0x1000
    static let large: UInt64 = 0x2000

    static func makeAddressAllocator() throws(AllocatorError) -> AddressAllocator {
        try AddressAllocator(base: 0, size: spaceSize)
    }

    /// The i-th W1 range is known in advance (W1 packs from one end), so no array of
    /// ranges is needed: keeping one would distort the heap figures.
    static func w1Range(_ index: Int, _ policy: AllocPolicy) -> RangeInclusive {
        let start: UInt64
        if policy == .lastMatch {
            start = spaceSize - UInt64(index + 1) * small
        } else {
            start = UInt64(index) * small
        }
        // Both bounds are inside [0, 2^48), so this cannot throw.
        return try! RangeInclusive(start: start, end: start + small - 1)
    }

    /// W1: `n` allocations of 0x1000 aligned 0x1000.
    static func w1(_ allocator: inout AddressAllocator, n: Int, policy: AllocPolicy) throws {
        for index in 0..<n {
            let range = try allocator.allocate(size: small, alignment: small, policy: policy)
            guard range == w1Range(index, policy) else {
                throw BenchmarkFailure("W1 \(policy) #\(index): got \(range)")
            }
        }
    }

    /// W2: free every second W1 allocation, starting with the first, so every hole is
    /// exactly 0x1000 long (the last allocation, odd-numbered for even `n`, stays live and
    /// keeps the last hole apart from the free space beyond the W1 block).
    static func w2(_ allocator: inout AddressAllocator, n: Int, policy: AllocPolicy) throws {
        for index in stride(from: 0, to: n, by: 2) {
            try allocator.free(w1Range(index, policy))
        }
    }

    /// W3: `n / 2` allocations of 0x2000 aligned 0x1000; none fits a 0x1000 hole, so each
    /// one has to skip all of them and land beyond the W1 block.
    static func w3(_ allocator: inout AddressAllocator, n: Int, policy: AllocPolicy) throws {
        let w1Extent = UInt64(n) * small
        for index in 0..<(n / 2) {
            let range = try allocator.allocate(size: large, alignment: small, policy: policy)
            let skippedHoles = policy == .lastMatch
                ? range.end < spaceSize - w1Extent
                : range.start >= w1Extent
            guard skippedHoles else {
                throw BenchmarkFailure("W3 \(policy) #\(index): \(range) is inside the W1 block")
            }
        }
    }

    /// W4 over [0, UInt32.max]: `n` allocateID, `n` freeID (ascending), `n` allocateID.
    static func w4(_ allocator: inout IdAllocator, n: Int) throws {
        try allocateIDs(&allocator, n: n, phase: "W4 allocateID")
        try freeIDs(&allocator, n: n)
        try allocateIDs(&allocator, n: n, phase: "W4 reallocate")
    }

    /// `n` allocateID, which must return 0, 1, 2, … (the smallest free ID each time),
    /// whether IDs 0..<n are new or all released.
    static func allocateIDs(_ allocator: inout IdAllocator, n: Int, phase: String) throws {
        for expected in 0..<UInt32(n) {
            let id = try allocator.allocateID()
            guard id == expected else { throw BenchmarkFailure("\(phase): \(id) != \(expected)") }
        }
    }

    /// freeID of 0..<n, ascending.
    static func freeIDs(_ allocator: inout IdAllocator, n: Int) throws {
        for id in 0..<UInt32(n) {
            try allocator.freeID(id)
        }
    }
}

/// A workload produced a result other than the one issue 2 specifies.
struct BenchmarkFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
