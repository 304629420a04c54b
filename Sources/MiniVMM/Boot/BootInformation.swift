/// The boot-information table a guest finds at ``GuestMemoryLayout/bootInfoAddress``
/// (layout in docs/guest-abi.md): a 16-byte header, then 32-byte entries, little-endian.
package enum BootInformation {
    /// `"MVMB"` read as a little-endian u32.
    package static let magic: UInt32 = 0x424D_564D
    /// The table's format version.
    package static let version: UInt16 = 1
    /// Bytes in the header.
    package static let headerSize = 16
    /// Bytes in each entry.
    package static let entrySize = 32
    /// The GSI or memory-slot value meaning "none".
    package static let none: UInt32 = 0xFFFF_FFFF

    /// What an entry describes.
    package enum Kind: UInt16, Hashable, Sendable, Codable {
        /// A RAM region (memory space).
        case ram = 1
        /// The exit port (port I/O).
        case exitPort = 2
        /// A 16550 UART (port I/O).
        case uart = 3
        /// The IOAPIC (MMIO).
        case ioapic = 4
        /// The local APIC (MMIO).
        case localAPIC = 5
        /// A timer (MMIO).
        case timer = 6
        /// A DMA console (MMIO).
        case dmaConsole = 7
        /// A CPU; `instance` is its local APIC ID.
        case cpu = 8
        /// The hot-plug controller (MMIO; guest ABI version 2).
        case hotplugController = 9
    }

    /// Entry flag: removal requested; the guest stops using it and ejects it.
    package static let removingFlag: UInt32 = 1 << 0

    /// What names an entry to the guest: its kind and instance (the hot-plug controller's
    /// EJECT register takes `kind << 16 | instance`).
    package struct EntryID: Hashable, Sendable, Comparable, Codable, CustomStringConvertible {
        /// The entry's kind.
        package var kind: Kind
        /// Its instance among entries of the kind.
        package var instance: UInt16

        /// An id.
        package init(kind: Kind, instance: UInt16) {
            self.kind = kind
            self.instance = instance
        }

        /// The id an EJECT write of `value` names, or nil for an unknown kind.
        package init?(ejectValue value: UInt32) {
            guard let kind = Kind(rawValue: UInt16(truncatingIfNeeded: value >> 16)) else { return nil }
            self.init(kind: kind, instance: UInt16(truncatingIfNeeded: value))
        }

        /// `kind << 16 | instance`, as the guest writes it to EJECT.
        package var ejectValue: UInt32 { UInt32(kind.rawValue) << 16 | UInt32(instance) }

        package static func < (lhs: EntryID, rhs: EntryID) -> Bool {
            (lhs.kind.rawValue, lhs.instance) < (rhs.kind.rawValue, rhs.instance)
        }

        /// `kind 6 instance 1`.
        package var description: String { "kind \(kind.rawValue) instance \(instance)" }
    }

    /// One 32-byte entry.
    package struct Entry: Hashable, Sendable {
        /// What the entry describes.
        package var kind: Kind
        /// Index among entries of the same kind.
        package var instance: UInt16
        /// The GSI, or `nil` for none.
        package var gsi: UInt32?
        /// Guest-physical address, or first port for port-I/O kinds.
        package var base: UInt64
        /// Size in bytes, or number of ports.
        package var size: UInt64
        /// KVM memory-slot ID for RAM, else `nil`.
        package var memorySlot: UInt32?
        /// Flags (``BootInformation/removingFlag``); 0 in a version-1 table.
        package var flags: UInt32

        /// Creates an entry.
        package init(
            kind: Kind, instance: UInt16, gsi: UInt32?, base: UInt64, size: UInt64, memorySlot: UInt32?, flags: UInt32 = 0
        ) {
            self.kind = kind
            self.instance = instance
            self.gsi = gsi
            self.base = base
            self.size = size
            self.memorySlot = memorySlot
            self.flags = flags
        }

        /// Its kind and instance.
        package var id: EntryID { EntryID(kind: kind, instance: instance) }
    }

    /// The most entries the table's space at ``GuestMemoryLayout/bootInfoAddress`` holds.
    package static let maximumEntries = (Int(GuestMemoryLayout.bootInfoCapacity) - headerSize) / entrySize

    /// Encodes a header followed by `entries`, in the given order.
    ///
    /// - Complexity: O(number of entries).
    package static func encode(_ entries: [Entry]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(headerSize + entries.count * entrySize)
        append(magic, to: &bytes)
        append(version, to: &bytes)
        append(UInt16(headerSize), to: &bytes)
        append(UInt16(truncatingIfNeeded: entries.count), to: &bytes)
        append(UInt16(entrySize), to: &bytes)
        append(UInt32(truncatingIfNeeded: headerSize + entries.count * entrySize), to: &bytes)
        for entry in entries {
            append(entry.kind.rawValue, to: &bytes)
            append(entry.instance, to: &bytes)
            append(entry.gsi ?? none, to: &bytes)
            append(entry.base, to: &bytes)
            append(entry.size, to: &bytes)
            append(entry.memorySlot ?? none, to: &bytes)
            append(entry.flags, to: &bytes)
        }
        return bytes
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        var little = value.littleEndian
        withUnsafeBytes(of: &little) { bytes.append(contentsOf: $0) }
    }
}
