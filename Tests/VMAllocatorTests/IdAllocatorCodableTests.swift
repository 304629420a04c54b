import Foundation
import Testing
@testable import VMAllocator

/// Snapshot format (from the doc comment on IdAllocator):
/// `{"rangeBase": UInt32, "rangeEnd": UInt32, "runs": [[start, end, state], ...]}` listing
/// maximal free runs, state 1 = released, 0 = never handed out; IDs in no run are live.
@Suite("IdAllocator Codable")
struct IdAllocatorCodableTests {
    private func decode(_ json: String) throws -> IdAllocator {
        try JSONDecoder().decode(IdAllocator.self, from: Data(json.utf8))
    }

    private func expectRejected(_ json: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: DecodingError.self, "\(json)", sourceLocation: sourceLocation) { try decode(json) }
    }

    @Test func roundTripPreservesEveryIdState() throws {
        var a = ids(10, 60)
        for _ in 0..<20 { _ = try a.allocateID() }  // 10...29
        try a.allocate(id: 45)
        for id: UInt32 in [12, 13, 14, 20, 29] { try a.freeID(id) }
        let b = try JSONDecoder().decode(IdAllocator.self, from: JSONEncoder().encode(a))
        #expect(b == a)
        #expect(b.checkInvariants() == nil)
        for id: UInt32 in 0...70 {
            #expect(b.isAllocated(id) == a.isAllocated(id), "id \(id)")
            var x = a
            var y = b
            #expect(Result { () throws(AllocatorError) in try x.freeID(id) }
                    == Result { () throws(AllocatorError) in try y.freeID(id) }, "freeID(\(id))")
        }
        var x = a
        var y = b
        for _ in 0..<40 {
            #expect(Result { () throws(AllocatorError) in try x.allocateID() }
                    == Result { () throws(AllocatorError) in try y.allocateID() })
        }
    }

    @Test func extremesRoundTrip() throws {
        var full = ids(0, .max)
        try full.allocate(id: .max)
        _ = try full.allocateID()
        try full.freeID(0)
        var top = ids(.max, .max)
        _ = try top.allocateID()
        for state in [full, top, ids(0, 0), ids(0, .max)] {
            let copy = try JSONDecoder().decode(IdAllocator.self, from: JSONEncoder().encode(state))
            #expect(copy == state)
            #expect(copy.checkInvariants() == nil)
        }
    }

    @Test func documentedFormatDecodes() throws {
        let a = try decode(#"{"rangeBase": 1, "rangeEnd": 100, "runs": [[3, 3, 1], [7, 100, 0]]}"#)
        #expect(a.rangeBase == 1 && a.rangeEnd == 100)
        for id: UInt32 in [1, 2, 4, 5, 6] { #expect(a.isAllocated(id), "id \(id)") }
        for id: UInt32 in [3, 7, 50, 100] { #expect(!a.isAllocated(id), "id \(id)") }
        #expect(throws: AllocatorError.alreadyReleased(3)) { var b = a; try b.freeID(3) }
        #expect(throws: AllocatorError.neverAllocated(7)) { var b = a; try b.freeID(7) }
        var b = a
        #expect(try b.allocateID() == 3)
        #expect(try b.allocateID() == 7)
        #expect(a.checkInvariants() == nil)
    }

    @Test func encodingMatchesTheDocumentedShape() throws {
        var a = ids(1, 100)
        for _ in 0..<6 { _ = try a.allocateID() }  // 1...6
        try a.freeID(3)
        let json = try JSONValue.of(a)
        #expect(json["rangeBase"] == .unsigned(1))
        #expect(json["rangeEnd"] == .unsigned(100))
        #expect(json["runs"] == .array([.array([.unsigned(3), .unsigned(3), .unsigned(1)]),
                                        .array([.unsigned(7), .unsigned(100), .unsigned(0)])]))
    }

    @Test func fullyLiveAllocatorHasNoRuns() throws {
        let a = try decode(#"{"rangeBase": 5, "rangeEnd": 9, "runs": []}"#)
        for id: UInt32 in 5...9 { #expect(a.isAllocated(id)) }
        var b = a
        #expect(throws: AllocatorError.resourceNotAvailable) { try b.allocateID() }
    }

    @Test func overlappingRunsAreRejected() {
        expectRejected(#"{"rangeBase":0,"rangeEnd":100,"runs":[[0,10,0],[10,20,1]]}"#)
        expectRejected(#"{"rangeBase":0,"rangeEnd":100,"runs":[[0,50,0],[5,6,1]]}"#)
        expectRejected(#"{"rangeBase":0,"rangeEnd":100,"runs":[[3,3,1],[3,3,1]]}"#)
    }

    @Test func unsortedRunsAreRejected() {
        expectRejected(#"{"rangeBase":0,"rangeEnd":100,"runs":[[50,60,0],[1,2,1]]}"#)
    }

    @Test func uncoalescedRunsAreRejected() {
        expectRejected(#"{"rangeBase":0,"rangeEnd":100,"runs":[[1,2,1],[3,4,1]]}"#)
        expectRejected(#"{"rangeBase":0,"rangeEnd":100,"runs":[[1,2,0],[3,100,0]]}"#)
    }

    @Test func adjacentRunsWithDifferentStatesAreValid() throws {
        let a = try decode(#"{"rangeBase":0,"rangeEnd":100,"runs":[[1,2,1],[3,100,0]]}"#)
        #expect(a.isAllocated(0) && !a.isAllocated(1) && !a.isAllocated(3))
        #expect(a.checkInvariants() == nil)
    }

    @Test func outOfRangeRunsAreRejected() {
        expectRejected(#"{"rangeBase":10,"rangeEnd":100,"runs":[[9,12,0]]}"#)
        expectRejected(#"{"rangeBase":10,"rangeEnd":100,"runs":[[90,101,0]]}"#)
        expectRejected(#"{"rangeBase":10,"rangeEnd":100,"runs":[[200,300,0]]}"#)
    }

    @Test func invertedRangesAreRejected() {
        expectRejected(#"{"rangeBase":0,"rangeEnd":100,"runs":[[20,10,1]]}"#)
        expectRejected(#"{"rangeBase":101,"rangeEnd":100,"runs":[]}"#)
        expectRejected(#"{"rangeBase":4294967295,"rangeEnd":0,"runs":[]}"#)
    }

    @Test func badStatesAndShapesAreRejected() {
        expectRejected(#"{"rangeBase":0,"rangeEnd":100,"runs":[[1,2,2]]}"#)
        expectRejected(#"{"rangeBase":0,"rangeEnd":100,"runs":[[1,2]]}"#)
        expectRejected(#"{"rangeBase":0,"rangeEnd":100,"runs":[[1,2,0,0]]}"#)
        expectRejected(#"{"rangeBase":0,"rangeEnd":100,"runs":[[]]}"#)
    }

    @Test func wrongTypesAreRejected() {
        expectRejected(#"{"rangeBase":0,"rangeEnd":4294967296,"runs":[]}"#)
        expectRejected(#"{"rangeBase":-1,"rangeEnd":5,"runs":[]}"#)
        expectRejected(#"{"rangeBase":"0","rangeEnd":5,"runs":[]}"#)
        expectRejected(#"{"rangeBase":0,"rangeEnd":5,"runs":[[1,2,true]]}"#)
        expectRejected(#"{"rangeBase":0,"rangeEnd":5,"runs":[[1,2.5,0]]}"#)
        expectRejected(#"{"rangeBase":0,"rangeEnd":5,"runs":null}"#)
        expectRejected(#"{"rangeBase":0,"rangeEnd":5}"#)
        expectRejected(#"{}"#)
        expectRejected(#"null"#)
    }

    @Test func truncatedJSONIsRejectedAtEveryLength() throws {
        var a = ids(0, 1000)
        for _ in 0..<10 { _ = try a.allocateID() }
        try a.freeID(4)
        let bytes = try JSONEncoder().encode(a)
        for length in 0..<bytes.count {
            #expect(throws: DecodingError.self, "prefix of \(length) bytes") {
                try JSONDecoder().decode(IdAllocator.self, from: bytes.prefix(length))
            }
        }
    }

    /// Validity per the documented format, computed without the library.
    private static func isValid(_ json: JSONValue) -> Bool {
        guard case .object(let m) = json, let base = m["rangeBase"]?.uint, let end = m["rangeEnd"]?.uint,
              end <= UInt32.max, base <= end, let runs = m["runs"]?.items else { return false }
        var previous: (end: UInt64, state: UInt64)?
        for run in runs {
            guard let v = run.items, v.count == 3, let s = v[0].uint, let e = v[1].uint, let st = v[2].uint,
                  s <= e, base <= s, e <= end, st <= 1 else { return false }
            if let p = previous {
                if s <= p.end { return false }
                if s == p.end + 1 && st == p.state { return false }
            }
            previous = (e, st)
        }
        return true
    }

    @Test func everySingleMutationDecodesIffValid() throws {
        let seed: UInt64 = 0x1DC0DEC
        print("IdAllocatorCodableTests.everySingleMutationDecodesIffValid seed 0x\(String(seed, radix: 16))")
        var rng = SplitMix64(fixedSeed: seed)
        var checked = 0
        var accepted = 0
        for (base, end): (UInt32, UInt32) in [(0, 40), (100, 140), (.max - 40, .max), (0, .max)] {
            var a = ids(base, end)
            for _ in 0..<12 { _ = try? a.allocateID() }
            try a.allocate(id: base + 30)
            for _ in 0..<5 { _ = try? a.freeID(base + UInt32(rng.uint64(in: 0...11))) }
            let snapshot = try JSONValue.of(a)
            for mutated in SnapshotMutations.all(of: snapshot) {
                checked += 1
                let valid = Self.isValid(try JSONValue.of(mutated))
                do {
                    let decoded = try mutated.decode(IdAllocator.self)
                    accepted += 1
                    #expect(valid, "invalid snapshot was accepted: \(mutated)")
                    #expect(decoded.checkInvariants() == nil, "\(mutated)")
                    #expect(try JSONValue.of(decoded) == JSONValue.of(mutated), "re-encoding \(mutated)")
                } catch is DecodingError {
                    #expect(!valid, "valid snapshot was rejected: \(mutated)")
                } catch {
                    Issue.record("non-DecodingError \(error) for \(mutated)")
                }
            }
        }
        print("  \(checked) mutated snapshots, \(accepted) valid and accepted")
        #expect(checked > 300)
        #expect(accepted > 0 && accepted < checked)
    }
}
