import CKVM
import Glibc
import SystemPackage

/// A KVM virtual machine: its memory slots, interrupt controllers and vCPUs.
///
/// The descriptor is immutable and KVM's VM ioctls are safe to issue from several threads
/// (devices raise interrupt lines from their own threads), so a `VirtualMachine` is
/// `Sendable`. Create it with ``Kvm/createVM()``.
public final class VirtualMachine: Sendable {
    /// The VM's file descriptor, owned by this object.
    public let fileDescriptor: Int32
    /// The size of each vCPU's `kvm_run` mapping.
    let vcpuMmapSize: Int

    init(fileDescriptor: Int32, vcpuMmapSize: Int) {
        self.fileDescriptor = fileDescriptor
        self.vcpuMmapSize = vcpuMmapSize
    }

    deinit {
        close(fileDescriptor)
    }

    /// Flags for ``unsafeSetUserMemoryRegion(slot:guestAddress:size:hostAddress:flags:)``.
    public struct MemoryRegionFlags: OptionSet, Sendable {
        /// The raw `KVM_MEM_*` bits.
        public let rawValue: UInt32
        /// Creates flags from raw `KVM_MEM_*` bits.
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// `KVM_MEM_LOG_DIRTY_PAGES`: track writes for `KVM_GET_DIRTY_LOG`.
        public static let logDirtyPages = Self(rawValue: CKVM_MEM_LOG_DIRTY_PAGES)
        /// `KVM_MEM_READONLY`: guest writes exit as MMIO instead of changing memory.
        public static let readOnly = Self(rawValue: CKVM_MEM_READONLY)
    }

