// Where an allocation lands inside one free block, and the planner that finds the block.

/// The lowest aligned placement of `size` bytes in `block`, if one fits.
func firstFit(in block: RangeInclusive, size: UInt64, alignment: UInt64) -> RangeInclusive? {
    let mask = alignment - 1
    guard block.start <= UInt64.max - mask else { return nil }
    let start = (block.start + mask) & ~mask
    guard start <= block.end, block.end - start >= size - 1 else { return nil }
    return RangeInclusive(validatedStart: start, end: start + (size - 1))
}

/// The highest aligned placement of `size` bytes in `block`, if one fits.
func lastFit(in block: RangeInclusive, size: UInt64, alignment: UInt64) -> RangeInclusive? {
    guard block.end - block.start >= size - 1 else { return nil }
    let start = (block.end - (size - 1)) & ~(alignment - 1)
    guard start >= block.start else { return nil }
    return RangeInclusive(validatedStart: start, end: start + (size - 1))
}

/// Finds the gap a first- or last-match allocation goes into, and carves it.
struct GapPlanner: CarvePlanner {
    let size: UInt64
    let alignment: UInt64
    let fromEnd: Bool
    /// The allocation, once placed.
    var found: RangeInclusive?

    func mayContain(_ largestGap: UInt64) -> Bool { largestGap >= size }

    mutating func plan(_ node: AddressNode, flagged: Bool) -> TreeCarving<AddressNode>? {
        guard let gap = node.gap,
            let fit = fromEnd
                ? lastFit(in: gap, size: size, alignment: alignment)
                : firstFit(in: gap, size: size, alignment: alignment)
        else { return nil }
        found = fit
        return AddressAllocator.carving(fit, outOf: node)
    }
}
