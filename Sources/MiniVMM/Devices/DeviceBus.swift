import Synchronization
import VMAllocator

/// Routes guest accesses in one address space (port I/O or MMIO) to the device whose
/// window contains the address, with the address turned into an offset in that window.
///
/// The bus holds only what the resource manager cannot: which device object answers in
/// which window. Windows come from the ``ResourceManager`` and enter the bus only through
/// ``attach(_:to:)`` when the machine attaches a device; the bus has no allocator of its own.
/// Addresses outside every attached window (in-kernel devices, reserved pages, free space)
/// are unclaimed: reads return all ones, writes are ignored, and each distinct address is
/// reported once through `onUnclaimed` (up to a limit that keeps a guest scanning the
/// address space from growing host memory).
///
/// Every vCPU thread dispatches through the same bus. One short lock covers the lookup (a
/// binary search, or one comparison when the window is the one used last); devices are
/// called outside it and synchronise their own state. After the first access to an address
/// the dispatch path does not allocate.
package final class DeviceBus: Sendable {
    /// What an unclaimed access did.
    package enum AccessKind: Hashable, Sendable {
        /// A guest read.
        case read
        /// A guest write.
        case write
    }

    /// An access that hit no device, as reported to `onUnclaimed`.
    package struct UnclaimedAccess: Hashable, Sendable {
        /// The guest address (port number or guest-physical address).
        package var address: UInt64
        /// Width in bytes.
        package var width: Int
        /// Read or write.
        package var kind: AccessKind
        /// Whether this is the last address reported: the bus stays silent after it.
        package var isLastReport: Bool = false
    }

    /// Why a device could not be attached or detached.
    package enum AttachError: Error, Hashable, Sendable {
        /// `window` overlaps a window that has a device.
        case windowTaken(RangeInclusive)
        /// No device is attached at exactly `window`.
        case notAttached(RangeInclusive)
    }

    private struct Entry {
        let start: UInt64
        let end: UInt64
        let device: any BusDevice
    }

    private struct State {
        /// Attached windows, ascending by start, never overlapping.
        var entries: [Entry] = []
        /// The last entry that resolved: repeated accesses to one device (the common case
        /// in a run loop) skip the search.
        var cached: Entry?
        /// The last unclaimed address: a guest hammering one unused port (a delay loop, a
        /// benchmark) then costs one comparison per access.
        var lastUnclaimed: UInt64?
        var reported: Set<UInt64> = []
    }

    /// The name of the space, e.g. "port" or "MMIO", for messages.
    package let spaceName: String
    private let state = Mutex(State())
    private let onUnclaimed: @Sendable (UnclaimedAccess) -> Void
    private let reportLimit: Int

    /// The default number of distinct unclaimed addresses reported per bus: every port fits.
    package static let defaultReportLimit = 65_536

    /// Creates a bus with no devices.
    ///
    /// - Parameters:
    ///   - spaceName: names the space in messages ("port", "MMIO").
    ///   - reportLimit: how many distinct addresses are remembered and reported; the report
    ///     that reaches the limit has ``UnclaimedAccess/isLastReport`` set and later
    ///     addresses are not reported, so memory stays bounded.
    ///   - onUnclaimed: called once per distinct unclaimed address, outside the bus's lock.
    package init(
        spaceName: String, reportLimit: Int = DeviceBus.defaultReportLimit,
        onUnclaimed: @escaping @Sendable (UnclaimedAccess) -> Void
    ) {
        self.spaceName = spaceName
        self.reportLimit = max(reportLimit, 1)
        self.onUnclaimed = onUnclaimed
    }

    /// Attaches `device` to `window`, which must not overlap an attached window.
    ///
    /// - Throws: ``AttachError/windowTaken(_:)``; the bus is unchanged then.
    /// - Complexity: O(n) in the number of windows.
    package func attach(_ device: any BusDevice, to window: RangeInclusive) throws(AttachError) {
        try state.withLock { state throws(AttachError) in
            let index = state.entries.firstIndex { $0.start > window.start } ?? state.entries.endIndex
            if index > 0, state.entries[index - 1].end >= window.start { throw .windowTaken(window) }
            if index < state.entries.endIndex, state.entries[index].start <= window.end { throw .windowTaken(window) }
            state.entries.insert(Entry(start: window.start, end: window.end, device: device), at: index)
            state.lastUnclaimed = nil
        }
    }

    /// Detaches the device at exactly `window` and returns it; accesses to the window are
    /// unclaimed from now on.
    ///
    /// - Throws: ``AttachError/notAttached(_:)``; the bus is unchanged then.
    /// - Complexity: O(n) in the number of windows.
    @discardableResult
    package func detach(_ window: RangeInclusive) throws(AttachError) -> any BusDevice {
        try state.withLock { state throws(AttachError) in
            guard let index = state.entries.firstIndex(where: { $0.start == window.start && $0.end == window.end })
            else { throw .notAttached(window) }
            let entry = state.entries.remove(at: index)
            if state.cached?.start == entry.start { state.cached = nil }
            return entry.device
        }
    }

    /// The attached windows, ascending.
    /// - Complexity: O(n).
    package var windows: [RangeInclusive] {
        state.withLock { state in
            state.entries.map { entry in
                // Entries are built from valid ranges.
                try! RangeInclusive(start: entry.start, end: entry.end)
            }
        }
    }

    /// The device attached at `address`'s window and the offset into it, if any.
    /// - Complexity: O(log n) in the number of windows; O(1) when the window was the
    ///   last one used.
    @inline(__always)
    package func resolve(_ address: UInt64) -> (device: any BusDevice, offset: UInt64)? {
        state.withLock { state in Self.resolve(address, in: &state) }
    }

    @inline(__always)
    private static func resolve(_ address: UInt64, in state: inout State) -> (device: any BusDevice, offset: UInt64)? {
        if let cached = state.cached, address >= cached.start, address <= cached.end {
            return (cached.device, address - cached.start)
        }
        // The last window starting at or below `address`.
        var low = 0
        var high = state.entries.count
        while low < high {
            let middle = (low + high) / 2
            if state.entries[middle].start <= address { low = middle + 1 } else { high = middle }
        }
        guard low > 0, address <= state.entries[low - 1].end else { return nil }
        let entry = state.entries[low - 1]
        state.cached = entry
        return (entry.device, address - entry.start)
    }

    /// The device for an access at `address`, or `nil` after recording an unclaimed access
    /// (reported outside the lock).
    @inline(__always)
    private func route(_ address: UInt64, width: Int, kind: AccessKind) -> (device: any BusDevice, offset: UInt64)? {
        let outcome: (target: (device: any BusDevice, offset: UInt64)?, report: UnclaimedAccess?) = state.withLock { state in
            if address == state.lastUnclaimed { return (nil, nil) }
            if let target = Self.resolve(address, in: &state) { return (target, nil) }
            state.lastUnclaimed = address
            guard state.reported.count < reportLimit, state.reported.insert(address).inserted else { return (nil, nil) }
            let access = UnclaimedAccess(
                address: address, width: width, kind: kind, isLastReport: state.reported.count == reportLimit)
            return (nil, access)
        }
        if let report = outcome.report { onUnclaimed(report) }
        return outcome.target
    }

    /// Handles a guest read of `width` bytes at `address`; all ones if unclaimed.
    /// - Complexity: as ``resolve(_:)``.
    package func read(_ address: UInt64, width: Int) -> UInt64 {
        guard let (device, offset) = route(address, width: width, kind: .read) else { return Self.mask(width: width) }
        return device.read(offset: offset, width: width) & Self.mask(width: width)
    }

    /// Handles a guest write of `width` bytes of `value` at `address`; ignored if unclaimed.
    /// - Complexity: as ``resolve(_:)``.
    package func write(_ address: UInt64, width: Int, value: UInt64) {
        guard let (device, offset) = route(address, width: width, kind: .write) else { return }
        device.write(offset: offset, width: width, value: value & Self.mask(width: width))
    }

    /// Handles a string write (`rep outs`) of `width`-byte elements at `address`: the
    /// window is resolved once and the device gets every element in one call; ignored if
    /// unclaimed.
    /// - Complexity: as ``resolve(_:)``, plus the device's work per element.
    package func writeString(_ address: UInt64, width: Int, data: UnsafeRawBufferPointer) {
        guard let (device, offset) = route(address, width: width, kind: .write) else { return }
        device.writeString(offset: offset, width: width, data: data)
    }

    /// Handles a string read (`rep ins`) of `width`-byte elements at `address` into
    /// `buffer`: the window is resolved once and the device fills every element in one
    /// call; all ones if unclaimed.
    /// - Complexity: as ``resolve(_:)``, plus O(buffer.count).
    package func readString(_ address: UInt64, width: Int, into buffer: UnsafeMutableRawBufferPointer) {
        guard let (device, offset) = route(address, width: width, kind: .read) else {
            buffer.initializeMemory(as: UInt8.self, repeating: 0xFF)
            return
        }
        device.readString(offset: offset, width: width, into: buffer)
    }

    /// All ones in the low `width` bytes.
    @inline(__always)
    package static func mask(width: Int) -> UInt64 {
        width >= 8 ? UInt64.max : (width <= 0 ? 0 : (UInt64(1) << (UInt64(width) * 8)) - 1)
    }
}