    /// Maps `size` bytes of host memory at `hostAddress` into guest-physical memory at
    /// `guestAddress` as memory slot `slot` (`KVM_SET_USER_MEMORY_REGION`). A size of 0
    /// deletes the slot.
    ///
    /// Unsafe: the kernel keeps `hostAddress` and lets the guest read and write the `size`
    /// bytes there for as long as the slot exists, beyond anything Swift can check. The
    /// caller guarantees they stay mapped (and are not used for anything else) until the
    /// slot is deleted or the VM is gone; ``setUserMemoryRegion(slot:guestAddress:mapping:flags:)``
    /// is the safe form. Addresses and size must be page-aligned; KVM rejects them with
    /// EINVAL otherwise.
    public func unsafeSetUserMemoryRegion(
        slot: UInt32, guestAddress: UInt64, size: UInt64, hostAddress: UnsafeMutableRawPointer?,
        flags: MemoryRegionFlags = []
    ) throws(KVMError) {
        var region = kvm_userspace_memory_region(
            slot: slot, flags: flags.rawValue, guest_phys_addr: guestAddress, memory_size: size,
            userspace_addr: UInt64(UInt(bitPattern: hostAddress)))
        try ioctl(fileDescriptor, CKVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION", &region)
    }

    /// Maps all of `mapping` at `guestAddress` as memory slot `slot`. The caller keeps
    /// `mapping` alive while the slot exists (the mapping owns the host bytes, so this is
    /// the safe form of ``unsafeSetUserMemoryRegion(slot:guestAddress:size:hostAddress:flags:)``).
    public func setUserMemoryRegion(
        slot: UInt32, guestAddress: UInt64, mapping: GuestMemoryMapping, flags: MemoryRegionFlags = []
    ) throws(KVMError) {
        try unsafeSetUserMemoryRegion(
            slot: slot, guestAddress: guestAddress, size: UInt64(mapping.size),
            hostAddress: mapping.baseAddress, flags: flags)
    }

    /// Deletes memory slot `slot` (`KVM_SET_USER_MEMORY_REGION` with size 0). When it
    /// returns, no vCPU reaches the slot's host memory any more, so its mapping may go.
    public func deleteUserMemoryRegion(slot: UInt32) throws(KVMError) {
        try unsafeSetUserMemoryRegion(slot: slot, guestAddress: 0, size: 0, hostAddress: nil)
    }

    /// Creates the in-kernel interrupt controllers: PIC pair, IOAPIC and local APICs
    /// (`KVM_CREATE_IRQCHIP`). Call before creating vCPUs.
    public func createIRQChip() throws(KVMError) {
        guard ckvm_ioctl_none(fileDescriptor, CKVM_CREATE_IRQCHIP) == 0 else {
            throw lastError("KVM_CREATE_IRQCHIP")
        }
    }

    /// Creates the in-kernel 8254 PIT (`KVM_CREATE_PIT2`); needs the irqchip first.
    /// `dummySpeaker` makes port 0x61 reads and writes harmless without a speaker device.
    public func createPIT2(dummySpeaker: Bool = true) throws(KVMError) {
        var config = kvm_pit_config()
        config.flags = dummySpeaker ? CKVM_PIT_SPEAKER_DUMMY : 0
        try ioctl(fileDescriptor, CKVM_CREATE_PIT2, "KVM_CREATE_PIT2", &config)
    }

    /// Places the three pages KVM needs for its TSS at guest-physical `address`
    /// (`KVM_SET_TSS_ADDR`); the range must not overlap guest RAM or devices.
    public func setTSSAddress(_ address: UInt64) throws(KVMError) {
        guard ckvm_ioctl_value(fileDescriptor, CKVM_SET_TSS_ADDR, UInt(address)) == 0 else {
            throw lastError("KVM_SET_TSS_ADDR")
        }
    }

    /// Places KVM's identity-map page at guest-physical `address`
    /// (`KVM_SET_IDENTITY_MAP_ADDR`); call before creating vCPUs.
    public func setIdentityMapAddress(_ address: UInt64) throws(KVMError) {
        var address = address
        try ioctl(fileDescriptor, CKVM_SET_IDENTITY_MAP_ADDR, "KVM_SET_IDENTITY_MAP_ADDR", &address)
    }

    /// Makes every ``EventFD/signal()`` on `eventFD` inject an edge on `gsi` (`KVM_IRQFD`).
    /// Needs the irqchip. The kernel holds its own reference to the eventfd.
    public func registerIRQFD(_ eventFD: EventFD, gsi: UInt32) throws(KVMError) {
        var request = kvm_irqfd()
        request.fd = UInt32(bitPattern: eventFD.fileDescriptor)
        request.gsi = gsi
        try ioctl(fileDescriptor, CKVM_IRQFD, "KVM_IRQFD", &request)
    }

    /// Undoes ``registerIRQFD(_:gsi:)`` (`KVM_IRQFD` with `KVM_IRQFD_FLAG_DEASSIGN`).
    public func unregisterIRQFD(_ eventFD: EventFD, gsi: UInt32) throws(KVMError) {
        var request = kvm_irqfd()
        request.fd = UInt32(bitPattern: eventFD.fileDescriptor)
        request.gsi = gsi
        request.flags = CKVM_IRQFD_FLAG_DEASSIGN
        try ioctl(fileDescriptor, CKVM_IRQFD, "KVM_IRQFD (deassign)", &request)
    }

    /// Drives interrupt line `irq` (a GSI) to `level` (`KVM_IRQ_LINE`); an edge is
    /// `setIRQLine(n, level: true)` followed by `setIRQLine(n, level: false)`.
    public func setIRQLine(_ irq: UInt32, level: Bool) throws(KVMError) {
        var request = kvm_irq_level()
        request.irq = irq
        request.level = level ? 1 : 0
        try ioctl(fileDescriptor, CKVM_IRQ_LINE, "KVM_IRQ_LINE", &request)
    }

    /// Creates vCPU `id` (`KVM_CREATE_VCPU`) and maps its `kvm_run` page.
    public func createVcpu(id: UInt32 = 0) throws(KVMError) -> Vcpu {
        let descriptor = ckvm_ioctl_value(fileDescriptor, CKVM_CREATE_VCPU, UInt(id))
        guard descriptor >= 0 else { throw lastError("KVM_CREATE_VCPU") }
        let page: RunPage
        do {
            page = try RunPage(vcpuDescriptor: descriptor, size: vcpuMmapSize)
        } catch {
            close(descriptor)
            throw error
        }
        return Vcpu(fileDescriptor: descriptor, runPage: page, id: id)
    }
}
