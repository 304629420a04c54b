import Foundation
import Testing

/// The hostile host-I/O cases of issue 7 against the real `minivmm` binary: it never hangs
/// past `--timeout`, never spins, and never dies of a signal it did not ask for.
@Suite("minivmm host I/O", .tags(.kvm), .enabled(if: minivmmKVMUsable, minivmmKVMSkipReason), .serialized)
struct HostIOTests {
    private let outsb100k = MinivmmProcess.guest("tests/outsb100k.bin")
    private let echo = MinivmmProcess.guest("tests/echo.bin")
    private let spin = MinivmmProcess.guest("tests/spin.bin")
    private let exit42 = MinivmmProcess.guest("tests/exit42.bin")

    private func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("minivmm-hostio-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    private func makePipe() -> (read: Int32, write: Int32) {
        var descriptors: [Int32] = [0, 0]
        #expect(pipe(&descriptors) == 0)
        for descriptor in descriptors { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        return (descriptors[0], descriptors[1])
    }

    private func setNonBlocking(_ descriptor: Int32) {
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
    }

    private func seconds(since start: Date) -> TimeInterval { Date().timeIntervalSince(start) }

    @Test func timeoutFiresWhileStdoutIsAFIFONobodyReads() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let fifo = directory.appendingPathComponent("out").path
        #expect(mkfifo(fifo, 0o600) == 0)
        // The reader opens the FIFO and never reads.
        let reader = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        let writer = open(fifo, O_WRONLY | O_CLOEXEC)
        defer {
            close(reader)
            close(writer)
        }
        let start = Date()
        let child = try MinivmmChild(["--timeout", "1", outsb100k], stdout: writer)
        #expect(child.wait(limit: 30) == 124, "stderr: \(child.stderr)")
        #expect(seconds(since: start) < 10)
        #expect(child.stderr.contains("minivmm: error: --timeout"))
    }

