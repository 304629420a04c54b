// KVM: a thin, safe Swift layer over the Linux KVM ioctls (in the spirit of rust-vmm's
// kvm-ioctls). Main entry points:
//
//   Kvm(path:)                      open /dev/kvm, check API version 12          (KVM.swift)
//     .checkExtension(_:) / .requireCapabilities(_:) / .maxMemorySlots / .maxVcpus
//     .supportedCPUID() / .vcpuMmapSize / .createVM()
//   VirtualMachine                  one VM                                        (VirtualMachine.swift)
//     .unsafeSetUserMemoryRegion(slot:guestAddress:size:hostAddress:flags:)
//     .createIRQChip() / .createPIT2() / .setTSSAddress(_:) / .setIdentityMapAddress(_:)
//     .registerIRQFD(_:gsi:) / .unregisterIRQFD(_:gsi:) / .setIRQLine(_:level:)
//     .createVcpu(id:)
//   Vcpu                            one vCPU and its mmapped kvm_run page         (Vcpu.swift)
//     .registers / .specialRegisters (get/set, C structs kvm_regs / kvm_sregs)
//     .setCPUID2(_:) / .run() -> VcpuExit / .kickHandle() / .clearKick()
//   VcpuExit                        typed exit: .io(PortIO) .mmio(MMIOAccess) .hlt
//                                   .shutdown .failEntry .internalError .systemEvent
//                                   .interrupted .unknown                         (VcpuExit.swift)
//   VcpuKick                        Sendable; kick() stops a running vCPU from any thread
//   EventFD                         eventfd wrapper for irqfd; signal()           (EventFD.swift)
//   GuestMemoryMapping              anonymous MAP_NORESERVE mapping for guest RAM (GuestMemoryMapping.swift)
//   KVMError                        typed errors: operation + errno, opening failures
//   KVMCapability                   KVM_CAP_* numbers with names
//
// Every descriptor and mapping is owned by exactly one object and released in its deinit.

import CKVM
import Glibc
import SystemPackage

/// An open KVM device (`/dev/kvm`): the entry point for capability queries and VM creation.
///
/// Opening checks that the path is a KVM device speaking the stable API version 12; each
/// kind of failure is its own ``KVMError`` case so the caller can say what to fix.
/// The descriptor is immutable and the KVM system ioctls are thread-safe, so a `Kvm` may
/// be shared between threads.
public final class Kvm: Sendable {
    /// The only stable KVM API version; anything else is refused.
    public static let requiredAPIVersion: Int32 = CKVM_API_VERSION

    /// The default device path.
    public static let defaultPath = "/dev/kvm"

    /// The path this device was opened from.
    public let path: String

    /// The device's file descriptor, owned by this object.
    public let fileDescriptor: Int32

    /// Opens the KVM device at `path` (read-write, close-on-exec) and checks its API version.
    ///
    /// - Throws: ``KVMError/deviceNotFound(path:)``, ``KVMError/permissionDenied(path:)``,
    ///   ``KVMError/notKVMDevice(path:)``, ``KVMError/deviceUnavailable(path:errno:)`` or
    ///   ``KVMError/unsupportedAPIVersion(path:found:)``.
    public init(path: String = Kvm.defaultPath) throws(KVMError) {
        let descriptor = ckvm_open(path, O_RDWR | O_CLOEXEC)
        guard descriptor >= 0 else {
            let errno = Errno(rawValue: ckvm_errno())
            switch errno {
            case .noSuchFileOrDirectory, .notDirectory: throw .deviceNotFound(path: path)
            case .permissionDenied, .notPermitted: throw .permissionDenied(path: path)
            default: throw .deviceUnavailable(path: path, errno: errno)
            }
        }
        let version = ckvm_ioctl_none(descriptor, CKVM_GET_API_VERSION)
        guard version >= 0 else {
            close(descriptor)
            throw .notKVMDevice(path: path)
        }
        guard version == Self.requiredAPIVersion else {
            close(descriptor)
            throw .unsupportedAPIVersion(path: path, found: version)
        }
        self.path = path
        self.fileDescriptor = descriptor
    }

    deinit {
        close(fileDescriptor)
    }

    /// The KVM API version the device reports (always 12 for an opened `Kvm`).
    public func apiVersion() throws(KVMError) -> Int32 {
        let version = ckvm_ioctl_none(fileDescriptor, CKVM_GET_API_VERSION)
        guard version >= 0 else { throw lastError("KVM_GET_API_VERSION") }
        return version
    }

