/// A device that answers guest accesses to a window of port-I/O or MMIO space.
///
/// Offsets are relative to the start of the device's window; `width` is the access
/// size in bytes (1, 2, 4 or 8). Values are little-endian and zero-extended; a read
/// returns its value in the low `width` bytes. Devices are reached from vCPU threads
/// and, for interrupts and input, from background threads, so they must be `Sendable`
/// and synchronise their own state.
package protocol BusDevice: AnyObject, Sendable {
    /// Handles a guest read of `width` bytes at `offset` within the device's window.
    func read(offset: UInt64, width: Int) -> UInt64
    /// Handles a guest write of `width` bytes of `value` at `offset` within the window.
    func write(offset: UInt64, width: Int, value: UInt64)
    /// Handles a string write (`rep outs`): `data` holds consecutive `width`-byte elements,
    /// each written as by ``write(offset:width:value:)``, in order; a trailing partial
    /// element is ignored. Devices may override it to batch their work.
    ///
    /// - Complexity: O(data.count) by default.
    func writeString(offset: UInt64, width: Int, data: UnsafeRawBufferPointer)
    /// Handles a string read (`rep ins`): fills `buffer` with consecutive `width`-byte
    /// elements, each read as by ``read(offset:width:)``; a trailing partial element is
    /// left untouched. Devices may override it to batch their work.
    ///
    /// - Complexity: O(buffer.count) by default.
    func readString(offset: UInt64, width: Int, into buffer: UnsafeMutableRawBufferPointer)
    /// Stops the device's background work (pending timers, …) when it is detached or the
    /// machine stops; accesses after it must still be answered. Does nothing by default.
    func shutdown()
    /// Freezes the device's own clock while the machine is paused (no vCPU runs); does
    /// nothing by default.
    func suspend()
    /// Lets the device's clock run on after ``suspend()``; does nothing by default.
    func resume()
}

extension BusDevice {
    /// Nothing to stop.
    package func shutdown() {}
    /// No clock to freeze.
    package func suspend() {}
    /// No clock to resume.
    package func resume() {}

    /// Writes element by element through ``write(offset:width:value:)``.
    ///
    /// - Complexity: O(data.count).
    package func writeString(offset: UInt64, width: Int, data: UnsafeRawBufferPointer) {
        guard (1...8).contains(width) else { return }
        for start in stride(from: 0, to: data.count - width + 1, by: width) {
            var value: UInt64 = 0
            for index in 0..<width { value |= UInt64(data[start + index]) << (8 * UInt64(index)) }
            write(offset: offset, width: width, value: value)
        }
    }

    /// Reads element by element through ``read(offset:width:)``.
    ///
    /// - Complexity: O(buffer.count).
    package func readString(offset: UInt64, width: Int, into buffer: UnsafeMutableRawBufferPointer) {
        guard (1...8).contains(width) else { return }
        for start in stride(from: 0, to: buffer.count - width + 1, by: width) {
            let value = read(offset: offset, width: width)
            for index in 0..<width { buffer[start + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
        }
    }
}

/// An interrupt line a device raises; the machine backs it with KVM (irqfd or IRQ line).
package protocol InterruptLine: Sendable {
    /// Raises an edge-triggered interrupt (one pulse).
    func trigger()
    /// Drives a level-triggered line high (`true`) or low (`false`).
    func setLevel(_ asserted: Bool)
}

/// Where console devices send the guest's output bytes (minivmm's stdout, or a test buffer).
package protocol ConsoleOutput: Sendable {
    /// Writes `bytes` in order, completely, before returning.
    func write(_ bytes: UnsafeRawBufferPointer)
}

/// Read access to guest RAM for devices that do DMA; every access is bounds-checked.
package protocol GuestMemoryReader: Sendable {
    /// Calls `body` with the `count` bytes at guest-physical `address` if they lie entirely
    /// inside one RAM region and returns `true`; otherwise returns `false` without calling it.
    func withBytes(at address: UInt64, count: Int, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool
}
