/// The exit statuses of `minivmm`, the single place that gives each outcome its number.
///
/// `0...63` is the guest's own status from the exit port; the others follow the BSD
/// `sysexits.h` conventions, plus 76 for a guest that crashed and 124 for a timeout
/// (the status `timeout(1)` uses).
public enum MinivmmExitStatus: Hashable, Sendable, CustomStringConvertible {
    /// The guest wrote this value (at most 63) to the exit port.
    case guest(UInt8)
    /// Bad command line: no image, a bad `--memory`, more devices than GSIs, ... (64).
    case usage
    /// The guest image is invalid: empty, or larger than the RAM above 1 MiB (65).
    case invalidImage
    /// The guest image is missing, unreadable or a directory (66).
    case imageNotFound
    /// KVM cannot be used: no device, no permission, not KVM, wrong API version,
    /// missing capability (69).
    case kvmUnavailable
    /// A bug in minivmm itself (70).
    case internalError
    /// The host OS refused something minivmm needs, such as `mmap` (71).
    case hostFailure
    /// The guest crashed or broke the ABI, e.g. a triple fault or an exit value above 63 (76).
    case guestCrashed
    /// `--timeout` expired before the guest exited (124).
    case timeout
    /// SIGINT, SIGTERM or SIGHUP stopped the machine (128 + the signal number: 130, 143, 129).
    case stoppedBySignal(Int32)

    /// The largest status a guest can pass through the exit port.
    public static let largestGuestStatus: UInt64 = 63

    /// Maps a value the guest wrote to the exit port to the status minivmm exits with:
    /// the value itself when it is at most 63, otherwise ``guestCrashed``.
    public static func fromExitPort(_ value: UInt64) -> MinivmmExitStatus {
        value <= largestGuestStatus ? .guest(UInt8(value)) : .guestCrashed
    }

    /// The process exit status.
    public var code: Int32 {
        switch self {
        case .guest(let value): Int32(min(UInt64(value), Self.largestGuestStatus))
        case .usage: 64
        case .invalidImage: 65
        case .imageNotFound: 66
        case .kvmUnavailable: 69
        case .internalError: 70
        case .hostFailure: 71
        case .guestCrashed: 76
        case .timeout: 124
        case .stoppedBySignal(let number): 128 + number
        }
    }

    /// A short name for logs.
    public var description: String {
        switch self {
        case .guest(let value): "guest status \(value)"
        case .usage: "bad command line"
        case .invalidImage: "invalid guest image"
        case .imageNotFound: "guest image not found or unreadable"
        case .kvmUnavailable: "KVM unavailable"
        case .internalError: "internal error"
        case .hostFailure: "host OS failure"
        case .guestCrashed: "guest crashed"
        case .timeout: "timeout"
        case .stoppedBySignal(let number): "stopped by \(Signals.name(number))"
        }
    }
}

/// A failure that ends `minivmm`: the status to exit with and a one-line message for stderr.
public struct MinivmmError: Error, Sendable, CustomStringConvertible {
    /// The status `minivmm` exits with.
    public var status: MinivmmExitStatus
    /// What went wrong and, where possible, what to do about it.
    public var message: String

    /// Creates an error that ends `minivmm` with `status`.
    public init(_ status: MinivmmExitStatus, _ message: String) {
        self.status = status
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
