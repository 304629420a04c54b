import Foundation
import Testing

/// SMP through the real `minivmm` binary: the demo guest starting its APs with INIT-SIPI-SIPI,
/// and the SMP test guests of guest/tests (expected behaviour in guest/README.md).
@Suite("minivmm SMP", .tags(.kvm), .enabled(if: minivmmKVMUsable, minivmmKVMSkipReason), .serialized)
struct MinivmmSMPTests {
    @Test("the demo guest with N vCPUs: every AP up exactly once, the shared sum right, exit 0",
          arguments: [1, 2, 4, 8])
    func demo(cpus: Int) throws {
        let result = try MinivmmProcess.run(["--timeout", "30", "--cpus", "\(cpus)", MinivmmProcess.guest("guest.bin")])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdoutText.split(separator: "\n").map(String.init)
        #expect(lines.last == "all checks passed")
        if cpus == 1 {
            #expect(!lines.contains { $0.hasPrefix("cpu ") || $0.hasPrefix("ok smp") })
        } else {
            for id in 0..<cpus {
                #expect(lines.filter { $0 == "cpu \(id) up" }.count == 1, "cpu \(id)")
            }
            #expect(lines.filter { $0.hasPrefix("cpu ") }.count == cpus)
            #expect(lines.contains(
                "ok smp: \(cpus) cpus up, sum of 1..64 = 2080, ipi 0x60 acknowledged by \(cpus - 1) aps"))
        }
    }

    @Test("an AP that triple-faults stops the VM with 76 and names that vCPU")
    func apTripleFault() throws {
        let result = try MinivmmProcess.run([
            "--timeout", "20", "--cpus", "2", MinivmmProcess.guest("tests/smp-ap-triplefault.bin"),
        ])
        #expect(result.status == 76)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("vCPU 1: guest shut down (triple fault)"))
        #expect(result.stderr.contains("rip=0x100025"))
        #expect(!result.stderr.contains("vCPU 0:"))
    }

    @Test("the BSP and an AP hit the exit port at once: one status, no hang, 50 times")
    func exitRace() throws {
        var seen: [Int32: Int] = [:]
        for _ in 0..<50 {
            let started = Date()
            let result = try MinivmmProcess.run([
                "--timeout", "20", "--cpus", "2", MinivmmProcess.guest("tests/smp-exit-race.bin"),
            ])
            #expect(result.status == 7 || result.status == 8, "\(result.status): \(result.stderr)")
            #expect(Date().timeIntervalSince(started) < 10)
            seen[result.status, default: 0] += 1
        }
        print("exit race: status counts \(seen)")
    }

    @Test("--timeout stops every spinning vCPU with 124", arguments: [2, 8])
    func timeoutStopsAllVcpus(cpus: Int) throws {
        let started = Date()
        let result = try MinivmmProcess.run([
            "--timeout", "1", "--cpus", "\(cpus)", MinivmmProcess.guest("tests/smp-spin.bin"),
        ])
        #expect(result.status == 124)
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(result.stderr.contains("--timeout"))
    }

    @Test("--cpus outside 1...64 is a usage error before any KVM work", arguments: ["0", "65", "-1", "x"])
    func badCPUCount(value: String) throws {
        let result = try MinivmmProcess.run([
            "--cpus", value, "--kvm-device", "/nonexistent/kvm", MinivmmProcess.guest("guest.bin"),
        ])
        #expect(result.status == 64)
        #expect(result.stderr.hasPrefix("minivmm: error:"))
    }

    @Test("--describe lists each vCPU ID with its owner")
    func describeListsCPUs() throws {
        let result = try MinivmmProcess.run([
            "--describe", "--cpus", "3", "--timeout", "30", MinivmmProcess.guest("tests/exit42.bin"),
        ])
        #expect(result.status == 42)
        let lines = result.stdoutText.split(separator: "\n").map(String.init)
        #expect(lines.contains("vCPUs (vCPU and local APIC IDs 0-63):"))
        #expect(lines.contains("  0     cpu0"))
        #expect(lines.contains("  2     cpu2"))
        #expect(lines.contains("  3-63  (free)"))
    }
}
