import Foundation
import Testing
import AllocatorModels
@testable import VMAllocator

/// Seeded random operation sequences on `AddressAllocator`, every result checked against
/// `AddressModel`, invariants checked after every operation, failed calls checked to leave
/// the allocator unchanged, with periodic Codable round trips and snapshot rollbacks.
@Suite("AddressAllocator property tests")
struct AddressAllocatorPropertyTests {
    struct Scenario: CustomTestStringConvertible, Sendable {
        let name: String
        let base: UInt64
        let size: UInt64
        let seed: UInt64
        let operations: Int
        /// Above this many live allocations the mix favours frees; high values grow deep trees.
        var crowdLimit = 30
        var testDescription: String { name }
    }

    /// Most scenarios keep few live allocations (crowdLimit) because every step compares
    /// the whole state with the model, which is O(n); one scenario grows a deep tree.
    static let scenarios: [Scenario] = [
        Scenario(name: "64 bytes at 0", base: 0, size: 64, seed: 0xA001, operations: 7_000),
        Scenario(name: "100 bytes at 1", base: 1, size: 100, seed: 0xA002, operations: 6_000),
        Scenario(name: "64 KiB at 0x1000", base: 0x1000, size: 0x10000, seed: 0xA003, operations: 8_000),
        Scenario(name: "256 MiB MMIO window", base: 0xD000_0000, size: 1 << 28, seed: 0xA004, operations: 8_000),
        Scenario(name: "64 KiB ending at UInt64.max", base: .max - 0xFFFF, size: 0x10000, seed: 0xA005, operations: 8_000),
        Scenario(name: "64 bytes ending at UInt64.max", base: .max - 63, size: 64, seed: 0xA006, operations: 6_000),
        Scenario(name: "full space from 0", base: 0, size: .max, seed: 0xA007, operations: 8_000),
        Scenario(name: "full space to UInt64.max", base: 1, size: .max, seed: 0xA008, operations: 8_000),
        Scenario(name: "upper half", base: 1 << 63, size: 1 << 63, seed: 0xA009, operations: 6_000),
        Scenario(name: "single byte at UInt64.max", base: .max, size: 1, seed: 0xA00A, operations: 1_000),
        Scenario(name: "deep tree in 1 GiB", base: 0x4000_0000, size: 1 << 30, seed: 0xA00B, operations: 3_000,
                 crowdLimit: 500),
    ]

    @Test(arguments: scenarios)
    func randomOperationsMatchTheModel(_ scenario: Scenario) throws {
        print("AddressAllocator property '\(scenario.name)': seed 0x\(String(scenario.seed, radix: 16)), \(scenario.operations) operations")
        let started = ContinuousClock.now
        var run = Runner(scenario: scenario)
        for step in 0..<scenario.operations {
            run.step = step
            run.randomOperation()
            run.checkAgainstModel()
            run.peakLive = max(run.peakLive, run.model.live.count)
            if step % 97 == 96 { try run.codableRoundTrip() }
            if run.failures > 5 {
                Issue.record("stopping '\(scenario.name)' after repeated failures at step \(step)")
                break
            }
        }
        print("  '\(scenario.name)': \(run.successes) successful, \(run.rejections) rejected calls, \(run.rollbacks) rollbacks, peak \(run.peakLive) live, \(ContinuousClock.now - started)")
        // The mix must exercise both outcomes, or the test proves little.
        #expect(run.successes > scenario.operations / 10)
        #expect(run.rejections > scenario.operations / 20)
    }

    /// The state before a call, to prove a failed call changed nothing. Holding a copy
    /// shares the tree storage, so the call must copy before mutating; holding none
    /// leaves the storage unique, so the call mutates in place. Runs alternate so both
    /// paths are checked: against the copy with `==`, and in every case against the
    /// model (which a failed call leaves alone) by `checkAgainstModel()`.
    struct Before {
        let copy: AddressAllocator?

        init(_ allocator: AddressAllocator, shareStorage: Bool) {
            copy = shareStorage ? allocator : nil
        }

        func matches(_ allocator: AddressAllocator) -> Bool {
            copy.map { $0 == allocator } ?? true
        }
    }

    /// `Void` is not Equatable; a successful free compares as this.
    struct Done: Equatable {}

    struct Runner {
        let scenario: Scenario
        var rng: SplitMix64
        var allocator: AddressAllocator
        var model: AddressModel
        var snapshot: (AddressAllocator, AddressModel)?
        var step = 0
        var successes = 0
        var rejections = 0
        var rollbacks = 0
        var failures = 0
        var peakLive = 0
        let spaceBits: Int

