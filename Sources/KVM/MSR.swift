import CKVM
import SystemPackage

/// One model-specific register and its value (`struct kvm_msr_entry` without the reserved
/// word).
public struct MSREntry: Hashable, Sendable {
    /// The MSR number, e.g. `0xC000_0080` for EFER.
    public var index: UInt32
    /// The register's 64-bit value.
    public var value: UInt64

    /// An MSR number and its value.
    public init(index: UInt32, value: UInt64) {
        self.index = index
        self.value = value
    }
}

// `struct kvm_msrs` is a header (nmsrs, pad) followed by 16-byte `kvm_msr_entry`s
// (index, reserved, data). It is built in a [UInt64] so that every `data` word is aligned:
// word 0 is the header, entry i is words 1 + 2i (index in the low half) and 2 + 2i (data).

/// A `struct kvm_msrs` holding `indices` (values zero) as 64-bit words.
private func msrBuffer<C: Collection<UInt32>>(indices: C) -> [UInt64] {
    var words = [UInt64](repeating: 0, count: 1 + 2 * indices.count)
    words[0] = UInt64(indices.count)
    for (position, index) in indices.enumerated() { words[1 + 2 * position] = UInt64(index) }
    return words
}

extension Kvm {
    /// The MSRs KVM can save and restore for a guest on this host
    /// (`KVM_GET_MSR_INDEX_LIST`, a system ioctl: it needs the `/dev/kvm` descriptor).
    ///
    /// - Complexity: O(n) in the number of MSRs; two ioctls (one to learn the count).
    public func msrIndexList() throws(KVMError) -> [UInt32] {
        // The first call with room for nothing fails with E2BIG and reports the count.
        var capacity = 0
        while true {
            var list = [UInt32](repeating: 0, count: 1 + capacity)
            list[0] = UInt32(capacity)
            let result = list.withUnsafeMutableBytes {
                ckvm_ioctl_pointer(fileDescriptor, CKVM_GET_MSR_INDEX_LIST, $0.baseAddress)
            }
            if result == 0 { return Array(list[1...].prefix(Int(min(list[0], UInt32(capacity))))) }
            let errno = Errno(rawValue: ckvm_errno())
            // The count can only grow between the calls if a module is reloaded; give up
            // rather than loop if the kernel keeps asking for more.
            guard errno == .argListTooLong, Int(list[0]) > capacity, capacity == 0 else {
                throw .failed(operation: "KVM_GET_MSR_INDEX_LIST", errno: errno)
            }
            capacity = Int(list[0])
        }
    }
}

extension Vcpu {
    /// Reads the MSRs `indices` (`KVM_GET_MSRS`), skipping the ones KVM refuses to read
    /// (for example an MSR whose feature the guest's CPUID does not expose), so one
    /// unreadable MSR does not lose the others. The result keeps the order of `indices`.
    ///
    /// - Complexity: O(n) ioctls in the worst case (one more per refused MSR; KVM stops at
    ///   the first it refuses and the rest are read again), O(n) otherwise.
    public func getMSRs(_ indices: [UInt32]) throws(KVMError) -> [MSREntry] {
        var entries: [MSREntry] = []
        entries.reserveCapacity(indices.count)
        var start = 0
        while start < indices.count {
            var words = msrBuffer(indices: indices[start...])
            let result = words.withUnsafeMutableBytes {
                ckvm_ioctl_pointer(fileDescriptor, CKVM_GET_MSRS, $0.baseAddress)
            }
            guard result >= 0 else { throw lastError("KVM_GET_MSRS") }
            // KVM_GET_MSRS returns how many entries, from the first, it read.
            let read = min(Int(result), indices.count - start)
            for position in 0..<read {
                entries.append(MSREntry(index: indices[start + position], value: words[2 + 2 * position]))
            }
            start += read + 1  // skip the refused MSR (or finish)
        }
        return entries
    }

    /// Writes `entries` (`KVM_SET_MSRS`), in order.
    ///
    /// - Throws: ``KVMError/failed(operation:errno:)`` with the operation naming the first
    ///   MSR KVM refused (errno `EINVAL`); the MSRs before it have been written.
    /// - Complexity: O(n) in the number of entries; one ioctl.
    public func setMSRs(_ entries: [MSREntry]) throws(KVMError) {
        guard !entries.isEmpty else { return }
        var words = msrBuffer(indices: entries.map(\.index))
        for (position, entry) in entries.enumerated() { words[2 + 2 * position] = entry.value }
        let result = words.withUnsafeMutableBytes {
            ckvm_ioctl_pointer(fileDescriptor, CKVM_SET_MSRS, $0.baseAddress)
        }
        guard result >= 0 else { throw lastError("KVM_SET_MSRS") }
        // KVM_SET_MSRS returns how many entries, from the first, it wrote.
        if Int(result) < entries.count {
            let refused = "0x" + String(entries[Int(result)].index, radix: 16)
            throw .failed(operation: "KVM_SET_MSRS (MSR \(refused))", errno: .invalidArgument)
        }
    }
}
