/// Hands out non-overlapping, aligned address ranges from `[base, end]`, for example guest
/// MMIO or PCI BAR space in a VMM.
///
/// Live allocations are kept in an AVL tree ordered by start address; each node also
/// records the free gap before its allocation, and every subtree records its largest
/// gap, so the search for a fitting block skips whole subtrees. Free space before the
/// first allocation (the head) and after the last one (the tail) is kept outside the
/// tree, so allocating at either end of the used space changes no gap in it. Free blocks
/// are maximal by construction: freeing an allocation hands its range and its gap to
/// the next gap. Memory is one 40-byte node (plus one byte) per live allocation.
///
/// Copies are O(1) and copy-on-write, so taking a snapshot to roll back to is cheap.
///
/// ## Codable format
/// A keyed container, stable across versions:
/// ```json
/// {"base": 4096, "end": 1048575, "allocations": [[4096, 8191], [16384, 20479]]}
/// ```
/// `allocations` lists every live allocation as `[start, end]` (inclusive), in strictly
/// ascending, non-overlapping order; free space is implied. Decoding throws
/// `DecodingError.dataCorrupted` unless `base <= end`, `[base, end]` is not all of
/// `UInt64`, and every pair has two elements with `base <= start <= end <= self.end`,
/// each starting after the previous one ends.
public struct AddressAllocator: Sendable {
    /// The first address managed.
    public let base: UInt64
    /// The last address managed (inclusive).
    public let end: UInt64
    /// Total bytes in live allocations.
    public private(set) var allocatedSize: UInt64
    /// Live allocations, each with the free gap before it (always empty for the first
    /// allocation, whose free space before it is the head).
    var nodes: OrderedTree<AddressNode>
    /// Last address of the free space before the first allocation, `[base, headEnd]`;
    /// `nil` if there is no allocation or the first one starts at `base`.
    var headEnd: UInt64?
    /// First address of the free space after the last allocation, `[tailStart, end]`;
    /// `nil` if the last allocation ends at `end`. With no allocation, `base`.
    var tailStart: UInt64?

    /// Creates an allocator managing `size` bytes starting at `base`, all free.
    ///
    /// - Throws: `underflow` if `size` is 0; `overflow` if `base + size - 1` passes
    ///   `UInt64.max`.
    public init(base: UInt64, size: UInt64) throws(AllocatorError) {
        guard size > 0 else { throw .underflow }
        guard base <= UInt64.max - (size - 1) else { throw .overflow }
        self.init(base: base, end: base + (size - 1), allocations: [])
    }

    /// Creates an allocator from validated, sorted, disjoint allocations in `[base, end]`.
    init(base: UInt64, end: UInt64, allocations: [RangeInclusive]) {
        self.base = base
        self.end = end
        var items: [(element: AddressNode, flagged: Bool)] = []
        items.reserveCapacity(allocations.count)
        // The first allocation's free space before it is the head, not a gap.
        var next: UInt64? = allocations.first?.start ?? base
        var total: UInt64 = 0
        for allocation in allocations {
            // Validated input: `next` is non-nil and at most `allocation.start` here.
            let gapStart = next ?? allocation.start
            items.append((AddressNode(gapStart: gapStart, start: allocation.start, end: allocation.end), false))
            total += allocation.count
            next = allocation.end == end ? nil : allocation.end + 1
        }
        allocatedSize = total
        headEnd = allocations.first.flatMap { $0.start > base ? $0.start - 1 : nil }
        tailStart = next
        nodes = OrderedTree(sorted: items)
    }

    /// Number of live allocations.
    public var allocationCount: Int { nodes.count }

    /// Total bytes managed: `end - base + 1`.
    public var size: UInt64 { end - base + 1 }

    /// The free space after the last allocation (all of it, with no allocation), if any.
    var tail: RangeInclusive? {
        tailStart.map { RangeInclusive(validatedStart: $0, end: end) }
    }

    /// The free space before the first allocation, if any.
    var head: RangeInclusive? {
        headEnd.map { RangeInclusive(validatedStart: base, end: $0) }
    }