        init(scenario: Scenario) {
            self.scenario = scenario
            rng = SplitMix64(fixedSeed: scenario.seed)
            allocator = try! AddressAllocator(base: scenario.base, size: scenario.size)
            model = try! AddressModel.make(base: scenario.base, size: scenario.size).get()
            spaceBits = 64 - scenario.size.leadingZeroBitCount
        }

        private func context(_ what: String) -> Comment {
            "'\(scenario.name)' seed 0x\(String(scenario.seed, radix: 16)) step \(step): \(what)"
        }

        // MARK: operation generation

        /// The model's free blocks before the current operation (recomputing is O(n)).
        var blocks: [AddressModel.Span] = []

        mutating func randomOperation() {
            blocks = model.freeBlocks
            let roll = rng.next() % 100
            let crowded = model.live.count > scenario.crowdLimit
            switch roll {
            case 0..<(crowded ? 30 : scenario.crowdLimit > 100 ? 65 : 50): allocate()
            case 0..<88: free()
            case 0..<96: query()
            case 0..<98: takeSnapshot()
            default: rollback()
            }
        }

        private mutating func randomSize() -> UInt64 {
            switch rng.next() % 100 {
            case 0: return 0
            case 1..<4: return rng.pick([UInt64.max, scenario.size, scenario.size &+ 1, 1 << 63])
            case 4..<40: return rng.uint64(in: 1...16)
            case 40..<55:
                // Exactly (or almost exactly) a free block, to hit whole-block fits.
                if let block = blocks.randomElement(using: &rng) {
                    let width = UInt64(clamping: block.width)
                    return max(1, rng.pick([width, width &- 1, width &+ 1, width / 2]))
                }
                return 1
            default:
                return max(1, rng.logUniform(maxBits: spaceBits))
            }
        }

        private mutating func randomAlignment() -> UInt64 {
            switch rng.next() % 100 {
            case 0..<3: return rng.pick([0, 3, 6, 0x1001, (1 << 63) + 1, .max, rng.next() | 3])
            case 3..<45: return 1
            default: return 1 << UInt64(Int.random(in: 0...min(63, spaceBits), using: &rng))
            }
        }

        private mutating func exactAddress(alignment: UInt64) -> UInt64 {
            var candidate: UInt64
            switch rng.next() % 100 {
            case 0..<30: candidate = blocks.randomElement(using: &rng)?.start ?? scenario.base
            case 30..<45: candidate = blocks.randomElement(using: &rng)?.end ?? scenario.base
            case 45..<55: candidate = model.live.randomElement(using: &rng)?.start ?? scenario.base
            case 55..<60: candidate = rng.pick([0, 1, .max, .max - 1, scenario.base, model.end, scenario.base &- 1, model.end &+ 1])
            case 60..<65: candidate = rng.next()
            default:
                let offset = rng.uint64(in: 0...(model.end - scenario.base))
                candidate = scenario.base + offset
            }
            // Mostly aligned, so the request reaches the placement logic.
            if alignment > 0, alignment & (alignment - 1) == 0, !rng.chance(5) {
                candidate = AddressModel.alignDown(candidate, alignment)
            }
            return candidate
        }

        private mutating func allocate() {
            let size = randomSize()
            let alignment = randomAlignment()
            let policy: AddressModel.Policy
            switch rng.next() % 100 {
            case 0..<35: policy = .first
            case 35..<70: policy = .last
            default: policy = .exact(exactAddress(alignment: alignment))
            }
            let before = Before(allocator, shareStorage: step % 2 == 0)
            let expected = model.allocate(size: size, alignment: alignment, policy: policy)
            let actual = Result { () throws(AllocatorError) in
                try allocator.allocate(size: size, alignment: alignment, policy: policy.library)
            }
            let what = "allocate(size: 0x\(String(size, radix: 16)), alignment: 0x\(String(alignment, radix: 16)), \(policy))"
            compare(expected, actual.map(AddressModel.Span.init), before: before, what)
        }

        private mutating func freeCandidate() -> (UInt64, UInt64)? {
            let live = model.live
            switch rng.next() % 100 {
            case 0..<65:
                guard let x = live.randomElement(using: &rng) else { return nil }
                return (x.start, x.end)
            case 65..<72:
                guard let x = blocks.randomElement(using: &rng) else { return nil }
                return (x.start, x.end)
            case 72..<84:
                guard let x = live.randomElement(using: &rng) else { return nil }
                switch rng.next() % 4 {
                case 0: return (x.start &- 1, x.end)
                case 1: return (x.start &+ 1, x.end)
                case 2: return (x.start, x.end &- 1)
                default: return (x.start, x.end &+ 1)
                }
            case 84..<92:
                guard live.count >= 2 else { return nil }
                let i = Int.random(in: 0..<(live.count - 1), using: &rng)
                return (live[i].start, live[i + 1].end)
            default:
                let s = rng.next()
                return (s, s &+ rng.logUniform(maxBits: 16))
            }
        }

