import Testing
import AllocatorModels
@testable import VMAllocator

/// Both allocators expose the internal invariant checker; this lets helpers treat them alike.
protocol InvariantChecked: Equatable {
    func checkInvariants() -> String?
}

extension AddressAllocator: InvariantChecked {}
extension IdAllocator: InvariantChecked {}

/// Runs `body` on a copy of `value`, expects exactly `expected`, and checks that the failed
/// call left the copy equal to the original and internally valid.
func expectFailure<T: InvariantChecked>(
    _ expected: AllocatorError,
    on value: T,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (inout T) throws(AllocatorError) -> Void
) {
    var copy = value
    do {
        try body(&copy)
        Issue.record("expected \(expected), but the call succeeded", sourceLocation: sourceLocation)
    } catch {
        #expect(error == expected, sourceLocation: sourceLocation)
    }
    #expect(copy == value, "a failed call changed the allocator", sourceLocation: sourceLocation)
    #expect(copy.checkInvariants() == nil, sourceLocation: sourceLocation)
}

/// Calls `body` expecting success; records the error as an issue otherwise.
@discardableResult
func expectSuccess<T: InvariantChecked, R>(
    on value: inout T,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (inout T) throws(AllocatorError) -> R
) -> R? {
    do {
        let result = try body(&value)
        #expect(value.checkInvariants() == nil, sourceLocation: sourceLocation)
        return result
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Shorthand for a range that the test knows to be valid.
func r(_ start: UInt64, _ end: UInt64, sourceLocation: SourceLocation = #_sourceLocation) -> RangeInclusive {
    do {
        return try RangeInclusive(start: start, end: end)
    } catch {
        Issue.record("invalid test range [\(start), \(end)]: \(error)", sourceLocation: sourceLocation)
        return try! RangeInclusive(start: 0, end: 0)
    }
}

/// Shorthand for an allocator the test knows to be valid.
func space(base: UInt64, size: UInt64, sourceLocation: SourceLocation = #_sourceLocation) -> AddressAllocator {
    do {
        return try AddressAllocator(base: base, size: size)
    } catch {
        Issue.record("invalid test allocator base \(base) size \(size): \(error)", sourceLocation: sourceLocation)
        return try! AddressAllocator(base: 0, size: 1)
    }
}

func ids(_ base: UInt32, _ end: UInt32, sourceLocation: SourceLocation = #_sourceLocation) -> IdAllocator {
    do {
        return try IdAllocator(rangeBase: base, rangeEnd: end)
    } catch {
        Issue.record("invalid test ID range [\(base), \(end)]: \(error)", sourceLocation: sourceLocation)
        return try! IdAllocator(rangeBase: 0, rangeEnd: 0)
    }
}

extension AllocatorError {
    init(_ failure: AddressModel.Failure) {
        switch failure {
        case .overflow: self = .overflow
        case .underflow: self = .underflow
        case .resourceNotAvailable: self = .resourceNotAvailable
        case .invalidAlignment: self = .invalidAlignment
        case .unalignedAddress: self = .unalignedAddress
        case .invalidSize(let s): self = .invalidSize(s)
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

extension AddressModel.Span {
    init(_ range: RangeInclusive) { self.init(start: range.start, end: range.end) }
}

extension AddressModel.Policy {
    var library: AllocPolicy {
        switch self {
        case .first: .firstMatch
        case .last: .lastMatch
        case .exact(let a): .exactMatch(a)
        }
    }
}

/// How one allocator call compared with the reference model's answer.
struct ModelComparison {
    /// Both returned a value (equal or not).
    var bothSucceeded = false
    /// Both threw (the same error or not).
    var bothFailed = false
    /// What disagreed, if anything.
    var problem: String?

    /// Compares `actual` with `expected` (the model's failure already mapped to the
    /// library's error); `what` names the call in the problem text.
    init<T: Equatable>(
        expected: Result<T, AllocatorError>, actual: Result<T, AllocatorError>, _ what: String
    ) {
        switch (expected, actual) {
        case (.success(let e), .success(let a)):
            bothSucceeded = true
            if e != a { problem = "\(what) returned \(a), model says \(e)" }
        case (.failure(let e), .failure(let a)):
            bothFailed = true
            if e != a { problem = "\(what) threw \(a), model says \(e)" }
        case (.success(let e), .failure(let a)):
            problem = "\(what) threw \(a), model returned \(e)"
        case (.failure(let e), .success(let a)):
            problem = "\(what) returned \(a), model threw \(e)"
        }
    }
}
