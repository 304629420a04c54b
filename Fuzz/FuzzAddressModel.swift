/// A deliberately naive reference for `AddressAllocator`: a sorted array of live ranges,
/// with free blocks recomputed as the gaps between them. O(n) per query, which is
/// fine for the few hundred operations a fuzz input drives.
struct FuzzAddressModel: Equatable {
    let base: UInt64
    let end: UInt64
    private(set) var live: [RangeInclusive] = []

    init(base: UInt64, end: UInt64, live: [RangeInclusive] = []) {
        self.base = base
        self.end = end
        self.live = live
    }

    /// What `AddressAllocator(base:size:)` must do: the bounds, or the error.
    static func expectedSpace(base: UInt64, size: UInt64) -> Result<(UInt64, UInt64), AllocatorError> {
        guard size > 0 else { return .failure(.underflow) }
        let (last, overflow) = base.addingReportingOverflow(size - 1)
        return overflow ? .failure(.overflow) : .success((base, last))
    }

    /// Maximal free blocks, ascending, as inclusive bounds.
    var freeBlocks: [(start: UInt64, end: UInt64)] {
        var blocks: [(start: UInt64, end: UInt64)] = []
        var next: UInt64? = base
        for range in live {
            if let start = next, start < range.start {
                blocks.append((start, range.start - 1))
            }
            next = range.end == end ? nil : range.end + 1
        }
        if let start = next {
            blocks.append((start, end))
        }
        return blocks
    }

    var allocatedSize: UInt64 { live.reduce(0) { $0 + $1.count } }

    func allocation(containing address: UInt64) -> RangeInclusive? {
        live.first { $0.contains(address) }
    }

    /// The same answer by binary search, for the bulk operations of a burst.
    func allocation(containingSorted address: UInt64) -> RangeInclusive? {
        var low = 0
        var high = live.count
        while low < high {
            let middle = (low + high) / 2
            if live[middle].end < address { low = middle + 1 } else { high = middle }
        }
        return low < live.count && live[low].contains(address) ? live[low] : nil
    }

    /// What `allocate(size:alignment:policy:)` must return, following issue 2 to the letter.
    func expectedAllocation(size: UInt64, alignment: UInt64, policy: AllocPolicy)
        -> Result<RangeInclusive, AllocatorError>
    {
        guard size > 0 else { return .failure(.invalidSize(0)) }
        guard alignment > 0, alignment & (alignment - 1) == 0 else { return .failure(.invalidAlignment) }
        switch policy {
        case .exactMatch(let address):
            guard address % alignment == 0 else { return .failure(.unalignedAddress) }
            guard let block = freeBlocks.first(where: { $0.start <= address && address <= $0.end }) else {
                return .failure(.resourceNotAvailable)
            }
            let (last, overflow) = address.addingReportingOverflow(size - 1)
            guard !overflow else { return .failure(.overflow) }
            guard last <= block.end else { return .failure(.resourceNotAvailable) }
            return .success(Self.range(address, last))
        case .firstMatch:
            for block in freeBlocks {
                let (bumped, overflow) = block.start.addingReportingOverflow(alignment - 1)
                guard !overflow else { continue }
                let start = bumped & ~(alignment - 1)
                let (last, overflow2) = start.addingReportingOverflow(size - 1)
                guard !overflow2, last <= block.end else { continue }
                return .success(Self.range(start, last))
            }
            return .failure(.resourceNotAvailable)
        case .lastMatch:
            for block in freeBlocks.reversed() {
                // A block never spans all of UInt64, so `block.end - block.start` fits.
                guard block.end - block.start >= size - 1 else { continue }
                let start = (block.end - (size - 1)) & ~(alignment - 1)
                guard start >= block.start else { continue }
                return .success(Self.range(start, start + (size - 1)))
            }
            return .failure(.resourceNotAvailable)
        }
    }

    mutating func insert(_ range: RangeInclusive) {
        var low = 0
        var high = live.count
        while low < high {
            let middle = (low + high) / 2
            if live[middle].start < range.start { low = middle + 1 } else { high = middle }
        }
        live.insert(range, at: low)
    }

    /// What `free(_:)` must do; removes the range when it is exactly one live allocation.
    mutating func free(_ range: RangeInclusive) -> Result<Void, AllocatorError> {
        guard let position = live.firstIndex(of: range) else { return .failure(.resourceNotAvailable) }
        live.remove(at: position)
        return .success(())
    }

    private static func range(_ start: UInt64, _ end: UInt64) -> RangeInclusive {
        guard let range = try? RangeInclusive(start: start, end: end) else {
            fuzzFail("model built an invalid range [\(start), \(end)]")
        }
        return range
    }
}
