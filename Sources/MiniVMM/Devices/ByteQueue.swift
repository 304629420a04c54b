/// A first-in first-out queue of bytes with amortised O(1) push and pop.
///
/// Used for the UART's receive FIFO and its host-side input backlog.
struct ByteQueue {
    private var storage: [UInt8] = []
    private var head = 0

    /// Number of queued bytes.
    var count: Int { storage.count - head }
    /// Whether no bytes are queued.
    var isEmpty: Bool { head == storage.count }

    /// Appends `bytes` at the tail.
    ///
    /// - Complexity: O(bytes.count), amortised.
    mutating func append(contentsOf bytes: some Collection<UInt8>) {
        storage.append(contentsOf: bytes)
    }

    /// Appends one byte at the tail.
    mutating func append(_ byte: UInt8) {
        storage.append(byte)
    }

    /// Removes and returns the byte at the head, or `nil` when empty.
    ///
    /// - Complexity: amortised O(1): consumed bytes are dropped in bulk once they make up
    ///   half of the storage.
    mutating func popFirst() -> UInt8? {
        guard head < storage.count else { return nil }
        let byte = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: storage.count <= 4096)
            head = 0
        } else if head >= 4096 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return byte
    }

    /// The queued bytes, head first.
    var bytes: [UInt8] { Array(storage[head...]) }

    /// A queue holding `bytes`, head first.
    init(_ bytes: [UInt8] = []) {
        storage = bytes
    }

    /// Removes every byte.
    mutating func removeAll() {
        storage.removeAll(keepingCapacity: true)
        head = 0
    }
}
