/// One live allocation `[start, end]` together with the free gap before it,
/// `[gapStart, start - 1]` (empty when `gapStart == start`).
///
/// Consecutive nodes meet without overlap: a node's gap starts right after the previous
/// allocation ends (or at the allocator's base), so every free block is maximal by
/// construction and nothing ever needs merging. Free space after the last allocation is
/// the allocator's tail, outside the tree.
struct AddressNode: TreeElement {
    var gapStart: UInt64
    var start: UInt64
    var end: UInt64

    var key: UInt64 { start }

    /// The largest gap in a subtree, 0 if it has none.
    static func summary(of node: AddressNode, flagged: Bool) -> UInt64 {
        node.start - node.gapStart
    }

    static func combine(_ lhs: UInt64, _ rhs: UInt64) -> UInt64 { max(lhs, rhs) }

    var allocation: RangeInclusive { RangeInclusive(validatedStart: start, end: end) }

    /// The free gap before the allocation, if it is not empty.
    var gap: RangeInclusive? {
        gapStart < start ? RangeInclusive(validatedStart: gapStart, end: start - 1) : nil
    }
}
