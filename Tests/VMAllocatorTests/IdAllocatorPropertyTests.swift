import Foundation
import PropertyBased
import Testing
import AllocatorModels
@testable import VMAllocator

/// Seeded random operation sequences on `IdAllocator` checked against `IdModel`.
@Suite("IdAllocator property tests")
struct IdAllocatorPropertyTests {
    struct Scenario: CustomTestStringConvertible, Sendable {
        let name: String
        let base: UInt32
        let end: UInt32
        let seed: UInt64
        let operations: Int
        var testDescription: String { name }
    }

    static let scenarios: [Scenario] = [
        Scenario(name: "[0, 31]", base: 0, end: 31, seed: 0x1D01, operations: 8_000),
        Scenario(name: "[1, 64]", base: 1, end: 64, seed: 0x1D02, operations: 6_000),
        Scenario(name: "[1000, 1200]", base: 1000, end: 1200, seed: 0x1D03, operations: 6_000),
        Scenario(name: "top 32 IDs", base: .max - 31, end: .max, seed: 0x1D04, operations: 8_000),
        Scenario(name: "full UInt32 range", base: 0, end: .max, seed: 0x1D05, operations: 8_000),
        Scenario(name: "single ID 0", base: 0, end: 0, seed: 0x1D06, operations: 1_000),
        Scenario(name: "single ID UInt32.max", base: .max, end: .max, seed: 0x1D07, operations: 1_000),
    ]

    enum Operation: CustomStringConvertible {
        case allocateID, allocate(UInt32), free(UInt32), query(UInt32), snapshot, rollback
        var description: String {
            switch self {
            case .allocateID: "allocateID()"
            case .allocate(let id): "allocate(id: \(id))"
            case .free(let id): "freeID(\(id))"
            case .query(let id): "isAllocated(\(id))"
            case .snapshot: "snapshot"
            case .rollback: "rollback"
            }
        }
    }

    @Test(arguments: scenarios)
    func randomOperationsMatchTheModel(_ scenario: Scenario) throws {
        print("IdAllocator property '\(scenario.name)': seed 0x\(String(scenario.seed, radix: 16)), \(scenario.operations) operations")
        var rng = SplitMix64(fixedSeed: scenario.seed)
        var run = Runner(base: scenario.base, end: scenario.end, label: "'\(scenario.name)' seed 0x\(String(scenario.seed, radix: 16))")
        for step in 0..<scenario.operations {
            run.step = step
            run.apply(run.randomOperation(&rng))
            if step % 101 == 100 { try run.codableRoundTrip() }
            if step % 50 == 49 { run.checkEveryIdState(&rng) }
            if run.failures > 5 { break }
        }
        print("  '\(scenario.name)': \(run.successes) successful, \(run.rejections) rejected calls")
        #expect(run.successes > scenario.operations / 10)
        #expect(run.rejections > scenario.operations / 20)
    }

    /// The same check driven by PropertyBased generators: many short sequences over small
    /// ranges, drawn from a fixed, printed seed.
    @Test func generatedSequencesMatchTheModel() throws {
        let seed: UInt64 = 0x1D6E4
        print("IdAllocator generated sequences: seed 0x\(String(seed, radix: 16))")
        var rng = SplitMix64(fixedSeed: seed)
        let operation = zip(Gen.int(in: 0...99), Gen.uint32(in: 0...40)).map { kind, id -> Operation in
            switch kind {
            case 0..<35: .allocateID
            case 35..<55: .allocate(id)
            case 55..<90: .free(id)
            case 90..<96: .query(id)
            case 96..<98: .snapshot
            default: .rollback
            }
        }
        let sequences = operation.array(of: 1...120)
        let bounds = zip(Gen.uint32(in: 0...8), Gen.uint32(in: 0...30))
        var total = 0
        for index in 0..<150 {
            let (base, width) = bounds.run(using: &rng)
            let ops = sequences.run(using: &rng)
            var run = Runner(base: base, end: base + width, label: "generated sequence \(index) seed 0x\(String(seed, radix: 16))")
            for (step, op) in ops.enumerated() {
                run.step = step
                run.apply(op)
            }
            try run.codableRoundTrip()
            run.checkEveryIdState(&rng)
            total += ops.count
            if run.failures > 0 {
                Issue.record("sequence \(index) on [\(base), \(base + width)] failed: \(ops)")
                break
            }
        }
        print("  \(total) generated operations")
    }

    enum Before {
        case copy(IdAllocator)
        case encoded(Data)

        func matches(_ allocator: IdAllocator) -> Bool {
            switch self {
            case .copy(let copy): copy == allocator
            case .encoded(let data): Self.canonical(allocator) == data
            }
        }

        static func canonical(_ allocator: IdAllocator) -> Data? {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            return try? encoder.encode(allocator)
        }
    }

    struct Runner {
        var allocator: IdAllocator
        var model: IdModel
        var snapshot: (IdAllocator, IdModel)?
        let label: String
        var step = 0
        var successes = 0
        var rejections = 0
        var failures = 0

