/// The boot-information table a guest finds at ``GuestMemoryLayout/bootInfoAddress``
/// (layout in docs/guest-abi.md): a 16-byte header, then 32-byte entries, little-endian.
public enum BootInformation {
    /// `"MVMB"` read as a little-endian u32.
    public static let magic: UInt32 = 0x424D_564D
    /// The table's format version.
    public static let version: UInt16 = 1
    /// Bytes in the header.
    public static let headerSize = 16
    /// Bytes in each entry.
    public static let entrySize = 32
    /// The GSI or memory-slot value meaning "none".
    public static let none: UInt32 = 0xFFFF_FFFF

    /// What an entry describes.
    public enum Kind: UInt16, Hashable, Sendable {
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
    }

    /// One 32-byte entry.
    public struct Entry: Hashable, Sendable {
        /// What the entry describes.
        public var kind: Kind
        /// Index among entries of the same kind.
        public var instance: UInt16
        /// The GSI, or `nil` for none.
        public var gsi: UInt32?
        /// Guest-physical address, or first port for port-I/O kinds.
        public var base: UInt64
        /// Size in bytes, or number of ports.
        public var size: UInt64
        /// KVM memory-slot ID for RAM, else `nil`.
        public var memorySlot: UInt32?

        /// Creates an entry.
        public init(kind: Kind, instance: UInt16, gsi: UInt32?, base: UInt64, size: UInt64, memorySlot: UInt32?) {
            self.kind = kind
            self.instance = instance
            self.gsi = gsi
            self.base = base
            self.size = size
            self.memorySlot = memorySlot
        }
    }

    /// Encodes a header followed by `entries`, in the given order.
    ///
    /// - Complexity: O(number of entries).
    public static func encode(_ entries: [Entry]) -> [UInt8] {
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
            append(UInt32(0), to: &bytes)
        }
        return bytes
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        var little = value.littleEndian
        withUnsafeBytes(of: &little) { bytes.append(contentsOf: $0) }
    }
}

extension MachineResources {
    /// The boot-information entries in ABI order: RAM regions, exit port, COM1, IOAPIC,
    /// local APIC, timers, DMA consoles.
    ///
    /// - Complexity: O(number of regions and devices).
    public var bootInformationEntries: [BootInformation.Entry] {
        var entries = ramRegions.enumerated().map { index, region in
            BootInformation.Entry(
                kind: .ram, instance: UInt16(index), gsi: nil, base: region.base, size: region.size,
                memorySlot: region.slot)
        }
        entries.append(.init(
            kind: .exitPort, instance: 0, gsi: nil, base: exitPort.start, size: exitPort.count, memorySlot: nil))
        entries.append(.init(
            kind: .uart, instance: 0, gsi: com1.gsi, base: com1.ports.start, size: com1.ports.count,
            memorySlot: nil))
        entries.append(.init(
            kind: .ioapic, instance: 0, gsi: nil, base: ioapic.start, size: ioapic.count, memorySlot: nil))
        entries.append(.init(
            kind: .localAPIC, instance: 0, gsi: nil, base: localAPIC.start, size: localAPIC.count,
            memorySlot: nil))
        for (kind, devices) in [(BootInformation.Kind.timer, timers), (.dmaConsole, consoles)] {
            for device in devices {
                entries.append(.init(
                    kind: kind, instance: UInt16(device.instance), gsi: device.gsi, base: device.window.start,
                    size: device.window.count, memorySlot: nil))
            }
        }
        return entries
    }

    /// The encoded boot-information table to copy to ``GuestMemoryLayout/bootInfoAddress``;
    /// at most 16 + 25 × 32 = 816 bytes, well inside its 8 KiB.
    ///
    /// - Complexity: O(number of regions and devices).
    public func bootInformation() -> [UInt8] {
        BootInformation.encode(bootInformationEntries)
    }
}
