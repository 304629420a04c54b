/// Unchecked access to an ``OrderedTree``'s storage, and the algorithms that run on it.
///
/// Valid only inside `OrderedTree.withStorage`/`withMutableStorage`; node indices are
/// checked by `assert` in debug builds only, so the tree code must be (and is checked by
/// the invariant checker to be) correct.
struct TreeStorage<Element: TreeElement> {
    let nodeChunks: UnsafeMutablePointer<UnsafeMutablePointer<TreeNode<Element>>>
    let metaChunks: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>>
    let slotCount: Int

    init(store: NodeStore<Element>) {
        nodeChunks = store.nodeChunks
        metaChunks = store.metaChunks
        slotCount = store.count
    }

    @inline(__always) func node(_ index: NodeIndex) -> UnsafeMutablePointer<TreeNode<Element>> {
        assert(Int(index) < slotCount, "node index out of range")
        let slot = Int(index)
        return nodeChunks[slot >> NodeStore<Element>.chunkShift] + (slot & NodeStore<Element>.chunkMask)
    }

    @inline(__always) func metaByte(_ index: NodeIndex) -> UnsafeMutablePointer<UInt8> {
        assert(Int(index) < slotCount, "node index out of range")
        let slot = Int(index)
        return metaChunks[slot >> NodeStore<Element>.chunkShift] + (slot & NodeStore<Element>.chunkMask)
    }
    @inline(__always) func key(_ index: NodeIndex) -> Element.Key { node(index).pointee.element.key }
    @inline(__always) func left(_ index: NodeIndex) -> NodeIndex { node(index).pointee.left }
    @inline(__always) func right(_ index: NodeIndex) -> NodeIndex { node(index).pointee.right }
    @inline(__always) func height(_ index: NodeIndex) -> UInt8 {
        index == noNode ? 0 : metaByte(index).pointee & ~treeFlagBit
    }

    // MARK: Summaries and balance

    @inline(__always) func updateSummary(_ index: NodeIndex) {
        let current = node(index)
        var summary = Element.summary(
            of: current.pointee.element, flagged: metaByte(index).pointee & treeFlagBit != 0)
        let leftChild = current.pointee.left
        let rightChild = current.pointee.right
        if leftChild != noNode { summary = Element.combine(node(leftChild).pointee.summary, summary) }
        if rightChild != noNode { summary = Element.combine(summary, node(rightChild).pointee.summary) }
        current.pointee.summary = summary
    }

    /// Recomputes the height and summary of `index` from its children, reading each
    /// child once.
    @inline(__always) func update(_ index: NodeIndex) {
        let current = node(index)
        let meta = metaByte(index)
        let oldMeta = meta.pointee
        var summary = Element.summary(
            of: current.pointee.element, flagged: oldMeta & treeFlagBit != 0)
        var childHeight: UInt8 = 0
        let leftChild = current.pointee.left
        let rightChild = current.pointee.right
        if leftChild != noNode {
            summary = Element.combine(node(leftChild).pointee.summary, summary)
            childHeight = metaByte(leftChild).pointee & ~treeFlagBit
        }
        if rightChild != noNode {
            summary = Element.combine(summary, node(rightChild).pointee.summary)
            childHeight = max(childHeight, metaByte(rightChild).pointee & ~treeFlagBit)
        }
        current.pointee.summary = summary
        meta.pointee = (oldMeta & treeFlagBit) | (childHeight + 1)
    }

    private func rotateRight(_ index: NodeIndex) -> NodeIndex {
        let pivot = left(index)
        node(index).pointee.left = right(pivot)
        node(pivot).pointee.right = index
        update(index)
        update(pivot)
        return pivot
    }

    private func rotateLeft(_ index: NodeIndex) -> NodeIndex {
        let pivot = right(index)
        node(index).pointee.right = left(pivot)
        node(pivot).pointee.left = index
        update(index)
        update(pivot)
        return pivot
    }

