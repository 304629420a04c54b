/// Everything `minivmm` needs to know to build and run one machine, checked where checking
/// needs nothing but the values themselves. ``MachinePlan`` checks the rest.
package struct MachineConfiguration: Hashable, Sendable {
    /// Path of the flat guest image.
    package var imagePath: String
    /// Guest RAM in bytes.
    package var memorySize: UInt64
    /// Stop the guest (status 124) after this long, if set.
    package var timeout: Duration?
    /// How many devices of each kind the machine boots with (kinds not listed: none).
    package var deviceCounts: [DeviceKind: Int]
    /// Number of vCPUs.
    package var cpus: Int
    /// Print the resource map to stdout before the guest runs.
    package var describe: Bool
    /// Path of the KVM device.
    package var kvmDevicePath: String
    /// Where to serve the control API (a Unix-domain socket), if anywhere.
    package var apiSocketPath: String?
    /// Restore this snapshot instead of booting an image (`--restore`).
    package var restore: RestoreRequest?

    /// `--restore DIR [--paused] [--verify-memory]`.
    package struct RestoreRequest: Hashable, Sendable {
        /// The snapshot directory.
        package var path: String
        /// Stay paused until `PATCH /vm` runs the guest.
        package var startPaused: Bool
        /// Check every memory file's SHA-256, not only its size.
        package var verifyMemory: Bool

        /// A request.
        package init(path: String, startPaused: Bool = false, verifyMemory: Bool = false) {
            self.path = path
            self.startPaused = startPaused
            self.verifyMemory = verifyMemory
        }
    }

    /// The most vCPUs a machine can have (the host may allow fewer).
    package static let maximumCPUs = 64
    /// The longest `--api-socket` path: a socket address holds 108 bytes, the last a NUL.
    package static let maximumAPISocketPathBytes = 107
    /// The KVM device used when none is given.
    package static let defaultKVMDevicePath = "/dev/kvm"
    /// Devices a machine gets when the command line does not say: one of each kind.
    package static let defaultDeviceCounts = Dictionary(uniqueKeysWithValues: DeviceKind.allCases.map { ($0, 1) })

    /// Creates a configuration, checking the values that need no host resources.
    ///
    /// - Throws: ``ConfigurationError`` for an empty image or KVM device path, a negative
    ///   device count, a vCPU count outside `1...64`, a timeout that is not a positive finite number of seconds of at
    ///   most a year, or an API socket path that is empty or too long. (Whether the path is
    ///   free is a question for the host, asked just before the machine is built.)
    package init(
        imagePath: String, memorySize: UInt64 = MemorySize.defaultSize, timeoutSeconds: Double? = nil,
        deviceCounts: [DeviceKind: Int] = MachineConfiguration.defaultDeviceCounts, cpus: Int = 1, describe: Bool = false,
        kvmDevicePath: String = MachineConfiguration.defaultKVMDevicePath, apiSocketPath: String? = nil
    ) throws(ConfigurationError) {
        guard !imagePath.isEmpty else { throw .emptyImagePath }
        for kind in DeviceKind.allCases {
            if let count = deviceCounts[kind], count < 0 { throw .negativeDeviceCount(kind, count) }
        }
        guard (1...Self.maximumCPUs).contains(cpus) else { throw .invalidCPUCount(cpus) }
        guard !kvmDevicePath.isEmpty else { throw .emptyKVMDevicePath }
        if let seconds = timeoutSeconds {
            guard seconds.isFinite, seconds > 0, seconds <= 365 * 24 * 3600 else { throw .invalidTimeout(seconds) }
            self.timeout = .nanoseconds(Int64((seconds * 1e9).rounded(.up)))
        } else {
            self.timeout = nil
        }
        self.imagePath = imagePath
        self.memorySize = memorySize
        self.deviceCounts = deviceCounts
        self.cpus = cpus
        self.describe = describe
        self.kvmDevicePath = kvmDevicePath
        if let path = apiSocketPath {
            guard !path.isEmpty else { throw .invalidAPISocketPath(path, reason: "the path is empty") }
            guard path.utf8.count <= Self.maximumAPISocketPathBytes else {
                throw .invalidAPISocketPath(
                    path, reason: "a socket path has at most \(Self.maximumAPISocketPathBytes) bytes; choose a shorter one")
            }
        }
        self.apiSocketPath = apiSocketPath
    }

    /// How many devices of `kind` the machine boots with.
    package func count(of kind: DeviceKind) -> Int { deviceCounts[kind] ?? 0 }
}
