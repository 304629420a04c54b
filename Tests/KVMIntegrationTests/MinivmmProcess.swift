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
