import Foundation
import KVM
import Testing

/// Whether `/dev/kvm` can be opened here; the KVM tests skip with a visible reason otherwise.
let minivmmKVMUsable: Bool = (try? Kvm()) != nil
/// Why the KVM tests were skipped.
let minivmmKVMSkipReason: Comment = "/dev/kvm is missing or not usable by this user"

/// The result of one `minivmm` run.
struct MinivmmRun {
    /// The exit status.
    var status: Int32
    /// Everything written to stdout.
    var stdout: Data
    /// Everything written to stderr.
    var stderr: String

    /// stdout as UTF-8 text.
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
}

/// Runs the built `minivmm` binary as a subprocess.
enum MinivmmProcess {
    /// The repository root, found from this source file's path.
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A path under `guest/`.
    static func guest(_ relativePath: String) -> String {
        repositoryRoot.appendingPathComponent("guest").appendingPathComponent(relativePath).path
    }

    /// The `minivmm` executable next to the test bundle in the build directory.
    static let executable: URL = {
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var directory = testBinary.deletingLastPathComponent()
        // On some layouts the tests run from inside a bundle directory.
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("minivmm")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return testBinary.deletingLastPathComponent().appendingPathComponent("minivmm")
    }()

    /// Runs `minivmm` with `arguments`, feeding `stdin` (empty when nil), and waits for it.
    /// A run longer than `limit` seconds is killed and recorded as an issue.
    static func run(_ arguments: [String], stdin: Data? = nil, limit: TimeInterval = 60) throws -> MinivmmRun {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("minivmm-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let stdoutURL = directory.appendingPathComponent("stdout")
        let stderrURL = directory.appendingPathComponent("stderr")
        let stdinURL = directory.appendingPathComponent("stdin")
        try Data().write(to: stdoutURL)
        try Data().write(to: stderrURL)
        try (stdin ?? Data()).write(to: stdinURL)

        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let output = try FileHandle(forWritingTo: stdoutURL)
        let errors = try FileHandle(forWritingTo: stderrURL)
        let input = try FileHandle(forReadingFrom: stdinURL)
        defer {
            try? output.close()
            try? errors.close()
            try? input.close()
        }
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = input
        try process.run()
        let deadline = Date().addingTimeInterval(limit)
        while process.isRunning && Date() < deadline {
            usleep(5000)
        }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            Issue.record("minivmm \(arguments) ran longer than \(limit) s and was killed")
        }
        process.waitUntilExit()
        return MinivmmRun(
            status: process.terminationStatus,
            stdout: try Data(contentsOf: stdoutURL),
            stderr: String(decoding: try Data(contentsOf: stderrURL), as: UTF8.self))
    }
}

/// A `minivmm` (or `/bin/sh -c`) child started with posix_spawn, for the host-I/O tests that
/// need exact control: any descriptors as stdin, stdout and stderr (FIFOs, pipes with
/// `O_NONBLOCK`), default signal dispositions and an empty signal mask (the test process
/// may ignore SIGPIPE, and Foundation's `Process` would pass that on), and signals sent to
/// it while it runs.
final class MinivmmChild {
    /// The child's process ID.
    let pid: pid_t
    private let directory: URL
    private var exitStatus: Int32?

    /// Where stdout or stderr went when the caller did not give a descriptor for it.
    let stdoutURL: URL
    /// Where stderr went when the caller did not give a descriptor for it.
    let stderrURL: URL

    /// Starts `executable` (minivmm by default) with `arguments`; `nil` descriptors become
    /// an empty stdin and files for stdout and stderr.
    init(
        _ arguments: [String], executable: String = MinivmmProcess.executable.path,
        stdin: Int32? = nil, stdout: Int32? = nil, stderr: Int32? = nil
    ) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("minivmm-child-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        stdoutURL = directory.appendingPathComponent("stdout")
        stderrURL = directory.appendingPathComponent("stderr")
        var opened: [Int32] = []
        defer { for descriptor in opened { close(descriptor) } }
        func openFile(_ path: String, _ flags: Int32) -> Int32 {
            let descriptor = open(path, flags | O_CLOEXEC, 0o600)
            opened.append(descriptor)
            return descriptor
        }
        let input = stdin ?? openFile("/dev/null", O_RDONLY)
        let output = stdout ?? openFile(stdoutURL.path, O_WRONLY | O_CREAT | O_TRUNC)
        let errors = stderr ?? openFile(stderrURL.path, O_WRONLY | O_CREAT | O_TRUNC)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (source, target) in [(input, Int32(0)), (output, 1), (errors, 2)] {
            posix_spawn_file_actions_adddup2(&actions, source, target)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard result == 0 else { throw POSIXError(POSIXErrorCode(rawValue: result) ?? .EIO) }
        self.pid = pid
    }

    deinit {
        if exitStatus == nil {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Sends `signal` to the child.
    func send(_ signal: Int32) {
        kill(pid, signal)
    }

    /// The running child's user + system CPU time so far, in clock ticks (from /proc).
    var cpuTicks: Int {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime 14 and stime 15 (1-based, whole line).
        return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
    }

    /// Waits for the child to end and returns its exit status, or 128 + the signal that
    /// killed it; a child still running after `limit` seconds is killed, and that is
    /// recorded as an issue.
    @discardableResult
    func wait(limit: TimeInterval = 60) -> Int32 {
        if let exitStatus { return exitStatus }
        let deadline = Date().addingTimeInterval(limit)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if Date() > deadline {
                Issue.record("the child ran longer than \(limit) s and was killed")
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                break
            }
            usleep(2000)
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out for Swift.
        let signal = status & 0x7F
        let result = signal == 0 ? (status >> 8) & 0xFF : 128 + signal
        exitStatus = result
        return result
    }

    /// What went to stdout, when no descriptor was given for it.
    var stdout: Data { (try? Data(contentsOf: stdoutURL)) ?? Data() }
    /// What went to stderr, when no descriptor was given for it.
    var stderr: String { String(decoding: (try? Data(contentsOf: stderrURL)) ?? Data(), as: UTF8.self) }
}