    /// Allocates `size` bytes aligned to `alignment`, placed by `policy`.
    ///
    /// Checks run in this order: `size` 0 throws `invalidSize(0)`; an `alignment` that is
    /// 0 or not a power of two throws `invalidAlignment`; an `exactMatch` address that is
    /// not a multiple of `alignment` throws `unalignedAddress`. Then:
    /// - `firstMatch`: the lowest free block whose aligned-up start leaves room for `size`
    ///   bytes gives the range starting at that aligned start.
    /// - `lastMatch`: the highest free block holding `size` bytes whose start, aligned
    ///   down from `block.end - size + 1`, stays in the block.
    /// - `exactMatch(a)`: `a` must lie in a free block (else `resourceNotAvailable`);
    ///   `a + size - 1` must not overflow (else `overflow`) and must stay in that block
    ///   (else `resourceNotAvailable`).
    /// If no block fits, throws `resourceNotAvailable`; the allocator is then unchanged.
    ///
    /// - Complexity: O(log n) for `exactMatch`; O((1 + k) log n) for `firstMatch` and
    ///   `lastMatch`, where n is the number of live allocations and k the number of free
    ///   blocks of at least `size` bytes passed over because alignment left too little
    ///   room in them (k is 0 when `alignment` is 1, or when every such block has
    ///   `size + alignment - 1` bytes).
    public mutating func allocate(
        size: UInt64, alignment: UInt64, policy: AllocPolicy = .firstMatch
    ) throws(AllocatorError) -> RangeInclusive {
        guard size > 0 else { throw .invalidSize(0) }
        guard alignment > 0, alignment & (alignment - 1) == 0 else { throw .invalidAlignment }
        if case .exactMatch(let address) = policy, address & (alignment - 1) != 0 {
            throw .unalignedAddress
        }
        // An allocation adds one node; fail cleanly long before 32-bit indices run out.
        guard nodes.canInsert(1) else { throw .resourceNotAvailable }
        let range: RangeInclusive
        switch policy {
        case .firstMatch:
            // The head lies below every gap, and gaps below the tail.
            if let placed = placeInHead(size: size, alignment: alignment, fromEnd: false) {
                range = placed
            } else if let placed = placeInGaps(size: size, alignment: alignment, fromEnd: false) {
                range = placed
            } else if let placed = placeInTail(size: size, alignment: alignment, fromEnd: false) {
                range = placed
            } else {
                throw .resourceNotAvailable
            }
        case .lastMatch:
            if let placed = placeInTail(size: size, alignment: alignment, fromEnd: true) {
                range = placed
            } else if let placed = placeInGaps(size: size, alignment: alignment, fromEnd: true) {
                range = placed
            } else if let placed = placeInHead(size: size, alignment: alignment, fromEnd: true) {
                range = placed
            } else {
                throw .resourceNotAvailable
            }
        case .exactMatch(let address):
            range = try placeExactly(at: address, size: size)
        }
        allocatedSize += range.count
        _checkInvariants()
        return range
    }

    /// Places the allocation in the head, if it fits there.
    private mutating func placeInHead(
        size: UInt64, alignment: UInt64, fromEnd: Bool
    ) -> RangeInclusive? {
        guard let head,
            let range = fromEnd
                ? lastFit(in: head, size: size, alignment: alignment)
                : firstFit(in: head, size: size, alignment: alignment)
        else { return nil }
        prependToHead(range)
        return range
    }

    /// Makes `range`, inside the head, the first allocation: what lies between it and
    /// the old first allocation becomes that one's gap, what lies below it the head.
    private mutating func prependToHead(_ range: RangeInclusive) {
        // `headEnd` is non-nil and the tree is not empty: the range was placed in the head.
        let oldFirstStart = (headEnd ?? range.end) + 1
        let new = AddressNode(gapStart: range.start, start: range.start, end: range.end)
        if range.end + 1 == oldFirstStart {
            // No gap between the two: the old first node keeps its empty gap.
            nodes.insert(new, flagged: false)
        } else {
            var oldFirst = nodes.element(nodes.first)
            oldFirst.gapStart = range.end + 1
            nodes.carve(key: oldFirstStart, TreeCarving(middle: oldFirst, middleFlagged: false, before: new))
        }
        headEnd = range.start > base ? range.start - 1 : nil
    }

    /// Carves the first (or last) fitting gap in the tree, if any.
    private mutating func placeInGaps(
        size: UInt64, alignment: UInt64, fromEnd: Bool
    ) -> RangeInclusive? {
        // Cheap early out (no storage touched, so no copy of shared storage either).
        guard nodes.root != noNode, nodes.subtreeSummary(nodes.root) >= size else { return nil }
        var planner = GapPlanner(size: size, alignment: alignment, fromEnd: fromEnd)
        _ = nodes.carveFirst(fromEnd: fromEnd, planner: &planner)
        return planner.found
    }

    /// Places the allocation in the tail, if it fits there.
    private mutating func placeInTail(
        size: UInt64, alignment: UInt64, fromEnd: Bool
    ) -> RangeInclusive? {
        guard let tail,
            let range = fromEnd
                ? lastFit(in: tail, size: size, alignment: alignment)
                : firstFit(in: tail, size: size, alignment: alignment)
        else { return nil }
        appendToTail(range)
        return range
    }

    private mutating func appendToTail(_ range: RangeInclusive) {
        let gapStart: UInt64
        if nodes.isEmpty {
            // The first allocation: the space below it becomes the head.
            gapStart = range.start
            headEnd = range.start > base ? range.start - 1 : nil
        } else {
            // `tailStart` is non-nil: the range was placed in the tail.
            gapStart = tailStart ?? range.start
        }
        nodes.insert(AddressNode(gapStart: gapStart, start: range.start, end: range.end), flagged: false)
        tailStart = range.end == end ? nil : range.end + 1
    }