    @Test func timeoutFiresWhenStdoutAndStderrAreOneFIFONobodyReads() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let fifo = directory.appendingPathComponent("out").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let reader = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        let writer = open(fifo, O_WRONLY | O_CLOEXEC)
        defer {
            close(reader)
            close(writer)
        }
        let start = Date()
        // Guest output fills the FIFO; then the timeout message cannot be written either.
        let child = try MinivmmChild(["--timeout", "1", "--log-level", "trace", outsb100k], stdout: writer, stderr: writer)
        #expect(child.wait(limit: 30) == 124)
        #expect(seconds(since: start) < 10)
    }

    @Test func nonBlockingStdoutOnAFullPipeWaitsWithoutSpinning() throws {
        let (reader, writer) = makePipe()
        defer {
            close(reader)
            close(writer)
        }
        setNonBlocking(writer)
        let block = [UInt8](repeating: 0x2E, count: 4096)
        while block.withUnsafeBytes({ write(writer, $0.baseAddress, $0.count) }) > 0 {}
        let start = Date()
        let child = try MinivmmChild(["--timeout", "3", outsb100k], stdout: writer)
        // Measure between 1 and 2.5 s, when the guest waits for the pipe: a spin would
        // use about 150 ticks of CPU in that time.
        Thread.sleep(forTimeInterval: 1)
        let before = child.cpuTicks
        Thread.sleep(forTimeInterval: 1.5)
        let used = child.cpuTicks - before
        #expect(used < 40, "\(used) ticks of CPU in 1.5 s")
        #expect(child.wait(limit: 30) == 124, "stderr: \(child.stderr)")
        #expect(seconds(since: start) < 15)
    }

    @Test func nonBlockingStdinFedHalfASecondLateIsEchoed() throws {
        let (reader, writer) = makePipe()
        defer { close(writer) }
        setNonBlocking(reader)
        let child = try MinivmmChild(["--timeout", "20", echo], stdin: reader)
        close(reader)
        Thread.sleep(forTimeInterval: 0.5)
        let line = Array("late line\n".utf8)
        #expect(line.withUnsafeBytes { write(writer, $0.baseAddress, $0.count) } == line.count)
        #expect(child.wait(limit: 30) == 0, "stderr: \(child.stderr)")
        #expect(child.stdout == Data(line))
    }

    @Test func inputBeforeTheGuestRunsIsNotLost() throws {
        // The bytes are all there before the guest's first UART access, ten times over.
        for _ in 0..<10 {
            let result = try MinivmmProcess.run(["--timeout", "20", echo], stdin: Data("abc\n".utf8))
            #expect(result.status == 0, "stderr: \(result.stderr)")
            #expect(result.stdoutText == "abc\n")
        }
    }

    @Test func helpAndUsageErrorsIntoAClosedPipeExitNormally() throws {
        let (reader, writer) = makePipe()
        close(reader)
        defer { close(writer) }
        let help = try MinivmmChild(["--help"], stdout: writer)
        #expect(help.wait(limit: 30) == 0)
        let usage = try MinivmmChild(["--frobnicate"], stdout: writer, stderr: writer)
        #expect(usage.wait(limit: 30) == 64)
        let badMemory = try MinivmmChild(["--memory", "12X", exit42], stdout: writer, stderr: writer)
        #expect(badMemory.wait(limit: 30) == 64)
    }

    @Test func fileSizeLimitOnStdoutKeepsTheGuestStatus() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("stdout").path
        let command = "ulimit -f 8; exec '\(MinivmmProcess.executable.path)' --timeout 20 '\(outsb100k)' > '\(output)'"
        let child = try MinivmmChild(["-c", command], executable: "/bin/sh")
        #expect(child.wait(limit: 30) == 0, "stderr: \(child.stderr)")
        let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? nil
        #expect((size ?? 0) > 0 && (size ?? 0) < 100_000, "stdout size \(String(describing: size))")
    }

    @Test func anEndlessImageFailsFast() throws {
        let start = Date()
        let child = try MinivmmChild(["--memory", "64G", "/dev/zero"])
        #expect(child.wait(limit: 60) == 65, "stderr: \(child.stderr)")
        #expect(seconds(since: start) < 20)
        #expect(child.stderr.contains("larger than"))
    }

    @Test func aFIFOImageWithALateWriterBoots() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let fifo = directory.appendingPathComponent("image").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let child = try MinivmmChild(["--timeout", "20", fifo])
        Thread.sleep(forTimeInterval: 0.3)
        let image = try Data(contentsOf: URL(fileURLWithPath: exit42))
        let writer = open(fifo, O_WRONLY | O_CLOEXEC)
        #expect(writer >= 0)
        _ = image.withUnsafeBytes { write(writer, $0.baseAddress, $0.count) }
        close(writer)
        #expect(child.wait(limit: 30) == 42, "stderr: \(child.stderr)")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/bin/bash"), "needs bash for <(...)"))
    func aProcessSubstitutionImageBoots() throws {
        let command = "exec '\(MinivmmProcess.executable.path)' --timeout 20 <(cat '\(exit42)')"
        let child = try MinivmmChild(["-c", command], executable: "/bin/bash")
        #expect(child.wait(limit: 30) == 42, "stderr: \(child.stderr)")
    }

    @Test func aFIFOImageWithoutAWriterTimesOut() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let fifo = directory.appendingPathComponent("image").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let start = Date()
        let child = try MinivmmChild(["--timeout", "1", fifo])
        #expect(child.wait(limit: 30) == 124, "stderr: \(child.stderr)")
        #expect(seconds(since: start) < 10)
    }

    @Test("SIGINT, SIGTERM and SIGHUP stop the guest with 128 + n and one stderr line", arguments: [
        (SIGINT, "SIGINT"), (SIGTERM, "SIGTERM"), (SIGHUP, "SIGHUP"),
    ])
    func stoppingSignals(signal: Int32, name: String) throws {
        let child = try MinivmmChild(["--timeout", "30", spin])
        Thread.sleep(forTimeInterval: 0.5)
        child.send(signal)
        #expect(child.wait(limit: 20) == 128 + signal)
        #expect(child.stderr == "minivmm: error: stopped by \(name)\n")
        #expect(child.stdout.isEmpty)
    }

    @Test func aSignalWhileWaitingForAFIFOImageStopsPromptly() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let fifo = directory.appendingPathComponent("image").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let child = try MinivmmChild([fifo])
        Thread.sleep(forTimeInterval: 0.5)
        let start = Date()
        child.send(SIGINT)
        #expect(child.wait(limit: 20) == 130)
        #expect(seconds(since: start) < 5)
        #expect(child.stderr == "minivmm: error: stopped by SIGINT\n")
    }

    @Test func aSignalRightAtStartIsNotLost() throws {
        // Sent before minivmm can have started its watcher: blocked and pending, then taken.
        for _ in 0..<3 {
            let child = try MinivmmChild(["--timeout", "30", spin])
            child.send(SIGTERM)
            let status = child.wait(limit: 20)
            // 143 either way: minivmm's own status, or (very early) death by the default action.
            #expect(status == 143)
        }
    }
}
