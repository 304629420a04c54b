extension AddressAllocator: Hashable {
    /// Equal when both manage the same space and hold the same live allocations, whatever
    /// the shape of their trees.
    ///
    /// - Complexity: O(n).
    public static func == (lhs: AddressAllocator, rhs: AddressAllocator) -> Bool {
        guard lhs.base == rhs.base, lhs.end == rhs.end else { return false }
        if lhs.nodes.isIdentical(to: rhs.nodes) { return true }
        return lhs.allocatedSize == rhs.allocatedSize && lhs.allocationCount == rhs.allocationCount
            && lhs.allocations == rhs.allocations
    }

    /// Hashes the managed space and the live allocations.
    ///
    /// - Complexity: O(n).
    public func hash(into hasher: inout Hasher) {
        hasher.combine(base)
        hasher.combine(end)
        hasher.combine(allocationCount)
        nodes.forEachInOrder { node, _ in
            hasher.combine(node.start)
            hasher.combine(node.end)
        }
    }
}

extension AddressAllocator: Codable {
    private enum CodingKeys: String, CodingKey {
        case base, end, allocations
    }

    /// Decodes the format described on ``AddressAllocator``, validating it fully.
    ///
    /// - Throws: `DecodingError.dataCorrupted` for any state the allocator could not reach.
    /// - Complexity: O(n).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let base = try container.decode(UInt64.self, forKey: .base)
        let end = try container.decode(UInt64.self, forKey: .end)
        let pairs = try container.decode([[UInt64]].self, forKey: .allocations)
        func corrupted(_ reason: String) -> DecodingError {
            DecodingError.dataCorruptedError(forKey: .allocations, in: container, debugDescription: reason)
        }
        guard base <= end, !(base == 0 && end == .max) else {
            throw DecodingError.dataCorruptedError(
                forKey: .end, in: container,
                debugDescription: "invalid managed space [\(hex(base)), \(hex(end))]")
        }
        var allocations: [RangeInclusive] = []
        allocations.reserveCapacity(pairs.count)
        var previousEnd: UInt64?
        for (index, pair) in pairs.enumerated() {
            guard pair.count == 2 else {
                throw corrupted("allocation \(index) has \(pair.count) bounds, expected 2")
            }
            let (start, last) = (pair[0], pair[1])
            guard start <= last else {
                throw corrupted("allocation \(index) [\(hex(start)), \(hex(last))] is inverted")
            }
            guard base <= start, last <= end else {
                throw corrupted("allocation \(index) [\(hex(start)), \(hex(last))] is outside the managed space")
            }
            if let previousEnd, start <= previousEnd {
                throw corrupted("allocation \(index) overlaps or precedes the one before it")
            }
            previousEnd = last
            allocations.append(RangeInclusive(validatedStart: start, end: last))
        }
        self.init(base: base, end: end, allocations: allocations)
    }

    /// Encodes the format described on ``AddressAllocator``.
    ///
    /// - Complexity: O(n).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(base, forKey: .base)
        try container.encode(end, forKey: .end)
        try container.encode(allocations.map { [$0.start, $0.end] }, forKey: .allocations)
    }
}

extension AddressAllocator {
    /// Describes the first violated invariant, or `nil` if all hold: the tree's own
    /// invariants (order, balance, heights, largest-gap summaries); allocations inside
    /// `[base, end]`, disjoint and ascending; each gap running exactly from the previous
    /// allocation's end to its allocation, so free blocks are maximal; the first
    /// allocation's gap empty, the head ending right before it and the tail starting
    /// right after the last allocation; and ``allocatedSize`` matching.
    ///
    /// - Complexity: O(n).
    func checkInvariants() -> String? {
        if let problem = nodes.checkInvariants() { return problem }
        let first = nodes.first
        let firstStart = first == noNode ? nil : nodes.element(first).start
        let expectedHeadEnd = firstStart.flatMap { $0 > base ? $0 - 1 : nil }
        if headEnd != expectedHeadEnd {
            return "head ends at \(headEnd.map(hex) ?? "nil"), expected \(expectedHeadEnd.map(hex) ?? "nil")"
        }
        var expectedGapStart: UInt64? = firstStart ?? base
        var total: UInt64 = 0
        var problem: String?
        nodes.forEachInOrder { node, flagged in
            guard problem == nil else { return }
            guard let gapStart = expectedGapStart else {
                problem = "allocation at \(hex(node.start)) lies past the end"
                return
            }
            if flagged {
                problem = "node at \(hex(node.start)) is tagged"
            } else if node.gapStart != gapStart {
                problem = "gap before \(hex(node.start)) starts at \(hex(node.gapStart)), expected \(hex(gapStart))"
            } else if node.start < node.gapStart || node.end < node.start || node.end > end {
                problem = "node [\(hex(node.gapStart)), \(hex(node.start)), \(hex(node.end))] is invalid"
            }
            total &+= node.end &- node.start &+ 1
            expectedGapStart = node.end == end ? nil : node.end &+ 1
        }
        if let problem { return problem }
        if tailStart != expectedGapStart {
            return "tail starts at \(tailStart.map(hex) ?? "nil"), expected \(expectedGapStart.map(hex) ?? "nil")"
        }
        if total != allocatedSize { return "allocatedSize is \(allocatedSize), allocations hold \(total)" }
        return nil
    }
}

extension AddressAllocator {
    /// Traps if an invariant is violated; called at the end of every mutation. Compiled
    /// only when the `VMALLOCATOR_CHECKS` condition is set (debug builds of the tests and
    /// the fuzzer); otherwise empty. The O(n) check runs after every mutation while there
    /// are at most 512 allocations, then on every 256th allocation count, so that tests
    /// with many thousands of allocations stay fast.
    @inline(__always)
    func _checkInvariants() {
        #if VMALLOCATOR_CHECKS
        guard nodes.count <= 512 || nodes.count & 0xFF == 0 else { return }
        if let problem = checkInvariants() {
            preconditionFailure("AddressAllocator invariant violated: \(problem)")
        }
        #endif
    }
}
