import VMAllocator

extension MachineResources {
    /// The whole resource map as text, like `/proc/iomem`, `/proc/ioports` and
    /// `/proc/interrupts` together: one section each for RAM and memory slots, the MMIO gap,
    /// port I/O and interrupts; each line gives a range or number, a size and an owner, with
    /// free space marked `(free)`. Columns are aligned; the output depends only on the
    /// machine's configuration and ends with a newline.
    ///
    /// - Complexity: O(n) in the number of allocations and free blocks.
    public func describe() -> String {
        var lines: [String] = []
        lines.append("Memory slots (KVM slots \(memorySlots.rangeBase)-\(memorySlots.rangeEnd)):")
        let ramDigits = Self.hexDigits(for: ramRegions.map { $0.base + ($0.size - 1) })
        var ramRows = ramRegions.map { region in
            [
                "\(region.slot)", ResourceFormat.hexRange(region.base, region.base + (region.size - 1), digits: ramDigits),
                ResourceFormat.size(region.size), region.owner,
            ]
        }
        // RAM slots are taken first, in order, from a fresh allocator: the rest is one run.
        let firstFreeSlot = UInt64(memorySlots.rangeBase) + UInt64(ramRegions.count)
        if firstFreeSlot <= UInt64(memorySlots.rangeEnd) {
            ramRows.append([Self.numberRange(UInt32(firstFreeSlot), memorySlots.rangeEnd), "(free)"])
        }
        lines += ResourceFormat.table(ramRows)

        lines.append("MMIO (32-bit gap \(ResourceFormat.hexRange(mmio.base, mmio.end, digits: 8))):")
        lines += ResourceFormat.table(Self.rangeRows(
            allocations: mmio.allocations, free: mmio.freeRanges, owners: mmioOwners, digits: 8,
            size: ResourceFormat.size))

        lines.append("Port I/O (\(ResourceFormat.hexRange(ports.base, ports.end, digits: 4))):")
        lines += ResourceFormat.table(Self.rangeRows(
            allocations: ports.allocations, free: ports.freeRanges, owners: portOwners, digits: 4,
            size: { $0 == 1 ? "1 port" : "\($0) ports" }))

        lines.append("Interrupts (IOAPIC GSIs \(gsis.rangeBase)-\(gsis.rangeEnd)):")
        lines += ResourceFormat.table(gsiRows())
        return lines.joined(separator: "\n") + "\n"
    }

    private func gsiRows() -> [[String]] {
        var rows: [[String]] = []
        var freeStart: UInt32?
        func flushFree(before end: UInt32) {
            if let start = freeStart {
                rows.append([Self.numberRange(start, end), "(free)"])
                freeStart = nil
            }
        }
        for gsi in gsis.rangeBase...gsis.rangeEnd {
            if let owner = gsiOwners[gsi] {
                flushFree(before: gsi - 1)
                rows.append(["\(gsi)", owner])
            } else if freeStart == nil {
                freeStart = gsi
            }
        }
        flushFree(before: gsis.rangeEnd)
        return rows
    }

    private static func rangeRows(
        allocations: [RangeInclusive], free: [RangeInclusive], owners: [RangeInclusive: String],
        digits: Int, size: (UInt64) -> String
    ) -> [[String]] {
        let entries = allocations.map { ($0, owners[$0] ?? "(unknown)") } + free.map { ($0, "(free)") }
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