    /// The `KVM_CHECK_EXTENSION` result for `capability`: 0 when unsupported, otherwise
    /// positive (some capabilities return a count, e.g. ``KVMCapability/memorySlots``).
    /// A failing query counts as unsupported.
    public func checkExtension(_ capability: KVMCapability) -> Int32 {
        max(0, ckvm_ioctl_value(fileDescriptor, CKVM_CHECK_EXTENSION, UInt(bitPattern: Int(capability.rawValue))))
    }

    /// Whether the host's KVM supports `capability`.
    public func supports(_ capability: KVMCapability) -> Bool {
        checkExtension(capability) > 0
    }

    /// Throws ``KVMError/missingCapability(_:)`` for the first capability in `capabilities`
    /// the host lacks.
    ///
    /// - Complexity: O(n) ioctls for n capabilities.
    public func requireCapabilities(_ capabilities: [KVMCapability]) throws(KVMError) {
        for capability in capabilities where !supports(capability) {
            throw .missingCapability(capability)
        }
    }

    /// The number of memory slots a VM may use (`KVM_CAP_NR_MEMSLOTS`).
    ///
    /// - Throws: ``KVMError/missingCapability(_:)`` if the host does not report it.
    public func maxMemorySlots() throws(KVMError) -> Int {
        let slots = checkExtension(.memorySlots)
        guard slots > 0 else { throw .missingCapability(.memorySlots) }
        return Int(slots)
    }

    /// The most vCPUs a VM may have: `KVM_CAP_MAX_VCPUS`, or the recommended
    /// `KVM_CAP_NR_VCPUS` on hosts that do not report the maximum (the KVM API's rule), or 4.
    public func maxVcpus() -> Int {
        let maximum = checkExtension(.maxVcpus)
        if maximum > 0 { return Int(maximum) }
        let recommended = checkExtension(.vcpus)
        return recommended > 0 ? Int(recommended) : 4
    }

    /// The size in bytes of the `kvm_run` area each vCPU maps (`KVM_GET_VCPU_MMAP_SIZE`).
    public func vcpuMmapSize() throws(KVMError) -> Int {
        let size = ckvm_ioctl_none(fileDescriptor, CKVM_GET_VCPU_MMAP_SIZE)
        guard size > 0 else {
            throw size < 0 ? lastError("KVM_GET_VCPU_MMAP_SIZE") : .failed(operation: "KVM_GET_VCPU_MMAP_SIZE", errno: .invalidArgument)
        }
        return Int(size)
    }

    /// The CPUID leaves KVM can expose to a guest on this host (`KVM_GET_SUPPORTED_CPUID`),
    /// suitable for ``Vcpu/setCPUID2(_:)``.
    ///
    /// - Complexity: O(n) in the number of leaves; retries with a larger buffer on E2BIG.
    public func supportedCPUID() throws(KVMError) -> [CPUIDEntry] {
        var capacity = 80
        while true {
            let buffer = CPUIDBuffer(capacity: capacity)
            let result = buffer.withHeader { header in
                ckvm_ioctl_pointer(fileDescriptor, CKVM_GET_SUPPORTED_CPUID, header)
            }
            if result >= 0 { return buffer.entries }
            let errno = Errno(rawValue: ckvm_errno())
            guard errno == .argListTooLong, capacity < 4096 else {
                throw .failed(operation: "KVM_GET_SUPPORTED_CPUID", errno: errno)
            }
            capacity *= 2
        }
    }

    /// Creates a virtual machine (`KVM_CREATE_VM`, default machine type).
    public func createVM() throws(KVMError) -> VirtualMachine {
        let descriptor = ckvm_ioctl_value(fileDescriptor, CKVM_CREATE_VM, 0)
        guard descriptor >= 0 else { throw lastError("KVM_CREATE_VM") }
        return VirtualMachine(fileDescriptor: descriptor, vcpuMmapSize: try vcpuMmapSizeClosingOnFailure(descriptor))
    }

    private func vcpuMmapSizeClosingOnFailure(_ vmDescriptor: Int32) throws(KVMError) -> Int {
        do {
            return try vcpuMmapSize()
        } catch {
            close(vmDescriptor)
            throw error
        }
    }
}
