import Foundation

/// Drives an `AddressAllocator` and `FuzzAddressModel` in lock step from fuzzer bytes and
/// checks every result, every failed call's atomicity, and the full observable state plus
/// `checkInvariants()` after each operation.
struct FuzzAddressProgram {
    private var input: FuzzInput
    private var allocator: AddressAllocator
    private var model: FuzzAddressModel
    private var saved: (allocator: AddressAllocator, model: FuzzAddressModel)?
    private var operations = 0
    private var burstDone = false

    init(_ input: FuzzInput) {
        self.input = input
        let (base, size) = Self.space(&self.input)
        let expected = FuzzAddressModel.expectedSpace(base: base, size: size)
        var created: AddressAllocator?
        do {
            created = try AddressAllocator(base: base, size: size)
        } catch {
            guard case .failure(error) = expected else {
                fuzzFail("init(base: \(base), size: \(size)) threw \(error), expected \(expected)")
            }
        }
        if let created {
            guard case .success(let bounds) = expected, created.base == bounds.0, created.end == bounds.1 else {
                fuzzFail("init(base: \(base), size: \(size)) gave [\(created.base), \(created.end)], expected \(expected)")
            }
            allocator = created
            model = FuzzAddressModel(base: bounds.0, end: bounds.1)
        } else {
            // The error was right; keep the input useful with a small default space.
            allocator = Self.defaultAllocator
            model = FuzzAddressModel(base: 0x1000, end: 0xffff)
        }
        verify("init")
    }

    private static let defaultAllocator: AddressAllocator = {
        guard let allocator = try? AddressAllocator(base: 0x1000, size: 0xf000) else {
            fuzzFail("default allocator")
        }
        return allocator
    }()

    /// Managed spaces skewed towards the edges: 0, UInt64.max, tiny and huge sizes.
    private static func space(_ input: inout FuzzInput) -> (UInt64, UInt64) {
        let base: UInt64 = switch input.byte() % 5 {
        case 0: 0
        case 1: UInt64(input.byte()) * 0x1000
        case 2: UInt64.max - UInt64(input.uint16())
        case 3: input.powerOfTwo()
        default: input.uint64()
        }
        let size: UInt64 = switch input.byte() % 5 {
        case 0: UInt64(input.uint16())
        case 1: input.powerOfTwo()
        case 2: UInt64.max &- base &+ 1 &- UInt64(input.byte() % 3)
        case 3: UInt64(input.byte())
        default: input.uint64()
        }
        return (base, size)
    }

    mutating func run() {
        while !input.isExhausted && operations < 1_000 {
            operations += 1
            switch input.byte() % 10 {
            case 0, 1, 2, 3: allocate()
            case 4, 5: free()
            case 6: snapshot()
            // JSON of a burst-sized allocator is slow to build; do it on every 8th op only.
            case 7 where model.live.count >= 512 && operations % 8 != 0, 8 where model.live.count >= 512 && operations % 8 != 0:
                break
            case 7: codableRoundTrip()
            case 8: corruptedSnapshot()
            default:
                if input.byte() % 8 == 0 { burst() } else { query() }
            }
        }
    }

    // MARK: Operations

    private mutating func allocate() {
        let size = pickSize()
        let alignment = pickAlignment()
        let policy: AllocPolicy = switch input.byte() % 3 {
        case 0: .firstMatch
        case 1: .lastMatch
        default: .exactMatch(pickAddress(size: size, alignment: alignment))
        }
        let expected = model.expectedAllocation(size: size, alignment: alignment, policy: policy)
        // Copy only when the call must fail: a copy makes the next mutation copy the tree.
        let before = expected.isFailure ? allocator : nil
        let what = "allocate(size: \(size), alignment: \(alignment), policy: \(policy))"
        do {
            let range = try allocator.allocate(size: size, alignment: alignment, policy: policy)
            guard case .success(range) = expected else { fuzzFail("\(what) gave \(range), expected \(expected)") }
            model.insert(range)
        } catch {
            guard case .failure(error) = expected else { fuzzFail("\(what) threw \(error), expected \(expected)") }
            guard allocator == before else { fuzzFail("\(what) threw \(error) but changed the allocator") }
        }
        verify(what)
    }

