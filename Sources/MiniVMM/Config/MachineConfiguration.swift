/// Everything `minivmm` needs to know to build and run one machine, already validated
/// where validation needs no host resources.
public struct MachineConfiguration: Hashable, Sendable {
    /// Path of the flat guest image.
    public var imagePath: String
    /// Guest RAM in bytes.
    public var memorySize: UInt64
    /// Stop the guest (status 124) after this long, if set.
    public var timeout: Duration?
    /// Number of timer devices.
    public var timers: Int
    /// Number of DMA console devices.
    public var consoles: Int
    /// Print the resource map to stdout before the guest runs.
    public var describe: Bool
    /// Path of the KVM device.
    public var kvmDevicePath: String

    /// The KVM device used when none is given.
    public static let defaultKVMDevicePath = "/dev/kvm"

    /// Creates a configuration, checking the values that need no host resources.
    ///
    /// - Throws: ``MinivmmError`` with status ``MinivmmExitStatus/usage`` for an empty image
    ///   path, a negative device count or a timeout that is not a positive finite number
    ///   of seconds of at most a year.
    public init(
        imagePath: String, memorySize: UInt64 = MemorySize.defaultSize, timeoutSeconds: Double? = nil,
        timers: Int = 1, consoles: Int = 1, describe: Bool = false,
        kvmDevicePath: String = MachineConfiguration.defaultKVMDevicePath
    ) throws(MinivmmError) {
        guard !imagePath.isEmpty else { throw MinivmmError(.usage, "the image path is empty") }
        guard timers >= 0 else { throw MinivmmError(.usage, "--timers must not be negative (got \(timers))") }
        guard consoles >= 0 else { throw MinivmmError(.usage, "--consoles must not be negative (got \(consoles))") }
        guard !kvmDevicePath.isEmpty else { throw MinivmmError(.usage, "the --kvm-device path is empty") }
        if let seconds = timeoutSeconds {
            guard seconds.isFinite, seconds > 0, seconds <= 365 * 24 * 3600 else {
                throw MinivmmError(.usage, "--timeout must be a positive number of seconds (got \(seconds))")
            }
            self.timeout = .nanoseconds(Int64((seconds * 1e9).rounded(.up)))
        } else {
            self.timeout = nil
        }
        self.imagePath = imagePath
        self.memorySize = memorySize
        self.timers = timers
        self.consoles = consoles
        self.describe = describe
        self.kvmDevicePath = kvmDevicePath
    }
}
