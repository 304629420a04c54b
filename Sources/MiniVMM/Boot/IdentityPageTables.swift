/// Four-level x86-64 page tables that identity-map `[0, mappedEnd)` with 2 MiB pages.
///
/// The tables are laid out contiguously from `base`: the PML4, one PDPT, then one page
/// directory per GiB. Entries are present, writable and supervisor-only. Building is
/// pure: the result is a list of 64-bit entries that the machine copies into guest memory.
package struct IdentityPageTables: Hashable, Sendable {
    /// Size of one page-table page in bytes.
    package static let tablePageSize: UInt64 = 0x1000
    /// Size of the pages the tables map (2 MiB).
    package static let largePageSize: UInt64 = 2 << 20
    /// Entry bit: present.
    package static let present: UInt64 = 1 << 0
    /// Entry bit: writable.
    package static let writable: UInt64 = 1 << 1
    /// Entry bit: the PD entry maps a 2 MiB page.
    package static let pageSizeBit: UInt64 = 1 << 7

    /// Why tables could not be built.
    package enum BuildError: Error, Hashable, Sendable {
        /// `base` is not 4 KiB aligned.
        case unalignedBase(UInt64)
        /// `mappedEnd` is 0 or beyond the 512 GiB one PDPT covers.
        case unsupportedEnd(UInt64)
        /// The tables would need more pages than `maxPages` allows.
        case tooManyPages(needed: Int, available: Int)
    }

    /// Guest-physical address of the PML4 (the value for CR3).
    package let base: UInt64
    /// The end of the mapped range, rounded up to 2 MiB.
    package let mappedEnd: UInt64
    /// All entries of all table pages in order, 512 per page.
    package let entries: [UInt64]

    /// Builds tables at `base` mapping `[0, mappedEnd)` (rounded up to 2 MiB).
    ///
    /// - Parameter maxPages: how many 4 KiB pages the tables may occupy.
    /// - Throws: ``BuildError`` when the request cannot be met.
    /// - Complexity: O(n) in the number of table pages.
    package init(base: UInt64, mappedEnd: UInt64, maxPages: Int) throws(BuildError) {
        guard base % Self.tablePageSize == 0 else { throw .unalignedBase(base) }
        guard mappedEnd > 0, mappedEnd <= 512 << 30 else { throw .unsupportedEnd(mappedEnd) }
        let largePages = (mappedEnd + Self.largePageSize - 1) / Self.largePageSize
        let directories = Int((largePages + 511) / 512)
        let pageCount = 2 + directories
        guard pageCount <= maxPages else { throw .tooManyPages(needed: pageCount, available: maxPages) }
        guard base <= UInt64.max - UInt64(pageCount) * Self.tablePageSize else { throw .unalignedBase(base) }

        let tableFlags = Self.present | Self.writable
        var entries = [UInt64](repeating: 0, count: pageCount * 512)
        let pdptAddress = base + Self.tablePageSize
        entries[0] = pdptAddress | tableFlags
        for directory in 0..<directories {
            let directoryAddress = base + UInt64(2 + directory) * Self.tablePageSize
            entries[512 + directory] = directoryAddress | tableFlags
        }
        for page in 0..<Int(largePages) {
            entries[1024 + page] = UInt64(page) * Self.largePageSize | tableFlags | Self.pageSizeBit
        }
        self.base = base
        self.mappedEnd = largePages * Self.largePageSize
        self.entries = entries
    }

    /// Number of 4 KiB table pages.
    package var pageCount: Int { entries.count / 512 }

    /// The tables as little-endian bytes, to be copied to guest-physical ``base``.
    /// - Complexity: O(n) in the number of entries.
    package var bytes: [UInt8] {
        var result = [UInt8](repeating: 0, count: entries.count * 8)
        result.withUnsafeMutableBytes { raw in
            for (index, entry) in entries.enumerated() {
                raw.storeBytes(of: entry.littleEndian, toByteOffset: index * 8, as: UInt64.self)
            }
        }
        return result
    }

    /// Walks the tables as the MMU would and returns the physical address `virtual`
    /// maps to, or `nil` if it is not mapped (only entries inside these tables are followed).
    /// - Complexity: O(1).
    package func translate(_ virtual: UInt64) -> UInt64? {
        guard virtual >> 48 == 0 else { return nil }
        func entry(at tableAddress: UInt64, index: UInt64) -> UInt64? {
            guard tableAddress >= base else { return nil }
            let page = (tableAddress - base) / Self.tablePageSize
            guard (tableAddress - base) % Self.tablePageSize == 0, page < UInt64(pageCount) else { return nil }
            let value = entries[Int(page * 512 + index)]
            return value & Self.present != 0 ? value : nil
        }
        let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000
        guard let pml4e = entry(at: base, index: (virtual >> 39) & 511),
              let pdpte = entry(at: pml4e & addressMask, index: (virtual >> 30) & 511),
              pdpte & Self.pageSizeBit == 0,
              let pde = entry(at: pdpte & addressMask, index: (virtual >> 21) & 511),
              pde & Self.pageSizeBit != 0
        else { return nil }
        return (pde & 0x000F_FFFF_FFE0_0000) | (virtual & (Self.largePageSize - 1))
    }
}
