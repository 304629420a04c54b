extension OrderedTree {
    /// Describes the first violated structural invariant (key order, AVL balance, stored
    /// heights, subtree summaries, node count, dense storage), or `nil` if all hold.
    ///
    /// Reads the storage with bounds checks, independently of the unchecked tree code.
    ///
    /// - Complexity: O(n).
    func checkInvariants() -> String? {
        var reachable = 0
        var previousKey: Element.Key?
        var problem: String?
        func visit(_ node: NodeIndex, depth: Int) -> (height: Int, summary: Element.Summary?) {
            guard problem == nil, node != noNode else { return (0, nil) }
            guard Int(node) < slotCount else {
                problem = "node \(node) is outside storage"
                return (0, nil)
            }
            reachable += 1
            guard depth <= 100, reachable <= slotCount else {
                problem = "tree has a cycle or is far too deep"
                return (0, nil)
            }
            let leftResult = visit(left(node), depth: depth + 1)
            let nodeKey = key(node)
            if let previousKey, !(previousKey < nodeKey), problem == nil {
                problem = "keys out of order at node \(node)"
            }
            previousKey = nodeKey
            let rightResult = visit(right(node), depth: depth + 1)
            guard problem == nil else { return (0, nil) }
            if abs(leftResult.height - rightResult.height) > 1 {
                problem = "node \(node) is unbalanced"
            }
            let expectedHeight = 1 + max(leftResult.height, rightResult.height)
            if height(node) != expectedHeight {
                problem = "node \(node) stores height \(height(node)), expected \(expectedHeight)"
            }
            var summary = Element.summary(of: element(node), flagged: isFlagged(node))
            if let leftSummary = leftResult.summary { summary = Element.combine(leftSummary, summary) }
            if let rightSummary = rightResult.summary { summary = Element.combine(summary, rightSummary) }
            if subtreeSummary(node) != summary {
                problem = "node \(node) stores a stale subtree summary"
            }
            return (expectedHeight, summary)
        }
        _ = visit(root, depth: 0)
        if let problem { return problem }
        if reachable != count { return "count is \(count) but \(reachable) nodes are reachable" }
        if store.count != count { return "storage holds \(store.count) slots for \(count) nodes" }
        return nil
    }
}

/// Whether this build checks every allocator mutation's invariants (the
/// `VMALLOCATOR_CHECKS` compilation condition, set for debug builds).
let invariantChecksAreCompiledIn: Bool = {
    #if VMALLOCATOR_CHECKS
    true
    #else
    false
    #endif
}()
