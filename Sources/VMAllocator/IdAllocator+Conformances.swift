extension IdAllocator {
    /// The free runs in ascending order, each with its state (`true`: released).
    /// (The fresh tail, if any, is the last run.)
    fileprivate var runList: [(start: UInt32, end: UInt32, released: Bool)] {
        var result: [(start: UInt32, end: UInt32, released: Bool)] = []
        result.reserveCapacity(runs.count + 1)
        runs.forEachInOrder { run, released in
            result.append((run.start, run.end, released))
        }
        if let tail = freshTail {
            result.append((tail.start, tail.end, false))
        }
        return result
    }
}

extension IdAllocator: Hashable {
    /// Equal when both cover the same range and every ID has the same state (live,
    /// released, or never handed out), whatever the shape of their trees.
    ///
    /// - Complexity: O(r), r the number of free runs.
    public static func == (lhs: IdAllocator, rhs: IdAllocator) -> Bool {
        guard lhs.rangeBase == rhs.rangeBase, lhs.rangeEnd == rhs.rangeEnd,
            lhs.freeCount == rhs.freeCount, lhs.freshStart == rhs.freshStart,
            lhs.runs.count == rhs.runs.count
        else { return false }
        if lhs.runs.isIdentical(to: rhs.runs) { return true }
        return lhs.runList.elementsEqual(rhs.runList) { $0 == $1 }
    }

    /// Hashes the range and the free runs with their states.
    ///
    /// - Complexity: O(r), r the number of free runs.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(rangeBase)
        hasher.combine(rangeEnd)
        for run in runList {
            hasher.combine(run.start)
            hasher.combine(run.end)
            hasher.combine(run.released)
        }
    }
}

extension IdAllocator: Codable {
    private enum CodingKeys: String, CodingKey {
        case rangeBase, rangeEnd, runs
    }

    /// Decodes the format described on ``IdAllocator``, validating it fully.
    ///
    /// - Throws: `DecodingError.dataCorrupted` for any state the allocator could not reach.
    /// - Complexity: O(r), r the number of runs.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let rangeBase = try container.decode(UInt32.self, forKey: .rangeBase)
        let rangeEnd = try container.decode(UInt32.self, forKey: .rangeEnd)
        let encodedRuns = try container.decode([[UInt32]].self, forKey: .runs)
        func corrupted(_ reason: String) -> DecodingError {
            DecodingError.dataCorruptedError(forKey: .runs, in: container, debugDescription: reason)
        }
        guard rangeBase <= rangeEnd else {
            throw DecodingError.dataCorruptedError(
                forKey: .rangeEnd, in: container,
                debugDescription: "rangeEnd \(rangeEnd) is below rangeBase \(rangeBase)")
        }
        var runs: [(element: FreeIdRun, flagged: Bool)] = []
        runs.reserveCapacity(encodedRuns.count)
        for (index, encoded) in encodedRuns.enumerated() {
            guard encoded.count == 3 else {
                throw corrupted("run \(index) has \(encoded.count) values, expected 3")
            }
            let (start, end, state) = (encoded[0], encoded[1], encoded[2])
            guard start <= end else { throw corrupted("run \(index) [\(start), \(end)] is inverted") }
            guard rangeBase <= start, end <= rangeEnd else {
                throw corrupted("run \(index) [\(start), \(end)] is outside the range")
            }
            guard state <= 1 else { throw corrupted("run \(index) has unknown state \(state)") }
            let released = state == 1
            if let previous = runs.last {
                guard previous.element.end < start else {
                    throw corrupted("run \(index) overlaps or precedes the one before it")
                }
                guard previous.element.end + 1 < start || previous.flagged != released else {
                    throw corrupted("run \(index) should be merged with the one before it")
                }
            }
            runs.append((FreeIdRun(start: start, end: end), released))
        }
        self.init(rangeBase: rangeBase, rangeEnd: rangeEnd, runs: runs)
    }

    /// Encodes the format described on ``IdAllocator``.
    ///
    /// - Complexity: O(r), r the number of free runs.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(rangeBase, forKey: .rangeBase)
        try container.encode(rangeEnd, forKey: .rangeEnd)
        try container.encode(runList.map { [$0.start, $0.end, $0.released ? 1 : 0] }, forKey: .runs)
    }
}

extension IdAllocator {
    /// Describes the first violated invariant, or `nil` if all hold: the tree's own
    /// invariants (order, balance, heights), runs inside the range, disjoint and sorted,
    /// adjacent runs of the same state merged, the fresh tail inside the range (or just
    /// past it) and above every run in the tree, and ``freeCount`` matching the runs.
    ///
    /// - Complexity: O(r), r the number of free runs.
    func checkInvariants() -> String? {
        if let problem = runs.checkInvariants() { return problem }
        if freshStart < UInt64(rangeBase) || freshStart > UInt64(rangeEnd) + 1 {
            return "fresh tail starts at \(freshStart), outside the range"
        }
        let last = runs.last
        if last != noNode, UInt64(runs.element(last).end) >= freshStart {
            return "run at \(runs.element(last).start) reaches into the fresh tail"
        }
        var free: UInt64 = 0
        var previous: (end: UInt32, released: Bool)?
        for run in runList {
            if run.start > run.end { return "run [\(run.start), \(run.end)] is inverted" }
            if run.start < rangeBase || run.end > rangeEnd {
                return "run [\(run.start), \(run.end)] is outside the range"
            }
            if let previous {
                if previous.end >= run.start { return "run at \(run.start) overlaps the previous one" }
                if previous.end + 1 == run.start && previous.released == run.released {
                    return "runs at \(run.start) are not merged"
                }
            }
            free += UInt64(run.end - run.start) + 1
            previous = (run.end, run.released)
        }
        if free != freeCount { return "freeCount is \(freeCount), runs hold \(free)" }
        if fastPathEnd != (runs.isEmpty ? UInt64(rangeEnd) + 1 : 0) { return "fastPathEnd is stale" }
        return nil
    }
}

extension IdAllocator {
    /// Traps if an invariant is violated; called at the end of every mutation. Compiled
    /// only when the `VMALLOCATOR_CHECKS` condition is set (debug builds of the tests and
    /// the fuzzer); otherwise empty. The O(r) check runs after every mutation while there
    /// are at most 512 runs, then only when the free count is a multiple of 256, so that
    /// tests with many thousands of runs stay fast.
    @inline(__always) @usableFromInline
    func _checkInvariants() {
        #if VMALLOCATOR_CHECKS
        guard runs.count <= 512 || UInt64(truncatingIfNeeded: freeCount) & 0xFF == 0 else { return }
        if let problem = checkInvariants() {
            preconditionFailure("IdAllocator invariant violated: \(problem)")
        }
        #endif
    }
}
