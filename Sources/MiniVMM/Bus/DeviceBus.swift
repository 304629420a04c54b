import VMAllocator

/// Routes guest accesses in one address space (port I/O or MMIO) to the device whose
/// window contains the address, with the address turned into an offset in that window.
///
/// The windows are the live allocations of the space's `AddressAllocator`, so finding one
/// is the allocator's O(log n) `allocation(containing:)`; a dictionary keyed by window
/// start then names the device. Windows without a device (in-kernel devices, reserved
/// pages) and addresses outside every window are unclaimed: reads return all ones, writes
/// are ignored, and each distinct address is reported once through `onUnclaimed` (up to
/// a limit that keeps a guest scanning the address space from growing host memory).
///
/// A bus is used from the vCPU thread only. After the first access to an address the
/// dispatch path does not allocate.
public final class DeviceBus {
    /// What an unclaimed access did.
    public enum AccessKind: Hashable, Sendable {
        /// A guest read.
        case read
        /// A guest write.
        case write
    }

    /// An access that hit no device, as reported to `onUnclaimed`.
    public struct UnclaimedAccess: Hashable, Sendable {
        /// The guest address (port number or guest-physical address).
        public var address: UInt64
        /// Width in bytes.
        public var width: Int
        /// Read or write.
        public var kind: AccessKind
        /// Whether this is the last address reported: the bus stays silent after it.
        public var isLastReport: Bool = false
    }

    /// The name of the space, e.g. "port" or "MMIO", for messages.
    public let spaceName: String
    private let windows: AddressAllocator
    private var devices: [UInt64: any BusDevice] = [:]
    private var reported: Set<UInt64> = []
    private let onUnclaimed: (UnclaimedAccess) -> Void
    private let reportLimit: Int
    // The last window that resolved to a device: repeated accesses to one device
    // (the common case in a run loop) skip the tree walk and the hash.
    private var cachedWindow: (start: UInt64, end: UInt64, device: any BusDevice)?
    // The last unclaimed address: a guest hammering one unused port (a delay loop, a
    // benchmark) then costs one comparison per access.
    private var lastUnclaimed: UInt64?

    /// Creates a bus over the windows allocated in `windows`.
    ///
    /// - Parameters:
    ///   - spaceName: names the space in messages ("port", "MMIO").
    ///   - windows: an allocator whose live allocations are the device windows.
    ///   - reportLimit: how many distinct addresses are remembered and reported; the report
    ///     that reaches the limit has ``UnclaimedAccess/isLastReport`` set and later
    ///     addresses are not reported, so memory stays bounded.
    ///   - onUnclaimed: called once per distinct unclaimed address.
    public init(
        spaceName: String, windows: AddressAllocator, reportLimit: Int = DeviceBus.defaultReportLimit,
        onUnclaimed: @escaping (UnclaimedAccess) -> Void
    ) {
        self.spaceName = spaceName
        self.windows = windows
        self.reportLimit = max(reportLimit, 1)
        self.onUnclaimed = onUnclaimed
    }

    /// The default number of distinct unclaimed addresses reported per bus: every port fits.
    public static let defaultReportLimit = 65_536

    /// Why a device could not be attached.
    public enum AttachError: Error, Hashable, Sendable {
        /// `window` is not exactly one live allocation of the bus's allocator.
        case notAnAllocatedWindow(RangeInclusive)
        /// A device is attached to `window` already.
        case windowTaken(RangeInclusive)
    }

    /// Attaches `device` to `window`, which must be exactly one live allocation.
    ///
    /// - Throws: ``AttachError``; the bus is unchanged then.
    /// - Complexity: O(log n) in the number of windows.
    public func attach(_ device: any BusDevice, to window: RangeInclusive) throws(AttachError) {
        guard windows.allocation(containing: window.start) == window else {
            throw .notAnAllocatedWindow(window)
        }
        guard devices[window.start] == nil else { throw .windowTaken(window) }
        devices[window.start] = device
        lastUnclaimed = nil
    }

    /// The device attached at `address`'s window and the offset into it, if any.
    /// - Complexity: O(log n) in the number of windows; O(1) when the window was the
    ///   last one used.
    @inline(__always)
    public func resolve(_ address: UInt64) -> (device: any BusDevice, offset: UInt64)? {
        if let cached = cachedWindow, address >= cached.start, address <= cached.end {
            return (cached.device, address - cached.start)
        }
        guard let window = windows.allocation(containing: address),
              let device = devices[window.start]
        else { return nil }
        cachedWindow = (window.start, window.end, device)
        return (device, address - window.start)
    }

    /// Handles a guest read of `width` bytes at `address`; all ones if unclaimed.
    /// - Complexity: as ``resolve(_:)``.
    public func read(_ address: UInt64, width: Int) -> UInt64 {
        if address == lastUnclaimed { return Self.mask(width: width) }
        if let (device, offset) = resolve(address) {
            return device.read(offset: offset, width: width) & Self.mask(width: width)
        }
        report(UnclaimedAccess(address: address, width: width, kind: .read))
        return Self.mask(width: width)
    }

    /// Handles a guest write of `width` bytes of `value` at `address`; ignored if unclaimed.
    /// - Complexity: as ``resolve(_:)``.
    public func write(_ address: UInt64, width: Int, value: UInt64) {
        if address == lastUnclaimed { return }
        if let (device, offset) = resolve(address) {
            device.write(offset: offset, width: width, value: value & Self.mask(width: width))
            return
        }
        report(UnclaimedAccess(address: address, width: width, kind: .write))
    }

    /// Handles a string write (`rep outs`) of `width`-byte elements at `address`: the
    /// window is resolved once and the device gets every element in one call; ignored if
    /// unclaimed.
    /// - Complexity: as ``resolve(_:)``, plus the device's work per element.
    public func writeString(_ address: UInt64, width: Int, data: UnsafeRawBufferPointer) {
        if address == lastUnclaimed { return }
        if let (device, offset) = resolve(address) {
            device.writeString(offset: offset, width: width, data: data)
            return
        }
        report(UnclaimedAccess(address: address, width: width, kind: .write))
    }

    /// Handles a string read (`rep ins`) of `width`-byte elements at `address` into
    /// `buffer`: the window is resolved once and the device fills every element in one
    /// call; all ones if unclaimed.
    /// - Complexity: as ``resolve(_:)``, plus O(buffer.count).
    public func readString(_ address: UInt64, width: Int, into buffer: UnsafeMutableRawBufferPointer) {
        if address != lastUnclaimed, let (device, offset) = resolve(address) {
            device.readString(offset: offset, width: width, into: buffer)
            return
        }
        if address != lastUnclaimed {
            report(UnclaimedAccess(address: address, width: width, kind: .read))
        }
        buffer.initializeMemory(as: UInt8.self, repeating: 0xFF)
    }

    /// All ones in the low `width` bytes.
    @inline(__always)
    public static func mask(width: Int) -> UInt64 {
        width >= 8 ? UInt64.max : (width <= 0 ? 0 : (UInt64(1) << (UInt64(width) * 8)) - 1)
    }

    private func report(_ access: UnclaimedAccess) {
        lastUnclaimed = access.address
        guard reported.count < reportLimit, reported.insert(access.address).inserted else { return }
        var access = access
        access.isLastReport = reported.count == reportLimit
        onUnclaimed(access)
    }
}
