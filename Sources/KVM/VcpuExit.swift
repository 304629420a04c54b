import CKVM

/// Why ``Vcpu/run()`` returned. Pointers inside (`PortIO.data`, `MMIOAccess.data`) point
/// into the vCPU's `kvm_run` page and are valid only until the next `run()`.
public enum VcpuExit {
    /// Port I/O (`KVM_EXIT_IO`), including string I/O with `count > 1`.
    case io(PortIO)
    /// A guest access to an address with no memory slot (`KVM_EXIT_MMIO`).
    case mmio(MMIOAccess)
    /// The guest executed HLT with no in-kernel LAPIC to wait in (`KVM_EXIT_HLT`).
    case hlt
    /// The guest triple-faulted or otherwise shut down (`KVM_EXIT_SHUTDOWN`).
    case shutdown
    /// VM entry failed (`KVM_EXIT_FAIL_ENTRY`), e.g. invalid guest state; `hardwareReason`
    /// is the VMX/SVM failure reason.
    case failEntry(hardwareReason: UInt64, cpu: UInt32)
    /// KVM could not continue (`KVM_EXIT_INTERNAL_ERROR`), e.g. an emulation failure
    /// (suberror 1); `data` holds the extra words KVM supplied.
    case internalError(suberror: UInt32, data: [UInt64])
    /// A system event such as shutdown or reset (`KVM_EXIT_SYSTEM_EVENT`).
    case systemEvent(type: UInt32, data: [UInt64])
    /// `KVM_RUN` returned EINTR: a signal or a ``VcpuKick`` interrupted the vCPU.
    case interrupted
    /// Any other exit reason (`KVM_EXIT_*` number), or a malformed I/O or MMIO exit.
    case unknown(reason: UInt32)
}

/// A port-I/O exit: `count` accesses of `size` bytes each to `port`.
public struct PortIO {
    /// Whether the guest reads from (`input`, IN/INS) or writes to (`output`, OUT/OUTS)
    /// the port.
    public enum Direction: Sendable, Equatable {
        /// IN or INS: the monitor fills ``PortIO/data``.
        case input
        /// OUT or OUTS: ``PortIO/data`` holds the guest's values.
        case output
    }

    /// The direction of the access.
    public let direction: Direction
    /// The port number.
    public let port: UInt16
    /// The width of each element in bytes: 1, 2 or 4.
    public let size: Int
    /// The number of elements: 1 for IN/OUT, up to the remaining `rep` count for string I/O.
    public let count: Int
    /// All `size * count` data bytes, element after element, in the `kvm_run` page. For
    /// output they hold what the guest wrote; for input the monitor must fill all of them.
    public let data: UnsafeMutableRawBufferPointer

    /// Describes a port access whose data lives in `data` (`size * count` bytes, size 1, 2
    /// or 4). ``VcpuExit`` makes these from the `kvm_run` page; monitors construct them to
    /// replay or script exits, e.g. in tests of a run loop.
    public init(direction: Direction, port: UInt16, size: Int, count: Int, data: UnsafeMutableRawBufferPointer) {
        precondition([1, 2, 4].contains(size) && count >= 1 && data.count == size * count, "malformed port access")
        self.direction = direction
        self.port = port
        self.size = size
        self.count = count
        self.data = data
    }

    /// Whether the guest writes to the port.
    public var isWrite: Bool { direction == .output }

    /// The bytes of element `index` (`0..<count`).
    public func element(_ index: Int) -> UnsafeMutableRawBufferPointer {
        precondition(index >= 0 && index < count, "port I/O element index out of range")
        return UnsafeMutableRawBufferPointer(rebasing: data[(index * size)..<((index + 1) * size)])
    }

    /// Element `index` as a little-endian value, zero-extended.
    public func value(at index: Int) -> UInt32 {
        var value: UInt32 = 0
        for (shift, byte) in element(index).enumerated() { value |= UInt32(byte) << (8 * shift) }
        return value
    }

    /// Stores the low `size` bytes of `value` (little-endian) into element `index`.
    public func setValue(_ value: UInt32, at index: Int) {
        let bytes = element(index)
        for offset in 0..<size { bytes[offset] = UInt8(truncatingIfNeeded: value >> (8 * offset)) }
    }

    /// Stores the low `size` bytes of `value` into every element (e.g. all ones for an
    /// unclaimed port).
    ///
    /// - Complexity: O(`size * count`).
    public func fill(with value: UInt32) {
        for index in 0..<count { setValue(value, at: index) }
    }
}

