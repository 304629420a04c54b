import VMAllocator

/// One RAM region on its whole way from the layout to KVM: where it sits in guest-physical
/// space and the KVM memory slot that maps it. ``GuestMemory`` adds the host mapping.
package struct RAMRegion: Hashable, Sendable {
    /// The guest-physical range (page-aligned, non-empty).
    package let range: RangeInclusive
    /// The KVM memory-slot ID.
    package let slot: UInt32
    /// Who holds it (`ram0`, …).
    package let owner: Owner

    /// First guest-physical address.
    package var base: UInt64 { range.start }
    /// Size in bytes.
    package var size: UInt64 { range.count }

    /// Whether the `count` bytes starting at `address` all lie inside this region.
    /// A `count` of 0 is inside when `address` is inside or one past the end.
    package func contains(address: UInt64, count: UInt64) -> Bool {
        guard address >= range.start else { return false }
        let offset = address - range.start
        return offset <= size && count <= size - offset
    }
}
