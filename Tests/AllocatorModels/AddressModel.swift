/// A deliberately naive reference model of `AddressAllocator`, written straight from the
/// spec in issue 2: a sorted array of live allocations over the inclusive space
/// [base, end]. Free blocks are recomputed as the gaps every time, so coalescing is
/// correct by construction.
///
/// The one copy shared by the property tests and the fuzzer. It imports nothing, not even
/// the library, so that it cannot borrow the library's logic: its own plain types keep it
/// independent of `RangeInclusive`, `AllocPolicy` and `AllocatorError`.
public struct AddressModel: Equatable, Sendable {
    /// An inclusive range of addresses.
    public struct Span: Equatable, Comparable, Sendable, CustomStringConvertible {
        /// The first address.
        public var start: UInt64
        /// The last address (inclusive).
        public var end: UInt64
        /// The span `[start, end]`.
        public init(start: UInt64, end: UInt64) {
            self.start = start
            self.end = end
        }
        public static func < (a: Span, b: Span) -> Bool { a.start < b.start || (a.start == b.start && a.end < b.end) }
        public var description: String { "[0x\(String(start, radix: 16)), 0x\(String(end, radix: 16))]" }
        /// end - start + 1 as a wider type, so a span of 2^64 bytes cannot overflow.
        public var width: UInt128 { UInt128(end) - UInt128(start) + 1 }
    }

    /// What a call must throw, named as the library's `AllocatorError` cases.
    public enum Failure: Error, Equatable, Sendable {
        case overflow, underflow, resourceNotAvailable, invalidAlignment, unalignedAddress
        case invalidSize(UInt64)
    }

    /// The placement policies, named after `AllocPolicy`'s cases.
    public enum Policy: Equatable, Sendable {
        case first, last, exact(UInt64)
    }

    /// The first address managed.
    public let base: UInt64
    /// The last address managed (inclusive).
    public let end: UInt64
    /// The live allocations, ascending.
    public private(set) var live: [Span] = []

    /// Mirrors `AddressAllocator(base:size:)`.
    public static func make(base: UInt64, size: UInt64) -> Result<AddressModel, Failure> {
        if size == 0 { return .failure(.underflow) }
        let (last, overflow) = base.addingReportingOverflow(size - 1)
        if overflow { return .failure(.overflow) }
        return .success(AddressModel(base: base, end: last))
    }

    private init(base: UInt64, end: UInt64) {
        self.base = base
        self.end = end
    }

    /// Builds a model holding exactly `allocations` (which must be valid).
    public init(base: UInt64, end: UInt64, allocations: [Span]) {
        self.base = base
        self.end = end
        self.live = allocations.sorted()
    }

    /// The maximal free blocks, ascending.
    public var freeBlocks: [Span] {
        var gaps: [Span] = []
        var cursor: UInt64? = base  // nil once the cursor has passed UInt64.max
        for span in live {
            if let c = cursor, c < span.start { gaps.append(Span(start: c, end: span.start - 1)) }
            cursor = span.end == UInt64.max ? nil : span.end + 1
        }
        if let c = cursor, c <= end { gaps.append(Span(start: c, end: end)) }
        return gaps
    }

    /// Total bytes in live allocations.
    public var allocatedSize: UInt128 { live.reduce(0) { $0 + $1.width } }

    /// The live allocation holding `address`, found by binary search (`live` is sorted
    /// and disjoint), so that large fuzzer bursts stay fast.
    public func allocation(containing address: UInt64) -> Span? {
        var (low, high) = (0, live.count)
        while low < high {
            let mid = (low + high) / 2
            if live[mid].end < address { low = mid + 1 } else { high = mid }
        }
        return low < live.count && live[low].start <= address ? live[low] : nil
    }

    /// `x` rounded up to a multiple of `alignment`, or `nil` past `UInt64.max`.
    public static func alignUp(_ x: UInt64, _ alignment: UInt64) -> UInt64? {
        let mask = alignment - 1
        if x & mask == 0 { return x }
        let (next, overflow) = (x | mask).addingReportingOverflow(1)
        return overflow ? nil : next
    }

    /// `x` rounded down to a multiple of `alignment`.
    public static func alignDown(_ x: UInt64, _ alignment: UInt64) -> UInt64 { x & ~(alignment - 1) }

    /// Mirrors `allocate(size:alignment:policy:)`, including argument-check order.
    public mutating func allocate(size: UInt64, alignment: UInt64, policy: Policy) -> Result<Span, Failure> {
        if size == 0 { return .failure(.invalidSize(0)) }
        if alignment == 0 || alignment & (alignment - 1) != 0 { return .failure(.invalidAlignment) }
        if case .exact(let a) = policy, a % alignment != 0 { return .failure(.unalignedAddress) }

        let blocks = freeBlocks
        var chosen: Span?
        switch policy {
        case .first:
            for b in blocks {
                guard let s = Self.alignUp(b.start, alignment) else { continue }
                let (last, overflow) = s.addingReportingOverflow(size - 1)
                if !overflow && last <= b.end { chosen = Span(start: s, end: last); break }
            }
        case .last:
            for b in blocks.reversed() where b.width >= UInt128(size) {
                let s = Self.alignDown(b.end - (size - 1), alignment)
                if s >= b.start { chosen = Span(start: s, end: s + (size - 1)); break }
            }
        case .exact(let a):
            guard let b = blocks.first(where: { $0.start <= a && a <= $0.end }) else {
                return .failure(.resourceNotAvailable)
            }
            let (last, overflow) = a.addingReportingOverflow(size - 1)
            if overflow { return .failure(.overflow) }
            if last > b.end { return .failure(.resourceNotAvailable) }
            chosen = Span(start: a, end: last)
        }
        guard let span = chosen else { return .failure(.resourceNotAvailable) }
        live.insert(span, at: insertionIndex(for: span.start))
        return .success(span)
    }

    /// Records `span` as live; it must lie in free space (for example an `exactMatch`
    /// allocation the caller has already checked).
    public mutating func insert(_ span: Span) {
        live.insert(span, at: insertionIndex(for: span.start))
    }

    /// Mirrors `free(_:)`.
    public mutating func free(start: UInt64, end: UInt64) -> Failure? {
        let i = insertionIndex(for: start)
        guard i < live.count, live[i].start == start, live[i].end == end else { return .resourceNotAvailable }
        live.remove(at: i)
        return nil
    }

    /// The index of the first live allocation starting at or after `start`.
    private func insertionIndex(for start: UInt64) -> Int {
        var (low, high) = (0, live.count)
        while low < high {
            let mid = (low + high) / 2
            if live[mid].start < start { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
