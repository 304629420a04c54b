/// A device that answers guest accesses to a window of port-I/O or MMIO space.
///
/// Offsets are relative to the start of the device's window; `width` is the access
/// size in bytes (1, 2, 4 or 8). Values are little-endian and zero-extended; a read
/// returns its value in the low `width` bytes. Devices are reached from the vCPU thread
/// and, for interrupts and input, from background threads, so they must be `Sendable`
/// and synchronise their own state.
public protocol BusDevice: AnyObject, Sendable {
    /// Handles a guest read of `width` bytes at `offset` within the device's window.
    func read(offset: UInt64, width: Int) -> UInt64
    /// Handles a guest write of `width` bytes of `value` at `offset` within the window.
    func write(offset: UInt64, width: Int, value: UInt64)
}

/// An interrupt line a device raises; the machine backs it with KVM (irqfd or IRQ line).
public protocol InterruptLine: Sendable {
    /// Raises an edge-triggered interrupt (one pulse).
    func trigger()
    /// Drives a level-triggered line high (`true`) or low (`false`).
    func setLevel(_ asserted: Bool)
}

/// Where console devices send the guest's output bytes (minivmm's stdout, or a test buffer).
public protocol ConsoleOutput: Sendable {
    /// Writes `bytes` in order, completely, before returning.
    func write(_ bytes: UnsafeRawBufferPointer)
}

/// Read access to guest RAM for devices that do DMA; every access is bounds-checked.
public protocol GuestMemoryReader: Sendable {
    /// Calls `body` with the `count` bytes at guest-physical `address` if they lie entirely
    /// inside one RAM region and returns `true`; otherwise returns `false` without calling it.
    func withBytes(at address: UInt64, count: Int, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool
}
