/// Where guest RAM lives in guest-physical space, and the fixed addresses of the guest ABI
/// (docs/guest-abi.md).
///
/// RAM fills guest-physical space from 0 up to the 32-bit MMIO gap at `0xC000_0000`;
/// whatever does not fit below the gap continues at 4 GiB. Pure value: no memory is mapped.
public struct GuestMemoryLayout: Hashable, Sendable {
    /// One contiguous block of guest RAM (one KVM memory slot).
    public struct Region: Hashable, Sendable {
        /// First guest-physical address.
        public let base: UInt64
        /// Length in bytes (a non-zero multiple of 4 KiB).
        public let size: UInt64

        /// Creates a region; `size` must be non-zero and `base + size` must not overflow.
        public init(base: UInt64, size: UInt64) {
            self.base = base
            self.size = size
        }

        /// The last guest-physical address inside the region.
        public var lastAddress: UInt64 { base + (size - 1) }

        /// Whether the `count` bytes starting at `address` all lie inside this region.
        /// A `count` of 0 is inside when `address` is inside or one past the end.
        public func contains(address: UInt64, count: UInt64) -> Bool {
            guard address >= base else { return false }
            let offset = address - base
            return offset <= size && count <= size - offset
        }
    }

    /// The page size every size and window is a multiple of.
    public static let pageSize: UInt64 = 0x1000
    /// The smallest accepted memory size (2 MiB).
    public static let minimumMemorySize: UInt64 = 2 << 20
    /// The largest accepted memory size (64 GiB).
    public static let maximumMemorySize: UInt64 = 64 << 30

    /// The GDT (null, code `0x08`, data `0x10`).
    public static let gdtAddress: UInt64 = 0x1000
    /// The boot-information table; `RDI` points here at entry.
    public static let bootInfoAddress: UInt64 = 0x2000
    /// Bytes reserved for the boot-information table (`0x2000`–`0x3FFF`).
    public static let bootInfoCapacity: UInt64 = 0x2000
    /// The PML4; the page tables occupy `0x10000`–`0x6FFFF`.
    public static let pageTablesAddress: UInt64 = 0x10000
    /// Bytes reserved for page tables.
    public static let pageTablesCapacity: UInt64 = 0x60000
    /// The initial `RSP`; the stack is the 64 KiB below it.
    public static let stackTop: UInt64 = 0x80000
    /// Where the flat guest image is loaded and entered.
    public static let imageBase: UInt64 = 0x10_0000
    /// First address of the 32-bit MMIO gap; low RAM ends here at the latest.
    public static let mmioGapStart: UInt64 = 0xC000_0000
    /// Last address of the 32-bit MMIO gap.
    public static let mmioGapLastAddress: UInt64 = 0xFFFF_FFFF
    /// Where RAM that does not fit below the gap continues (4 GiB).
    public static let highMemoryBase: UInt64 = 0x1_0000_0000
    /// The in-kernel IOAPIC's page.
    public static let ioapicAddress: UInt64 = 0xFEC0_0000
    /// Size of the IOAPIC's reserved page.
    public static let ioapicSize: UInt64 = 0x1000
    /// The local APIC's page.
    public static let localAPICAddress: UInt64 = 0xFEE0_0000
    /// Size of the local APIC's reserved page.
    public static let localAPICSize: UInt64 = 0x1000
    /// The page KVM uses for its identity map (`KVM_SET_IDENTITY_MAP_ADDR`).
    public static let identityMapAddress: UInt64 = 0xFEFF_C000
    /// Size of the identity-map page.
    public static let identityMapSize: UInt64 = 0x1000
    /// The three pages KVM uses for the TSS (`KVM_SET_TSS_ADDR`).
    public static let tssAddress: UInt64 = 0xFEFF_D000
    /// Size of the TSS area (12 KiB).
    public static let tssSize: UInt64 = 0x3000

    /// The total RAM size this layout was made for.
    public let memorySize: UInt64
    /// The RAM regions, ascending: low RAM, then RAM above 4 GiB when there is any.
    public let regions: [Region]

    /// Lays out `memorySize` bytes of RAM.
    ///
    /// - Throws: ``ResourceError/invalidMemorySize(_:_:)`` unless the size is a multiple of
    ///   4 KiB between 2 MiB and 64 GiB inclusive.
    public init(memorySize: UInt64) throws(ResourceError) {
        guard memorySize % Self.pageSize == 0 else {
            throw .invalidMemorySize(memorySize, .notPageMultiple)
        }
        guard memorySize >= Self.minimumMemorySize else {
            throw .invalidMemorySize(memorySize, .tooSmall)
        }
        guard memorySize <= Self.maximumMemorySize else {
            throw .invalidMemorySize(memorySize, .tooLarge)
        }
        self.memorySize = memorySize
        let low = min(memorySize, Self.mmioGapStart)
        var regions = [Region(base: 0, size: low)]
        if memorySize > low {
            regions.append(Region(base: Self.highMemoryBase, size: memorySize - low))
        }
        self.regions = regions
    }

    /// The region below the MMIO gap, which holds the ABI structures and the image.
    public var lowRegion: Region { regions[0] }

    /// The largest image that fits: the low region's bytes from ``imageBase`` on.
    public var maximumImageSize: UInt64 { lowRegion.size - Self.imageBase }

    /// One past the highest RAM address (what the page tables must identity-map).
    public var endOfRAM: UInt64 { regions[regions.count - 1].lastAddress + 1 }

    /// The region holding all `count` bytes at `address`, if one does.
    ///
    /// - Complexity: O(number of regions), at most 2.
    public func region(containing address: UInt64, count: UInt64) -> Region? {
        regions.first { $0.contains(address: address, count: count) }
    }
}