        private mutating func free() {
            guard let (start, end) = freeCandidate(), let range = try? RangeInclusive(start: start, end: end) else {
                return
            }
            let before = Before(allocator, shareStorage: step % 2 == 0)
            let expected = model.free(start: start, end: end)
            let actual = Result { () throws(AllocatorError) in try allocator.free(range) }.map { Done() }
            compare(expected.map { .failure($0) } ?? .success(Done()), actual, before: before, "free(\(range))")
        }

        private mutating func query() {
            var probes: [UInt64] = [0, .max, scenario.base, model.end, rng.next()]
            if let x = model.live.randomElement(using: &rng) {
                probes += [x.start, x.end, x.start &- 1, x.end &+ 1, x.start + (x.end - x.start) / 2]
            }
            for address in probes {
                let expected = model.allocation(containing: address)
                let actual = allocator.allocation(containing: address).map(AddressModel.Span.init)
                if expected != actual {
                    failures += 1
                    Issue.record(context("allocation(containing: 0x\(String(address, radix: 16))) is \(String(describing: actual)), model says \(String(describing: expected))"))
                }
            }
        }

        private mutating func takeSnapshot() { snapshot = (allocator, model) }

        private mutating func rollback() {
            guard let (a, m) = snapshot else { return }
            rollbacks += 1
            allocator = a
            model = m
        }

        // MARK: checking

        private mutating func compare<T: Equatable>(
            _ expected: Result<T, AddressModel.Failure>, _ actual: Result<T, AllocatorError>,
            before: Before, _ what: String
        ) {
            let comparison = ModelComparison(expected: expected.mapError(AllocatorError.init), actual: actual, what)
            if comparison.bothSucceeded { successes += 1 }
            if comparison.bothFailed {
                rejections += 1
                if !before.matches(allocator) {
                    failures += 1
                    Issue.record(context("failed \(what) changed the allocator"))
                }
            }
            if let problem = comparison.problem {
                failures += 1
                Issue.record(context(problem))
            }
        }

        mutating func checkAgainstModel() {
            if let problem = allocator.checkInvariants() {
                failures += 1
                Issue.record(context("invariant violated: \(problem)"))
            }
            let allocations = allocator.allocations.map(AddressModel.Span.init)
            if allocations != model.live {
                failures += 1
                Issue.record(context("allocations \(allocations) differ from model \(model.live)"))
                // Resynchronise so one divergence is not reported thousands of times.
                model = AddressModel(base: model.base, end: model.end, allocations: allocations)
                return
            }
            if UInt128(allocator.allocatedSize) != model.allocatedSize {
                failures += 1
                Issue.record(context("allocatedSize \(allocator.allocatedSize), model \(model.allocatedSize)"))
            }
            let modelFree = model.freeBlocks
            // Documented: the largest free block, the lowest one if several tie.
            let widest = modelFree.map(\.width).max()
            let expectedLargest = modelFree.first { $0.width == widest }
            if allocator.largestFreeRange.map(AddressModel.Span.init) != expectedLargest {
                failures += 1
                Issue.record(context("largestFreeRange \(String(describing: allocator.largestFreeRange)), model \(String(describing: expectedLargest))"))
            }
            // freeRanges is O(n) in the library's unoptimised debug build and a function of
            // the allocations checked above, so every few steps is enough.
            if step % 4 == 0 {
                let free = allocator.freeRanges.map(AddressModel.Span.init)
                if free != modelFree {
                    failures += 1
                    Issue.record(context("freeRanges \(free) differ from model \(modelFree)"))
                }
            }
            if allocator.base != model.base || allocator.end != model.end {
                failures += 1
                Issue.record(context("bounds changed"))
            }
        }

        mutating func codableRoundTrip() throws {
            let data = try JSONEncoder().encode(allocator)
            let decoded = try JSONDecoder().decode(AddressAllocator.self, from: data)
            if decoded != allocator || decoded.allocations != allocator.allocations {
                failures += 1
                Issue.record(context("Codable round trip changed the state"))
            }
            if let problem = decoded.checkInvariants() {
                failures += 1
                Issue.record(context("decoded allocator invalid: \(problem)"))
            }
            // Carry on with the decoded copy so its freshly built tree is exercised too.
            allocator = decoded
        }
    }
}
