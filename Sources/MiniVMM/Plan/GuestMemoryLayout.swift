import VMAllocator

/// Where guest RAM lives in guest-physical space, and the fixed addresses of the guest ABI
/// (docs/guest-abi.md).
///
/// RAM fills guest-physical space from 0 up to the 32-bit MMIO gap at `0xC000_0000`;
/// whatever does not fit below the gap continues at 4 GiB. Pure value: no memory is mapped.
package struct GuestMemoryLayout: Hashable, Sendable {
    /// The page size every size and window is a multiple of.
    package static let pageSize: UInt64 = 0x1000
    /// The smallest accepted memory size (2 MiB).
    package static let minimumMemorySize: UInt64 = 2 << 20
    /// The largest accepted memory size (64 GiB).
    package static let maximumMemorySize: UInt64 = 64 << 30

    /// The GDT (null, code `0x08`, data `0x10`).
    package static let gdtAddress: UInt64 = 0x1000
    /// The boot-information table; `RDI` points here at entry.
    package static let bootInfoAddress: UInt64 = 0x2000
    /// Bytes reserved for the boot-information table (`0x2000`–`0x3FFF`).
    package static let bootInfoCapacity: UInt64 = 0x2000
    /// The PML4; the page tables occupy `0x10000`–`0x6FFFF`.
    package static let pageTablesAddress: UInt64 = 0x10000
    /// Bytes reserved for page tables.
    package static let pageTablesCapacity: UInt64 = 0x60000
    /// The initial `RSP`; the stack is the 64 KiB below it.
    package static let stackTop: UInt64 = 0x80000
    /// Where the flat guest image is loaded and entered.
    package static let imageBase: UInt64 = 0x10_0000
    /// First address of the 32-bit MMIO gap; low RAM ends here at the latest.
    package static let mmioGapStart: UInt64 = 0xC000_0000
    /// Last address of the 32-bit MMIO gap.
    package static let mmioGapLastAddress: UInt64 = 0xFFFF_FFFF
    /// Where RAM that does not fit below the gap continues (4 GiB).
    package static let highMemoryBase: UInt64 = 0x1_0000_0000
    /// The in-kernel IOAPIC's page.
    package static let ioapicAddress: UInt64 = 0xFEC0_0000
    /// Size of the IOAPIC's reserved page.
    package static let ioapicSize: UInt64 = 0x1000
    /// The local APIC's page.
    package static let localAPICAddress: UInt64 = 0xFEE0_0000
    /// Size of the local APIC's reserved page.
    package static let localAPICSize: UInt64 = 0x1000
    /// The page KVM uses for its identity map (`KVM_SET_IDENTITY_MAP_ADDR`).
    package static let identityMapAddress: UInt64 = 0xFEFF_C000
    /// Size of the identity-map page.
    package static let identityMapSize: UInt64 = 0x1000
    /// The three pages KVM uses for the TSS (`KVM_SET_TSS_ADDR`).
    package static let tssAddress: UInt64 = 0xFEFF_D000
    /// Size of the TSS area (12 KiB).
    package static let tssSize: UInt64 = 0x3000

    /// Bytes in the hot-plug window (16 GiB).
    package static let hotplugWindowSize: UInt64 = 16 << 30
    /// Alignment and size granule of hot-plugged RAM (2 MiB: one large page of the identity map).
    package static let hotplugAlignment: UInt64 = 2 << 20
    /// The hot-plug window starts on a boundary of this many bytes (1 GiB).
    package static let hotplugWindowAlignment: UInt64 = 1 << 30

    /// The total RAM size this layout was made for.
    package let memorySize: UInt64
    /// The boot RAM ranges, ascending: low RAM, then RAM above 4 GiB when there is any.
    /// Each becomes one ``RAMRegion`` (one KVM memory slot) in the plan.
    package let ranges: [RangeInclusive]

    /// Lays out `memorySize` bytes of RAM.
    ///
    /// - Throws: ``ConfigurationError/MemoryProblem`` unless the size is a multiple of
    ///   4 KiB between 2 MiB and 64 GiB inclusive. These limits live here only;
    ///   ``MemorySize/parse(_:)`` checks through this initializer.
    package init(memorySize: UInt64) throws(ConfigurationError.MemoryProblem) {
        guard memorySize <= Self.maximumMemorySize else { throw .tooLarge }
        guard memorySize >= Self.minimumMemorySize else { throw .tooSmall }
        guard memorySize % Self.pageSize == 0 else { throw .notPageMultiple }
        self.memorySize = memorySize
        let low = min(memorySize, Self.mmioGapStart)
        var ranges = [Self.range(0, size: low)]
        if memorySize > low {
            ranges.append(Self.range(Self.highMemoryBase, size: memorySize - low))
        }
        self.ranges = ranges
    }

    /// The range below the MMIO gap, which holds the ABI structures and the image.
    package var lowRange: RangeInclusive { ranges[0] }

    /// The largest image that fits: the low range's bytes from ``imageBase`` on.
    package var maximumImageSize: UInt64 { lowRange.count - Self.imageBase }

    /// One past the highest RAM address (what the page tables must identity-map).
    package var endOfRAM: UInt64 { ranges[ranges.count - 1].end + 1 }

    /// Where RAM plugged in while the guest runs goes: ``hotplugWindowSize`` bytes from the
    /// first 1 GiB boundary at or above both 4 GiB and the end of boot RAM.
    package var hotplugWindow: RangeInclusive { Self.hotplugWindow(endOfRAM: endOfRAM) }

    /// The hot-plug window of a machine whose boot RAM ends at `endOfRAM` (exclusive).
    package static func hotplugWindow(endOfRAM: UInt64) -> RangeInclusive {
        let floor = max(endOfRAM, highMemoryBase)
        let base = (floor + hotplugWindowAlignment - 1) / hotplugWindowAlignment * hotplugWindowAlignment
        return range(base, size: hotplugWindowSize)
    }

    /// A range of `size` bytes at `base`; callers pass non-empty ranges inside 64 bits.
    static func range(_ base: UInt64, size: UInt64) -> RangeInclusive {
        do { return try RangeInclusive(start: base, end: base + (size - 1)) } catch {
            fatalError("fixed layout ranges are valid: \(error)")
        }
    }
}
