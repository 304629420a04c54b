import Synchronization

/// The exit port (`0xF4`–`0xF7`): an 8-, 16- or 32-bit write of `v` at offset 0 asks the
/// machine to stop with status `v` (a guest fault when `v > 63`). Reads return all ones.
///
/// Every vCPU's run loop polls ``requestedValue`` after each port-I/O exit, so the request is an
/// atomic rather than a callback.
package final class ExitPort: BusDevice {
    /// The first port of the window.
    package static let port: UInt16 = 0xF4
    private static let noRequest = UInt64.max
    private let request = Atomic<UInt64>(ExitPort.noRequest)

    /// An exit port with no request yet.
    package init() {}

    /// The value the guest wrote, if it wrote to the port (values beyond 64 bits are
    /// stored as `UInt64.max - 1`).
    @inline(__always)
    package var requestedValue: UInt64? {
        let value = request.load(ordering: .relaxed)
        return value == Self.noRequest ? nil : value
    }

    /// All ones: the port has nothing to read.
    package func read(offset: UInt64, width: Int) -> UInt64 {
        DeviceBus.mask(width: width)
    }

    /// Records an exit request for a write of width 1, 2 or 4 at offset 0; the first
    /// request wins.
    package func write(offset: UInt64, width: Int, value: UInt64) {
        guard offset == 0, width == 1 || width == 2 || width == 4 else { return }
        let stored = min(value, Self.noRequest - 1)
        _ = request.compareExchange(expected: Self.noRequest, desired: stored, ordering: .relaxed)
    }
}