/// An MMIO exit: a guest access of `length` bytes at a guest-physical address no memory
/// slot covers.
public struct MMIOAccess {
    /// The guest-physical address accessed.
    public let address: UInt64
    /// The access width in bytes (1 to 8).
    public let length: Int
    /// Whether the guest writes (true) or reads (false).
    public let isWrite: Bool
    /// The `length` data bytes in the `kvm_run` page: the guest's value for a write; for a
    /// read the monitor fills them before the next run.
    public let data: UnsafeMutableRawBufferPointer

    /// Describes an MMIO access whose `length` (1 to 8) data bytes live in `data`.
    /// ``VcpuExit`` makes these from the `kvm_run` page; monitors construct them to replay or
    /// script exits.
    public init(address: UInt64, length: Int, isWrite: Bool, data: UnsafeMutableRawBufferPointer) {
        precondition((1...8).contains(length) && data.count == length, "malformed MMIO access")
        self.address = address
        self.length = length
        self.isWrite = isWrite
        self.data = data
    }

    /// The data as a little-endian value, zero-extended.
    public var value: UInt64 {
        var value: UInt64 = 0
        for (shift, byte) in data.enumerated() { value |= UInt64(byte) << (8 * shift) }
        return value
    }

    /// Stores the low `length` bytes of `value` (little-endian) as the read result.
    public func setValue(_ value: UInt64) {
        for offset in 0..<length { data[offset] = UInt8(truncatingIfNeeded: value >> (8 * offset)) }
    }
}

extension VcpuExit {
    /// Decodes the exit the kernel described in `run` after a successful `KVM_RUN`.
    init(decoding run: UnsafeMutablePointer<kvm_run>, pageSize: Int) {
        let reason = run.pointee.exit_reason
        switch Int32(bitPattern: reason) {
        case KVM_EXIT_IO:
            let io = run.pointee.io
            let size = Int(io.size)
            let count = Int(io.count)
            let offset = Int(clamping: io.data_offset)
            guard size == 1 || size == 2 || size == 4, count >= 1,
                offset >= MemoryLayout<kvm_run>.size, offset <= pageSize,
                count <= (pageSize - offset) / size
            else {
                self = .unknown(reason: reason)
                return
            }
            let data = UnsafeMutableRawBufferPointer(
                start: UnsafeMutableRawPointer(run).advanced(by: offset), count: size * count)
            self = .io(
                PortIO(
                    direction: Int32(io.direction) == CKVM_EXIT_IO_OUT ? .output : .input,
                    port: io.port, size: size, count: count, data: data))
        case KVM_EXIT_MMIO:
            let length = Int(run.pointee.mmio.len)
            guard (1...8).contains(length) else {
                self = .unknown(reason: reason)
                return
            }
            self = .mmio(
                MMIOAccess(
                    address: run.pointee.mmio.phys_addr, length: length,
                    isWrite: run.pointee.mmio.is_write != 0,
                    data: UnsafeMutableRawBufferPointer(start: ckvm_run_mmio_data(run), count: length)))
        case KVM_EXIT_HLT:
            self = .hlt
        case KVM_EXIT_SHUTDOWN:
            self = .shutdown
        case KVM_EXIT_FAIL_ENTRY:
            self = .failEntry(
                hardwareReason: run.pointee.fail_entry.hardware_entry_failure_reason,
                cpu: run.pointee.fail_entry.cpu)
        case KVM_EXIT_INTERNAL_ERROR:
            let count = min(run.pointee.internal.ndata, CKVM_RUN_INTERNAL_DATA_CAPACITY)
            self = .internalError(
                suberror: run.pointee.internal.suberror,
                data: Array(UnsafeBufferPointer(start: ckvm_run_internal_data(run), count: Int(count))))
        case KVM_EXIT_SYSTEM_EVENT:
            let count = min(run.pointee.system_event.ndata, CKVM_RUN_SYSTEM_EVENT_DATA_CAPACITY)
            self = .systemEvent(
                type: run.pointee.system_event.type,
                data: Array(UnsafeBufferPointer(start: ckvm_run_system_event_data(run), count: Int(count))))
        case KVM_EXIT_INTR:
            self = .interrupted
        default:
            self = .unknown(reason: reason)
        }
    }
}
