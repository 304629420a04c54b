import Foundation

/// Drives an `IdAllocator` and `FuzzIdModel` in lock step from fuzzer bytes and checks
/// every result, every failed call's atomicity, the state of the IDs involved (through
/// `isAllocated` and `freeID` on a throwaway copy) and `checkInvariants()` after each step.
struct FuzzIdProgram {
    private var input: FuzzInput
    private var allocator: IdAllocator
    private var model: FuzzIdModel
    private var saved: (allocator: IdAllocator, model: FuzzIdModel)?
    private var operations = 0
    private var burstDone = false

    init(_ input: FuzzInput) {
        self.input = input
        let (base, end) = Self.range(&self.input)
        do {
            allocator = try IdAllocator(rangeBase: base, rangeEnd: end)
            guard base <= end else { fuzzFail("IdAllocator(\(base), \(end)) did not throw") }
            model = FuzzIdModel(rangeBase: base, rangeEnd: end)
        } catch {
            guard base > end, error == .invalidRange(UInt64(base), UInt64(end)) else {
                fuzzFail("IdAllocator(\(base), \(end)) threw \(error)")
            }
            allocator = fuzzUnwrap(try? IdAllocator(rangeBase: 1, rangeEnd: 16), "IdAllocator(1, 16) threw")
            model = FuzzIdModel(rangeBase: 1, rangeEnd: 16)
        }
        verify("init", touched: [base, end])
    }

    /// Ranges skewed towards exhaustion and the UInt32 edges.
    private static func range(_ input: inout FuzzInput) -> (UInt32, UInt32) {
        switch input.byte() % 5 {
        case 0:
            let base = UInt32(input.byte())
            return (base, base + UInt32(input.byte() % 64))
        case 1:
            return (0, .max)
        case 2:
            return (.max - UInt32(input.byte() % 64), .max)
        case 3:
            let id = input.uint32()
            return (id, id)
        default:
            return (input.uint32(), input.uint32())
        }
    }

    mutating func run() {
        while !input.isExhausted && operations < 1_000 {
            operations += 1
            switch input.byte() % 10 {
            case 0, 1, 2: allocateID()
            case 3: allocateSpecific()
            case 4, 5: free()
            case 6: snapshot()
            // JSON of a burst-sized allocator is slow to build; do it on every 8th op only.
            case 7 where model.live.count >= 512 && operations % 8 != 0, 8 where model.live.count >= 512 && operations % 8 != 0:
                break
            case 7: codableRoundTrip()
            case 8: corruptedSnapshot()
            default:
                if input.byte() % 8 == 0 { burst() } else { verify("query", touched: [pickID()]) }
            }
        }
    }

    // MARK: Operations

    private mutating func allocateID() {
        let expected = model.allocateID()
        // Copy only when the call must fail: a copy makes the next mutation copy the tree.
        let before = expected.isFailure ? allocator : nil
        do {
            let id = try allocator.allocateID()
            guard case .success(id) = expected else { fuzzFail("allocateID() gave \(id), expected \(expected)") }
            verify("allocateID() -> \(id)", touched: [id])
        } catch {
            guard case .failure(error) = expected else { fuzzFail("allocateID() threw \(error), expected \(expected)") }
            guard allocator == before else { fuzzFail("allocateID() threw but changed the allocator") }
            verify("allocateID() threw", touched: [])
        }
    }

    private mutating func allocateSpecific() {
        let id = pickID()
        let expected = model.allocate(id: id)
        // Copy only when the call must fail: a copy makes the next mutation copy the tree.
        let before = expected.isFailure ? allocator : nil
        do {
            try allocator.allocate(id: id)
            guard case .success = expected else { fuzzFail("allocate(id: \(id)) succeeded, expected \(expected)") }
        } catch {
            guard case .failure(error) = expected else { fuzzFail("allocate(id: \(id)) threw \(error), expected \(expected)") }
            guard allocator == before else { fuzzFail("allocate(id: \(id)) threw but changed the allocator") }
        }
        verify("allocate(id: \(id))", touched: [id])
    }

    private mutating func free() {
        let id = pickID()
        let expected = model.freeID(id)
        // Copy only when the call must fail: a copy makes the next mutation copy the tree.
        let before = expected.isFailure ? allocator : nil
        do {
            let freed = try allocator.freeID(id)
            guard case .success(freed) = expected else { fuzzFail("freeID(\(id)) gave \(freed), expected \(expected)") }
        } catch {
            guard case .failure(error) = expected else { fuzzFail("freeID(\(id)) threw \(error), expected \(expected)") }
            guard allocator == before else { fuzzFail("freeID(\(id)) threw but changed the allocator") }
        }
        verify("freeID(\(id))", touched: [id])
    }

