import Glibc
import KVM
import Synchronization
import SystemPackage

/// The guest's RAM: one anonymous `MAP_NORESERVE` host mapping per RAM region, each
/// registered with KVM as one memory slot. Boot RAM is fixed; RAM plugged in while the
/// guest runs is added and removed (while no vCPU runs) under a lock.
///
/// Every access through this type is bounds-checked against the regions. The host
/// mappings are unmapped exactly once, when the last reference goes away (devices that do
/// DMA keep the memory alive as long as they need it). The bytes themselves are shared
/// with the running guest; like real DMA, device accesses are not synchronised with it.
package final class GuestMemory: GuestMemoryReader, @unchecked Sendable {
    /// One mapped RAM region: the plan's region and the host bytes behind it.
    package struct Mapped: Sendable {
        /// The region and its memory slot.
        package let region: RAMRegion
        /// The host mapping.
        package let mapping: GuestMemoryMapping

        /// `region` backed by `mapping`.
        package init(region: RAMRegion, mapping: GuestMemoryMapping) {
            self.region = region
            self.mapping = mapping
        }
    }

    /// The boot regions in ascending guest-physical order.
    package let regions: [Mapped]
    /// Hot-plugged regions, looked up only for addresses outside boot RAM.
    private let hotplugged = Mutex<[Mapped]>([])

    /// Maps each region and registers it with `vm` as its memory slot.
    ///
    /// - Throws: ``KVMError`` from `mmap` or `KVM_SET_USER_MEMORY_REGION`; mappings made
    ///   before the failure are unmapped again.
    /// - Complexity: O(n) system calls for n regions (pages are not touched).
    package init(regions layout: [RAMRegion], vm: VirtualMachine) throws(KVMError) {
        var regions: [Mapped] = []
        for region in layout.sorted(by: { $0.base < $1.base }) {
            guard region.size <= UInt64(Int.max) else { throw .failed(operation: "mmap", errno: .invalidArgument) }
            let mapping = try GuestMemoryMapping(size: Int(region.size))
            try vm.setUserMemoryRegion(slot: region.slot, guestAddress: region.base, mapping: mapping)
            regions.append(Mapped(region: region, mapping: mapping))
        }
        self.regions = regions
    }

    /// Maps each region copy-on-write from its snapshot memory file (`files[slot]`, exactly
    /// the region's size) and registers it with `vm`: the guest sees the saved bytes, read
    /// in only when touched, so this takes the same time whatever the RAM size.
    ///
    /// - Throws: ``KVMError`` from `open`, `mmap` or `KVM_SET_USER_MEMORY_REGION`.
    /// - Complexity: O(n) system calls for n regions.
    package init(regions layout: [RAMRegion], vm: VirtualMachine, files: [UInt32: String]) throws(KVMError) {
        var regions: [Mapped] = []
        for region in layout.sorted(by: { $0.base < $1.base }) {
            let mapping = try Self.mapFile(files[region.slot], size: region.size)
            try vm.setUserMemoryRegion(slot: region.slot, guestAddress: region.base, mapping: mapping)
            regions.append(Mapped(region: region, mapping: mapping))
        }
        self.regions = regions
    }

    /// A copy-on-write mapping of `size` bytes of the file at `path`.
    package static func mapFile(_ path: String?, size: UInt64) throws(KVMError) -> GuestMemoryMapping {
        guard let path, size <= UInt64(Int.max) else { throw .failed(operation: "open", errno: .noSuchFileOrDirectory) }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .failed(operation: "open", errno: Errno(rawValue: errno)) }
        defer { close(descriptor) }
        return try GuestMemoryMapping(copyOnWriteOf: descriptor, size: Int(size))
    }

    /// The total size of boot RAM in bytes.
    package var totalSize: UInt64 { regions.reduce(0) { $0 + $1.region.size } }

    /// Adds hot-plugged RAM whose memory slot KVM already maps.
    package func insert(_ mapped: Mapped) {
        hotplugged.withLock { $0.append(mapped) }
    }

    /// Removes the hot-plugged region in `slot` after KVM deleted the slot; its host
    /// memory is unmapped when the returned value (the last reference) goes away.
    @discardableResult
    package func remove(slot: UInt32) -> Mapped? {
        hotplugged.withLock { list in
            list.firstIndex { $0.region.slot == slot }.map { list.remove(at: $0) }
        }
    }

    /// The host mapping of the region in `slot` (boot or hot-plugged).
    /// - Complexity: O(n) in the number of regions.
    package func mapping(slot: UInt32) -> Mapped? {
        regions.first { $0.region.slot == slot } ?? hotplugged.withLock { list in list.first { $0.region.slot == slot } }
    }

    /// The slots of the hot-plugged regions, ascending.
    package var hotpluggedSlots: [UInt32] {
        hotplugged.withLock { $0.map(\.region.slot).sorted() }
    }

    /// Host bytes for `[address, address + count)` if they lie inside one region. A
    /// buffer in hot-plugged RAM stays valid until the region is removed, which happens
    /// only while no vCPU runs.
    /// - Complexity: O(n) in the number of regions.
    package func hostBuffer(at address: UInt64, count: Int) -> UnsafeMutableRawBufferPointer? {
        guard count >= 0 else { return nil }
        if let mapped = regions.first(where: { $0.region.range.contains(address) }) {
            return Self.buffer(in: mapped, at: address, count: count)
        }
        return hotplugged.withLock { list in
            list.first { $0.region.range.contains(address) }.flatMap { Self.buffer(in: $0, at: address, count: count) }
        }
    }

    private static func buffer(in mapped: Mapped, at address: UInt64, count: Int) -> UnsafeMutableRawBufferPointer? {
        let offset = address - mapped.region.base
        guard UInt64(count) <= mapped.region.size - offset else { return nil }
        return UnsafeMutableRawBufferPointer(start: mapped.mapping.baseAddress + Int(offset), count: count)
    }

    /// Calls `body` with the `count` bytes at guest-physical `address` if they lie entirely
    /// inside one RAM region and returns `true`; otherwise returns `false`.
    /// - Complexity: O(1) plus `body`.
    package func withBytes(at address: UInt64, count: Int, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard let buffer = hostBuffer(at: address, count: count) else { return false }
        body(UnsafeRawBufferPointer(buffer))
        return true
    }

    /// Copies `bytes` to guest-physical `address`; returns `false` (writing nothing)
    /// unless they fit inside one region.
    /// - Complexity: O(n) in `bytes.count`.
    @discardableResult
    package func write(_ bytes: some Collection<UInt8>, at address: UInt64) -> Bool {
        guard let buffer = hostBuffer(at: address, count: bytes.count) else { return false }
        buffer.copyBytes(from: bytes)
        return true
    }

    /// Reads `count` bytes at guest-physical `address`, or `nil` unless they lie inside one region.
    /// - Complexity: O(n) in `count`.
    package func read(at address: UInt64, count: Int) -> [UInt8]? {
        guard let buffer = hostBuffer(at: address, count: count) else { return nil }
        return Array(buffer)
    }
}