    private mutating func placeExactly(at address: UInt64, size: UInt64) throws(AllocatorError) -> RangeInclusive {
        let (predecessor, match, successor) = nodes.neighbors(of: address)
        guard match == noNode else { throw .resourceNotAvailable }
        if predecessor != noNode, address <= nodes.element(predecessor).end {
            throw .resourceNotAvailable
        }
        // `address` is not allocated; it is free if it lies in the successor's gap (the
        // head, if the successor is the first allocation) or in the tail (the only free
        // places after the predecessor).
        let blockEnd: UInt64
        if successor != noNode {
            let next = nodes.element(successor)
            if predecessor == noNode {
                guard base <= address else { throw .resourceNotAvailable }
            } else {
                guard next.gapStart <= address else { throw .resourceNotAvailable }
            }
            blockEnd = next.start - 1
        } else {
            guard let tailStart, tailStart <= address, address <= end else {
                throw .resourceNotAvailable
            }
            blockEnd = end
        }
        guard address <= UInt64.max - (size - 1) else { throw .overflow }
        guard address + (size - 1) <= blockEnd else { throw .resourceNotAvailable }
        let range = RangeInclusive(validatedStart: address, end: address + (size - 1))
        if successor == noNode {
            appendToTail(range)
        } else if predecessor == noNode {
            prependToHead(range)
        } else {
            nodes.carve(key: nodes.key(successor), Self.carving(range, outOf: nodes.element(successor)))
        }
        return range
    }

    /// Places `range`, inside the gap of `node`, as a new node before it.
    static func carving(_ range: RangeInclusive, outOf node: AddressNode) -> TreeCarving<AddressNode> {
        var shrunk = node
        shrunk.gapStart = range.end + 1
        return TreeCarving(
            middle: shrunk, middleFlagged: false,
            before: AddressNode(gapStart: node.gapStart, start: range.start, end: range.end))
    }

    /// Frees the live allocation `range`; its space joins the free blocks beside it.
    ///
    /// - Throws: `resourceNotAvailable` unless `range` is exactly one live allocation.
    /// - Complexity: O(log n).
    public mutating func free(_ range: RangeInclusive) throws(AllocatorError) {
        // One pass: unlink the allocation and grow the next gap back to where the freed
        // allocation's gap began. If the first allocation is freed, the next one becomes
        // the first: its gap and the freed range join the head.
        let freesFirst = range.start == (headEnd.map { $0 + 1 } ?? base)
        var successorStart: UInt64?
        let (removed, hadSuccessor) = nodes.remove(
            key: range.start, where: { $0.end == range.end },
            adjustingSuccessor: { successor, freed in
                successor.gapStart = freesFirst ? successor.start : freed.gapStart
                successorStart = successor.start
            })
        guard let freed = removed else { throw .resourceNotAvailable }
        if freesFirst {
            // `successorStart` is set exactly when there was a successor.
            headEnd = successorStart.map { $0 - 1 }
        }
        if !hadSuccessor {
            tailStart = freesFirst ? base : freed.gapStart
            if freesFirst { headEnd = nil }
        }
        allocatedSize -= range.count
        _checkInvariants()
    }

    /// The live allocation containing `address`, if any.
    ///
    /// - Complexity: O(log n).
    public func allocation(containing address: UInt64) -> RangeInclusive? {
        let node = nodes.floor(address)
        guard node != noNode else { return nil }
        let found = nodes.element(node)
        return address <= found.end ? found.allocation : nil
    }

    /// All live allocations, in ascending order.
    ///
    /// - Complexity: O(n).
    public var allocations: [RangeInclusive] {
        var result: [RangeInclusive] = []
        result.reserveCapacity(nodes.count)
        nodes.forEachInOrder { node, _ in result.append(node.allocation) }
        return result
    }

    /// All maximal free blocks, in ascending order.
    ///
    /// - Complexity: O(n).
    public var freeRanges: [RangeInclusive] {
        var result: [RangeInclusive] = []
        if let head { result.append(head) }
        nodes.forEachInOrder { node, _ in
            if let gap = node.gap { result.append(gap) }
        }
        if let tail { result.append(tail) }
        return result
    }

    /// The largest free block (the lowest one if several tie), or `nil` if none is free.
    ///
    /// - Complexity: O(log n).
    public var largestFreeRange: RangeInclusive? {
        let largestGap = nodes.root == noNode ? 0 : nodes.subtreeSummary(nodes.root)
        let tailSize = tail?.count ?? 0
        if let head, head.count >= largestGap, head.count >= tailSize { return head }
        if let tail, tailSize > largestGap { return tail }
        guard largestGap > 0 else { return nil }
        let node = nodes.firstNode(mayContain: { $0 >= largestGap }) { node, _ in
            AddressNode.summary(of: node, flagged: false) == largestGap
        }
        return nodes.element(node).gap
    }
}
