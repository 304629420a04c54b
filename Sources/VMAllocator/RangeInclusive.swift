/// A non-empty, closed range of addresses `[start, end]`.
///
/// The range covering all of `UInt64` is not representable, so ``count`` never overflows.
///
/// Encoded (`Codable`) as a keyed container `{"start": UInt64, "end": UInt64}`; decoding
/// rejects `start > end` and the full `[0, UInt64.max]` with `DecodingError.dataCorrupted`.
public struct RangeInclusive: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The first address in the range.
    public let start: UInt64
    /// The last address in the range (inclusive).
    public let end: UInt64

    /// Creates `[start, end]`.
    ///
    /// - Throws: `invalidRange(start, end)` if `start > end`, or for `[0, UInt64.max]`.
    public init(start: UInt64, end: UInt64) throws(AllocatorError) {
        guard start <= end, !(start == 0 && end == .max) else {
            throw .invalidRange(start, end)
        }
        self.start = start
        self.end = end
    }

    /// Creates the range of `count` addresses beginning at `start`.
    ///
    /// - Throws: `invalidSize(0)` if `count` is 0; `overflow` if the range would pass
    ///   `UInt64.max`.
    public init(start: UInt64, count: UInt64) throws(AllocatorError) {
        guard count > 0 else { throw .invalidSize(0) }
        guard start <= UInt64.max - (count - 1) else { throw .overflow }
        self.start = start
        self.end = start + (count - 1)
    }

    /// Creates a range the caller has already validated.
    init(validatedStart start: UInt64, end: UInt64) {
        self.start = start
        self.end = end
    }

    /// The number of addresses in the range: `end - start + 1`.
    public var count: UInt64 { end - start + 1 }

    /// Whether the two ranges share at least one address.
    public func overlaps(_ other: RangeInclusive) -> Bool {
        start <= other.end && other.start <= end
    }

    /// Whether every address of `other` lies in this range.
    public func contains(_ other: RangeInclusive) -> Bool {
        start <= other.start && other.end <= end
    }

    /// Whether `address` lies in this range.
    public func contains(_ address: UInt64) -> Bool {
        start <= address && address <= end
    }

    /// Orders by `start`, then by `end`.
    public static func < (lhs: RangeInclusive, rhs: RangeInclusive) -> Bool {
        (lhs.start, lhs.end) < (rhs.start, rhs.end)
    }

    /// The range as `[0x1000, 0x1fff]`.
    public var description: String { "[\(hex(start)), \(hex(end))]" }
}

extension RangeInclusive: Codable {
    private enum CodingKeys: String, CodingKey {
        case start, end
    }

    /// Decodes `{"start", "end"}`, rejecting ranges the throwing initialiser rejects.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let start = try container.decode(UInt64.self, forKey: .start)
        let end = try container.decode(UInt64.self, forKey: .end)
        do {
            try self.init(start: start, end: end)
        } catch {
            throw DecodingError.dataCorruptedError(
                forKey: .end, in: container, debugDescription: error.description)
        }
    }

    /// Encodes `{"start", "end"}`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(start, forKey: .start)
        try container.encode(end, forKey: .end)
    }
}
