/// Reads fuzzer bytes as small integers; an exhausted input reads as zeros so every
/// prefix of an input is itself a meaningful program.
struct FuzzInput {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    var isExhausted: Bool { index >= bytes.count }

    mutating func byte() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }

    mutating func uint16() -> UInt16 {
        UInt16(byte()) | UInt16(byte()) << 8
    }

    mutating func uint32() -> UInt32 {
        UInt32(uint16()) | UInt32(uint16()) << 16
    }

    mutating func uint64() -> UInt64 {
        UInt64(uint32()) | UInt64(uint32()) << 32
    }

    /// A power of two `1 << (byte % 64)`.
    mutating func powerOfTwo() -> UInt64 {
        1 << UInt64(byte() % 64)
    }

    /// Picks an index below `count` (which must be positive).
    mutating func index(below count: Int) -> Int {
        Int(uint16()) % count
    }

    mutating func remainingBytes() -> [UInt8] {
        defer { index = bytes.count }
        return index < bytes.count ? Array(bytes[index...]) : []
    }
}