        init(base: UInt32, end: UInt32, label: String) {
            allocator = try! IdAllocator(rangeBase: base, rangeEnd: end)
            model = IdModel(base: base, end: end)
            self.label = label
        }

        private func context(_ what: String) -> Comment { "\(label) step \(step): \(what)" }

        private var capacity: UInt64 { model.capacity }

        func randomID(_ rng: inout SplitMix64) -> UInt32 {
            let (b, e) = (model.base, model.end)
            switch rng.next() % 100 {
            case 0..<30: return model.live.randomElement(using: &rng) ?? b
            case 30..<45: return model.handedOut.randomElement(using: &rng) ?? b
            case 45..<50: return rng.pick([0, 1, .max - 1, .max, b, e, b &- 1, e &+ 1])
            case 50..<60:
                // Just past the live IDs: the boundary between released and never handed out.
                return (model.live.max() ?? b) &+ UInt32(rng.uint64(in: 0...2))
            default:
                let span = min(capacity, 64)
                return b &+ UInt32(rng.uint64(in: 0...(span - 1)))
            }
        }

        func randomOperation(_ rng: inout SplitMix64) -> Operation {
            let crowded = model.live.count > 200
            switch rng.next() % 100 {
            case 0..<(crowded ? 15 : 35): return .allocateID
            case 0..<50: return .allocate(randomID(&rng))
            case 0..<88: return .free(randomID(&rng))
            case 0..<96: return .query(randomID(&rng))
            case 0..<98: return .snapshot
            default: return .rollback
            }
        }

        mutating func apply(_ op: Operation) {
            // Alternate between holding a copy (shared storage: the call must copy first)
            // and holding only an encoded snapshot (unique storage: mutation in place).
            let before: Before =
                if step % 2 == 1, let data = Before.canonical(allocator) { .encoded(data) } else { .copy(allocator) }
            switch op {
            case .allocateID:
                let expected = model.allocateID()
                let actual = Result { () throws(AllocatorError) in try allocator.allocateID() }
                record(expected.map { $0 }, actual, before: before, op)
            case .allocate(let id):
                let expected = model.allocate(id: id).map { Result<UInt32, IdModel.Failure>.failure($0) } ?? .success(id)
                let actual = Result { () throws(AllocatorError) in try allocator.allocate(id: id) }.map { id }
                record(expected, actual, before: before, op)
            case .free(let id):
                let expected = model.freeID(id)
                let actual = Result { () throws(AllocatorError) in try allocator.freeID(id) }
                record(expected, actual, before: before, op)
            case .query(let id):
                if allocator.isAllocated(id) != model.isAllocated(id) {
                    failures += 1
                    Issue.record(context("isAllocated(\(id)) is \(allocator.isAllocated(id))"))
                }
            case .snapshot:
                snapshot = (allocator, model)
            case .rollback:
                if let (a, m) = snapshot {
                    allocator = a
                    model = m
                }
            }
            if let problem = allocator.checkInvariants() {
                failures += 1
                Issue.record(context("after \(op): invariant violated: \(problem)"))
            }
            if allocator.rangeBase != model.base || allocator.rangeEnd != model.end {
                failures += 1
                Issue.record(context("range changed"))
            }
        }

        private mutating func record(
            _ expected: Result<UInt32, IdModel.Failure>, _ actual: Result<UInt32, AllocatorError>,
            before: Before, _ op: Operation
        ) {
            let comparison = ModelComparison(expected: expected.mapError(AllocatorError.init), actual: actual, "\(op)")
            if comparison.bothSucceeded { successes += 1 }
            if comparison.bothFailed {
                rejections += 1
                if !before.matches(allocator) {
                    failures += 1
                    Issue.record(context("failed \(op) changed the allocator"))
                }
            }
            if let problem = comparison.problem {
                failures += 1
                Issue.record(context(problem))
            }
        }

        /// Probes each ID's full state (live / released / never handed out) by freeing it on
        /// a throwaway copy; every ID for small ranges, a sample for large ones.
        mutating func checkEveryIdState(_ rng: inout SplitMix64) {
            var probes: [UInt32]
            if capacity <= 300 {
                probes = Array(model.base...model.end)
            } else {
                probes = Array(model.live) + Array(model.handedOut.prefix(100))
                for _ in 0..<50 { probes.append(randomID(&rng)) }
            }
            for id in probes {
                var copy = allocator
                var shadow = model
                let expected = shadow.freeID(id).mapError(AllocatorError.init)
                let actual = Result { () throws(AllocatorError) in try copy.freeID(id) }
                if expected != actual {
                    failures += 1
                    Issue.record(context("state of ID \(id): freeID gives \(actual), model \(expected)"))
                }
            }
        }

        mutating func codableRoundTrip() throws {
            let decoded = try JSONDecoder().decode(IdAllocator.self, from: JSONEncoder().encode(allocator))
            if decoded != allocator {
                failures += 1
                Issue.record(context("Codable round trip changed the state"))
            }
            if let problem = decoded.checkInvariants() {
                failures += 1
                Issue.record(context("decoded allocator invalid: \(problem)"))
            }
            allocator = decoded
        }
    }
}
