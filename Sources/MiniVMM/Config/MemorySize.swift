/// Parses `--memory` values: a decimal number of bytes with an optional `K`, `M` or `G`
/// suffix (powers of 1024, either case), e.g. `128M`, `5G`, `2097152`.
public enum MemorySize {
    /// The smallest RAM size a guest can have (2 MiB).
    public static let minimum: UInt64 = 2 << 20
    /// The largest RAM size minivmm accepts (64 GiB).
    public static let maximum: UInt64 = 64 << 30
    /// RAM sizes must be a multiple of this (4 KiB).
    public static let granularity: UInt64 = 4 << 10
    /// The size used when `--memory` is not given (128 MiB).
    public static let defaultSize: UInt64 = 128 << 20

    /// Parses `text` into a byte count and checks it against the ABI's limits.
    ///
    /// - Throws: a ``MinivmmError`` with status ``MinivmmExitStatus/usage`` and a message naming
    ///   the problem.
    /// - Complexity: O(n) in the length of `text`.
    public static func parse(_ text: String) throws(MinivmmError) -> UInt64 {
        var digits = Substring(text)
        var shift: UInt64 = 0
        if let last = digits.last, !last.isNumber {
            switch last {
            case "k", "K": shift = 10
            case "m", "M": shift = 20
            case "g", "G": shift = 30
            default:
                throw MinivmmError(.usage, "invalid --memory '\(text)': the suffix must be K, M or G")
            }
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
              let number = UInt64(digits)
        else {
            throw MinivmmError(.usage, "invalid --memory '\(text)': expected a number with an optional K, M or G suffix")
        }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: 1 << shift)
        guard !overflow, bytes <= maximum else {
            throw MinivmmError(.usage, "invalid --memory '\(text)': at most 64G")
        }
        guard bytes >= minimum else {
            throw MinivmmError(.usage, "invalid --memory '\(text)': at least 2M")
        }
        guard bytes % granularity == 0 else {
            throw MinivmmError(.usage, "invalid --memory '\(text)': must be a multiple of 4K")
        }
        return bytes
    }
}
