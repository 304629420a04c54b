import Foundation
import KVM
import MiniVMM
import Testing

/// The demo guest (guest/guest.bin) on the machines guest/README.md documents.
@Suite("minivmm demo guest", .tags(.kvm), .enabled(if: minivmmKVMUsable, minivmmKVMSkipReason), .serialized)
struct MinivmmDemoTests {
    private static let header = "minivmm demo guest\n"

    private static func dmaLines(_ instance: Int, pastEnd: String, acrossEnd: String) -> String {
        """
        hello from the demo guest through dma-console #\(instance)
        ok dma-console #\(instance): wrote 49 bytes
        ok dma-console #\(instance): 16 bytes at \(pastEnd) (past the end of RAM) reported status 1
        ok dma-console #\(instance): 16 bytes at \(acrossEnd) (across the end of ram #0) reported status 1

        """
    }

    private static let fixedEntries = """
        exit-port #0: base 0xf4 size 0x4 gsi none slot none
        uart #0: base 0x3f8 size 0x8 gsi 4 slot none
        ioapic #0: base 0xfec00000 size 0x1000 gsi none slot none
        local-apic #0: base 0xfee00000 size 0x1000 gsi none slot none

        """

    private func run(_ options: [String]) throws -> MinivmmRun {
        try MinivmmProcess.run(["--timeout", "30"] + options + [MinivmmProcess.guest("guest.bin")])
    }

    @Test func defaultMachine() throws {
        let expected = Self.header + "bootinfo: version 1, 7 entries\n"
            + "ram #0: base 0x0 size 0x8000000 gsi none slot 0\n"
            + Self.fixedEntries
            + "timer #0: base 0xc0000000 size 0x1000 gsi 5 slot none\n"
            + "dma-console #0: base 0xc0001000 size 0x1000 gsi 6 slot none\n"
            + Self.dmaLines(0, pastEnd: "0x8000000", acrossEnd: "0x7fffff8")
            + "ok timer #0: interrupt from gsi 5 on vector 0x40, status acknowledged\n"
            + "ok ram #0: pattern written and read back at 0x200000 and 0x7fffff8\n"
            + "all checks passed\n"
        let result = try run([])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdoutText == expected)
        #expect(!result.stderr.contains("unclaimed"))
    }

    @Test func memory5G() throws {
        let expected = Self.header + "bootinfo: version 1, 8 entries\n"
            + "ram #0: base 0x0 size 0xc0000000 gsi none slot 0\n"
            + "ram #1: base 0x100000000 size 0x80000000 gsi none slot 1\n"
            + Self.fixedEntries
            + "timer #0: base 0xc0000000 size 0x1000 gsi 5 slot none\n"
            + "dma-console #0: base 0xc0001000 size 0x1000 gsi 6 slot none\n"
            + Self.dmaLines(0, pastEnd: "0x180000000", acrossEnd: "0xbffffff8")
            + "ok timer #0: interrupt from gsi 5 on vector 0x40, status acknowledged\n"
            + "ok ram #0: pattern written and read back at 0x200000 and 0xbffffff8\n"
            + "ok ram #1: pattern written and read back at 0x100000000 and 0x17ffffff8\n"
            + "all checks passed\n"
        let result = try run(["--memory", "5G"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdoutText == expected)
    }

    @Test func threeTimersAndTwoConsoles() throws {
        let expected = Self.header + "bootinfo: version 1, 10 entries\n"
            + "ram #0: base 0x0 size 0x8000000 gsi none slot 0\n"
            + Self.fixedEntries
            + "timer #0: base 0xc0000000 size 0x1000 gsi 5 slot none\n"
            + "timer #1: base 0xc0001000 size 0x1000 gsi 6 slot none\n"
            + "timer #2: base 0xc0002000 size 0x1000 gsi 7 slot none\n"
            + "dma-console #0: base 0xc0003000 size 0x1000 gsi 8 slot none\n"
            + "dma-console #1: base 0xc0004000 size 0x1000 gsi 9 slot none\n"
            + Self.dmaLines(0, pastEnd: "0x8000000", acrossEnd: "0x7fffff8")
            + Self.dmaLines(1, pastEnd: "0x8000000", acrossEnd: "0x7fffff8")
            + "ok timer #0: interrupt from gsi 5 on vector 0x40, status acknowledged\n"
            + "ok timer #1: interrupt from gsi 6 on vector 0x41, status acknowledged\n"
            + "ok timer #2: interrupt from gsi 7 on vector 0x42, status acknowledged\n"
            + "ok ram #0: pattern written and read back at 0x200000 and 0x7fffff8\n"
            + "all checks passed\n"
        let result = try run(["--timers", "3", "--consoles", "2"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdoutText == expected)
    }

    @Test func thirtyTimersFailBeforeBoot() throws {
        let result = try run(["--timers", "30"])
        #expect(result.status == 64)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("GSI"))
    }

    @Test func describePrintsTheResourceMapBeforeTheGuestRuns() throws {
        let kvm = try Kvm()
        let configuration = try MachineConfiguration(
            imagePath: "uart-hello.bin", memorySize: 128 << 20, deviceCounts: [.timer: 2, .dmaConsole: 1])
        let plan = try MachinePlan(
            MachinePlan.Blueprint(configuration),
            host: .init(memorySlots: UInt32(try kvm.maxMemorySlots()), maxVcpus: kvm.maxVcpus()))
        var map = plan.resources.describe()
        if !map.hasSuffix("\n") { map += "\n" }
        let result = try MinivmmProcess.run([
            "--describe", "--timers", "2", "--timeout", "20", MinivmmProcess.guest("tests/uart-hello.bin"),
        ])
        #expect(result.status == 0)
        #expect(result.stdoutText == map + "Hello from uart-hello over COM1!\n")
        #expect(map.contains("timer1") && map.contains("dma-console0") && map.contains("com1"))
    }
}
