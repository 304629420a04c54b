import PropertyBased
import Testing
@testable import VMAllocator

@Suite("RangeInclusive")
struct RangeInclusiveTests {
    @Test func invertedRangeIsRejectedWithItsBounds() {
        #expect(throws: AllocatorError.invalidRange(5, 4)) { try RangeInclusive(start: 5, end: 4) }
        #expect(throws: AllocatorError.invalidRange(UInt64.max, 0)) { try RangeInclusive(start: .max, end: 0) }
    }

    @Test func fullSixtyFourBitRangeIsRejected() {
        #expect(throws: AllocatorError.invalidRange(0, UInt64.max)) { try RangeInclusive(start: 0, end: .max) }
    }

    @Test func largestRepresentableRangesAreAccepted() throws {
        let low = try RangeInclusive(start: 0, end: .max - 1)
        let high = try RangeInclusive(start: 1, end: .max)
        #expect(low.count == .max)
        #expect(high.count == .max)
        #expect(low.start == 0 && low.end == UInt64.max - 1)
        #expect(high.start == 1 && high.end == .max)
    }

    @Test func singleAddressRangesAtBothEnds() throws {
        for a: UInt64 in [0, 1, 0x1000, .max - 1, .max] {
            let one = try RangeInclusive(start: a, end: a)
            #expect(one.count == 1)
            #expect(one.contains(a))
            #expect(one.contains(one))
            #expect(one.overlaps(one))
        }
    }

    @Test func countIsEndMinusStartPlusOne() {
        #expect(r(0x1000, 0x1fff).count == 0x1000)
        #expect(r(7, 9).count == 3)
    }

    @Test func containsAddressIsInclusiveAtBothEnds() {
        let range = r(0x10, 0x1f)
        #expect(!range.contains(UInt64(0xf)))
        #expect(range.contains(UInt64(0x10)))
        #expect(range.contains(UInt64(0x1f)))
        #expect(!range.contains(UInt64(0x20)))
        #expect(r(.max - 1, .max).contains(UInt64.max))
        #expect(r(0, 1).contains(UInt64(0)))
    }

    @Test func containsRange() {
        let outer = r(0x10, 0x1f)
        #expect(outer.contains(r(0x10, 0x1f)))
        #expect(outer.contains(r(0x11, 0x1e)))
        #expect(outer.contains(r(0x10, 0x10)))
        #expect(outer.contains(r(0x1f, 0x1f)))
        #expect(!outer.contains(r(0xf, 0x1f)))
        #expect(!outer.contains(r(0x10, 0x20)))
        #expect(!outer.contains(r(0x0, 0x100)))
        #expect(!outer.contains(r(0x20, 0x30)))
    }

    @Test func overlapsIncludesSharedEndpointsButNotAdjacency() {
        let a = r(0x10, 0x1f)
        #expect(a.overlaps(r(0x1f, 0x30)))
        #expect(a.overlaps(r(0x0, 0x10)))
        #expect(a.overlaps(r(0x0, 0x100)))
        #expect(a.overlaps(r(0x14, 0x15)))
        #expect(!a.overlaps(r(0x20, 0x30)))
        #expect(!a.overlaps(r(0x0, 0xf)))
        #expect(r(0, .max - 1).overlaps(r(1, .max)))
        #expect(!r(0, 0).overlaps(r(1, .max)))
    }

    @Test func orderingIsByStartThenEnd() {
        #expect(r(0, 5) < r(1, 2))
        #expect(r(0, 2) < r(0, 5))
        #expect(!(r(3, 4) < r(3, 4)))
        #expect([r(9, 9), r(1, 8), r(1, 2), r(0, .max - 1)].sorted() == [r(0, .max - 1), r(1, 2), r(1, 8), r(9, 9)])
    }

    @Test func equalityAndHashingFollowTheBounds() {
        #expect(r(1, 2) == r(1, 2))
        #expect(r(1, 2) != r(1, 3))
        #expect(r(1, 2) != r(0, 2))
        #expect(Set([r(1, 2), r(1, 2), r(2, 3)]).count == 2)
    }

    @Test func descriptionShowsBothBounds() {
        let text = r(0x1000, 0x1fff).description.lowercased()
        let hex = text.contains("1000") && text.contains("1fff")
        let decimal = text.contains("4096") && text.contains("8191")
        #expect(hex || decimal, "description \(text) should mention both bounds")
        #expect(r(1, 2).description != r(1, 3).description)
    }

    /// Set-based predicates checked against arithmetic definitions on random ranges drawn
    /// with PropertyBased generators from a fixed, printed seed.
    @Test func predicatesAgreeWithArithmeticDefinitions() {
        let seed: UInt64 = 0x52_414E_4745
        print("RangeInclusiveTests.predicatesAgreeWithArithmeticDefinitions seed 0x\(String(seed, radix: 16))")
        var rng = SplitMix64(fixedSeed: seed)
        // Small and edge-heavy bounds so overlaps and containment happen often.
        let edges: [UInt64] = [0, 1, 2, 3, 0x7f, 0x80, 0xff, .max - 2, .max - 1, .max]
        let bound = Gen<UInt64?>.element(of: edges)
        let small = Gen.uint64(in: 0...40)
        let wide = Gen.uint64()
        for iteration in 0..<5_000 {
            let pick = iteration % 3
            func draw() -> UInt64 {
                switch pick {
                case 0: small.run(using: &rng)
                case 1: bound.run(using: &rng) ?? 0
                default: wide.run(using: &rng)
                }
            }
            var (a0, a1, b0, b1) = (draw(), draw(), draw(), draw())
            if a0 > a1 { swap(&a0, &a1) }
            if b0 > b1 { swap(&b0, &b1) }
            guard let a = try? RangeInclusive(start: a0, end: a1),
                  let b = try? RangeInclusive(start: b0, end: b1) else {
                #expect(a0 == 0 && a1 == .max || b0 == 0 && b1 == .max, "only the full range may be rejected")
                continue
            }
            let overlap = a0 <= b1 && b0 <= a1
            let contains = a0 <= b0 && b1 <= a1
            #expect(a.overlaps(b) == overlap, "\(a) overlaps \(b), iteration \(iteration)")
            #expect(b.overlaps(a) == overlap, "\(b) overlaps \(a), iteration \(iteration)")
            #expect(a.contains(b) == contains, "\(a) contains \(b), iteration \(iteration)")
            #expect(a.contains(b0) == (a0 <= b0 && b0 <= a1), "\(a) contains \(b0), iteration \(iteration)")
            #expect(a.count == a1 - a0 + 1)
            #expect((a < b) == ((a0, a1) < (b0, b1)), "\(a) < \(b), iteration \(iteration)")
            if contains { #expect(a.overlaps(b)) }
        }
    }
}
