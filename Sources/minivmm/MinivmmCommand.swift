import ArgumentParser
import Logging
import MiniVMM

import Glibc

/// The `minivmm` command line. Parsing and exit statuses only; the machine lives in MiniVMM.
@main
struct MinivmmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "minivmm",
        abstract: "Boot a flat 64-bit guest image on KVM.",
        discussion: """
            The guest's console output (COM1 and DMA consoles) is minivmm's stdout, byte for \
            byte; minivmm's own messages go to stderr. stdin feeds COM1.

            Exit status: 0-63 the guest's status from exit port 0xF4; 64 bad command line; \
            65 invalid image; 66 image not found or unreadable; 69 KVM unusable; 70 internal \
            error; 71 host OS failure; 76 guest crashed or broke the ABI; 124 timeout.
            """)

    @Argument(help: "The flat guest image, loaded at guest-physical 0x100000.")
    var image: String

    @Option(help: "Guest RAM: bytes with an optional K, M or G suffix (multiple of 4K, 2M to 64G).")
    var memory: String = "128M"

    @Option(help: "Stop the guest after this many seconds (exit status 124).")
    var timeout: Double?

    @Option(help: "Number of timer devices.")
    var timers: Int = 1

    @Option(help: "Number of DMA console devices.")
    var consoles: Int = 1

    @Flag(help: "Print the machine's resource map to stdout before the guest runs.")
    var describe = false

    @Option(name: .customLong("kvm-device"), help: "The KVM device.")
    var kvmDevice: String = MachineConfiguration.defaultKVMDevicePath

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "warning"

    /// The validated machine configuration.
    func machineConfiguration() throws(MinivmmError) -> MachineConfiguration {
        try MachineConfiguration(
            imagePath: image, memorySize: MemorySize.parse(memory), timeoutSeconds: timeout,
            timers: timers, consoles: consoles, describe: describe, kvmDevicePath: kvmDevice)
    }

    /// The validated log level.
    func level() throws(MinivmmError) -> Logger.Level {
        guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
            throw MinivmmError(.usage, "invalid --log-level '\(logLevel)': use trace, debug, info, notice, warning, error or critical")
        }
        return level
    }

    /// Parses `arguments` into a configuration and a log level, or the status to exit
    /// with and the text to show (help goes to stdout with status 0; errors to stderr with 64).
    static func interpret(_ arguments: [String]) -> Result<(MachineConfiguration, Logger.Level), CommandLineOutcome> {
        let command: MinivmmCommand
        do {
            command = try parse(arguments)
        } catch {
            if exitCode(for: error) == .success {
                return .failure(CommandLineOutcome(status: 0, text: fullMessage(for: error), toStandardError: false))
            }
            return .failure(CommandLineOutcome(
                status: MinivmmExitStatus.usage.code, text: fullMessage(for: error), toStandardError: true))
        }
        do {
            return .success((try command.machineConfiguration(), try command.level()))
        } catch {
            return .failure(CommandLineOutcome(
                status: error.status.code, text: "minivmm: \(error.message)", toStandardError: true))
        }
    }

    static func main() {
        switch interpret(Array(CommandLine.arguments.dropFirst())) {
        case .failure(let outcome):
            outcome.print()
            Glibc.exit(outcome.status)
        case .success(let (configuration, level)):
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            let logger = Logger(label: "minivmm")
            Glibc.exit(MachineRunner.run(configuration, logger: logger).code)
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

    func print() {
        guard !text.isEmpty else { return }
        let line = text.hasSuffix("\n") ? text : text + "\n"
        let console = FileDescriptorConsole(fileDescriptor: toStandardError ? STDERR_FILENO : STDOUT_FILENO)
        Array(line.utf8).withUnsafeBytes { console.write($0) }
    }
}
