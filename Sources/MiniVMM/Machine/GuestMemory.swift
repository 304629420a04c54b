import KVM

/// The guest's RAM: one anonymous `MAP_NORESERVE` host mapping per RAM region, each
/// registered with KVM as one memory slot.
///
/// Every access through this type is bounds-checked against the regions. The host
/// mappings are unmapped exactly once, when the last reference goes away (devices that do
/// DMA keep the memory alive as long as they need it). The bytes themselves are shared
/// with the running guest; like real DMA, device accesses are not synchronised with it.
public final class GuestMemory: GuestMemoryReader, @unchecked Sendable {
    /// One RAM region: where it sits in guest-physical space and the host bytes behind it.
    public struct Region: Sendable {
        /// Guest-physical address of the first byte.
        public let guestAddress: UInt64
        /// Size in bytes.
        public let size: UInt64
        /// The KVM memory-slot ID.
        public let slot: UInt32
        /// The host mapping.
        public let mapping: GuestMemoryMapping

        /// Guest-physical address of the last byte.
        public var lastAddress: UInt64 { guestAddress + size - 1 }
    }

    /// The regions in ascending guest-physical order.
    public let regions: [Region]

    /// Maps each `(guestAddress, size, slot)` region and registers it with `vm`.
    ///
    /// - Throws: ``KVMError`` from `mmap` or `KVM_SET_USER_MEMORY_REGION`; mappings made
    ///   before the failure are unmapped again.
    /// - Complexity: O(n) system calls for n regions (pages are not touched).
    public init(
        regions layout: [(guestAddress: UInt64, size: UInt64, slot: UInt32)], vm: VirtualMachine
    ) throws(KVMError) {
        var regions: [Region] = []
        for entry in layout.sorted(by: { $0.guestAddress < $1.guestAddress }) {
            guard entry.size > 0, entry.size <= UInt64(Int.max) else {
                throw .failed(operation: "mmap", errno: .invalidArgument)
            }
            let mapping = try GuestMemoryMapping(size: Int(entry.size))
            try vm.setUserMemoryRegion(
                slot: entry.slot, guestAddress: entry.guestAddress, size: entry.size, hostAddress: mapping.baseAddress)
            regions.append(Region(guestAddress: entry.guestAddress, size: entry.size, slot: entry.slot, mapping: mapping))
        }
        self.regions = regions
    }

    /// The total RAM size in bytes.
    public var totalSize: UInt64 { regions.reduce(0) { $0 + $1.size } }

    /// Host bytes for `[address, address + count)` if they lie inside one region.
    /// - Complexity: O(n) in the number of regions (at most two).
    public func hostBuffer(at address: UInt64, count: Int) -> UnsafeMutableRawBufferPointer? {
        guard count >= 0 else { return nil }
        for region in regions where address >= region.guestAddress && address <= region.lastAddress {
            let offset = address - region.guestAddress
            guard UInt64(count) <= region.size - offset else { return nil }
            return UnsafeMutableRawBufferPointer(
                start: region.mapping.baseAddress + Int(offset), count: count)
        }
        return nil
    }

    /// Calls `body` with the `count` bytes at guest-physical `address` if they lie entirely
    /// inside one RAM region and returns `true`; otherwise returns `false`.
    /// - Complexity: O(1) plus `body`.
    public func withBytes(at address: UInt64, count: Int, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard let buffer = hostBuffer(at: address, count: count) else { return false }
        body(UnsafeRawBufferPointer(buffer))
        return true
    }

    /// Copies `bytes` to guest-physical `address`; returns `false` (writing nothing)
    /// unless they fit inside one region.
    /// - Complexity: O(n) in `bytes.count`.
    @discardableResult
    public func write(_ bytes: some Collection<UInt8>, at address: UInt64) -> Bool {
        guard let buffer = hostBuffer(at: address, count: bytes.count) else { return false }
        buffer.copyBytes(from: bytes)
        return true
    }

    /// Reads `count` bytes at guest-physical `address`, or `nil` unless they lie inside one region.
    /// - Complexity: O(n) in `count`.
    public func read(at address: UInt64, count: Int) -> [UInt8]? {
        guard let buffer = hostBuffer(at: address, count: count) else { return nil }
        return Array(buffer)
    }
}
