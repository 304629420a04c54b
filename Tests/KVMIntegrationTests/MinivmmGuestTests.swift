import Foundation
import Testing

/// The purpose-built guests of guest/tests, run through the real `minivmm` binary; the
/// expected output and status of each come from guest/README.md.
@Suite("minivmm test guests", .tags(.kvm), .enabled(if: minivmmKVMUsable, minivmmKVMSkipReason), .serialized)
struct MinivmmGuestTests {
    private func run(_ image: String, _ options: [String] = [], stdin: Data? = nil) throws -> MinivmmRun {
        try MinivmmProcess.run(["--timeout", "20"] + options + [MinivmmProcess.guest("tests/\(image).bin")], stdin: stdin)
    }

    @Test func exitStatus42() throws {
        let result = try run("exit42")
        #expect(result.status == 42)
        #expect(result.stdout.isEmpty)
    }

    @Test func exitValueAbove63IsAGuestError() throws {
        let result = try run("exit200")
        #expect(result.status == 76)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("0xF4"))
    }

    @Test func tripleFaultReportsReasonAndRegisters() throws {
        let result = try run("triplefault")
        #expect(result.status == 76)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("triple fault"))
        #expect(result.stderr.contains("rip=0x100007"))
        #expect(result.stderr.contains("cr3=0x10000"))
    }

    @Test func spinningGuestTimesOut() throws {
        let started = Date()
        let result = try MinivmmProcess.run(["--timeout", "1", MinivmmProcess.guest("tests/spin.bin")])
        #expect(result.status == 124)
        #expect(result.stdout.isEmpty)
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(result.stderr.contains("timeout"))
    }

    @Test func timeoutAlsoStopsAGuestBusyWithPortIO() throws {
        // echo polls LSR forever when stdin ends before a newline: thousands of exits a
        // second, and the watchdog must still get through.
        let result = try MinivmmProcess.run(
            ["--timeout", "1", MinivmmProcess.guest("tests/echo.bin")], stdin: Data("no newline".utf8))
        #expect(result.status == 124)
        #expect(result.stdout.isEmpty)
    }

    @Test func pollingUARTWriter() throws {
        let result = try run("uart-hello")
        #expect(result.status == 0)
        #expect(result.stdoutText == "Hello from uart-hello over COM1!\n")
    }

    @Test func stdoutCarriesOnlyGuestBytesEvenWhenLoggingEverything() throws {
        let result = try run("uart-hello", ["--log-level", "trace"])
        #expect(result.status == 0)
        #expect(result.stdoutText == "Hello from uart-hello over COM1!\n")
    }

    @Test func echoesALineFromStdin() throws {
        let line = "hello echo line, with punctuation: \u{00e9}!\n"
        let result = try run("echo", stdin: Data(line.utf8))
        #expect(result.status == 0)
        #expect(result.stdoutText == line)
    }

    @Test func longInputLineCrossesTheFIFO() throws {
        let line = String(repeating: "0123456789abcdef", count: 200) + "\n"
        let result = try run("echo", stdin: Data(line.utf8))
        #expect(result.status == 0)
        #expect(result.stdout == Data(line.utf8))
    }

    @Test func repOutsbOf100000BytesArrivesComplete() throws {
        let result = try run("outsb100k")
        #expect(result.status == 0)
        #expect(result.stdout.count == 100_000)
        #expect(result.stdout == Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0) }))
    }

    @Test func repInsbFromAnUnusedPortReadsAllOnes() throws {
        let result = try run("insb-unused")
        #expect(result.status == 0)
        #expect(result.stdout.isEmpty)
        #expect(warnings(in: result.stderr) == ["port read at 0x2f0"])
    }

    @Test func unusedPortsAndUnmappedMMIOReadAllOnes() throws {
        let result = try run("unused-reads")
        #expect(result.status == 0)
        #expect(result.stdout.isEmpty)
        #expect(warnings(in: result.stderr) == [
            "port read at 0x2f0", "port read at 0x2f2", "port read at 0x2f4",
            "MMIO read at 0xd0000000", "MMIO read at 0xd0000010", "MMIO read at 0xd0000020", "MMIO read at 0xd0000040",
        ])
    }

    @Test("RAM's last bytes for the chosen --memory", arguments: [[], ["--memory", "2M"], ["--memory", "3G"], ["--memory", "5G"]])
    func ramEdges(options: [String]) throws {
        let result = try run("ram-edges", options)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test func writesAbove4GiBWithMemory5G() throws {
        let result = try run("high-ram", ["--memory", "5G"])
        #expect(result.status == 0)
        let without = try run("high-ram")
        #expect(without.status == 2)
    }

    @Test func portWriteBenchmarkGuestRunsAndWarnsOnce() throws {
        let result = try run("portwrites")
        #expect(result.status == 0)
        #expect(warnings(in: result.stderr) == ["port write at 0x80"])
    }

    /// The unclaimed-access warnings, as "SPACE KIND at ADDRESS", in order.
    private func warnings(in stderr: String) -> [String] {
        stderr.split(separator: "\n").compactMap { line -> String? in
            guard line.contains("warning"), let range = line.range(of: "unclaimed ") else { return nil }
            let rest = line[range.upperBound...]
            return rest.components(separatedBy: " (").first
        }
    }
}
