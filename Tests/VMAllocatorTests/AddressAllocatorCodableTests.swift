import Foundation
import Testing
import AllocatorModels
@testable import VMAllocator

/// Snapshot format (from the doc comment on AddressAllocator):
/// `{"base": UInt64, "end": UInt64, "allocations": [[start, end], ...]}`, free space implied.
@Suite("AddressAllocator and RangeInclusive Codable")
struct AddressAllocatorCodableTests {
    private func roundTrip<T: Codable>(_ value: T) throws -> T {
        try JSONDecoder().decode(T.self, from: JSONEncoder().encode(value))
    }

    private func decode(_ json: String) throws -> AddressAllocator {
        try JSONDecoder().decode(AddressAllocator.self, from: Data(json.utf8))
    }

    private func expectRejected(_ json: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: DecodingError.self, "\(json)", sourceLocation: sourceLocation) { try decode(json) }
    }

    // MARK: round trips

    @Test func rangeRoundTripsIncludingExtremes() throws {
        for range in [r(0, 0), r(0, .max - 1), r(1, .max), r(.max, .max), r(0x1000, 0x1fff)] {
            #expect(try roundTrip(range) == range)
        }
    }

    @Test func rangeDecodingRejectsInvalidBounds() {
        for json in [#"{"start":5,"end":4}"#, #"{"start":0,"end":18446744073709551615}"#,
                     #"{"start":5}"#, #"{"start":"5","end":6}"#, #"{"start":-1,"end":6}"#,
                     #"{"start":1,"end":18446744073709551616}"#, #"[1,2]"#, #"{"start":1,"end":2"#] {
            #expect(throws: DecodingError.self, "\(json)") {
                try JSONDecoder().decode(RangeInclusive.self, from: Data(json.utf8))
            }
        }
    }

    @Test func policiesRoundTrip() throws {
        for policy: AllocPolicy in [.firstMatch, .lastMatch, .exactMatch(0), .exactMatch(.max)] {
            #expect(try roundTrip(policy) == policy)
        }
    }

    @Test func allocatorRoundTripsAcrossStates() throws {
        var states: [AddressAllocator] = [space(base: 0, size: 1), space(base: 0, size: .max),
                                          space(base: 1, size: .max), space(base: .max, size: 1)]
        var a = space(base: 0x1000, size: 0x100000)
        for i in 0..<40 {
            _ = try a.allocate(size: 0x100 * UInt64(i + 1), alignment: 0x100, policy: i % 2 == 0 ? .firstMatch : .lastMatch)
        }
        try a.free(a.allocations[5])
        try a.free(a.allocations[6])
        states.append(a)
        var full = space(base: 1, size: .max)
        _ = try full.allocate(size: 1, alignment: 1, policy: .exactMatch(.max))
        _ = try full.allocate(size: 1, alignment: 1, policy: .exactMatch(1))
        _ = try full.allocate(size: 1 << 40, alignment: 1 << 40, policy: .lastMatch)
        states.append(full)
        for state in states {
            let copy = try roundTrip(state)
            #expect(copy == state)
            #expect(copy.allocations == state.allocations)
            #expect(copy.freeRanges == state.freeRanges)
            #expect(copy.allocatedSize == state.allocatedSize)
            #expect(copy.largestFreeRange == state.largestFreeRange)
            #expect(copy.checkInvariants() == nil)
            // A decoded allocator must behave exactly like the original.
            var x = state
            var y = copy
            for policy: AllocPolicy in [.firstMatch, .lastMatch] {
                #expect((try? x.allocate(size: 0x80, alignment: 0x80, policy: policy))
                        == (try? y.allocate(size: 0x80, alignment: 0x80, policy: policy)))
            }
            if let first = x.allocations.first {
                try x.free(first)
                try y.free(first)
            }
            #expect(x == y)
            #expect(y.checkInvariants() == nil)
        }
    }

    @Test func documentedFormatDecodes() throws {
        let a = try decode(#"{"base": 4096, "end": 1048575, "allocations": [[4096, 8191], [16384, 20479]]}"#)
        #expect(a.base == 0x1000 && a.end == 0xfffff)
        #expect(a.allocations == [r(0x1000, 0x1fff), r(0x4000, 0x4fff)])
        #expect(a.freeRanges == [r(0x2000, 0x3fff), r(0x5000, 0xfffff)])
        #expect(a.allocatedSize == 0x2000)
        #expect(a.checkInvariants() == nil)
    }

    @Test func adjacentAllocationsAndExtremesDecode() throws {
        let a = try decode(#"{"base":1,"end":18446744073709551615,"allocations":[[1,1],[2,9],[18446744073709551615,18446744073709551615]]}"#)
        #expect(a.allocations == [r(1, 1), r(2, 9), r(.max, .max)])
        #expect(a.freeRanges == [r(10, .max - 1)])
        #expect(a.checkInvariants() == nil)
        let empty = try decode(#"{"base":0,"end":0,"allocations":[]}"#)
        #expect(empty.freeRanges == [r(0, 0)])
    }

    @Test func encodingMatchesTheDocumentedShape() throws {
        var a = space(base: 0x1000, size: 0x1000)
        _ = try a.allocate(size: 0x10, alignment: 1, policy: .exactMatch(0x1800))
        let json = try JSONValue.of(a)
        #expect(json["base"] == .unsigned(0x1000))
        #expect(json["end"] == .unsigned(0x1fff))
        #expect(json["allocations"] == .array([.array([.unsigned(0x1800), .unsigned(0x180f)])]))
    }

    // MARK: rejected snapshots

    @Test func overlappingAllocationsAreRejected() {
        expectRejected(#"{"base":0,"end":4095,"allocations":[[0,15],[15,31]]}"#)
        expectRejected(#"{"base":0,"end":4095,"allocations":[[0,100],[10,20]]}"#)
        expectRejected(#"{"base":0,"end":4095,"allocations":[[16,31],[16,31]]}"#)
    }

    @Test func unsortedAllocationsAreRejected() {
        expectRejected(#"{"base":0,"end":4095,"allocations":[[32,47],[0,15]]}"#)
        expectRejected(#"{"base":0,"end":4095,"allocations":[[0,1],[64,65],[32,33]]}"#)
    }

    @Test func outOfSpaceAllocationsAreRejected() {
        expectRejected(#"{"base":4096,"end":8191,"allocations":[[4095,4100]]}"#)
        expectRejected(#"{"base":4096,"end":8191,"allocations":[[8000,8192]]}"#)
        expectRejected(#"{"base":4096,"end":8191,"allocations":[[0,0]]}"#)
        expectRejected(#"{"base":4096,"end":8191,"allocations":[[9000,9001]]}"#)
        expectRejected(#"{"base":0,"end":18446744073709551614,"allocations":[[18446744073709551615,18446744073709551615]]}"#)
    }

    @Test func invertedRangesAreRejected() {
        expectRejected(#"{"base":0,"end":4095,"allocations":[[16,15]]}"#)
        expectRejected(#"{"base":4096,"end":4095,"allocations":[]}"#)
        expectRejected(#"{"base":18446744073709551615,"end":0,"allocations":[]}"#)
        expectRejected(#"{"base":0,"end":18446744073709551615,"allocations":[]}"#)
    }

    @Test func malformedPairsAreRejected() {
        expectRejected(#"{"base":0,"end":4095,"allocations":[[16]]}"#)
        expectRejected(#"{"base":0,"end":4095,"allocations":[[16,17,18]]}"#)
        expectRejected(#"{"base":0,"end":4095,"allocations":[[]]}"#)
        expectRejected(#"{"base":0,"end":4095,"allocations":[{"start":16,"end":17}]}"#)
    }

    @Test func wrongTypesAreRejected() {
        expectRejected(#"{"base":"0","end":4095,"allocations":[]}"#)
        expectRejected(#"{"base":0,"end":4095.5,"allocations":[]}"#)
        expectRejected(#"{"base":-1,"end":4095,"allocations":[]}"#)
        expectRejected(#"{"base":0,"end":18446744073709551616,"allocations":[]}"#)
        expectRejected(#"{"base":0,"end":4095,"allocations":null}"#)
        expectRejected(#"{"base":0,"end":4095,"allocations":{}}"#)
        expectRejected(#"{"base":0,"end":4095,"allocations":[[1,"2"]]}"#)
        expectRejected(#"{"base":0,"end":4095,"allocations":[[true,2]]}"#)
        expectRejected(#"[0,4095,[]]"#)
        expectRejected(#""snapshot""#)
    }

    @Test func missingKeysAreRejected() {
        expectRejected(#"{"end":4095,"allocations":[]}"#)
        expectRejected(#"{"base":0,"allocations":[]}"#)
        expectRejected(#"{"base":0,"end":4095}"#)
        expectRejected(#"{}"#)
    }

    @Test func truncatedJSONIsRejectedAtEveryLength() throws {
        var a = space(base: 0x1000, size: 0x10000)
        for _ in 0..<4 { _ = try a.allocate(size: 0x100, alignment: 0x100, policy: .lastMatch) }
        let bytes = try JSONEncoder().encode(a)
        for length in 0..<bytes.count {
            #expect(throws: DecodingError.self, "prefix of \(length) bytes") {
                try JSONDecoder().decode(AddressAllocator.self, from: bytes.prefix(length))
            }
        }
    }

    // MARK: systematic mutation against an independent validity oracle

    /// Whether a snapshot is valid per the documented format, computed without the library.
    private static func expectedAllocations(_ json: JSONValue) -> (base: UInt64, end: UInt64, [AddressModel.Span])? {
        guard case .object(let members) = json, let base = members["base"]?.uint, let end = members["end"]?.uint,
              base <= end, !(base == 0 && end == .max), let list = members["allocations"]?.items else { return nil }
        var spans: [AddressModel.Span] = []
        for item in list {
            guard let pair = item.items, pair.count == 2, let s = pair[0].uint, let e = pair[1].uint,
                  s <= e, base <= s, e <= end else { return nil }
            if let last = spans.last, s <= last.end { return nil }
            spans.append(AddressModel.Span(start: s, end: e))
        }
        return (base, end, spans)
    }

    @Test func everySingleMutationDecodesIffValid() throws {
        let seed: UInt64 = 0xC0DEC
        print("AddressAllocatorCodableTests.everySingleMutationDecodesIffValid seed 0x\(String(seed, radix: 16))")
        var rng = SplitMix64(fixedSeed: seed)
        var checked = 0
        var accepted = 0
        let spaces: [(UInt64, UInt64)] = [(0, 0x400), (0x1000, 0x1000), (1, .max), (0, .max), (.max - 0x3ff, 0x400)]
        for (base, size) in spaces {
            var a = space(base: base, size: size)
            for _ in 0..<6 {
                _ = try? a.allocate(size: rng.uint64(in: 1...0x40), alignment: 1 << rng.uint64(in: 0...4),
                                    policy: rng.chance(50) ? .firstMatch : .lastMatch)
            }
            let snapshot = try JSONValue.of(a)
            do {
                for mutated in SnapshotMutations.all(of: snapshot) {
                    checked += 1
                    // Judge the bytes the decoder will see (a mutation may re-encode to an integer).
                    let oracle = Self.expectedAllocations(try JSONValue.of(mutated))
                    do {
                        let decoded = try mutated.decode(AddressAllocator.self)
                        accepted += 1
                        guard let (b, e, spans) = oracle else {
                            Issue.record("invalid snapshot was accepted: \(mutated)")
                            continue
                        }
                        #expect(decoded.base == b && decoded.end == e, "\(mutated)")
                        #expect(decoded.allocations.map(AddressModel.Span.init) == spans, "\(mutated)")
                        #expect(decoded.freeRanges.map(AddressModel.Span.init)
                                == AddressModel(base: b, end: e, allocations: spans).freeBlocks, "\(mutated)")
                        #expect(decoded.checkInvariants() == nil, "\(mutated)")
                        #expect(try JSONValue.of(decoded) == JSONValue.of(mutated), "re-encoding \(mutated)")
                    } catch is DecodingError {
                        #expect(oracle == nil, "valid snapshot was rejected: \(mutated)")
                    } catch {
                        Issue.record("non-DecodingError \(error) for \(mutated)")
                    }
                }
            }
        }
        print("  \(checked) mutated snapshots, \(accepted) valid and accepted")
        #expect(checked > 300)
        #expect(accepted > 0 && accepted < checked)
    }
}