    /// Once per program: thousands of `allocate(id:)` at a stride, leaving a free run
    /// between neighbours, so the tree of runs outgrows its first storage chunk.
    private mutating func burst() {
        guard !burstDone else { return }
        burstDone = true
        let count = 1 + Int(input.byte()) * 12
        let first = model.rangeBase &+ UInt32(input.uint16())
        let stride = 2 + UInt32(input.byte() % 3)
        for index in 0..<UInt32(count) {
            let id = first &+ index &* stride
            let expected = model.allocate(id: id)
            do {
                try allocator.allocate(id: id)
                guard case .success = expected else { fuzzFail("burst allocate(id: \(id)) succeeded, expected \(expected)") }
            } catch {
                guard case .failure(error) = expected else { fuzzFail("burst allocate(id: \(id)) threw \(error), expected \(expected)") }
            }
        }
        verify("burst of \(count) from \(first) by \(stride)", touched: [first, first &+ stride])
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
            let id = try? copy.allocateID()
            if let id { _ = try? copy.freeID(id) }
            if let live = model.live.min() { _ = try? copy.freeID(live) }
        }
        verify("snapshot", touched: model.live.min().map { [$0] } ?? [])
    }

    private mutating func codableRoundTrip() {
        do {
            let decoded = try JSONDecoder().decode(IdAllocator.self, from: JSONEncoder().encode(allocator))
            guard decoded == allocator else { fuzzFail("round trip changed the allocator") }
            allocator = decoded
        } catch {
            fuzzFail("Codable round trip threw \(error)")
        }
        verify("Codable round trip", touched: [])
    }

    /// Overwrites bytes of a valid snapshot; whatever decodes must be exactly what the JSON
    /// says, and (for small ranges) becomes the allocator the program goes on with.
    private mutating func corruptedSnapshot() {
        guard var bytes = try? Array(JSONEncoder().encode(allocator)), !bytes.isEmpty else {
            fuzzFail("encoding failed")
        }
        for _ in 0...(input.byte() % 3) {
            bytes[input.index(below: bytes.count)] = input.byte()
        }
        if let decoded = fuzzCheckIdSnapshot(bytes) {
            allocator = decoded.allocator
            model = decoded.model
            saved = nil
            verify("decoded corrupted snapshot", touched: [])
        }
    }

    // MARK: Choosing arguments

    private mutating func pickID() -> UInt32 {
        let choice = input.byte() % 8
        if choice < 3 && !model.live.isEmpty {
            let live = model.live.sorted()
            return live[input.index(below: live.count)]
        }
        switch choice {
        case 3 where !model.released.isEmpty:
            let released = model.released.sorted()
            return released[input.index(below: released.count)]
        case 4: return model.rangeBase &+ UInt32(input.byte())
        case 5: return model.rangeEnd &- UInt32(input.byte())
        case 6: return input.byte() % 2 == 0 ? model.rangeBase &- 1 : model.rangeEnd &+ 1
        default: return input.uint32()
        }
    }

    // MARK: Checking

    /// Checks invariants, `isAllocated` of every ID when the range is small, and the full
    /// state (live, released or never handed out) of the `touched` IDs and their neighbours.
    private func verify(_ step: @autoclosure () -> String, touched: [UInt32]) {
        if let problem = allocator.checkInvariants() {
            fuzzFail("after \(step()): invariant broken: \(problem)")
        }
        guard allocator.rangeBase == model.rangeBase, allocator.rangeEnd == model.rangeEnd else {
            fuzzFail("after \(step()): range changed")
        }
        if model.rangeEnd - model.rangeBase < 256 {
            for id in model.rangeBase...model.rangeEnd where allocator.isAllocated(id) != model.isAllocated(id) {
                fuzzFail("after \(step()): isAllocated(\(id)) = \(allocator.isAllocated(id))")
            }
        }
        for id in touched {
            check(id &- 1, step())
            check(id, step())
            check(id &+ 1, step())
        }
    }

    /// `isAllocated` and, on a throwaway copy, `freeID` tell live, released and
    /// never-handed-out IDs apart; both must agree with the model.
    private func check(_ id: UInt32, _ step: @autoclosure () -> String) {
        guard allocator.isAllocated(id) == model.isAllocated(id) else {
            fuzzFail("after \(step()): isAllocated(\(id)) = \(allocator.isAllocated(id))")
        }
        var copy = allocator
        var modelCopy = model
        let expected = modelCopy.freeID(id)
        do {
            let freed = try copy.freeID(id)
            guard case .success(freed) = expected else { fuzzFail("after \(step()): probe freeID(\(id)) succeeded, expected \(expected)") }
        } catch {
            guard case .failure(error) = expected else { fuzzFail("after \(step()): probe freeID(\(id)) threw \(error), expected \(expected)") }
        }
    }
}
