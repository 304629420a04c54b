/// A maximal run of free IDs that share a history: all released, or all never handed out
/// (the tree node's tag marks released runs).
struct FreeIdRun: TreeElement {
    var start: UInt32
    var end: UInt32

    var key: UInt32 { start }

    static func summary(of run: FreeIdRun, flagged: Bool) -> NoSummary { NoSummary() }
    static func combine(_ lhs: NoSummary, _ rhs: NoSummary) -> NoSummary { lhs }
}

/// Hands out unique `UInt32` IDs from `[rangeBase, rangeEnd]`, for example interrupt
/// lines or device slots in a VMM, always the smallest free one.
///
/// The IDs never handed out above the highest one ever handed out (the *fresh tail*) are
/// kept as a counter, so handing out a new ID while none is released is a bump of that
/// counter. Every other free ID lies in a run of free IDs in an AVL tree, each run tagged
/// "released" (handed out and freed) or "never handed out" (skipped by
/// ``allocate(id:)``), so memory grows with the number of runs (17 bytes each), not IDs.
/// Copies are O(1) and copy-on-write.
///
/// ## Codable format
/// A keyed container, stable across versions:
/// ```json
/// {"rangeBase": 1, "rangeEnd": 100, "runs": [[3, 3, 1], [7, 100, 0]]}
/// ```
/// `runs` lists every maximal run of free IDs as `[start, end, state]` (inclusive bounds)
/// in ascending order, where `state` is 1 for released IDs and 0 for IDs never handed
/// out; every ID in the range but in no run is live. Decoding throws
/// `DecodingError.dataCorrupted` unless `rangeBase <= rangeEnd` and every run has three
/// elements, `rangeBase <= start <= end <= rangeEnd`, state 0 or 1, starts after the
/// previous run ends, and is not directly adjacent to a previous run of the same state.
public struct IdAllocator: Sendable {
    /// The smallest ID in the range.
    public let rangeBase: UInt32
    /// The largest ID in the range (inclusive).
    public let rangeEnd: UInt32
    /// Number of free IDs (released or never handed out).
    public var freeCount: UInt64 { freeInRuns + (UInt64(rangeEnd) + 1 - freshStart) }
    /// Number of free IDs in ``runs`` (below the fresh tail).
    var freeInRuns: UInt64
    /// The first ID of the fresh tail `[freshStart, rangeEnd]`: the maximal run of IDs
    /// never handed out that ends at `rangeEnd`. `UInt64(rangeEnd) + 1` when there is none.
    @usableFromInline var freshStart: UInt64
    /// `UInt64(rangeEnd) + 1` while ``runs`` is empty (every free ID is in the fresh
    /// tail), else 0: the inlined fast path of ``allocateID()`` applies exactly when
    /// `freshStart < fastPathEnd`, one comparison.
    @usableFromInline var fastPathEnd: UInt64
    /// Runs of free IDs below the fresh tail; the node tag marks released runs.
    var runs: OrderedTree<FreeIdRun> {
        didSet { fastPathEnd = runs.isEmpty ? UInt64(rangeEnd) + 1 : 0 }
    }

    /// Creates an allocator for the IDs `[rangeBase, rangeEnd]`, none handed out yet.
    ///
    /// - Throws: `invalidRange(rangeBase, rangeEnd)` if `rangeEnd < rangeBase`.
    public init(rangeBase: UInt32, rangeEnd: UInt32) throws(AllocatorError) {
        guard rangeBase <= rangeEnd else {
            throw .invalidRange(UInt64(rangeBase), UInt64(rangeEnd))
        }
        self.rangeBase = rangeBase
        self.rangeEnd = rangeEnd
        freeInRuns = 0
        freshStart = UInt64(rangeBase)
        runs = OrderedTree()
        fastPathEnd = UInt64(rangeEnd) + 1
    }

    /// Creates an allocator from validated, sorted, coalesced runs (the fresh tail, if
    /// any, included as the last run).
    init(rangeBase: UInt32, rangeEnd: UInt32, runs: [(element: FreeIdRun, flagged: Bool)]) {
        self.rangeBase = rangeBase
        self.rangeEnd = rangeEnd
        var treeRuns = runs
        if let last = treeRuns.last, !last.flagged, last.element.end == rangeEnd {
            freshStart = UInt64(last.element.start)
            treeRuns.removeLast()
        } else {
            freshStart = UInt64(rangeEnd) + 1
        }
        var free: UInt64 = 0
        for run in treeRuns {
            free += UInt64(run.element.end - run.element.start) + 1
        }
        freeInRuns = free
        self.runs = OrderedTree(sorted: treeRuns)
        fastPathEnd = treeRuns.isEmpty ? UInt64(rangeEnd) + 1 : 0
    }

    /// Hands out the smallest free ID, released or never handed out.
    ///
    /// Unless ``allocate(id:)`` skipped IDs, every released ID is below every ID never
    /// handed out, so this is the smallest released ID, else the next new one.
    ///
    /// - Throws: `resourceNotAvailable` when every ID is live (also for a range ending at
    ///   `UInt32.max`).
    /// - Complexity: O(1) while no ID below the fresh tail is free (nothing released,
    ///   nothing skipped); otherwise O(log r), r the number of free runs.
    @inlinable
    public mutating func allocateID() throws(AllocatorError) -> UInt32 {
        // The fast path, inlined into the caller: every free ID is in the fresh tail, so
        // the smallest is its first one; bump the counter.
        let id = freshStart
        if id < fastPathEnd {
            freshStart = id &+ 1
            #if VMALLOCATOR_CHECKS
            _checkInvariants()
            #endif
            return UInt32(truncatingIfNeeded: id)
        }
        return try allocateFromRuns()
    }

