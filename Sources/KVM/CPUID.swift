import CKVM

/// One CPUID leaf as KVM describes it (`struct kvm_cpuid_entry2`): `function`, `index`,
/// `flags`, and the `eax`, `ebx`, `ecx`, `edx` results.
public typealias CPUIDEntry = kvm_cpuid_entry2

/// A heap buffer laid out as `struct kvm_cpuid2` followed by its flexible array of entries,
/// the shape `KVM_GET_SUPPORTED_CPUID` and `KVM_SET_CPUID2` expect.
struct CPUIDBuffer: ~Copyable {
    private let storage: UnsafeMutableRawPointer
    private let capacity: Int

    private static var headerSize: Int { MemoryLayout<kvm_cpuid2>.size }
    private static var entryStride: Int { MemoryLayout<kvm_cpuid_entry2>.stride }

    /// An empty buffer with room for `capacity` entries, `nent` set to `capacity`.
    init(capacity: Int) {
        self.capacity = capacity
        let byteCount = Self.headerSize + capacity * Self.entryStride
        storage = UnsafeMutableRawPointer.allocate(
            byteCount: byteCount, alignment: MemoryLayout<kvm_cpuid2>.alignment)
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
        storage.assumingMemoryBound(to: kvm_cpuid2.self).pointee.nent = UInt32(capacity)
    }

    /// A buffer holding exactly `entries`.
    init(entries: [CPUIDEntry]) {
        self.init(capacity: entries.count)
        let first = storage.advanced(by: Self.headerSize).assumingMemoryBound(to: kvm_cpuid_entry2.self)
        for (index, entry) in entries.enumerated() { first[index] = entry }
    }

    deinit {
        storage.deallocate()
    }

    /// Calls `body` with a pointer to the `kvm_cpuid2` header, for the ioctl.
    func withHeader<R>(_ body: (UnsafeMutableRawPointer) -> R) -> R {
        body(storage)
    }

    /// The entries the kernel filled in (`nent` of them, never more than the capacity).
    var entries: [CPUIDEntry] {
        let count = min(Int(storage.assumingMemoryBound(to: kvm_cpuid2.self).pointee.nent), capacity)
        let first = storage.advanced(by: Self.headerSize).assumingMemoryBound(to: kvm_cpuid_entry2.self)
        return Array(UnsafeBufferPointer(start: first, count: count))
    }
}
