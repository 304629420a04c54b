import KVM
import Testing
import VMAllocator

@testable import MiniVMM

/// GuestMemory on a real VM: slots registered, bounds-checked access.
@Suite("GuestMemory", .tags(.kvm), .enabled(if: minivmmKVMUsable, minivmmKVMSkipReason))
struct GuestMemoryTests {
    private let low: UInt64 = 0
    private let high: UInt64 = 1 << 32
    private let size: UInt64 = 2 << 20

    /// RAM of `size` bytes at `base` in memory slot `slot`.
    private func region(_ base: UInt64, _ size: UInt64, slot: UInt32) throws -> RAMRegion {
        RAMRegion(range: try RangeInclusive(start: base, end: base + size - 1), slot: slot, owner: .ram(Int(slot)))
    }

    private func makeMemory() throws -> (VirtualMachine, GuestMemory) {
        let vm = try Kvm().createVM()
        let memory = try GuestMemory(regions: [region(high, size, slot: 1), region(low, size, slot: 0)], vm: vm)
        return (vm, memory)
    }

    @Test func regionsAreSortedAndSized() throws {
        let (_, memory) = try makeMemory()
        #expect(memory.regions.map(\.region.base) == [low, high])
        #expect(memory.regions.map(\.region.slot) == [0, 1])
        #expect(memory.regions.map(\.mapping.size) == [Int(size), Int(size)])
        #expect(memory.totalSize == 2 * size)
        #expect(memory.read(at: 0, count: 16) == [UInt8](repeating: 0, count: 16))
    }

    @Test func writesAndReadsInsideOneRegion() throws {
        let (_, memory) = try makeMemory()
        #expect(memory.write([1, 2, 3, 4], at: size - 4))
        #expect(memory.read(at: size - 4, count: 4) == [1, 2, 3, 4])
        #expect(memory.write([9], at: high + size - 1))
        var seen: [UInt8] = []
        #expect(memory.withBytes(at: high + size - 1, count: 1) { seen = Array($0) })
        #expect(seen == [9])
    }

    @Test func everyAccessOutsideOneRegionIsRefused() throws {
        let (_, memory) = try makeMemory()
        let refused: [(UInt64, Int)] = [
            (size - 2, 4),  // crosses the end of low RAM
            (size, 1),  // just past low RAM
            (high - 1, 2),  // crosses into high RAM from the gap
            (high + size, 1),  // past all RAM
            (0xFEC0_0000, 4),  // the IOAPIC page
            (UInt64.max, 1),  // the top of the address space
            (0, Int(size) + 1),  // longer than the region
            (0, -1),  // negative length
        ]
        for (address, count) in refused {
            var called = false
            #expect(!memory.withBytes(at: address, count: count) { _ in called = true }, "\(address) \(count)")
            #expect(!called)
            if count > 0 {
                #expect(!memory.write([UInt8](repeating: 7, count: count), at: address), "\(address) \(count)")
            }
        }
        #expect(memory.read(at: size - 2, count: 2) == [0, 0])
        #expect(memory.withBytes(at: size, count: 0) { _ in } == false)
    }

    @Test func slotIDsInUseAreRejectedByKVM() throws {
        let vm = try Kvm().createVM()
        _ = try GuestMemory(regions: [region(0, size, slot: 0)], vm: vm)
        // A second region overlapping the first in guest-physical space must fail, not crash.
        #expect(throws: KVMError.self) { try GuestMemory(regions: [region(0, size, slot: 1)], vm: vm) }
    }
}
