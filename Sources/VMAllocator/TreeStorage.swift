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

    @inline(__always) private func updateSummary(_ index: NodeIndex) {
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
    @inline(__always) private func update(_ index: NodeIndex) {
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
    private func rebalance(_ index: NodeIndex) -> NodeIndex {
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

    func insert(_ new: NodeIndex, under parent: NodeIndex) -> NodeIndex {
        guard parent != noNode else { return new }
        if key(new) < key(parent) {
            node(parent).pointee.left = insert(new, under: left(parent))
        } else {
            node(parent).pointee.right = insert(new, under: right(parent))
        }
        return rebalance(parent)
    }

    /// Unlinks the node with key `key` below `index`, reporting it in `removed`.
    func remove(_ key: Element.Key, from index: NodeIndex, removed: inout NodeIndex) -> NodeIndex {
        guard index != noNode else { return noNode }
        let nodeKey = self.key(index)
        if key < nodeKey {
            node(index).pointee.left = remove(key, from: left(index), removed: &removed)
        } else if nodeKey < key {
            node(index).pointee.right = remove(key, from: right(index), removed: &removed)
        } else {
            removed = index
            let leftChild = left(index)
            let rightChild = right(index)
            // With one child missing, AVL balance makes the other a leaf (possibly the
            // in-order successor); refresh it so a caller's change to the successor shows.
            if leftChild == noNode { return rightChild == noNode ? noNode : rebalance(rightChild) }
            if rightChild == noNode { return rebalance(leftChild) }
            let (newRight, successor) = removeMinimum(rightChild)
            node(successor).pointee.left = leftChild
            node(successor).pointee.right = newRight
            return rebalance(successor)
        }
        return rebalance(index)
    }

    private func removeMinimum(_ index: NodeIndex) -> (root: NodeIndex, minimum: NodeIndex) {
        let leftChild = left(index)
        guard leftChild != noNode else { return (right(index), index) }
        let (newLeft, minimum) = removeMinimum(leftChild)
        node(index).pointee.left = newLeft
        return (rebalance(index), minimum)
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
}

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

/// A node found by key, with its in-order neighbours (tag included).
struct TreeNeighborhood<Element: TreeElement> {
    var element: Element
    var flagged: Bool
    var predecessor: (element: Element, flagged: Bool)?
    var successor: (element: Element, flagged: Bool)?
}

/// What ``OrderedTree/update(key:_:)`` did.
enum TreeUpdateOutcome {
    case notFound, declined, updated
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

    /// Copies node `from` into the free slot `to` and repoints `from`'s parent (found by
    /// descending by `key`, `from`'s key) to it. Returns the root afterwards.
    func relocate(_ from: NodeIndex, to: NodeIndex, key: Element.Key, root: NodeIndex) -> NodeIndex {
        node(to).pointee = node(from).pointee
        metaByte(to).pointee = metaByte(from).pointee
        guard root != from else { return to }
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

    /// Finds the node with key `key` and, if `body` returns a replacement, stores it and
    /// refreshes the summaries on the path, all in one descent.
    func update(
        key: Element.Key, root: NodeIndex,
        _ body: (TreeNeighborhood<Element>) -> (element: Element, flagged: Bool)?
    ) -> TreeUpdateOutcome {
        withUnsafeTemporaryAllocation(of: NodeIndex.self, capacity: maximumDepth) { path in
            var depth = 0
            var index = root
            var predecessor = noNode
            var successor = noNode
            while index != noNode {
                path[depth] = index
                depth += 1
                let nodeKey = self.key(index)
                if nodeKey < key {
                    predecessor = index
                    index = right(index)
                } else if key < nodeKey {
                    successor = index
                    index = left(index)
                } else {
                    break
                }
            }
            guard index != noNode else { return .notFound }
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
            let neighborhood = TreeNeighborhood(
                element: node(index).pointee.element, flagged: isFlagged(index),
                predecessor: predecessor == noNode
                    ? nil : (node(predecessor).pointee.element, isFlagged(predecessor)),
                successor: successor == noNode
                    ? nil : (node(successor).pointee.element, isFlagged(successor)))
            guard let replacement = body(neighborhood) else { return .declined }
            node(index).pointee.element = replacement.element
            setFlag(index, replacement.flagged)
            // Ancestors depend only on their children's summaries: once one is unchanged,
            // so are all above it.
            while depth > 0 {
                depth -= 1
                let before = node(path[depth]).pointee.summary
                updateSummary(path[depth])
                if node(path[depth]).pointee.summary == before { break }
            }
            return .updated
        }
    }
}
