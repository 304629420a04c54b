// Carving: replacing one node by up to three in a single pass from the root, which is
// how an allocation is cut out of a free block.

/// Deeper than any AVL tree with 32-bit node indices (at most 46 levels) can be.
let maximumDepth = 64

/// Chooses the node ``OrderedTree/carveFirst(fromEnd:planner:)`` carves.
protocol CarvePlanner<Element> {
    associatedtype Element: TreeElement
    /// Whether a subtree (or a node) with this summary can hold a node `plan` accepts.
    func mayContain(_ summary: Element.Summary) -> Bool
    /// How to carve this node, or `nil` to pass it over.
    mutating func plan(_ element: Element, flagged: Bool) -> TreeCarving<Element>?
}

/// How to split one node: the element and tag that replace it, and up to two new
/// elements to insert immediately before and after it in key order.
struct TreeCarving<Element: TreeElement> {
    var middle: Element
    var middleFlagged: Bool
    var before: Element?
    var beforeFlagged = false
    var after: Element?
    var afterFlagged = false

    /// How many nodes the carving adds.
    var newElementCount: Int { (before == nil ? 0 : 1) + (after == nil ? 0 : 1) }
}

extension TreeStorage {
    @inline(__always) func isFlagged(_ index: NodeIndex) -> Bool {
        metaByte(index).pointee & treeFlagBit != 0
    }

    @inline(__always) private func setFlag(_ index: NodeIndex, _ flagged: Bool) {
        let height = metaByte(index).pointee & ~treeFlagBit
        metaByte(index).pointee = flagged ? height | treeFlagBit : height
    }

    @inline(__always) private func makeLeaf(_ index: NodeIndex, _ element: Element, flagged: Bool) {
        node(index).pointee = TreeNode(
            element: element, summary: Element.summary(of: element, flagged: flagged),
            left: noNode, right: noNode)
        metaByte(index).pointee = flagged ? 1 | treeFlagBit : 1
    }

    /// Applies `carving` to `index`, placing new elements in the spare slots in order
    /// (the first new element in `spares.0`); the caller rebalances `index` afterwards.
    private func apply(
        _ carving: TreeCarving<Element>, at index: NodeIndex, spares: (NodeIndex, NodeIndex)
    ) {
        node(index).pointee.element = carving.middle
        setFlag(index, carving.middleFlagged)
        var nextSpare = spares.0
        if let before = carving.before {
            makeLeaf(nextSpare, before, flagged: carving.beforeFlagged)
            node(index).pointee.left = insert(nextSpare, under: left(index))
            nextSpare = spares.1
        }
        if let after = carving.after {
            makeLeaf(nextSpare, after, flagged: carving.afterFlagged)
            node(index).pointee.right = insert(nextSpare, under: right(index))
        }
    }

    /// Carves the in-order first (or last, if `fromEnd`) node for which `plan` returns a
    /// carving, visiting only subtrees (and nodes) whose summary passes `mayContain`, then
    /// rebalances along the path back to the root. Returns the new root.
    func carveFirst(
        root: NodeIndex, fromEnd: Bool, planner: inout some CarvePlanner<Element>,
        spares: (NodeIndex, NodeIndex), done: inout TreeCarving<Element>?
    ) -> NodeIndex {
        guard root != noNode, planner.mayContain(node(root).pointee.summary) else { return root }
        return withUnsafeTemporaryAllocation(of: NodeIndex.self, capacity: maximumDepth) { path in
            // Bit d of `turnedFar` says the path went to the far child below depth d.
            var turnedFar: UInt64 = 0
            var depth = 0
            var index = root
            search: while true {
                path[depth] = index
                depth += 1
                let near = fromEnd ? right(index) : left(index)
                if near != noNode, planner.mayContain(node(near).pointee.summary) {
                    turnedFar &= ~(1 << UInt64(depth - 1))
                    index = near
                    continue search
                }
                while true {
                    let current = node(index).pointee
                    let flagged = isFlagged(index)
                    if planner.mayContain(Element.summary(of: current.element, flagged: flagged)),
                        let carving = planner.plan(current.element, flagged: flagged)
                    {
                        done = carving
                        apply(carving, at: index, spares: spares)
                        break search
                    }
                    let far = fromEnd ? current.left : current.right
                    if far != noNode, planner.mayContain(node(far).pointee.summary) {
                        turnedFar |= 1 << UInt64(depth - 1)
                        index = far
                        continue search
                    }
                    // Climb to the nearest ancestor whose near subtree this was.
                    repeat {
                        depth -= 1
                        if depth == 0 { return root }
                    } while turnedFar & (1 << UInt64(depth - 1)) != 0
                    index = path[depth - 1]
                }
            }
            return rebalancePath(path, depth: depth, turnedFar: turnedFar, fromEnd: fromEnd)
        }
    }

    /// Rebalances `path[0..<depth]` bottom-up after the subtree at its end changed,
    /// relinking each rebuilt subtree into its parent, and returns the new root.
    private func rebalancePath(
        _ path: UnsafeMutableBufferPointer<NodeIndex>, depth: Int, turnedFar: UInt64,
        fromEnd: Bool
    ) -> NodeIndex {
        var level = depth - 1
        var subtree = rebalance(path[level])
        while level > 0 {
            level -= 1
            let parent = path[level]
            let wentRight = (turnedFar & (1 << UInt64(level)) != 0) != fromEnd
            if wentRight {
                node(parent).pointee.right = subtree
            } else {
                node(parent).pointee.left = subtree
            }
            subtree = rebalance(parent)
        }
        return subtree
    }

    /// Carves the node with key `key` (which must exist) and rebalances on the way back.
    func carve(
        key: Element.Key, in index: NodeIndex, _ carving: TreeCarving<Element>,
        spares: (NodeIndex, NodeIndex)
    ) -> NodeIndex {
        guard index != noNode else { return noNode }
        let nodeKey = self.key(index)
        if key < nodeKey {
            node(index).pointee.left = carve(key: key, in: left(index), carving, spares: spares)
        } else if nodeKey < key {
            node(index).pointee.right = carve(key: key, in: right(index), carving, spares: spares)
        } else {
            apply(carving, at: index, spares: spares)
        }
        return rebalance(index)
    }
}
