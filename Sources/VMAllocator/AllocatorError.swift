/// Why an allocator operation failed.
///
/// A call that throws one of these leaves the allocator exactly as it was.
public enum AllocatorError: Error, Hashable, Sendable {
    /// An address computation would pass `UInt64.max`.
    case overflow
    /// An address allocator was asked to manage zero bytes.
    case underflow
    /// No free space (or no free ID) satisfies the request.
    case resourceNotAvailable
    /// The alignment is zero or not a power of two.
    case invalidAlignment
    /// An exact-match address is not a multiple of the requested alignment.
    case unalignedAddress
    /// The ID lies outside the allocator's range.
    case outOfRange(UInt32)
    /// The ID was handed out and has been released already.
    case alreadyReleased(UInt32)
    /// The ID is free and was never handed out.
    case neverAllocated(UInt32)
    /// The ID is live already.
    case alreadyAllocated(UInt32)
    /// The bounds do not describe a valid range (start after end, or all of `UInt64`).
    case invalidRange(UInt64, UInt64)
    /// The requested size is not valid (zero).
    case invalidSize(UInt64)
}

extension AllocatorError: CustomStringConvertible {
    /// A one-line, human-readable explanation.
    public var description: String {
        switch self {
        case .overflow: "address arithmetic overflows UInt64"
        case .underflow: "size must be at least 1"
        case .resourceNotAvailable: "no free resource satisfies the request"
        case .invalidAlignment: "alignment must be a non-zero power of two"
        case .unalignedAddress: "address is not a multiple of the alignment"
        case .outOfRange(let id): "ID \(id) is outside the allocator's range"
        case .alreadyReleased(let id): "ID \(id) has been released already"
        case .neverAllocated(let id): "ID \(id) was never allocated"
        case .alreadyAllocated(let id): "ID \(id) is allocated already"
        case .invalidRange(let start, let end):
            "invalid range [\(hex(start)), \(hex(end))]"
        case .invalidSize(let size): "invalid size \(size)"
        }
    }
}

/// `0x`-prefixed lower-case hexadecimal, without Foundation.
func hex(_ value: UInt64) -> String {
    "0x" + String(value, radix: 16)
}
