/// Access rules shared by the MMIO devices (docs/guest-abi.md, "Device registers").
enum DeviceAccess {
    /// The register offset of an aligned 32-bit access inside a 4 KiB window, or `nil` for
    /// any other access, which devices treat as unclaimed.
    static func register(offset: UInt64, width: Int) -> UInt64? {
        width == 4 && offset % 4 == 0 && offset < 0x1000 ? offset : nil
    }
}