    /// Restores the AVL balance at `index` after one of its subtrees changed height by
    /// at most one, and refreshes its height and summary.
    func rebalance(_ index: NodeIndex) -> NodeIndex {
        let leftHeight = height(left(index))
        let rightHeight = height(right(index))
        if leftHeight > rightHeight + 1 {
            let leftChild = left(index)
            if height(left(leftChild)) < height(right(leftChild)) {
                node(index).pointee.left = rotateLeft(leftChild)
            }
            return rotateRight(index)
        }
        if rightHeight > leftHeight + 1 {
            let rightChild = right(index)
            if height(right(rightChild)) < height(left(rightChild)) {
                node(index).pointee.right = rotateRight(rightChild)
            }
            return rotateLeft(index)
        }
        update(index)
        return index
    }

    // MARK: Structural updates

    /// The height (with the tag bit) and summary of `index`, to tell whether an update
    /// below changed it.
    @inline(__always) private func state(_ index: NodeIndex) -> (UInt8, Element.Summary)? {
        index == noNode ? nil : (metaByte(index).pointee, node(index).pointee.summary)
    }

    /// Links the leaf `new` into the subtree rooted at `root` by its key and rebalances
    /// bottom-up, stopping at the first ancestor whose height and summary did not change.
    /// Returns the new subtree root. `new` must be a leaf with its height and summary set.
    func insert(_ new: NodeIndex, under root: NodeIndex) -> NodeIndex {
        guard root != noNode else { return new }
        return withUnsafeTemporaryAllocation(of: NodeIndex.self, capacity: maximumDepth) { path in
            let newKey = key(new)
            // Bit d of `wentRight` says the path went right below depth d.
            var wentRight: UInt64 = 0
            var depth = 0
            var index = root
            while true {
                path[depth] = index
                let current = node(index)
                let right = !(newKey < current.pointee.element.key)
                depth += 1
                if right {
                    wentRight |= 1 << UInt64(depth - 1)
                    let child = current.pointee.right
                    if child == noNode {
                        current.pointee.right = new
                        break
                    }
                    index = child
                } else {
                    let child = current.pointee.left
                    if child == noNode {
                        current.pointee.left = new
                        break
                    }
                    index = child
                }
            }
            // Every ancestor's summary grows by the new leaf's only (`combine` is a join),
            // so a node that needs no rotation is refreshed from its old summary, the
            // leaf's summary and its children's heights, without reading the other child.
            let leafSummary = node(new).pointee.summary
            var childHeight: UInt8 = 1
            var level = depth - 1
            while true {
                let current = path[level]
                let rebuilt: NodeIndex
                let meta = metaByte(current)
                let oldMeta = meta.pointee
                let otherHeight = height(
                    wentRight & (1 << UInt64(level)) != 0 ? left(current) : right(current))
                if childHeight > otherHeight + 1 {
                    rebuilt = rebalance(current)
                } else {
                    let summary = node(current).pointee.summary
                    let newSummary = Element.combine(summary, leafSummary)
                    let newHeight = max(childHeight, otherHeight) + 1
                    if newHeight == oldMeta & ~treeFlagBit, newSummary == summary {
                        // Nothing above this subtree changes.
                        return root
                    }
                    node(current).pointee.summary = newSummary
                    meta.pointee = (oldMeta & treeFlagBit) | newHeight
                    rebuilt = current
                }
                guard level > 0 else { return rebuilt }
                childHeight = metaByte(rebuilt).pointee & ~treeFlagBit
                level -= 1
                if wentRight & (1 << UInt64(level)) != 0 {
                    node(path[level]).pointee.right = rebuilt
                } else {
                    node(path[level]).pointee.left = rebuilt
                }
            }
        }
    }