    private mutating func free() {
        let range = pickRangeToFree()
        var expectedModel = model
        let expected = expectedModel.free(range)
        // Copy only when the call must fail: a copy makes the next mutation copy the tree.
        let before = expected.isFailure ? allocator : nil
        do {
            try allocator.free(range)
            guard case .success = expected else { fuzzFail("free(\(range)) succeeded, expected \(expected)") }
            model = expectedModel
        } catch {
            guard case .failure(error) = expected else { fuzzFail("free(\(range)) threw \(error), expected \(expected)") }
            guard allocator == before else { fuzzFail("free(\(range)) threw \(error) but changed the allocator") }
        }
        verify("free(\(range))")
    }

    /// Copies are values: save, restore, or mutate a copy and check the original kept still.
    private mutating func snapshot() {
        switch input.byte() % 3 {
        case 0:
            saved = (allocator, model)
        case 1:
            if let saved {
                allocator = saved.allocator
                model = saved.model
            }
        default:
            var copy = allocator
            _ = try? copy.allocate(size: 1, alignment: 1, policy: .firstMatch)
            if let first = model.live.first { _ = try? copy.free(first) }
        }
        verify("snapshot")
    }

    private mutating func codableRoundTrip() {
        let data: Data
        do {
            data = try JSONEncoder().encode(allocator)
        } catch {
            fuzzFail("encoding threw \(error)")
        }
        do {
            let decoded = try JSONDecoder().decode(AddressAllocator.self, from: data)
            guard decoded == allocator else { fuzzFail("round trip changed the allocator") }
            allocator = decoded
        } catch {
            fuzzFail("decoding our own encoding threw \(error)")
        }
        verify("Codable round trip")
    }

    /// Overwrites bytes of a valid snapshot; whatever decodes must be exactly what the
    /// JSON says, and becomes the allocator (and model) the program goes on with.
    private mutating func corruptedSnapshot() {
        guard var bytes = try? Array(JSONEncoder().encode(allocator)), !bytes.isEmpty else {
            fuzzFail("encoding failed")
        }
        for _ in 0...(input.byte() % 3) {
            bytes[input.index(below: bytes.count)] = input.byte()
        }
        if let decoded = fuzzCheckAddressSnapshot(bytes) {
            allocator = decoded.allocator
            model = decoded.model
            saved = nil
            verify("decoded corrupted snapshot")
        }
    }

    /// Once per program: thousands of 1-byte exact-match allocations at a stride, so the
    /// tree outgrows its first storage chunk (copies and snapshots then span chunks).
    private mutating func burst() {
        guard !burstDone else { return }
        burstDone = true
        let count = 1 + Int(input.byte()) * 12
        let first = model.base &+ UInt64(input.uint16())
        let stride = 2 + UInt64(input.byte() % 3)
        for index in 0..<UInt64(count) {
            let address = first &+ index &* stride
            let isFree = model.base <= address && address <= model.end && model.allocation(containing: address) == nil
            do {
                let range = try allocator.allocate(size: 1, alignment: 1, policy: .exactMatch(address))
                guard isFree, range.start == address, range.end == address else {
                    fuzzFail("burst exactMatch(\(address)) gave \(range), expected \(isFree ? "[a, a]" : "an error")")
                }
                model.insert(range)
            } catch {
                guard !isFree, error == .resourceNotAvailable else {
                    fuzzFail("burst exactMatch(\(address)) threw \(error), free: \(isFree)")
                }
            }
        }
        verify("burst of \(count) from \(first) by \(stride)")
        fuzzCompare(allocator, model, "burst")
    }

    private mutating func query() {
        let address = pickAddress(size: 1, alignment: 1)
        let found = allocator.allocation(containing: address)
        let expected = model.allocation(containing: address)
        guard found == expected else {
            fuzzFail("allocation(containing: \(address)) = \(String(describing: found)), expected \(String(describing: expected))")
        }
    }

    // MARK: Choosing arguments

    private mutating func pickSize() -> UInt64 {
        switch input.byte() % 8 {
        case 0, 1, 2: 1 + UInt64(input.byte() % 32)
        case 3: input.powerOfTwo()
        case 4: input.powerOfTwo() &+ UInt64(input.byte() % 3) &- 1
        case 5: 0
        case 6: (model.end - model.base) &+ 1 &- UInt64(input.byte() % 4)
        default: input.uint64()
        }
    }

    private mutating func pickAlignment() -> UInt64 {
        switch input.byte() % 8 {
        case 0, 1, 2: 1 << UInt64(input.byte() % 8)
        case 3, 4: input.powerOfTwo()
        case 5: 0
        case 6: UInt64(input.byte())
        default: 1
        }
    }

