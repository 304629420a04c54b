import ArgumentParser
import Glibc
import Logging
import MiniVMM
import SystemPackage

/// The `minivmm` command line: parsing, then the data flow in MiniVMM, then the exit status.
@main
struct MinivmmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "minivmm",
        abstract: "Boot a flat 64-bit guest image on KVM.",
        discussion: """
            The guest's console output (COM1 and DMA consoles) is minivmm's stdout, byte for \
            byte; minivmm's own messages go to stderr. stdin feeds COM1.

            Exit status: 0-63 the guest's status from exit port 0xF4; 64 bad command line; \
            65 invalid image or snapshot; 66 image not found or unreadable; 69 KVM unusable; 70 internal \
            error; 71 host OS failure; 76 guest crashed or broke the ABI; 124 timeout; \
            128 + n stopped by signal n (130 SIGINT, 143 SIGTERM, 129 SIGHUP).
            """)

    @Argument(help: "The flat guest image, loaded at guest-physical 0x100000 (not with --restore).")
    var image: String?

    @Option(
        help: ArgumentHelp(
            "Resume the VM a snapshot directory holds (PUT /snapshot/create wrote it) instead of booting an image.",
            valueName: "DIR"))
    var restore: String?

    @Flag(help: "With --restore: stay paused until PATCH /vm {\"state\": \"running\"}.")
    var paused = false

    @Flag(name: .customLong("verify-memory"), help: "With --restore: check every memory file's SHA-256, not only its size.")
    var verifyMemory = false

    @Option(help: "Guest RAM: bytes with an optional K, M or G suffix (multiple of 4K, 2M to 64G).")
    var memory: String = "128M"

    @Option(help: "Stop the guest after this many seconds (exit status 124).")
    var timeout: Double?

    @Option(help: "Number of timer devices.")
    var timers: Int = 1

    @Option(help: "Number of DMA console devices.")
    var consoles: Int = 1

    @Option(
        name: .customLong("device"),
        help: ArgumentHelp(
            "Number of devices of a kind, e.g. --device timer=2; repeatable, overrides --timers and --consoles.",
            valueName: "KIND=N"))
    var devices: [String] = []

    @Option(help: "Number of vCPUs (1 to 64, at most what the host's KVM allows).")
    var cpus: Int = 1

    @Flag(help: "Print the machine's resource map to stdout before the guest runs.")
    var describe = false

    @Option(name: .customLong("kvm-device"), help: "The KVM device.")
    var kvmDevice: String = MachineConfiguration.defaultKVMDevicePath

    @Option(
        name: .customLong("api-socket"),
        help: ArgumentHelp(
            "Serve the control API (HTTP/1.1) on a Unix-domain socket at PATH, mode 0600; PATH must not exist.",
            valueName: "PATH"))
    var apiSocket: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "warning"

    /// The device count for each kind: `--timers` and `--consoles`, then every `--device`.
    func deviceCounts() throws(ConfigurationError) -> [DeviceKind: Int] {
        var counts: [DeviceKind: Int] = [.timer: timers, .dmaConsole: consoles]
        for text in devices {
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let kind = DeviceKind(rawValue: parts[0]), let count = Int(parts[1]) else {
                throw .invalidDeviceOption(text)
            }
            counts[kind] = count
        }
        return counts
    }

    /// The checked blueprint of the machine: everything that needs no host.
    func blueprint() throws(ConfigurationError) -> MachinePlan.Blueprint {
        if image != nil, restore != nil { throw .imageWithRestore }
        if restore == nil, paused || verifyMemory { throw .restoreOnlyOption(paused ? "--paused" : "--verify-memory") }
        guard let source = image ?? restore else { throw .missingImage }
        var configuration = try MachineConfiguration(
            imagePath: source, memorySize: MemorySize.parse(memory), timeoutSeconds: timeout,
            deviceCounts: deviceCounts(), cpus: cpus, describe: describe, kvmDevicePath: kvmDevice,
            apiSocketPath: apiSocket)
        if let restore {
            configuration.restore = .init(path: restore, startPaused: paused, verifyMemory: verifyMemory)
        }
        return try MachinePlan.Blueprint(configuration)
    }

    /// The checked log level.
    func level() throws(ConfigurationError) -> Logger.Level {
        guard let level = Logger.Level(rawValue: logLevel.lowercased()) else { throw .invalidLogLevel(logLevel) }
        return level
    }

    /// Parses `arguments` into a blueprint and a log level, or the status to exit with and
    /// the text to show (help goes to stdout with status 0; errors to stderr with 64).
    static func interpret(_ arguments: [String]) -> Result<(MachinePlan.Blueprint, Logger.Level), CommandLineOutcome> {
        let command: MinivmmCommand
        do {
            command = try parse(arguments)
        } catch {
            if exitCode(for: error) == .success {
                return .failure(CommandLineOutcome(status: 0, text: fullMessage(for: error), toStandardError: false))
            }
            return .failure(CommandLineOutcome(
                status: ExitStatus.usage.code, text: usageError(for: error), toStandardError: true))
        }
        do {
            return .success((try command.blueprint(), try command.level()))
        } catch {
            return .failure(CommandLineOutcome(
                status: ExitStatus(.failed(.configuration(error))).code,
                text: StandardErrorLogHandler.line(.error, error.description), toStandardError: true))
        }
    }

    /// A parser error in minivmm's stderr style: `minivmm: error: missing expected argument
    /// '<image>'`, then a hint line.
    static func usageError(for error: any Error) -> String {
        var message = self.message(for: error).trimmingPrefix("Error: ")
        if let first = message.first, first.isUppercase, message.dropFirst().first?.isLowercase ?? true {
            message = first.lowercased() + message.dropFirst()
        }
        return StandardErrorLogHandler.line(.error, "\(message)\nsee 'minivmm --help'")
    }

    static func main() {
        // First, before any thread exists: every thread inherits the signal mask.
        Signals.prepareProcess()
        let stop: StopLatch
        do {
            stop = try StopLatch()
        } catch {
            let line = StandardErrorLogHandler.line(.error, "cannot set up: \(error)")
            _ = try? FileDescriptor.standardError.writeAll(line.utf8)
            Glibc.exit(ExitStatus.hostFailure.code)
        }
        switch interpret(Array(CommandLine.arguments.dropFirst())) {
        case .failure(let outcome):
            outcome.print(stop: stop)
            Glibc.exit(outcome.status)
        case .success(let (blueprint, level)):
            let errors = ConsoleWriter(descriptor: .standardError, stop: stop)
            LoggingSystem.bootstrap { _ in StandardErrorLogHandler(writer: errors, logLevel: level) }
            let end = MachineRunner.run(
                blueprint, logger: Logger(label: "minivmm"), stop: stop,
                console: ConsoleWriter(descriptor: .standardOutput, stop: stop))
            Glibc.exit(ExitStatus(end).code)
        }
    }
}

/// What the command line ends with when it does not start a machine.
struct CommandLineOutcome: Error {
    /// The process exit status.
    var status: Int32
    /// The message or help text.
    var text: String
    /// Whether `text` goes to stderr (errors) or stdout (help).
    var toStandardError: Bool

    /// Writes the text to stdout or stderr; a closed or full descriptor drops it.
    func print(stop: StopLatch) {
        guard !text.isEmpty else { return }
        let line = text.hasSuffix("\n") ? text : text + "\n"
        let console = ConsoleWriter(descriptor: toStandardError ? .standardError : .standardOutput, stop: stop)
        Array(line.utf8).withUnsafeBytes { console.write($0) }
    }
}
