/// Parses `--memory` values: a decimal number of bytes with an optional `K`, `M` or `G`
/// suffix (powers of 1024, either case), e.g. `128M`, `5G`, `2097152`.
package enum MemorySize {
    /// The size used when `--memory` is not given (128 MiB).
    package static let defaultSize: UInt64 = 128 << 20

    /// Parses `text` into a byte count that ``GuestMemoryLayout`` can lay out (the limits
    /// live there).
    ///
    /// - Throws: ``ConfigurationError/invalidMemory(text:_:)`` naming the problem.
    /// - Complexity: O(n) in the length of `text`.
    package static func parse(_ text: String) throws(ConfigurationError) -> UInt64 {
        let bytes = try parseBytes(text)
        do {
            _ = try GuestMemoryLayout(memorySize: bytes)
        } catch {
            throw .invalidMemory(text: text, error)
        }
        return bytes
    }

    /// Parses `text` as a byte count with an optional suffix, with no limits beyond 64
    /// bits (hot-plugged RAM has its own, checked by the resource manager).
    ///
    /// - Throws: ``ConfigurationError/invalidMemory(text:_:)`` naming the problem.
    /// - Complexity: O(n) in the length of `text`.
    package static func parseBytes(_ text: String) throws(ConfigurationError) -> UInt64 {
        var digits = Substring(text)
        var shift: UInt64 = 0
        if let last = digits.last, !last.isNumber {
            switch last {
            case "k", "K": shift = 10
            case "m", "M": shift = 20
            case "g", "G": shift = 30
            default: throw .invalidMemory(text: text, .badSuffix)
            }
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let number = UInt64(digits) else {
            throw .invalidMemory(text: text, .notANumber)
        }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: 1 << shift)
        guard !overflow else { throw .invalidMemory(text: text, .tooLarge) }
        return bytes
    }
}
