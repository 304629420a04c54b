import Foundation
import Logging
import SystemPackage
import Testing

@testable import MiniVMM
@testable import minivmm

@Suite("Host: stderr style")
struct HostStandardErrorTests {
    /// Logs through a handler on a pipe and returns what it wrote.
    private func logged(level: Logger.Level, _ body: (Logger) -> Void) throws -> String {
        let latch = try StopLatch()
        let (readEnd, writeEnd) = try HostTestSupport.pipe()
        let handler = StandardErrorLogHandler(writer: ConsoleWriter(descriptor: writeEnd, stop: latch), logLevel: level)
        body(Logger(label: "minivmm", factory: { _ in handler }))
        try writeEnd.close()
        defer { try? readEnd.close() }
        return String(decoding: HostTestSupport.readAll(readEnd), as: UTF8.self)
    }

    @Test func oneLinePerMessageWithoutATimestamp() throws {
        let text = try logged(level: .warning) { logger in
            logger.error("cannot open guest image 'x.bin': no such file")
            logger.warning("unclaimed port read at 0x2f0")
            logger.info("not shown")
        }
        #expect(text == """
            minivmm: error: cannot open guest image 'x.bin': no such file
            minivmm: warning: unclaimed port read at 0x2f0

            """)
    }

    @Test func multiLineMessagesIndentTheirFollowingLines() throws {
        let text = try logged(level: .warning) { logger in
            logger.error("guest shut down (triple fault); vCPU state:\nrip=0x100007\ncr3=0x10000\n")
        }
        #expect(text == "minivmm: error: guest shut down (triple fault); vCPU state:\n  rip=0x100007\n  cr3=0x10000\n")
    }

    @Test func debugLinesCarryTimeLevelSourceAndMetadata() throws {
        let text = try logged(level: .debug) { logger in
            logger.debug("opened /dev/kvm", metadata: ["slots": "32764"])
        }
        #expect(text.hasPrefix("minivmm: 20"))
        #expect(text.contains(" debug ["))
        #expect(text.contains("slots=32764"))
        #expect(text.hasSuffix(": opened /dev/kvm\n"))
        #expect(text.split(separator: "\n").count == 1)
    }

    @Test func commandLineErrorsUseTheSameStyle() throws {
        for arguments in [["--memory", "12X", "g"], ["--log-level", "loud", "g"], [], ["--frobnicate", "g"]] {
            guard case .failure(let outcome) = MinivmmCommand.interpret(arguments) else {
                Issue.record("\(arguments) was accepted")
                continue
            }
            #expect(outcome.text.hasPrefix("minivmm: error: "), "\(arguments): \(outcome.text)")
            #expect(outcome.text.split(separator: "\n").allSatisfy { $0.hasPrefix("minivmm: error: ") || $0.hasPrefix("  ") })
        }
        guard case .failure(let outcome) = MinivmmCommand.interpret(["--memory", "12X", "g"]) else { return }
        #expect(outcome.text.hasPrefix("minivmm: error: invalid --memory"))
    }
}
