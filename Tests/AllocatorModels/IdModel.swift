/// A naive reference model of `IdAllocator` from the spec in issue 2: the set of live IDs
/// and the set of IDs ever handed out (by `allocateID()` or `allocate(id:)`). An ID that is
/// free and was handed out is "released"; a free ID never handed out is "never allocated".
///
/// The one copy shared by the property tests and the fuzzer. It imports nothing, not even
/// the library, so that it cannot borrow the library's logic: results use its own
/// `Failure`, which each user maps to `AllocatorError`.
public struct IdModel: Equatable, Sendable {
    /// What a call must throw, named as the library's `AllocatorError` cases.
    public enum Failure: Error, Equatable, Sendable {
        case resourceNotAvailable
        case outOfRange(UInt32), alreadyReleased(UInt32), neverAllocated(UInt32), alreadyAllocated(UInt32)
    }

    /// The smallest ID in the range.
    public let base: UInt32
    /// The largest ID in the range (inclusive).
    public let end: UInt32
    /// The live IDs.
    public private(set) var live: Set<UInt32> = []
    /// Every ID ever handed out, live or released since.
    public private(set) var handedOut: Set<UInt32> = []

    /// A model of `IdAllocator(rangeBase: base, rangeEnd: end)`, nothing handed out.
    public init(base: UInt32, end: UInt32) {
        self.base = base
        self.end = end
    }

    /// A model in a given state (`live` must be a subset of `handedOut`), for example
    /// that of a decoded snapshot.
    public init(base: UInt32, end: UInt32, live: Set<UInt32>, handedOut: Set<UInt32>) {
        self.base = base
        self.end = end
        self.live = live
        self.handedOut = handedOut.union(live)
    }

    /// Number of IDs in the range.
    public var capacity: UInt64 { UInt64(end) - UInt64(base) + 1 }

    /// IDs handed out and freed since.
    public var released: Set<UInt32> { handedOut.subtracting(live) }

    /// The smallest free ID; linear in the number of live IDs, which tests keep small.
    public var smallestFree: UInt32? {
        if UInt64(live.count) == capacity { return nil }
        var id = base
        while live.contains(id) { id += 1 }
        return id
    }

    /// What `allocateID()` must return: the smallest free ID.
    public mutating func allocateID() -> Result<UInt32, Failure> {
        guard let id = smallestFree else { return .failure(.resourceNotAvailable) }
        live.insert(id)
        handedOut.insert(id)
        return .success(id)
    }

    /// What `allocate(id:)` must throw, if anything.
    public mutating func allocate(id: UInt32) -> Failure? {
        if id < base || id > end { return .outOfRange(id) }
        if live.contains(id) { return .alreadyAllocated(id) }
        live.insert(id)
        handedOut.insert(id)
        return nil
    }

    /// What `freeID(_:)` must return or throw.
    public mutating func freeID(_ id: UInt32) -> Result<UInt32, Failure> {
        if id < base || id > end { return .failure(.outOfRange(id)) }
        if live.contains(id) {
            live.remove(id)
            return .success(id)
        }
        return .failure(handedOut.contains(id) ? .alreadyReleased(id) : .neverAllocated(id))
    }

    /// Whether `id` is live.
    public func isAllocated(_ id: UInt32) -> Bool { live.contains(id) }

    /// The state of one ID as the public API can observe it.
    public enum State: Sendable { case live, released, neverHandedOut }

    /// The state of `id`.
    public func state(of id: UInt32) -> State {
        live.contains(id) ? .live : handedOut.contains(id) ? .released : .neverHandedOut
    }
}
