/// The guest's initial GDT: null, flat 64-bit code at selector 0x08, flat data at 0x10
/// (see docs/guest-abi.md).
package enum GlobalDescriptorTable {
    /// Selector of the flat 64-bit code segment.
    package static let codeSelector: UInt16 = 0x08
    /// Selector of the flat data segment.
    package static let dataSelector: UInt16 = 0x10

    /// Flat 64-bit code: present, DPL 0, execute/read, accessed; G and L set.
    package static let code = SegmentDescriptor(base: 0, limit: 0xF_FFFF, access: 0x9B, flags: 0xA)
    /// Flat data: present, DPL 0, read/write, accessed; G and D/B set.
    package static let data = SegmentDescriptor(base: 0, limit: 0xF_FFFF, access: 0x93, flags: 0xC)

    /// The encoded entries in table order.
    package static var entries: [UInt64] { [0, code.encoded, data.encoded] }

    /// The table as the little-endian bytes to copy into guest memory.
    /// - Complexity: O(1) (three entries).
    package static var bytes: [UInt8] {
        entries.flatMap { entry in (0..<8).map { UInt8(truncatingIfNeeded: entry >> ($0 * 8)) } }
    }

    /// The GDTR limit: the table's size in bytes minus one.
    package static var limit: UInt16 { UInt16(entries.count * 8 - 1) }

    /// The descriptor a selector names, or `nil` outside the table.
    package static func descriptor(for selector: UInt16) -> SegmentDescriptor? {
        let index = Int(selector >> 3)
        return index < entries.count ? SegmentDescriptor(encoded: entries[index]) : nil
    }
}
