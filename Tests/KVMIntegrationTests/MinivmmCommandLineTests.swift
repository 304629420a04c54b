import Foundation
import Testing

/// Command-line and environment errors of the real `minivmm` binary: each exits with its
/// documented status before any guest runs, prints nothing on stdout and says why on stderr.
@Suite("minivmm errors", .tags(.kvm), .enabled(if: minivmmKVMUsable, minivmmKVMSkipReason), .serialized)
struct MinivmmCommandLineTests {
    private let exit42 = MinivmmProcess.guest("tests/exit42.bin")

    private func expectFailure(_ arguments: [String], status: Int32, mentioning text: String) throws {
        let result = try MinivmmProcess.run(arguments)
        #expect(result.status == status, "\(arguments): \(result.stderr)")
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.localizedCaseInsensitiveContains(text), "\(arguments): \(result.stderr)")
    }

    @Test func noImageIsABadCommandLine() throws {
        try expectFailure([], status: 64, mentioning: "image")
    }

    @Test func badMemoryIsABadCommandLine() throws {
        try expectFailure(["--memory", "12X", exit42], status: 64, mentioning: "--memory")
        try expectFailure(["--memory", "1M", exit42], status: 64, mentioning: "--memory")
        try expectFailure(["--memory", "128G", exit42], status: 64, mentioning: "--memory")
    }

    @Test func tooManyDevicesIsABadCommandLineEvenBeforeKVMIsOpened() throws {
        try expectFailure(["--timers", "10", "--consoles", "10", "--kvm-device", "/dev/null", exit42], status: 64, mentioning: "GSI")
        try expectFailure(["--timers", "-1", exit42], status: 64, mentioning: "--timers")
    }

    @Test func unknownOptionIsABadCommandLine() throws {
        try expectFailure(["--frobnicate", exit42], status: 64, mentioning: "frobnicate")
    }

    @Test func emptyImageIsInvalid() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("minivmm-empty-\(UUID().uuidString).bin").path
        try Data().write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        try expectFailure([path], status: 65, mentioning: "empty")
    }

    @Test func imageLargerThanRAMIsInvalid() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("minivmm-big-\(UUID().uuidString).bin").path
        try Data(count: (1 << 20) + 1).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        try expectFailure(["--memory", "2M", path], status: 65, mentioning: "larger")
    }

    @Test func missingImageIsNotFound() throws {
        try expectFailure(["/nonexistent/minivmm/guest.bin"], status: 66, mentioning: "no such file")
    }

    @Test func directoryImageIsNotFound() throws {
        try expectFailure([NSTemporaryDirectory()], status: 66, mentioning: "directory")
    }

    @Test func nonKVMDeviceIsUnusable() throws {
        try expectFailure(["--kvm-device", "/dev/null", exit42], status: 69, mentioning: "not a KVM device")
    }

    @Test func missingKVMDeviceIsUnusable() throws {
        try expectFailure(["--kvm-device", "/nonexistent/kvm", exit42], status: 69, mentioning: "does not exist")
    }

    @Test func helpExitsZeroOnStdout() throws {
        let result = try MinivmmProcess.run(["--help"])
        #expect(result.status == 0)
        #expect(result.stdoutText.contains("--memory"))
    }
}