    /// Unlinks the node with key `key` below `root` if `accept` approves its element,
    /// recording it in `removal`, and lets `adjust` change its in-order successor's
    /// element (not its key) in the same pass. Rebalances bottom-up, stopping at the
    /// first ancestor above every changed node whose height and summary did not change.
    /// Returns the new subtree root.
    func remove(
        _ key: Element.Key, from root: NodeIndex, accept: (Element) -> Bool,
        adjust: (inout Element, Element) -> Void, removal: inout TreeRemoval<Element>
    ) -> NodeIndex {
        guard root != noNode else { return noNode }
        return withUnsafeTemporaryAllocation(of: NodeIndex.self, capacity: maximumDepth) { path in
            // Bit d of `wentRight` says the path went right below depth d.
            var wentRight: UInt64 = 0
            var depth = 0
            var index = root
            // The deepest ancestor the path went left at: the successor of a node
            // without a right subtree.
            var lastLeftTurn = -1
            // A second descent, towards the node in the last slot, interleaved with this
            // one: the two chains of loads are independent, so they overlap in time, and
            // the slot can be refilled afterwards without walking down again.
            var lastCursor = removal.last == root ? noNode : root
            @inline(__always) func stepTowardsLast() {
                let child = removal.lastKey < self.key(lastCursor) ? left(lastCursor) : right(lastCursor)
                if child == removal.last {
                    removal.lastParent = lastCursor
                    lastCursor = noNode
                } else {
                    lastCursor = child
                }
            }
            while true {
                if lastCursor != noNode { stepTowardsLast() }
                guard index != noNode else { return root }
                path[depth] = index
                let nodeKey = self.key(index)
                if key < nodeKey {
                    lastLeftTurn = depth
                    depth += 1
                    index = left(index)
                } else if nodeKey < key {
                    wentRight |= 1 << UInt64(depth)
                    depth += 1
                    index = right(index)
                } else {
                    break
                }
            }
            let found = depth
            let element = node(index).pointee.element
            guard accept(element) else { return root }
            removal.index = index
            removal.element = element
            while lastCursor != noNode { stepTowardsLast() }
            let leftChild = left(index)
            let rightChild = right(index)
            // Where the bottom-up pass starts: the deepest level to refresh, the subtree
            // to link below it first (if `link`), and the level it may stop above.
            var level: Int
            var child = noNode
            var link = true
            let stopBelow: Int
            if rightChild == noNode {
                // AVL balance makes a lone left child a leaf: it takes the node's place.
                if lastLeftTurn >= 0 {
                    removal.successorAdjusted = true
                    adjust(&node(path[lastLeftTurn]).pointee.element, element)
                }
                guard found > 0 else { return leftChild }
                level = found - 1
                child = leftChild
                stopBelow = lastLeftTurn >= 0 ? lastLeftTurn + 1 : found
            } else {
                // The successor, the minimum of the right subtree, takes the node's place.
                wentRight |= 1 << UInt64(found)
                depth = found + 1
                var successor = rightChild
                while left(successor) != noNode {
                    path[depth] = successor
                    depth += 1
                    successor = left(successor)
                }
                removal.successorAdjusted = true
                adjust(&node(successor).pointee.element, element)
                let successorRight = right(successor)
                node(successor).pointee.left = leftChild
                path[found] = successor
                if successor == rightChild {
                    level = found
                    link = false
                } else {
                    node(successor).pointee.right = rightChild
                    level = depth - 1
                    child = successorRight
                }
                stopBelow = found
            }
            while true {
                let current = path[level]
                if link {
                    if wentRight & (1 << UInt64(level)) != 0 {
                        node(current).pointee.right = child
                    } else {
                        node(current).pointee.left = child
                    }
                }
                let before = state(current)
                let rebuilt = rebalance(current)
                if level < stopBelow, rebuilt == current, let before, let after = state(current),
                    before.0 == after.0, before.1 == after.1
                {
                    return root
                }
                guard level > 0 else { return rebuilt }
                child = rebuilt
                link = true
                level -= 1
            }
        }
    }

