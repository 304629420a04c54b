/// Access rules shared by the MMIO devices (docs/guest-abi.md, "Device registers").
enum DeviceAccess {
    /// What a read that hits no register returns: all ones in the low `width` bytes.
    static func allOnes(width: Int) -> UInt64 {
        width >= 8 || width <= 0 ? .max : (1 << (UInt64(width) * 8)) - 1
    }

    /// The register offset of an aligned 32-bit access inside a 4 KiB window, or `nil` for
    /// any other access, which devices treat as unclaimed.
    static func register(offset: UInt64, width: Int) -> UInt64? {
        width == 4 && offset % 4 == 0 && offset < 0x1000 ? offset : nil
    }
}
