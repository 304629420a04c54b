import VMAllocator

@testable import MiniVMM

/// minivmm's exit status (Testing has a type of the same name, for exit tests).
typealias ExitStatus = MiniVMM.ExitStatus

/// Values shared by the plan and resource-manager tests.
enum PlanFixtures {
    static let mib: UInt64 = 1 << 20
    static let gib: UInt64 = 1 << 30
    /// The memory-slot count a typical host offers (`KVM_CAP_NR_MEMSLOTS`).
    static let defaultSlots: UInt32 = 32764

    /// `start...end`; test literals are valid ranges.
    static func range(_ start: UInt64, _ end: UInt64) -> RangeInclusive {
        try! RangeInclusive(start: start, end: end)
    }

    /// A configuration for `image.bin` with `memory` bytes, `timers` timers and `consoles`
    /// DMA consoles.
    static func configuration(
        memory: UInt64 = 128 << 20, timers: Int = 1, consoles: Int = 1, cpus: Int = 1
    ) throws(ConfigurationError) -> MachineConfiguration {
        try MachineConfiguration(
            imagePath: "image.bin", memorySize: memory, deviceCounts: [.timer: timers, .dmaConsole: consoles], cpus: cpus)
    }

    /// The finished plan for `configuration` on a host with `slots` memory slots.
    static func plan(
        memory: UInt64 = 128 << 20, timers: Int = 1, consoles: Int = 1, slots: UInt32 = defaultSlots,
        mmioSpace: AddressAllocator? = nil
    ) throws -> MachinePlan {
        let blueprint = try MachinePlan.Blueprint(configuration(memory: memory, timers: timers, consoles: consoles))
        return try MachinePlan(blueprint, host: .init(memorySlots: slots), mmioSpace: mmioSpace)
    }

    /// The 32-bit MMIO gap, already full except for the reserved pages and one free page
    /// next to each: 0xFEBF_F000, 0xFEDF_F000, 0xFEFF_B000 and 0xFFFF_F000.
    static func crowdedGap() throws -> AddressAllocator {
        var gap = try AddressAllocator(base: 0xC000_0000, size: 0x4000_0000)
        for (start, end) in [
            (0xC000_0000, 0xFEBF_EFFF), (0xFEC0_1000, 0xFEDF_EFFF), (0xFEE0_1000, 0xFEFF_AFFF),
            (0xFF00_0000, 0xFFFF_EFFF),
        ] as [(UInt64, UInt64)] {
            _ = try gap.allocate(size: end - start + 1, alignment: 0x1000, policy: .exactMatch(start))
        }
        return gap
    }

    /// The pages `crowdedGap()` leaves free, ascending.
    static let crowdedGapFreePages: [UInt64] = [0xFEBF_F000, 0xFEDF_F000, 0xFEFF_B000, 0xFFFF_F000]
}
