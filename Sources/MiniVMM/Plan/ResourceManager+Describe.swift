import VMAllocator

extension ResourceManager {
    /// The whole resource map as text, like `/proc/iomem`, `/proc/ioports` and
    /// `/proc/interrupts` together: one section each for RAM and memory slots, the MMIO gap,
    /// port I/O and interrupts; each line gives a range or number, a size and an owner, with
    /// free space marked `(free)`. Columns are aligned; the output depends only on the
    /// resources and ends with a newline.
    ///
    /// - Complexity: O(n log n) in the number of allocations and free blocks.
    package func describe() -> String {
        var lines: [String] = []
        lines.append("Memory slots (KVM slots \(memorySlots.rangeBase)-\(memorySlots.rangeEnd)):")
        let regions = ramRegions.values.sorted { $0.slot < $1.slot }
        let ramDigits = Self.hexDigits(for: regions.map(\.range.end))
        lines += ResourceFormat.table(numberRows(
            taken: regions.map { region in
                (region.slot, [ResourceFormat.hexRange(region.range.start, region.range.end, digits: ramDigits),
                               ResourceFormat.size(region.size), "\(region.owner)"])
            },
            first: memorySlots.rangeBase, last: memorySlots.rangeEnd))

        lines.append("MMIO (32-bit gap \(ResourceFormat.hexRange(mmio.base, mmio.end, digits: 8))):")
        lines += ResourceFormat.table(Self.rangeRows(
            allocations: mmio.allocations, free: mmio.freeRanges, owners: mmioOwners, digits: 8,
            size: ResourceFormat.size))

        lines.append("Port I/O (\(ResourceFormat.hexRange(ports.base, ports.end, digits: 4))):")
        lines += ResourceFormat.table(Self.rangeRows(
            allocations: ports.allocations, free: ports.freeRanges, owners: portOwners, digits: 4,
            size: { $0 == 1 ? "1 port" : "\($0) ports" }))

        lines.append("Interrupts (IOAPIC GSIs \(gsis.rangeBase)-\(gsis.rangeEnd)):")
        lines += ResourceFormat.table(numberRows(
            taken: gsiOwners.sorted { $0.key < $1.key }.map { ($0.key, ["\($0.value)"]) },
            first: gsis.rangeBase, last: gsis.rangeEnd))

        lines.append("vCPUs (vCPU and local APIC IDs \(vcpuIDs.rangeBase)-\(vcpuIDs.rangeEnd)):")
        lines += ResourceFormat.table(numberRows(
            taken: vcpuOwners.sorted { $0.key < $1.key }.map { ($0.key, ["\($0.value)"]) },
            first: vcpuIDs.rangeBase, last: vcpuIDs.rangeEnd))
        return lines.joined(separator: "\n") + "\n"
    }

    /// Rows for a numbered space (slots, GSIs): each taken number with its cells, and each
    /// run of free numbers between them as `first-last  (free)`.
    private func numberRows(taken: [(UInt32, [String])], first: UInt32, last: UInt32) -> [[String]] {
        var rows: [[String]] = []
        var next = UInt64(first)
        func free(upTo end: UInt64) {
            if next <= end { rows.append([Self.numberRange(UInt32(next), UInt32(end)), "(free)"]) }
        }
        for (number, cells) in taken {
            if number > 0 { free(upTo: UInt64(number) - 1) }
            rows.append(["\(number)"] + cells)
            next = UInt64(number) + 1
        }
        free(upTo: UInt64(last))
        return rows
    }

    private static func rangeRows(
        allocations: [RangeInclusive], free: [RangeInclusive], owners: [RangeInclusive: Owner],
        digits: Int, size: (UInt64) -> String
    ) -> [[String]] {
        let entries = allocations.map { ($0, owners[$0].map { "\($0)" } ?? "(unknown)") } + free.map { ($0, "(free)") }
        return entries.sorted { $0.0.start < $1.0.start }.map { range, owner in
            [ResourceFormat.hexRange(range.start, range.end, digits: digits), size(range.count), owner]
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
