import VMAllocator

// The control API's model: what `GET /vm`, `GET /devices` and `GET /resources` return
// (docs/api.yaml), as Codable values with snake_case keys. `--describe` renders the same
// resources model as text, so the two can never disagree.

/// Whether the vCPUs run.
package enum VMRunState: String, Codable, Hashable, Sendable, CaseIterable {
    /// The vCPUs run guest code.
    case running
    /// Every vCPU is out of `KVM_RUN` and held; device timers are frozen.
    case paused
}

/// `GET /vm`.
package struct VMInfo: Codable, Hashable, Sendable {
    /// Running or paused.
    package var state: VMRunState
    /// Guest RAM in bytes.
    package var memoryBytes: UInt64
    /// Every device.
    package var devices: [DeviceInfo]
    /// Every RAM region.
    package var memoryRegions: [MemoryRegionInfo]

    enum CodingKeys: String, CodingKey {
        case state, devices
        case memoryBytes = "memory_bytes"
        case memoryRegions = "memory_regions"
    }
}

/// A range of addresses or ports, both ends included.
package struct WindowInfo: Codable, Hashable, Sendable {
    /// First address or port.
    package var start: UInt64
    /// Last address or port.
    package var end: UInt64
}

/// One device, as `GET /devices` lists it.
package struct DeviceInfo: Codable, Hashable, Sendable {
    /// The device's id: `timer0`, `dma-console1`, `com1`, `exit-port`.
    package var id: String
    /// Its kind: a registry kind (`timer`, `dma-console`) or `uart`, `exit-port`.
    package var kind: String
    /// The instance number among devices of the kind.
    package var instance: UInt32
    /// `mmio` or `port`: the space its window is in.
    package var space: String
    /// Its register window.
    package var window: WindowInfo
    /// Its GSI, if it has one.
    package var gsi: UInt32?
    /// `attached`, or `removing` while the guest has not ejected it.
    package var state: String
}

/// One RAM region, as `GET /vm` and `GET /memory` list it.
package struct MemoryRegionInfo: Codable, Hashable, Sendable {
    /// The region's id: `ram0`, ….
    package var id: String
    /// Its KVM memory slot.
    package var slot: UInt32
    /// First guest-physical address.
    package var base: UInt64
    /// Size in bytes.
    package var size: UInt64
    /// `attached`, or `removing` while the guest has not ejected it.
    package var state: String
}

/// `GET /resources`: every allocator with its managed range, allocations with owners, and
/// free ranges.
package struct ResourcesInfo: Codable, Hashable, Sendable {
    /// KVM memory slots.
    package var memorySlots: NumberPoolInfo
    /// The hot-plug window RAM plugged in later comes from.
    package var hotplugRAM: AddressPoolInfo
    /// Port I/O.
    package var ports: AddressPoolInfo
    /// The 32-bit MMIO gap.
    package var mmio: AddressPoolInfo
    /// IOAPIC GSIs.
    package var gsis: NumberPoolInfo
    /// vCPU (and local APIC) IDs.
    package var vcpus: NumberPoolInfo

    enum CodingKeys: String, CodingKey {
        case ports, mmio, gsis, vcpus
        case memorySlots = "memory_slots"
        case hotplugRAM = "hotplug_ram"
    }
}

/// An allocator of numbers (slots, GSIs, vCPU IDs).
package struct NumberPoolInfo: Codable, Hashable, Sendable {
    /// A run of numbers, both ends included.
    package struct Run: Codable, Hashable, Sendable {
        /// First number.
        package var first: UInt32
        /// Last number.
        package var last: UInt32
    }

    /// A taken number and its owner.
    package struct Allocation: Codable, Hashable, Sendable {
        /// The number.
        package var id: UInt32
        /// Who holds it.
        package var owner: String
    }

    /// The managed range.
    package var range: Run
    /// Taken numbers, ascending.
    package var allocations: [Allocation]
    /// Free runs, ascending.
    package var free: [Run]
}

/// An allocator of address ranges (ports, MMIO).
package struct AddressPoolInfo: Codable, Hashable, Sendable {
    /// A taken range and its owner.
    package struct Allocation: Codable, Hashable, Sendable {
        /// First address.
        package var start: UInt64
        /// Last address.
        package var end: UInt64
        /// Who holds it.
        package var owner: String
    }

    /// The managed range.
    package var range: WindowInfo
    /// Taken ranges, ascending.
    package var allocations: [Allocation]
    /// Free ranges, ascending.
    package var free: [WindowInfo]
}

extension ResourceManager {
    /// The resources model of `GET /resources`.
    ///
    /// - Complexity: O(n log n) in the number of allocations.
    package var info: ResourcesInfo {
        ResourcesInfo(
            memorySlots: Self.numberPool(
                memorySlots.rangeBase...memorySlots.rangeEnd, owners: ramRegions.mapValues(\.owner)),
            hotplugRAM: Self.addressPool(
                hotplugRAM, owners: Dictionary(ramRegions.values.filter(isHotplugged).map { ($0.range, $0.owner) },
                                               uniquingKeysWith: { first, _ in first })),
            ports: Self.addressPool(ports, owners: portOwners),
            mmio: Self.addressPool(mmio, owners: mmioOwners),
            gsis: Self.numberPool(gsis.rangeBase...gsis.rangeEnd, owners: gsiOwners),
            vcpus: Self.numberPool(vcpuIDs.rangeBase...vcpuIDs.rangeEnd, owners: vcpuOwners))
    }

    /// The taken numbers are exactly the owned ones (the manager's invariant), so the free
    /// runs are the gaps between them.
    private static func numberPool(_ range: ClosedRange<UInt32>, owners: [UInt32: Owner]) -> NumberPoolInfo {
        let taken = owners.keys.sorted()
        var free: [NumberPoolInfo.Run] = []
        var next = UInt64(range.lowerBound)
        for number in taken {
            if UInt64(number) > next { free.append(.init(first: UInt32(next), last: number - 1)) }
            next = UInt64(number) + 1
        }
        if next <= UInt64(range.upperBound) { free.append(.init(first: UInt32(next), last: range.upperBound)) }
        return NumberPoolInfo(
            range: .init(first: range.lowerBound, last: range.upperBound),
            allocations: taken.map { .init(id: $0, owner: "\(owners[$0]!)") }, free: free)
    }

    private static func addressPool(_ allocator: AddressAllocator, owners: [RangeInclusive: Owner]) -> AddressPoolInfo {
        AddressPoolInfo(
            range: WindowInfo(start: allocator.base, end: allocator.end),
            allocations: allocator.allocations.map { .init(start: $0.start, end: $0.end, owner: owners[$0].map { "\($0)" } ?? "(unknown)") },
            free: allocator.freeRanges.map { WindowInfo(start: $0.start, end: $0.end) })
    }
}