    /// Addresses near interesting places: free block edges, live allocations, UInt64.max.
    private mutating func pickAddress(size: UInt64, alignment: UInt64) -> UInt64 {
        let blocks = model.freeBlocks
        switch input.byte() % 7 {
        case 0:
            return model.base &+ UInt64(input.uint16())
        case 1 where !blocks.isEmpty:
            return blocks[input.index(below: blocks.count)].start
        case 2 where !blocks.isEmpty:
            return blocks[input.index(below: blocks.count)].end
        case 3 where !blocks.isEmpty:
            // The highest aligned start that still fits, when there is one.
            let block = blocks[input.index(below: blocks.count)]
            let mask = alignment > 0 ? ~(alignment &- 1) : UInt64.max
            return (block.end &- (size &- 1)) & mask
        case 4 where !model.live.isEmpty:
            let range = model.live[input.index(below: model.live.count)]
            return input.byte() % 2 == 0 ? range.start : range.end
        case 5:
            return UInt64.max &- UInt64(input.byte())
        default:
            return input.uint64()
        }
    }

    /// Mostly live allocations, else near misses and free space that must be refused.
    private mutating func pickRangeToFree() -> RangeInclusive {
        let live = model.live
        let choice = input.byte() % 7
        if !live.isEmpty && choice < 3 {
            return live[input.index(below: live.count)]
        }
        var start: UInt64
        var end: UInt64
        switch choice {
        case 3 where !live.isEmpty:
            let range = live[input.index(below: live.count)]
            (start, end) = (range.start, range.end)
            switch input.byte() % 4 {
            case 0: start &-= 1
            case 1: start &+= 1
            case 2: end &-= 1
            default: end &+= 1
            }
        case 4 where live.count >= 2:
            let index = input.index(below: live.count - 1)
            (start, end) = (live[index].start, live[index + 1].end)
        case 5 where !model.freeBlocks.isEmpty:
            let blocks = model.freeBlocks
            let block = blocks[input.index(below: blocks.count)]
            (start, end) = (block.start, block.end)
        default:
            start = input.uint64()
            end = start &+ UInt64(input.uint16())
        }
        if let range = try? RangeInclusive(start: min(start, end), end: max(start, end)) {
            return range
        }
        // Only [0, UInt64.max] is refused; the model never holds it, so any range will do.
        return fuzzUnwrap(try? RangeInclusive(start: 0, end: 0), "RangeInclusive(0, 0) threw")
    }

    // MARK: Checking

    /// Invariants after every operation; the full state comparison too, except that once a
    /// burst has made the tree large it runs on every 8th operation to keep inputs fast
    /// (every result is still checked exactly).
    private func verify(_ step: @autoclosure () -> String) {
        if let problem = allocator.checkInvariants() {
            fuzzFail("after \(step()): invariant broken: \(problem)")
        }
        if model.live.count < 512 || operations % 8 == 0 {
            fuzzCompare(allocator, model, step())
        }
    }
}

/// Compares every observable property of `allocator` with `model`.
func fuzzCompare(_ allocator: AddressAllocator, _ model: FuzzAddressModel, _ step: @autoclosure () -> String) {
    guard allocator.base == model.base, allocator.end == model.end else {
        fuzzFail("after \(step()): space [\(allocator.base), \(allocator.end)], expected [\(model.base), \(model.end)]")
    }
    guard allocator.allocations == model.live else {
        fuzzFail("after \(step()): allocations \(allocator.allocations), expected \(model.live)")
    }
    let blocks = model.freeBlocks
    let freeRanges = allocator.freeRanges
    guard freeRanges.count == blocks.count,
        zip(freeRanges, blocks).allSatisfy({ $0.start == $1.start && $0.end == $1.end })
    else {
        fuzzFail("after \(step()): free ranges \(freeRanges), expected \(blocks)")
    }
    guard allocator.allocatedSize == model.allocatedSize else {
        fuzzFail("after \(step()): allocatedSize \(allocator.allocatedSize), expected \(model.allocatedSize)")
    }
    let largest = allocator.largestFreeRange
    let largestCount = blocks.map { $0.end - $0.start + 1 }.max()
    guard largest?.count == largestCount, largest.map(freeRanges.contains) ?? true else {
        fuzzFail("after \(step()): largestFreeRange \(String(describing: largest)), expected count \(String(describing: largestCount))")
    }
}
