// The fuzzer's view of the reference models shared with the property tests
// (Tests/AllocatorModels, compiled into this fuzz binary by scripts/fuzz.sh). The models
// themselves speak their own plain types; these wrappers only translate their answers to
// the library's `RangeInclusive`, `AllocPolicy` and `AllocatorError`, and add no logic.

/// `IdModel` with results as the library's types.
struct FuzzIdModel: Equatable {
    private(set) var model: IdModel

    init(rangeBase: UInt32, rangeEnd: UInt32, live: Set<UInt32> = [], released: Set<UInt32> = []) {
        model = IdModel(base: rangeBase, end: rangeEnd, live: live, handedOut: released)
    }

    var rangeBase: UInt32 { model.base }
    var rangeEnd: UInt32 { model.end }
    var live: Set<UInt32> { model.live }
    var released: Set<UInt32> { model.released }

    mutating func allocateID() -> Result<UInt32, AllocatorError> {
        model.allocateID().mapError(AllocatorError.init)
    }

    mutating func allocate(id: UInt32) -> Result<Void, AllocatorError> {
        model.allocate(id: id).map { .failure(AllocatorError($0)) } ?? .success(())
    }

    mutating func freeID(_ id: UInt32) -> Result<UInt32, AllocatorError> {
        model.freeID(id).mapError(AllocatorError.init)
    }

    func isAllocated(_ id: UInt32) -> Bool { model.isAllocated(id) }
}

/// `AddressModel` with results as the library's types.
struct FuzzAddressModel: Equatable {
    private(set) var model: AddressModel

    init(base: UInt64, end: UInt64, live: [RangeInclusive] = []) {
        model = AddressModel(base: base, end: end, allocations: live.map(AddressModel.Span.init))
    }

    var base: UInt64 { model.base }
    var end: UInt64 { model.end }
    var live: [RangeInclusive] { model.live.map(Self.range) }
    var freeBlocks: [(start: UInt64, end: UInt64)] { model.freeBlocks.map { ($0.start, $0.end) } }
    /// The model's total fits: no managed space is all of `UInt64`.
    var allocatedSize: UInt64 { UInt64(model.allocatedSize) }

    /// What `AddressAllocator(base:size:)` must do: the bounds, or the error.
    static func expectedSpace(base: UInt64, size: UInt64) -> Result<(UInt64, UInt64), AllocatorError> {
        AddressModel.make(base: base, size: size).map { ($0.base, $0.end) }.mapError(AllocatorError.init)
    }

    func allocation(containing address: UInt64) -> RangeInclusive? {
        model.allocation(containing: address).map(Self.range)
    }

    /// What `allocate(size:alignment:policy:)` must return; the model itself is unchanged.
    func expectedAllocation(size: UInt64, alignment: UInt64, policy: AllocPolicy)
        -> Result<RangeInclusive, AllocatorError>
    {
        var copy = model
        let modelPolicy: AddressModel.Policy
        switch policy {
        case .firstMatch: modelPolicy = .first
        case .lastMatch: modelPolicy = .last
        case .exactMatch(let address): modelPolicy = .exact(address)
        }
        return copy.allocate(size: size, alignment: alignment, policy: modelPolicy)
            .map(Self.range).mapError(AllocatorError.init)
    }

    /// Records `range`, which lies in free space, as live.
    mutating func insert(_ range: RangeInclusive) {
        model.insert(AddressModel.Span(range))
    }

    /// What `free(_:)` must do; removes the range when it is exactly one live allocation.
    mutating func free(_ range: RangeInclusive) -> Result<Void, AllocatorError> {
        model.free(start: range.start, end: range.end).map { .failure(AllocatorError($0)) } ?? .success(())
    }

    private static func range(_ span: AddressModel.Span) -> RangeInclusive {
        guard let range = try? RangeInclusive(start: span.start, end: span.end) else {
            fuzzFail("model holds an invalid range \(span)")
        }
        return range
    }
}

extension AddressModel.Span {
    init(_ range: RangeInclusive) { self.init(start: range.start, end: range.end) }
}

extension AllocatorError {
    init(_ failure: AddressModel.Failure) {
        switch failure {
        case .overflow: self = .overflow
        case .underflow: self = .underflow
        case .resourceNotAvailable: self = .resourceNotAvailable
        case .invalidAlignment: self = .invalidAlignment
        case .unalignedAddress: self = .unalignedAddress
        case .invalidSize(let size): self = .invalidSize(size)
        }
    }

    init(_ failure: IdModel.Failure) {
        switch failure {
        case .resourceNotAvailable: self = .resourceNotAvailable
        case .outOfRange(let id): self = .outOfRange(id)
        case .alreadyReleased(let id): self = .alreadyReleased(id)
        case .neverAllocated(let id): self = .neverAllocated(id)
        case .alreadyAllocated(let id): self = .alreadyAllocated(id)
        }
    }
}
