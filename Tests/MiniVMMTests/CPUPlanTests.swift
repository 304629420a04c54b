@testable import MiniVMM
import Testing
import VMAllocator

/// The CPU resources of a plan (issue 8): vCPU IDs from an allocator, with owners, and one
/// boot-information entry per CPU.
@Suite("CPU resources and table entries")
struct CPUPlanTests {
    private func plan(cpus: Int, maxVcpus: Int = 64) throws -> MachinePlan {
        let configuration = try MachineConfiguration(imagePath: "g.bin", cpus: cpus)
        return try MachinePlan(MachinePlan.Blueprint(configuration), host: .init(memorySlots: 32764, maxVcpus: maxVcpus))
    }

    @Test("N vCPUs get IDs 0..<N, owned by cpu0…, the rest of 0-63 free", arguments: [1, 2, 4, 8, 64])
    func vcpuIDs(cpus: Int) throws {
        let plan = try plan(cpus: cpus)
        #expect(plan.vcpus == (0..<UInt32(cpus)).map { $0 })
        #expect(plan.resources.vcpuIDs.rangeBase == 0 && plan.resources.vcpuIDs.rangeEnd == 63)
        #expect(plan.resources.vcpuIDs.allocatedCount == UInt64(cpus))
        #expect(plan.resources.vcpuOwners == Dictionary(uniqueKeysWithValues: plan.vcpus.map { ($0, Owner.cpu($0)) }))
        #expect(plan.resources.vcpuOwners[0]?.description == "cpu0")
    }

    @Test("one CPU entry per vCPU, after every other entry, instance = APIC ID, no GSI, slot or range")
    func tableEntries() throws {
        let plan = try plan(cpus: 4)
        let entries = plan.bootInformationEntries
        let cpuEntries = entries.filter { $0.kind == .cpu }
        #expect(cpuEntries.map(\.instance) == [0, 1, 2, 3])
        #expect(Array(entries.suffix(4)) == cpuEntries, "CPU entries come last")
        for entry in cpuEntries {
            #expect(entry.gsi == nil && entry.memorySlot == nil && entry.base == 0 && entry.size == 0)
        }
        // The encoding: kind 8, the APIC ID, then "none" words.
        let bytes = plan.bootInformation()
        let last = Array(bytes.suffix(BootInformation.entrySize))
        #expect(last[0] == 8 && last[1] == 0 && last[2] == 3 && last[3] == 0)
        #expect(Array(last[4..<8]) == [0xFF, 0xFF, 0xFF, 0xFF])
        #expect(Array(last[24..<28]) == [0xFF, 0xFF, 0xFF, 0xFF])
        // The version-1 entries before them keep their bytes.
        let one = try self.plan(cpus: 1).bootInformation()
        let header = BootInformation.headerSize
        #expect(Array(bytes[header..<(one.count - BootInformation.entrySize)])
            == Array(one[header..<(one.count - BootInformation.entrySize)]))
    }

    @Test("--cpus outside 1...64 is a configuration error", arguments: [0, -1, 65, 1000])
    func badCount(cpus: Int) {
        #expect(throws: ConfigurationError.invalidCPUCount(cpus)) {
            try MachineConfiguration(imagePath: "g.bin", cpus: cpus)
        }
        #expect(ExitStatus(.failed(.configuration(.invalidCPUCount(cpus)))).code == 64)
    }

    @Test("more vCPUs than the host allows is a usage error naming both numbers")
    func hostMaximum() throws {
        #expect(throws: PlanError.tooManyCPUs(requested: 8, available: 4)) { try plan(cpus: 8, maxVcpus: 4) }
        #expect(PlanError.tooManyCPUs(requested: 8, available: 4).description.contains("8"))
        #expect(ExitStatus(.failed(.plan(.tooManyCPUs(requested: 8, available: 4)))).code == 64)
        _ = try plan(cpus: 4, maxVcpus: 4)
    }

    @Test("each vCPU's CPUID reports its own APIC ID in leaves 1, 0xB and 0x1F")
    func cpuidAPICIDs() {
        var leaf1 = CPUIDLeaf()
        leaf1.function = 1
        leaf1.ebx = 0xAA00_1234
        var leafB = CPUIDLeaf()
        leafB.function = 0xB
        var other = CPUIDLeaf()
        other.function = 7
        other.edx = 0x55
        let patched = BootState.cpuid([leaf1, leafB, other], apicID: 5)
        #expect(patched[0].ebx == 0x0500_1234)
        #expect(patched[1].edx == 5)
        #expect(patched[2].edx == 0x55)
    }
}

import KVM
private typealias CPUIDLeaf = CPUIDEntry
