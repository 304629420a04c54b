import Testing

@testable import MiniVMM
@testable import minivmm

@Suite("Command line")
struct CLITests {
    private func parsed(_ arguments: [String]) -> MachineConfiguration? {
        if case .success(let (blueprint, _)) = MinivmmCommand.interpret(arguments) { return blueprint.configuration }
        return nil
    }

    private func failure(_ arguments: [String]) -> CommandLineOutcome? {
        if case .failure(let outcome) = MinivmmCommand.interpret(arguments) { return outcome }
        return nil
    }

    @Test func defaults() throws {
        let configuration = try #require(parsed(["guest.bin"]))
        #expect(configuration.imagePath == "guest.bin")
        #expect(configuration.memorySize == 128 << 20)
        #expect(configuration.timeout == nil)
        #expect(configuration.count(of: .timer) == 1 && configuration.count(of: .dmaConsole) == 1)
        #expect(configuration.deviceCounts == [.timer: 1, .dmaConsole: 1])
        #expect(configuration.cpus == 1)
        #expect(!configuration.describe)
        #expect(configuration.kvmDevicePath == "/dev/kvm")
        if case .success(let (_, level)) = MinivmmCommand.interpret(["guest.bin"]) {
            #expect(level == .warning)
        }
    }

    @Test func everyOption() throws {
        let configuration = try #require(parsed([
            "--memory", "5G", "--timeout", "2.5", "--timers", "3", "--consoles", "2", "--describe",
            "--kvm-device", "/dev/null", "--log-level", "DEBUG", "--cpus", "4", "image",
        ]))
        #expect(configuration.imagePath == "image")
        #expect(configuration.memorySize == 5 << 30)
        #expect(configuration.timeout == .milliseconds(2500))
        #expect(configuration.count(of: .timer) == 3 && configuration.count(of: .dmaConsole) == 2)
        #expect(configuration.cpus == 4)
        #expect(configuration.describe)
        #expect(configuration.kvmDevicePath == "/dev/null")
        if case .success(let (_, level)) = MinivmmCommand.interpret(["--log-level", "trace", "x"]) {
            #expect(level == .trace)
        }
    }

    @Test("bad command lines exit 64 with a message on stderr", arguments: [
        [],
        ["a", "b"],
        ["--memory", "12X", "g"],
        ["--memory", "1M", "g"],
        ["--memory", "65G", "g"],
        ["--memory", "4097", "g"],
        ["--memory", "", "g"],
        ["--timeout", "0", "g"],
        ["--timeout", "-1", "g"],
        ["--timeout", "soon", "g"],
        ["--timers", "-1", "g"],
        ["--consoles", "many", "g"],
        ["--log-level", "loud", "g"],
        ["--no-such-option", "g"],
        ["--memory"],
        ["--timers", "20", "g"],
        ["--timers", "10", "--consoles", "10", "g"],
        ["--cpus", "0", "g"],
        ["--cpus", "65", "g"],
    ])
    func usageErrors(arguments: [String]) throws {
        let outcome = try #require(failure(arguments), "\(arguments) was accepted")
        #expect(outcome.status == 64)
        #expect(outcome.toStandardError)
        #expect(!outcome.text.isEmpty)
        // One stderr style: `minivmm: error: ...`, no timestamp.
        #expect(outcome.text.hasPrefix("minivmm: error: "), "\(outcome.text)")
    }

    @Test("usage errors name the problem in one line", arguments: [
        (["--memory", "1M", "g"], "minivmm: error: invalid --memory '1M': at least 2M"),
        (["--timers=-1", "g"], "minivmm: error: --timers must not be negative (got -1)"),
        (["--consoles=-2", "g"], "minivmm: error: --consoles must not be negative (got -2)"),
        (["--log-level", "loud", "g"],
         "minivmm: error: invalid --log-level 'loud': use trace, debug, info, notice, warning, error or critical"),
    ])
    func usageMessages(arguments: [String], line: String) throws {
        let outcome = try #require(failure(arguments))
        #expect(outcome.status == 64)
        #expect(outcome.text.split(separator: "\n").first.map(String.init) == line)
    }

    @Test func tooManyDevicesIsRefusedBeforeKVM() throws {
        let outcome = try #require(failure(["--timers", "12", "--consoles", "8", "g"]))
        #expect(outcome.status == 64)
        #expect(outcome.text.contains("20 devices need 20 interrupt lines (GSIs) but only 18 are available"))
    }

    @Test("--device KIND=N sets any registry kind's count, overriding --timers and --consoles")
    func deviceOption() throws {
        let configuration = try #require(parsed(["--timers", "2", "--device", "timer=3", "--device", "dma-console=0", "g"]))
        #expect(configuration.deviceCounts == [.timer: 3, .dmaConsole: 0])
        for bad in ["foo=1", "timer", "timer=x", "=2", "timer=1=2"] {
            let outcome = try #require(failure(["--device", bad, "g"]), "\(bad)")
            #expect(outcome.status == 64)
            #expect(outcome.text.hasPrefix(
                "minivmm: error: invalid --device '\(bad)': expected KIND=N with KIND one of timer, dma-console"), "\(outcome.text)")
        }
        #expect(try #require(failure(["--device", "timer=-1", "g"])).text.contains("--timers must not be negative"))
    }

    @Test func helpGoesToStdoutWithStatus0() throws {
        let outcome = try #require(failure(["--help"]))
        #expect(outcome.status == 0)
        #expect(!outcome.toStandardError)
        #expect(outcome.text.contains("--memory"))
        #expect(outcome.text.contains("124"))
    }

    static let sizes: [(String, UInt64)] = [
        ("2M", 2 << 20), ("2m", 2 << 20), ("128M", 128 << 20), ("4096K", 4 << 20), ("1G", 1 << 30),
        ("5g", 5 << 30), ("64G", 64 << 30), ("2097152", 2 << 20), ("3145728k", 3 << 30),
    ]

    @Test("memory sizes with suffixes", arguments: sizes)
    func memorySizes(text: String, bytes: UInt64) throws {
        #expect(try MemorySize.parse(text) == bytes)
    }

    @Test("memory sizes that are refused", arguments: [
        "", "M", "-1M", "+2M", "1.5G", "2MB", "2 M", "0", "1M", "2047K", "65G", "4097", "2M1",
        "99999999999999999999G", "18446744073709551615", "0x200000",
    ])
    func badMemorySizes(text: String) {
        do {
            _ = try MemorySize.parse(text)
            Issue.record("'\(text)' was accepted")
        } catch {
            #expect(ExitStatus(.failed(.configuration(error))) == .usage)
            #expect(error.description.contains("--memory"))
            guard case .invalidMemory(let written, _) = error else {
                Issue.record("\(error) is not a memory error")
                return
            }
            #expect(written == text)
        }
    }
}