    /// Links slots `lower..<upper` (sorted) into a perfectly balanced subtree.
    func build(_ lower: Int, _ upper: Int) -> NodeIndex {
        guard lower < upper else { return noNode }
        let middle = lower + (upper - lower) / 2
        let index = NodeIndex(middle)
        node(index).pointee.left = build(lower, middle)
        node(index).pointee.right = build(middle + 1, upper)
        update(index)
        return index
    }

    // MARK: Queries

    func first(_ root: NodeIndex) -> NodeIndex {
        var index = root
        while left(index) != noNode { index = left(index) }
        return index
    }

    func floor(_ key: Element.Key, _ root: NodeIndex) -> NodeIndex {
        var index = root
        var best = noNode
        while index != noNode {
            if self.key(index) <= key {
                best = index
                index = right(index)
            } else {
                index = left(index)
            }
        }
        return best
    }

    func neighbors(of key: Element.Key, _ root: NodeIndex)
        -> (predecessor: NodeIndex, match: NodeIndex, successor: NodeIndex)
    {
        var index = root
        var predecessor = noNode
        var successor = noNode
        while index != noNode {
            let nodeKey = self.key(index)
            if nodeKey < key {
                predecessor = index
                index = right(index)
            } else if key < nodeKey {
                successor = index
                index = left(index)
            } else {
                var below = left(index)
                while below != noNode {
                    predecessor = below
                    below = right(below)
                }
                var above = right(index)
                while above != noNode {
                    successor = above
                    above = left(above)
                }
                return (predecessor, index, successor)
            }
        }
        return (predecessor, noNode, successor)
    }

    func firstNode(
        in index: NodeIndex, mayContain: (Element.Summary) -> Bool,
        matches: (Element, Bool) -> Bool
    ) -> NodeIndex {
        guard index != noNode, mayContain(node(index).pointee.summary) else { return noNode }
        let found = firstNode(in: left(index), mayContain: mayContain, matches: matches)
        if found != noNode { return found }
        if matches(node(index).pointee.element, metaByte(index).pointee & treeFlagBit != 0) { return index }
        return firstNode(in: right(index), mayContain: mayContain, matches: matches)
    }

    /// Copies node `from` into the free slot `to` (the removed node's) and repoints
    /// `from`'s parent to it: `parentHint` if it still links to `from`, else the parent
    /// found by descending by `key`, `from`'s key. Returns the root afterwards.
    func relocate(
        _ from: NodeIndex, to: NodeIndex, key: Element.Key, parentHint: NodeIndex,
        root: NodeIndex
    ) -> NodeIndex {
        node(to).pointee = node(from).pointee
        metaByte(to).pointee = metaByte(from).pointee
        guard root != from else { return to }
        // The removed node's slot still holds its old links, so it cannot be the hint.
        if parentHint != noNode, parentHint != to {
            let parent = node(parentHint)
            if parent.pointee.left == from {
                parent.pointee.left = to
                return root
            }
            if parent.pointee.right == from {
                parent.pointee.right = to
                return root
            }
        }
        var index = root
        while true {
            if key < self.key(index) {
                let child = left(index)
                if child == from {
                    node(index).pointee.left = to
                    return root
                }
                index = child
            } else {
                let child = right(index)
                if child == from {
                    node(index).pointee.right = to
                    return root
                }
                index = child
            }
        }
    }
}

/// What a removal pass found and did.
struct TreeRemoval<Element: TreeElement> {
    /// The node in the last storage slot, which will move into the removed node's slot,
    /// and its key.
    let last: NodeIndex
    let lastKey: Element.Key
    var index = noNode
    var element: Element?
    /// The successor exists and was adjusted.
    var successorAdjusted = false
    /// The parent of `last` found on the way down (`noNode` if none was found or `last`
    /// is the root). The removal may change it, so it is only a hint to check.
    var lastParent = noNode

    init(last: NodeIndex, lastKey: Element.Key) {
        self.last = last
        self.lastKey = lastKey
    }
}
