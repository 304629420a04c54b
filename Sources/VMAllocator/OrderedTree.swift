/// What an ``OrderedTree`` stores: ordered by `key`, with a summary combined per subtree.
protocol TreeElement: Sendable {
    associatedtype Key: Comparable & Sendable
    associatedtype Summary: Equatable & Sendable
    var key: Key { get }
    /// The summary of this element alone; `flagged` is the node's one-bit tag.
    static func summary(of element: Self, flagged: Bool) -> Summary
    /// Combines two summaries. Must be a join: associative, commutative and idempotent
    /// (as `max` is), so that an insertion can fold the new element's summary into each
    /// ancestor's without reading the ancestor's other child.
    static func combine(_ lhs: Summary, _ rhs: Summary) -> Summary
}

/// A summary that carries nothing, for trees that need no augmentation.
struct NoSummary: Equatable, Sendable {}

/// Index of a node in an ``OrderedTree``'s storage.
typealias NodeIndex = UInt32

/// The index meaning "no node".
let noNode: NodeIndex = .max

/// One tree node: the element, the summary of its subtree and its children.
struct TreeNode<Element: TreeElement>: Sendable {
    var element: Element
    var summary: Element.Summary
    var left: NodeIndex
    var right: NodeIndex
}

/// An AVL tree in chunked storage (``NodeStore``), addressed by 32-bit node indices.
///
/// A node holds the element, its subtree summary and its links in one slot (40 bytes
/// for an address allocation, 16 for a run of IDs), plus one byte in a
/// parallel chunk: the height (low 7 bits) and a one-bit tag for the owner (top bit).
/// Storage is dense (slots `0..<count` are exactly the live nodes), so memory follows
/// the live node count: a removal moves the last node into the freed slot.
///
/// The tree is a value: copying it shares the store, O(1); the first mutation of a
/// shared store copies it (copy-on-write). The balancing and search code works on
/// unchecked pointers (``TreeStorage``); the accessors below and the invariant checker
/// check indices.
struct OrderedTree<Element: TreeElement>: Sendable {
    private(set) var store = NodeStore<Element>()
    private(set) var root: NodeIndex = noNode
    /// Number of live nodes.
    private(set) var count = 0

    init() {}

    // MARK: Node access (index-checked)

    fileprivate func checked(_ node: NodeIndex) -> Int {
        precondition(Int(node) < store.count, "tree node index out of range")
        return Int(node)
    }

    func element(_ node: NodeIndex) -> Element { store.node(checked(node)).pointee.element }
    func key(_ node: NodeIndex) -> Element.Key { element(node).key }
    func left(_ node: NodeIndex) -> NodeIndex { store.node(checked(node)).pointee.left }
    func right(_ node: NodeIndex) -> NodeIndex { store.node(checked(node)).pointee.right }
    func isFlagged(_ node: NodeIndex) -> Bool {
        store.meta(checked(node)).pointee & treeFlagBit != 0
    }
    func height(_ node: NodeIndex) -> Int {
        node == noNode ? 0 : Int(store.meta(checked(node)).pointee & ~treeFlagBit)
    }
    /// The summary of the whole subtree rooted at `node` (which must exist).
    func subtreeSummary(_ node: NodeIndex) -> Element.Summary {
        store.node(checked(node)).pointee.summary
    }
    /// Number of slots, live or free.
    var slotCount: Int { store.count }
    /// Whether the tree has no nodes.
    var isEmpty: Bool { root == noNode }

    /// Whether both trees share storage and root, so hold the same elements (a cheap
    /// test for an unmodified copy).
    func isIdentical(to other: OrderedTree) -> Bool {
        store === other.store && root == other.root && count == other.count
    }

    /// Whether `extra` more nodes fit in 32-bit indices.
    func canInsert(_ extra: Int) -> Bool {
        count + extra < Int(noNode)
    }

    // MARK: Unchecked access

    /// Runs `body` on unchecked pointers to the storage, which must not be mutated.
    @inline(__always)
    private func withStorage<R>(_ body: (TreeStorage<Element>) -> R) -> R {
        body(TreeStorage(store: store))
    }

    /// Makes the store uniquely owned, runs `body` on unchecked pointers to it, then
    /// stores the root it returns.
    @inline(__always)
    private mutating func withMutableStorage(_ body: (TreeStorage<Element>) -> NodeIndex) {
        makeUnique()
        root = body(TreeStorage(store: store))
    }

