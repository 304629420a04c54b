/// Why a machine configuration was refused. Each case describes itself in one line that can
/// be shown to the user as is; what that means for the process (a usage error) is decided
/// at the edge, in ``ExitStatus``.
package enum ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Why a memory size cannot be laid out.
    package enum MemoryProblem: Error, Hashable, Sendable {
        /// Not a number with an optional K, M or G suffix.
        case notANumber
        /// A suffix other than K, M or G.
        case badSuffix
        /// Not a multiple of the 4 KiB page size.
        case notPageMultiple
        /// Smaller than ``GuestMemoryLayout/minimumMemorySize``.
        case tooSmall
        /// Larger than ``GuestMemoryLayout/maximumMemorySize`` (or beyond 64 bits).
        case tooLarge
    }

    /// `--memory` was refused; `text` is what the user wrote.
    case invalidMemory(text: String, MemoryProblem)
    /// The image path is empty.
    case emptyImagePath
    /// Both an image and `--restore` were given.
    case imageWithRestore
    /// Neither an image nor `--restore` was given.
    case missingImage
    /// An option that only `--restore` takes was given without it.
    case restoreOnlyOption(String)
    /// The `--kvm-device` path is empty.
    case emptyKVMDevicePath
    /// A `--device` value is not `KIND=N` with a known kind.
    case invalidDeviceOption(String)
    /// A device count was negative.
    case negativeDeviceCount(DeviceKind, Int)
    /// `--timeout` is not a positive finite number of seconds of at most a year.
    case invalidTimeout(Double)
    /// `--cpus` is outside `1...64`.
    case invalidCPUCount(Int)
    /// `--log-level` names no level.
    case invalidLogLevel(String)
    /// The devices asked for need more GSIs than the IOAPIC range has free.
    case tooManyDevices(requested: Int, available: Int)
    /// The `--api-socket` path cannot name a socket; `reason` says why.
    case invalidAPISocketPath(String, reason: String)
    /// Something already exists at the `--api-socket` path; minivmm leaves it alone.
    case apiSocketExists(String)

    /// A one-line explanation for the user.
    package var description: String {
        switch self {
        case .invalidMemory(let text, let problem):
            let reason = switch problem {
            case .notANumber: "expected a number with an optional K, M or G suffix"
            case .badSuffix: "the suffix must be K, M or G"
            case .notPageMultiple: "must be a multiple of 4K"
            case .tooSmall: "at least 2M"
            case .tooLarge: "at most 64G"
            }
            return "invalid --memory '\(text)': \(reason)"
        case .emptyImagePath:
            return "the image path is empty"
        case .imageWithRestore:
            return "give a guest image or --restore DIR, not both"
        case .missingImage:
            return "missing the guest image (or --restore DIR); see 'minivmm --help'"
        case .restoreOnlyOption(let option):
            return "\(option) works only with --restore DIR"
        case .emptyKVMDevicePath:
            return "the --kvm-device path is empty"
        case .invalidDeviceOption(let text):
            let kinds = DeviceKind.allCases.map(\.rawValue).joined(separator: ", ")
            return "invalid --device '\(text)': expected KIND=N with KIND one of \(kinds)"
        case .negativeDeviceCount(let kind, let count):
            return "--\(kind.descriptor.pluralName) must not be negative (got \(count))"
        case .invalidTimeout(let seconds):
            return "--timeout must be a positive number of seconds (got \(seconds))"
        case .invalidCPUCount(let count):
            return "--cpus must be between 1 and \(MachineConfiguration.maximumCPUs) (got \(count))"
        case .invalidLogLevel(let text):
            return "invalid --log-level '\(text)': use trace, debug, info, notice, warning, error or critical"
        case .tooManyDevices(let requested, let available):
            let names = DeviceKind.allCases.map(\.descriptor.pluralName).joined(separator: " and ")
            return "\(requested) devices need \(requested) interrupt lines (GSIs) but only "
                + "\(available) are available (GSIs \(ResourceManager.firstDeviceGSI)"
                + "-\(ResourceManager.lastGSI)); ask for at most \(available) \(names) together"
        case .invalidAPISocketPath(let path, let reason):
            return "invalid --api-socket '\(path)': \(reason)"
        case .apiSocketExists(let path):
            return "--api-socket '\(path)' already exists; remove it or choose another path"
        }
    }
}
