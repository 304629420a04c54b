/// A deliberately naive reference for `IdAllocator`: explicit sets of live and released
/// IDs; every other ID in the range was never handed out.
struct FuzzIdModel: Equatable {
    let rangeBase: UInt32
    let rangeEnd: UInt32
    private(set) var live: Set<UInt32> = []
    private(set) var released: Set<UInt32> = []

    init(rangeBase: UInt32, rangeEnd: UInt32, live: Set<UInt32> = [], released: Set<UInt32> = []) {
        self.rangeBase = rangeBase
        self.rangeEnd = rangeEnd
        self.live = live
        self.released = released
    }

    /// The smallest ID that is not live; O(live) because it walks past live IDs only.
    mutating func allocateID() -> Result<UInt32, AllocatorError> {
        var candidate = rangeBase
        while live.contains(candidate) {
            guard candidate < rangeEnd else { return .failure(.resourceNotAvailable) }
            candidate += 1
        }
        live.insert(candidate)
        released.remove(candidate)
        return .success(candidate)
    }

    mutating func allocate(id: UInt32) -> Result<Void, AllocatorError> {
        guard rangeBase <= id, id <= rangeEnd else { return .failure(.outOfRange(id)) }
        guard !live.contains(id) else { return .failure(.alreadyAllocated(id)) }
        live.insert(id)
        released.remove(id)
        return .success(())
    }

    mutating func freeID(_ id: UInt32) -> Result<UInt32, AllocatorError> {
        guard rangeBase <= id, id <= rangeEnd else { return .failure(.outOfRange(id)) }
        guard !released.contains(id) else { return .failure(.alreadyReleased(id)) }
        guard live.contains(id) else { return .failure(.neverAllocated(id)) }
        live.remove(id)
        released.insert(id)
        return .success(id)
    }

    func isAllocated(_ id: UInt32) -> Bool { live.contains(id) }

    /// The state of one ID as the public API can observe it.
    enum State { case live, released, neverHandedOut }

    func state(of id: UInt32) -> State {
        live.contains(id) ? .live : released.contains(id) ? .released : .neverHandedOut
    }
}
