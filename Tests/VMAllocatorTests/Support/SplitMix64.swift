import PropertyBased

/// A tiny, fully deterministic PRNG so every randomised test is reproducible from the
/// seed it prints. Conforms to PropertyBased's protocol so its generators can draw from it.
struct SplitMix64: SeededRandomNumberGenerator {
    typealias Seed = UInt64

    private(set) var currentSeed: UInt64

    init?(seed: UInt64) { currentSeed = seed }

    init() { currentSeed = 0x5EED_0000_0000_0001 }

    init(fixedSeed: UInt64) { currentSeed = fixedSeed }

    mutating func next() -> UInt64 {
        currentSeed &+= 0x9E37_79B9_7F4A_7C15
        var z = currentSeed
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// True with probability `percent`/100.
    mutating func chance(_ percent: UInt64) -> Bool {
        next() % 100 < percent
    }

    /// Uniform in `range` (inclusive), including the full UInt64 range.
    mutating func uint64(in range: ClosedRange<UInt64>) -> UInt64 {
        UInt64.random(in: range, using: &self)
    }

    /// A value whose magnitude is spread over all bit widths up to `bits`, so tiny and huge
    /// values are both common (plain uniform draws would almost never produce small ones).
    mutating func logUniform(maxBits bits: Int) -> UInt64 {
        let width = Int.random(in: 0...max(0, min(64, bits)), using: &self)
        if width == 0 { return 0 }
        if width == 64 { return next() }
        return next() & ((UInt64(1) << UInt64(width)) - 1)
    }

    mutating func pick<T>(_ items: [T]) -> T {
        items[Int.random(in: 0..<items.count, using: &self)]
    }
}
