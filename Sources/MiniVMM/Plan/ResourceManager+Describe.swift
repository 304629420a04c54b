extension ResourceManager {
    /// The whole resource map as text (`--describe`): the text rendering of the
    /// ``ResourcesInfo`` model that `GET /resources` returns, so the two never disagree.
    ///
    /// - Complexity: O(n log n) in the number of allocations and free blocks.
    package func describe() -> String {
        info.describe(regions: ramRegions.values.sorted { $0.slot < $1.slot }.map(\.info))
    }
}

extension RAMRegion {
    /// The region as the control API lists it.
    package var info: MemoryRegionInfo {
        MemoryRegionInfo(id: "\(owner)", slot: slot, base: base, size: size, state: "attached")
    }
}

extension ResourcesInfo {
    /// The map as text, like `/proc/iomem`, `/proc/ioports` and `/proc/interrupts` together:
    /// one section each for RAM and memory slots, the MMIO gap, port I/O, interrupts and
    /// vCPU IDs; each line gives a range or number, a size and an owner, with free space
    /// marked `(free)`. Columns are aligned; the output ends with a newline.
    ///
    /// - Parameter regions: the RAM regions behind the memory slots (for their ranges).
    /// - Complexity: O(n log n) in the number of allocations and free blocks.
    package func describe(regions: [MemoryRegionInfo]) -> String {
        var lines: [String] = []
        lines.append("Memory slots (KVM slots \(memorySlots.range.first)-\(memorySlots.range.last)):")
        let bySlot = Dictionary(regions.map { ($0.slot, $0) }, uniquingKeysWith: { first, _ in first })
        let ramDigits = Self.hexDigits(for: regions.map { $0.base + ($0.size - 1) })
        lines += ResourceFormat.table(Self.numberRows(memorySlots) { allocation in
            guard let region = bySlot[allocation.id] else { return [allocation.owner] }
            return [ResourceFormat.hexRange(region.base, region.base + (region.size - 1), digits: ramDigits),
                    ResourceFormat.size(region.size), allocation.owner]
        })

        lines.append("Hot-plug RAM (window \(ResourceFormat.hexRange(hotplugRAM.range.start, hotplugRAM.range.end, digits: 9))):")
        lines += ResourceFormat.table(Self.rangeRows(hotplugRAM, digits: 9, size: ResourceFormat.size))

        lines.append("MMIO (32-bit gap \(ResourceFormat.hexRange(mmio.range.start, mmio.range.end, digits: 8))):")
        lines += ResourceFormat.table(Self.rangeRows(mmio, digits: 8, size: ResourceFormat.size))

        lines.append("Port I/O (\(ResourceFormat.hexRange(ports.range.start, ports.range.end, digits: 4))):")
        lines += ResourceFormat.table(Self.rangeRows(ports, digits: 4) { $0 == 1 ? "1 port" : "\($0) ports" })

        lines.append("Interrupts (IOAPIC GSIs \(gsis.range.first)-\(gsis.range.last)):")
        lines += ResourceFormat.table(Self.numberRows(gsis) { [$0.owner] })

        lines.append("vCPUs (vCPU and local APIC IDs \(vcpus.range.first)-\(vcpus.range.last)):")
        lines += ResourceFormat.table(Self.numberRows(vcpus) { [$0.owner] })
        return lines.joined(separator: "\n") + "\n"
    }

    /// Rows for a numbered pool: each taken number with its cells, and each free run as
    /// `first-last  (free)`, in ascending order.
    private static func numberRows(
        _ pool: NumberPoolInfo, cells: (NumberPoolInfo.Allocation) -> [String]
    ) -> [[String]] {
        let taken = pool.allocations.map { (UInt64($0.id), ["\($0.id)"] + cells($0)) }
        let free = pool.free.map { (UInt64($0.first), [numberRange($0.first, $0.last), "(free)"]) }
        return (taken + free).sorted { $0.0 < $1.0 }.map(\.1)
    }

    private static func rangeRows(_ pool: AddressPoolInfo, digits: Int, size: (UInt64) -> String) -> [[String]] {
        let entries = pool.allocations.map { ($0.start, $0.end, $0.owner) } + pool.free.map { ($0.start, $0.end, "(free)") }
        return entries.sorted { $0.0 < $1.0 }.map { start, end, owner in
            [ResourceFormat.hexRange(start, end, digits: digits), size(end - start + 1), owner]
        }
    }

    private static func numberRange(_ first: UInt32, _ last: UInt32) -> String {
        first == last ? "\(first)" : "\(first)-\(last)"
    }

    /// Hex digits needed for the largest of `addresses`, at least 8.
    private static func hexDigits(for addresses: [UInt64]) -> Int {
        max(8, String(addresses.max() ?? 0, radix: 16).count)
    }
}
