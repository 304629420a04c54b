/// Chunked node storage for ``OrderedTree``.
///
/// Nodes live in fixed-size chunks (the first one grows by doubling until it reaches
/// the chunk size), so growing never copies nodes and never holds two copies of the
/// tree at once: at most one partly used chunk is slack. Node `i` is found at
/// `chunks[i >> chunkShift][i & chunkMask]`, its metadata byte likewise in `metaChunks`.
///
/// Copy-on-write is done by the owning ``OrderedTree``, which mutates a store only while
/// it holds the sole reference (`isKnownUniquelyReferenced`) and otherwise replaces it
/// by ``copy()`` first; that is why sharing it across concurrency domains is safe.
final class NodeStore<Element: TreeElement>: @unchecked Sendable {
    typealias Node = TreeNode<Element>

    static var chunkShift: Int { 11 }
    static var chunkSize: Int { 1 << chunkShift }
    static var chunkMask: Int { chunkSize - 1 }

    private(set) var nodeChunks: UnsafeMutablePointer<UnsafeMutablePointer<Node>>
    private(set) var metaChunks: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>>
    private var tableCapacity: Int
    private var chunkCount = 0
    /// Capacity of chunk 0 while it is still growing; `chunkSize` afterwards.
    private var firstChunkCapacity = 0
    /// Number of initialised slots.
    private(set) var count = 0

    init() {
        tableCapacity = 4
        nodeChunks = .allocate(capacity: tableCapacity)
        metaChunks = .allocate(capacity: tableCapacity)
    }

    deinit {
        for chunk in 0..<chunkCount {
            nodeChunks[chunk].deinitialize(count: usedSlots(inChunk: chunk))
            nodeChunks[chunk].deallocate()
            metaChunks[chunk].deallocate()
        }
        nodeChunks.deallocate()
        metaChunks.deallocate()
    }

    @inline(__always) func node(_ index: Int) -> UnsafeMutablePointer<Node> {
        nodeChunks[index >> Self.chunkShift] + (index & Self.chunkMask)
    }

    @inline(__always) func meta(_ index: Int) -> UnsafeMutablePointer<UInt8> {
        metaChunks[index >> Self.chunkShift] + (index & Self.chunkMask)
    }

    /// Appends a slot holding `node` and `meta`.
    ///
    /// - Complexity: O(1) amortised; never moves existing nodes once the first chunk
    ///   is full.
    func append(_ node: Node, meta: UInt8) {
        if count < Self.chunkSize {
            if count == firstChunkCapacity { growFirstChunk() }
        } else if count >> Self.chunkShift == chunkCount {
            addChunk()
        }
        self.node(count).initialize(to: node)
        self.meta(count).initialize(to: meta)
        count += 1
    }

    /// Removes the last slot. An emptied chunk is kept as a spare until the one before
    /// it is half empty, so appends and removals at a chunk boundary don't thrash.
    func removeLast() {
        precondition(count > 0, "removeLast on empty node storage")
        count -= 1
        node(count).deinitialize(count: 1)
        if chunkCount >= 2, count + Self.chunkSize / 2 <= (chunkCount - 1) * Self.chunkSize,
            usedSlots(inChunk: chunkCount - 1) == 0
        {
            chunkCount -= 1
            nodeChunks[chunkCount].deallocate()
            metaChunks[chunkCount].deallocate()
        }
    }

    private func usedSlots(inChunk chunk: Int) -> Int {
        max(0, min(Self.chunkSize, count - chunk * Self.chunkSize))
    }

    private func growFirstChunk() {
        let newCapacity = min(Self.chunkSize, max(8, firstChunkCapacity * 2))
        let newNodes = UnsafeMutablePointer<Node>.allocate(capacity: newCapacity)
        let newMeta = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        if chunkCount == 1 {
            newNodes.moveInitialize(from: nodeChunks[0], count: count)
            newMeta.moveInitialize(from: metaChunks[0], count: count)
            nodeChunks[0].deallocate()
            metaChunks[0].deallocate()
        }
        nodeChunks[0] = newNodes
        metaChunks[0] = newMeta
        chunkCount = 1
        firstChunkCapacity = newCapacity
    }

    private func addChunk() {
        if chunkCount == tableCapacity {
            let newCapacity = tableCapacity * 2
            let newNodeTable = UnsafeMutablePointer<UnsafeMutablePointer<Node>>.allocate(capacity: newCapacity)
            let newMetaTable = UnsafeMutablePointer<UnsafeMutablePointer<UInt8>>.allocate(capacity: newCapacity)
            newNodeTable.moveInitialize(from: nodeChunks, count: chunkCount)
            newMetaTable.moveInitialize(from: metaChunks, count: chunkCount)
            nodeChunks.deallocate()
            metaChunks.deallocate()
            nodeChunks = newNodeTable
            metaChunks = newMetaTable
            tableCapacity = newCapacity
        }
        nodeChunks[chunkCount] = .allocate(capacity: Self.chunkSize)
        metaChunks[chunkCount] = .allocate(capacity: Self.chunkSize)
        chunkCount += 1
    }

    /// A deep copy with the same chunk layout.
    ///
    /// - Complexity: O(n).
    func copy() -> NodeStore {
        let copy = NodeStore()
        if chunkCount > copy.tableCapacity {
            copy.nodeChunks.deallocate()
            copy.metaChunks.deallocate()
            copy.nodeChunks = .allocate(capacity: tableCapacity)
            copy.metaChunks = .allocate(capacity: tableCapacity)
            copy.tableCapacity = tableCapacity
        }
        for chunk in 0..<chunkCount {
            let capacity = chunkCount == 1 ? firstChunkCapacity : Self.chunkSize
            let used = usedSlots(inChunk: chunk)
            copy.nodeChunks[chunk] = .allocate(capacity: capacity)
            copy.metaChunks[chunk] = .allocate(capacity: capacity)
            copy.nodeChunks[chunk].initialize(from: nodeChunks[chunk], count: used)
            copy.metaChunks[chunk].initialize(from: metaChunks[chunk], count: used)
        }
        copy.chunkCount = chunkCount
        copy.firstChunkCapacity = firstChunkCapacity
        copy.count = count
        return copy
    }
}
