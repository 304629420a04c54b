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
/// Every vCPU thread dispatches through the same bus, each with its own ``Cache`` of the last
/// window it used and the last unclaimed address it hit. A cache is valid while the bus's
/// generation (bumped by every attach and detach) is the one it was filled under, so the
/// common case — one device or one unused port hammered in a loop — costs one atomic load
/// and a comparison, with no lock. Otherwise one short lock covers the lookup (a binary
/// search); devices are called outside it and synchronise their own state. After the first
/// access to an address the dispatch path does not allocate.
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

    fileprivate struct Entry {
        let start: UInt64
        let end: UInt64
        let device: any BusDevice
    }

    private struct State {
        /// Attached windows, ascending by start, never overlapping.
        var entries: [Entry] = []
        var reported: Set<UInt64> = []
    }

    /// One vCPU's memory of its last lookups on a bus; owned by that vCPU's run loop.
    package struct Cache {
        /// The bus generation the fields below were filled under.
        fileprivate var generation: UInt64 = .max
        /// The last window that resolved to a device.
        fileprivate var window: Entry?
        /// The last address that hit no device.
        fileprivate var unclaimed: UInt64?

        /// An empty cache.
        package init() {}
    }

    /// The name of the space, e.g. "port" or "MMIO", for messages.
    package let spaceName: String
    private let state = Mutex(State())
    /// Bumped (under the lock) by every attach and detach: what invalidates the caches.
    private let generation = Atomic<UInt64>(0)
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
            generation.add(1, ordering: .releasing)
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
            generation.add(1, ordering: .releasing)
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
        state.withLock { state in Self.entry(at: address, in: state) }.map { ($0.device, address - $0.start) }
    }

    /// The attached entry whose window holds `address`.
    @inline(__always)
    private static func entry(at address: UInt64, in state: State) -> Entry? {
        // The last window starting at or below `address`.
        var low = 0
        var high = state.entries.count
        while low < high {
            let middle = (low + high) / 2
            if state.entries[middle].start <= address { low = middle + 1 } else { high = middle }
        }
        guard low > 0, address <= state.entries[low - 1].end else { return nil }
        return state.entries[low - 1]
    }

    /// The device for an access at `address`, or `nil` for an unclaimed one (reported
    /// outside the lock the first time). `cache` answers without the lock when it can.
    @inline(__always)
    private func route(
        _ address: UInt64, width: Int, kind: AccessKind, cache: inout Cache
    ) -> (device: any BusDevice, offset: UInt64)? {
        let current = generation.load(ordering: .acquiring)
        if cache.generation == current {
            if let window = cache.window, address >= window.start, address <= window.end {
                return (window.device, address - window.start)
            }
            if address == cache.unclaimed { return nil }
        } else {
            cache = Cache()
            cache.generation = current
        }
        let outcome: (entry: Entry?, report: UnclaimedAccess?) = state.withLock { state in
            if let entry = Self.entry(at: address, in: state) { return (entry, nil) }
            guard state.reported.count < reportLimit, state.reported.insert(address).inserted else { return (nil, nil) }
            let access = UnclaimedAccess(
                address: address, width: width, kind: kind, isLastReport: state.reported.count == reportLimit)
            return (nil, access)
        }
        if let report = outcome.report { onUnclaimed(report) }
        guard let entry = outcome.entry else {
            cache.unclaimed = address
            return nil
        }
        cache.window = entry
        return (entry.device, address - entry.start)
    }

    /// Handles a guest read of `width` bytes at `address`; all ones if unclaimed.
    /// - Complexity: O(1) when `cache` holds the window; otherwise as ``resolve(_:)``.
    package func read(_ address: UInt64, width: Int, cache: inout Cache) -> UInt64 {
        guard let (device, offset) = route(address, width: width, kind: .read, cache: &cache) else {
            return Self.mask(width: width)
        }
        return device.read(offset: offset, width: width) & Self.mask(width: width)
    }

    /// Handles a guest write of `width` bytes of `value` at `address`; ignored if unclaimed.
    /// - Complexity: O(1) when `cache` holds the window; otherwise as ``resolve(_:)``.
    package func write(_ address: UInt64, width: Int, value: UInt64, cache: inout Cache) {
        guard let (device, offset) = route(address, width: width, kind: .write, cache: &cache) else { return }
        device.write(offset: offset, width: width, value: value & Self.mask(width: width))
    }

    /// Handles a string write (`rep outs`) of `width`-byte elements at `address`: the
    /// window is resolved once and the device gets every element in one call; ignored if
    /// unclaimed.
    /// - Complexity: as ``write(_:width:value:cache:)``, plus the device's work per element.
    package func writeString(_ address: UInt64, width: Int, data: UnsafeRawBufferPointer, cache: inout Cache) {
        guard let (device, offset) = route(address, width: width, kind: .write, cache: &cache) else { return }
        device.writeString(offset: offset, width: width, data: data)
    }

    /// Handles a string read (`rep ins`) of `width`-byte elements at `address` into
    /// `buffer`: the window is resolved once and the device fills every element in one
    /// call; all ones if unclaimed.
    /// - Complexity: as ``read(_:width:cache:)``, plus O(buffer.count).
    package func readString(_ address: UInt64, width: Int, into buffer: UnsafeMutableRawBufferPointer, cache: inout Cache) {
        guard let (device, offset) = route(address, width: width, kind: .read, cache: &cache) else {
            buffer.initializeMemory(as: UInt8.self, repeating: 0xFF)
            return
        }
        device.readString(offset: offset, width: width, into: buffer)
    }

    /// ``read(_:width:cache:)`` without a cache of its own (a single access).
    package func read(_ address: UInt64, width: Int) -> UInt64 {
        var cache = Cache()
        return read(address, width: width, cache: &cache)
    }

    /// ``write(_:width:value:cache:)`` without a cache of its own (a single access).
    package func write(_ address: UInt64, width: Int, value: UInt64) {
        var cache = Cache()
        write(address, width: width, value: value, cache: &cache)
    }

    /// ``writeString(_:width:data:cache:)`` without a cache of its own.
    package func writeString(_ address: UInt64, width: Int, data: UnsafeRawBufferPointer) {
        var cache = Cache()
        writeString(address, width: width, data: data, cache: &cache)
    }

    /// ``readString(_:width:into:cache:)`` without a cache of its own.
    package func readString(_ address: UInt64, width: Int, into buffer: UnsafeMutableRawBufferPointer) {
        var cache = Cache()
        readString(address, width: width, into: buffer, cache: &cache)
    }

    /// All ones in the low `width` bytes.
    @inline(__always)
    package static func mask(width: Int) -> UInt64 {
        width >= 8 ? UInt64.max : (width <= 0 ? 0 : (UInt64(1) << (UInt64(width) * 8)) - 1)
    }
}
