/// A naive reference model of `IdAllocator` from the spec in issue 2: the set of live IDs
/// and the set of IDs ever handed out (by `allocateID()` or `allocate(id:)`). An ID that is
/// free and was handed out is "released"; a free ID never handed out is "never allocated".
struct IdModel: Equatable {
    enum Failure: Error, Equatable {
        case resourceNotAvailable
        case outOfRange(UInt32), alreadyReleased(UInt32), neverAllocated(UInt32), alreadyAllocated(UInt32)
    }

    let base: UInt32
    let end: UInt32
    private(set) var live: Set<UInt32> = []
    private(set) var handedOut: Set<UInt32> = []

    init(base: UInt32, end: UInt32) {
        self.base = base
        self.end = end
    }

    var capacity: UInt64 { UInt64(end) - UInt64(base) + 1 }

    /// The smallest free ID; linear in the number of live IDs, which tests keep small.
    var smallestFree: UInt32? {
        if UInt64(live.count) == capacity { return nil }
        var id = base
        while live.contains(id) { id += 1 }
        return id
    }

    mutating func allocateID() -> Result<UInt32, Failure> {
        guard let id = smallestFree else { return .failure(.resourceNotAvailable) }
        live.insert(id)
        handedOut.insert(id)
        return .success(id)
    }

    mutating func allocate(id: UInt32) -> Failure? {
        if id < base || id > end { return .outOfRange(id) }
        if live.contains(id) { return .alreadyAllocated(id) }
        live.insert(id)
        handedOut.insert(id)
        return nil
    }

    mutating func freeID(_ id: UInt32) -> Result<UInt32, Failure> {
        if id < base || id > end { return .failure(.outOfRange(id)) }
        if live.contains(id) {
            live.remove(id)
            return .success(id)
        }
        return .failure(handedOut.contains(id) ? .alreadyReleased(id) : .neverAllocated(id))
    }

    func isAllocated(_ id: UInt32) -> Bool { live.contains(id) }
}