    @inline(__always) fileprivate mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&store) {
            store = store.copy()
        }
    }

    // MARK: Updates

    /// Inserts `element`, whose key must not be present yet, and returns its node.
    ///
    /// - Complexity: O(log n) amortised (storage may grow).
    @discardableResult
    mutating func insert(_ element: Element, flagged: Bool) -> NodeIndex {
        let node = allocateSlot(element, flagged: flagged)
        let oldRoot = root
        withMutableStorage { $0.insert(node, under: oldRoot) }
        return node
    }

    /// Removes the node with key `key`; does nothing if there is none.
    ///
    /// Storage stays dense, so another node may move to a new index: node indices held
    /// from before a removal are invalid after it.
    ///
    /// - Complexity: O(log n).
    mutating func remove(key: Element.Key) {
        _ = remove(key: key, where: { _ in true }, adjustingSuccessor: { _, _ in })
    }

    /// Removes the node with key `key` if `accept` approves its element and, in the same
    /// pass, lets `adjust` change the in-order successor's element (never its key) given
    /// the removed one. Returns the removed element (`nil` if none was removed) and
    /// whether a successor existed.
    ///
    /// Storage stays dense, so node indices held from before a removal are invalid
    /// after it.
    ///
    /// - Complexity: O(log n).
    mutating func remove(
        key: Element.Key, where accept: (Element) -> Bool,
        adjustingSuccessor adjust: (inout Element, Element) -> Void
    ) -> (removed: Element?, hadSuccessor: Bool) {
        guard root != noNode else { return (nil, false) }
        if !isKnownUniquelyReferenced(&store) {
            // Don't copy shared storage for a removal that will not happen.
            let found = floor(key)
            guard found != noNode, self.key(found) == key, accept(element(found)) else {
                return (nil, false)
            }
        }
        let oldRoot = root
        // The node in the last slot will fill the removed node's slot; the removal pass
        // looks for its parent at the same time (see `TreeRemoval.last`).
        let last = NodeIndex(store.count - 1)
        var removal = TreeRemoval<Element>(last: last, lastKey: self.key(last))
        withMutableStorage {
            $0.remove(key, from: oldRoot, accept: accept, adjust: adjust, removal: &removal)
        }
        guard removal.index != noNode else { return (nil, false) }
        releaseSlot(removal.index, lastKey: removal.lastKey, lastParentHint: removal.lastParent)
        return (removal.element, removal.successorAdjusted)
    }

    /// Frees the unlinked slot `slot`, keeping storage dense: the last slot's node moves
    /// into it (its parent is `lastParentHint` if that still links to it, else found by
    /// key) and the storage shrinks by one.
    private mutating func releaseSlot(
        _ slot: NodeIndex, lastKey: Element.Key, lastParentHint: NodeIndex
    ) {
        let last = NodeIndex(store.count - 1)
        if slot != last {
            let oldRoot = root
            withMutableStorage {
                $0.relocate(
                    last, to: slot, key: lastKey, parentHint: lastParentHint, root: oldRoot)
            }
        }
        store.removeLast()
        count -= 1
    }

    /// Carves the in-order first node (last, if `fromEnd`) for which the planner returns
    /// a carving: in one pass from the root it replaces that node by the carving's
    /// middle and inserts the carving's `before` and `after` elements beside it. Only
    /// subtrees and nodes whose summary passes `planner.mayContain` are visited, so it
    /// must hold for any node the planner would carve. Returns the carving applied.
    ///
    /// - Complexity: O((1 + k) log n), where k counts the nodes whose own summary passes
    ///   `mayContain` but that get no carving from the planner.
    mutating func carveFirst(
        fromEnd: Bool, planner: inout some CarvePlanner<Element>
    ) -> TreeCarving<Element>? {
        guard root != noNode else { return nil }
        let spares = (takeSpareSlot(), takeSpareSlot())
        let oldRoot = root
        var done: TreeCarving<Element>?
        withMutableStorage { storage in
            storage.carveFirst(
                root: oldRoot, fromEnd: fromEnd, planner: &planner, spares: spares, done: &done)
        }
        settleSpares(spares, used: done?.newElementCount ?? 0)
        return done
    }

    /// Carves the node with key `key`, which must exist, as ``carveFirst(fromEnd:planner:)`` does.
    ///
    /// - Complexity: O(log n).
    mutating func carve(key: Element.Key, _ carving: TreeCarving<Element>) {
        guard root != noNode else { return }
        let spares = (takeSpareSlot(), takeSpareSlot())
        let oldRoot = root
        withMutableStorage { $0.carve(key: key, in: oldRoot, carving, spares: spares) }
        settleSpares(spares, used: carving.newElementCount)
    }

    /// A slot for a node that may be created inside an unchecked pass (which cannot grow
    /// the storage), appended at the end. It holds a copy of some live node until used.
    private mutating func takeSpareSlot() -> NodeIndex {
        makeUnique()
        store.append(store.node(checked(root)).pointee, meta: 0)
        return NodeIndex(store.count - 1)
    }

    /// Keeps the spares a carving used (the first ones, in order) and drops the rest,
    /// which are the last slots.
    private mutating func settleSpares(_ spares: (NodeIndex, NodeIndex), used: Int) {
        count += used
        for _ in used..<2 {
            store.removeLast()
        }
    }

    private mutating func allocateSlot(_ element: Element, flagged: Bool) -> NodeIndex {
        makeUnique()
        count += 1
        store.append(
            TreeNode(
                element: element, summary: Element.summary(of: element, flagged: flagged),
                left: noNode, right: noNode),
            meta: flagged ? 1 | treeFlagBit : 1)
        return NodeIndex(store.count - 1)
    }

    // MARK: Queries

    /// The node with the smallest key, or `noNode` when empty.
    ///
    /// - Complexity: O(log n).
    var first: NodeIndex {
        guard root != noNode else { return noNode }
        let root = self.root
        return withStorage { $0.first(root) }
    }

    /// The node with the largest key, or `noNode` when empty.
    ///
    /// - Complexity: O(log n).
    var last: NodeIndex {
        var node = root
        guard node != noNode else { return noNode }
        while right(node) != noNode { node = right(node) }
        return node
    }

    /// The node with the largest key `<= key`, or `noNode`.
    ///
    /// - Complexity: O(log n).
    func floor(_ key: Element.Key) -> NodeIndex {
        guard root != noNode else { return noNode }
        let root = self.root
        return withStorage { $0.floor(key, root) }
    }

    /// The node with key `key` (or `noNode`) and its in-order neighbours.
    ///
    /// - Complexity: O(log n).
    func neighbors(of key: Element.Key)
        -> (predecessor: NodeIndex, match: NodeIndex, successor: NodeIndex)
    {
        guard root != noNode else { return (noNode, noNode, noNode) }
        let root = self.root
        return withStorage { $0.neighbors(of: key, root) }
    }

    /// The in-order first node whose element and tag satisfy `matches`, visiting only
    /// subtrees whose summary passes `mayContain` (which must hold for every subtree
    /// holding a match).
    ///
    /// - Complexity: O((1 + k) log n), where k counts the nodes visited that pass
    ///   `mayContain` for their own subtree but fail `matches`.
    func firstNode(
        mayContain: (Element.Summary) -> Bool, matches: (Element, Bool) -> Bool
    ) -> NodeIndex {
        guard root != noNode else { return noNode }
        let root = self.root
        return withStorage { $0.firstNode(in: root, mayContain: mayContain, matches: matches) }
    }

    /// Calls `body` with every element and its tag, in key order.
    ///
    /// - Complexity: O(n).
    func forEachInOrder(_ body: (Element, Bool) -> Void) {
        var stack: [NodeIndex] = []
        stack.reserveCapacity(height(root))
        var node = root
        while node != noNode || !stack.isEmpty {
            while node != noNode {
                stack.append(node)
                node = left(node)
            }
            let current = stack.removeLast()
            body(element(current), isFlagged(current))
            node = right(current)
        }
    }

    // MARK: Bulk construction

    /// Builds a perfectly balanced tree from elements already sorted by strictly
    /// increasing key.
    ///
    /// - Complexity: O(n).
    init(sorted items: [(element: Element, flagged: Bool)]) {
        guard !items.isEmpty else { return }
        for item in items {
            store.append(
                TreeNode(
                    element: item.element,
                    summary: Element.summary(of: item.element, flagged: item.flagged),
                    left: noNode, right: noNode),
                meta: item.flagged ? treeFlagBit : 0)
        }
        count = items.count
        withMutableStorage { $0.build(0, items.count) }
    }
}

/// The tag bit in a node's metadata byte; the other bits hold its height.
let treeFlagBit: UInt8 = 0x80

extension OrderedTree where Element.Summary == NoSummary {
    /// Replaces the element and tag of `node` without restructuring.
    ///
    /// The new key must keep the in-order sequence sorted. Only trees whose elements
    /// carry no summary have this: there is no summary that it could leave stale.
    mutating func setElement(_ node: NodeIndex, _ element: Element, flagged: Bool) {
        makeUnique()
        let index = checked(node)
        store.node(index).pointee.element = element
        let height = store.meta(index).pointee & ~treeFlagBit
        store.meta(index).pointee = flagged ? height | treeFlagBit : height
    }
}