    /// ``allocateID()`` when some free ID lies below the fresh tail, or none is free.
    @usableFromInline
    mutating func allocateFromRuns() throws(AllocatorError) -> UInt32 {
        guard !runs.isEmpty else {
            // Every free ID would be in the fresh tail, and it is empty.
            throw .resourceNotAvailable
        }
        let node = runs.first
        let run = runs.element(node)
        takeFront(of: run, at: node)
        _checkInvariants()
        return run.start
    }

    /// Reserves the specific ID `id`, whether released or never handed out.
    ///
    /// IDs below `id` that were never handed out stay free: ``allocateID()`` may still
    /// return them, and ``freeID(_:)`` calls them `neverAllocated`.
    ///
    /// - Throws: `outOfRange(id)` outside the range; `alreadyAllocated(id)` if it is live.
    /// - Complexity: O(log r), r the number of free runs.
    public mutating func allocate(id: UInt32) throws(AllocatorError) {
        guard rangeBase <= id, id <= rangeEnd else { throw .outOfRange(id) }
        defer { _checkInvariants() }
        if UInt64(id) >= freshStart {
            // The IDs of the fresh tail below `id` stay never handed out, now as a run in
            // the tree (no run below them can be merged with them: a never-handed-out run
            // adjacent to the tail would have been part of it).
            if UInt64(id) > freshStart {
                runs.insert(
                    FreeIdRun(start: UInt32(truncatingIfNeeded: freshStart), end: id - 1),
                    flagged: false)
                freeInRuns += UInt64(id) - freshStart
            }
            freshStart = UInt64(id) + 1
            return
        }
        let node = runs.floor(id)
        guard node != noNode, id <= runs.element(node).end else { throw .alreadyAllocated(id) }
        let run = runs.element(node)
        if id == run.start {
            takeFront(of: run, at: node)
            return
        }
        let released = runs.isFlagged(node)
        runs.setElement(node, FreeIdRun(start: run.start, end: id - 1), flagged: released)
        if id < run.end {
            runs.insert(FreeIdRun(start: id + 1, end: run.end), flagged: released)
        }
        freeInRuns -= 1
    }

    private mutating func takeFront(of run: FreeIdRun, at node: NodeIndex) {
        if run.start == run.end {
            runs.remove(key: run.start)
        } else {
            runs.setElement(
                node, FreeIdRun(start: run.start + 1, end: run.end), flagged: runs.isFlagged(node))
        }
        freeInRuns -= 1
    }

    /// Releases the live ID `id` and returns it.
    ///
    /// - Throws: `outOfRange(id)` outside the range; `neverAllocated(id)` if it is free and
    ///   was never handed out; `alreadyReleased(id)` if it has been released already.
    /// - Complexity: O(log r), r the number of free runs.
    @discardableResult
    public mutating func freeID(_ id: UInt32) throws(AllocatorError) -> UInt32 {
        guard rangeBase <= id, id <= rangeEnd else { throw .outOfRange(id) }
        guard UInt64(id) < freshStart else { throw .neverAllocated(id) }
        let (predecessor, match, successor) = runs.neighbors(of: id)
        let holder = match != noNode ? match : predecessor
        if holder != noNode, id <= runs.element(holder).end {
            throw runs.isFlagged(holder) ? .alreadyReleased(id) : .neverAllocated(id)
        }
        // `id` is live: the predecessor run ends below it, the successor starts above it.
        let mergesLeft =
            predecessor != noNode && runs.isFlagged(predecessor)
            && runs.element(predecessor).end == id - 1
        let mergesRight =
            successor != noNode && runs.isFlagged(successor)
            && runs.element(successor).start == id + 1
        switch (mergesLeft, mergesRight) {
        case (true, true):
            // Extend first: the removal may move nodes to other indices.
            let rightEnd = runs.element(successor).end
            let start = runs.element(predecessor).start
            runs.setElement(predecessor, FreeIdRun(start: start, end: rightEnd), flagged: true)
            runs.remove(key: id + 1)
        case (true, false):
            let start = runs.element(predecessor).start
            runs.setElement(predecessor, FreeIdRun(start: start, end: id), flagged: true)
        case (false, true):
            let end = runs.element(successor).end
            runs.setElement(successor, FreeIdRun(start: id, end: end), flagged: true)
        case (false, false):
            runs.insert(FreeIdRun(start: id, end: id), flagged: true)
        }
        freeInRuns += 1
        _checkInvariants()
        return id
    }

    /// Whether `id` is live (in range and handed out or reserved, not freed since).
    ///
    /// - Complexity: O(log r), r the number of free runs.
    public func isAllocated(_ id: UInt32) -> Bool {
        guard rangeBase <= id, id <= rangeEnd, UInt64(id) < freshStart else { return false }
        let node = runs.floor(id)
        return node == noNode || runs.element(node).end < id
    }

    /// Number of live IDs.
    public var allocatedCount: UInt64 {
        UInt64(rangeEnd - rangeBase) + 1 - freeCount
    }

    /// The fresh tail as a run, if there is one.
    var freshTail: FreeIdRun? {
        freshStart <= UInt64(rangeEnd)
            ? FreeIdRun(start: UInt32(truncatingIfNeeded: freshStart), end: rangeEnd) : nil
    }
}
