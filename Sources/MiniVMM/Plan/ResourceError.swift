import VMAllocator

/// Why the resource manager could not hand out or take back a resource. Each case describes
/// itself in one line that can be shown to the user as is.
package enum ResourceError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Every KVM memory slot the host offers is taken.
    case noFreeMemorySlot(owner: Owner, available: UInt32)
    /// Every device GSI is taken.
    case noFreeGSI(owner: Owner?, available: Int)
    /// No window of the kind's size and alignment is left in the 32-bit MMIO gap.
    case outOfMMIOSpace(kind: DeviceKind)
    /// Every vCPU ID is taken.
    case noFreeVcpuID(available: Int)
    /// Every instance number of the kind is taken.
    case noFreeInstance(kind: DeviceKind)
    /// A fixed range (legacy ports, a reserved page, boot RAM) could not be taken by exact
    /// match: an internal inconsistency.
    case reservedRangeTaken(owner: Owner, start: UInt64, end: UInt64)
    /// A device to detach does not hold the resources it claims.
    case notAttached(Owner)
    /// No window left in the 32-bit MMIO gap for a fixed device.
    case outOfMMIOSpaceFor(Owner)
    /// Hot-plugged RAM must be a positive multiple of 2 MiB.
    case badHotplugSize(UInt64)
    /// Every KVM memory slot is taken, so no RAM can be plugged in.
    case noFreeHotplugSlot(available: UInt32)
    /// No free range of that size is left in the hot-plug window.
    case outOfHotplugSpace(size: UInt64, window: RangeInclusive)

    /// A one-line explanation for the user.
    package var description: String {
        switch self {
        case .noFreeMemorySlot(let owner, let available):
            return "no free KVM memory slot for \(owner): all \(available) slots the host offers are in use"
        case .noFreeGSI(let owner, let available):
            let what = owner.map { " for \($0)" } ?? ""
            return "no free GSI\(what): all \(available) device GSIs are in use"
        case .outOfMMIOSpace(let kind):
            let size = ResourceFormat.size(kind.descriptor.windowSize)
            return "no free \(size) window left in the 32-bit MMIO gap for a \(kind.rawValue)"
        case .noFreeVcpuID(let available):
            return "no free vCPU ID: all \(available) are in use"
        case .noFreeInstance(let kind):
            return "no free \(kind.rawValue) instance number"
        case .reservedRangeTaken(let owner, let start, let end):
            return "internal error: the fixed range \(ResourceFormat.hexRange(start, end)) for \(owner) is not free"
        case .notAttached(let owner):
            return "\(owner) does not hold the resources it was given"
        case .outOfMMIOSpaceFor(let owner):
            return "no free 4 KiB window left in the 32-bit MMIO gap for \(owner)"
        case .badHotplugSize(let size):
            return "hot-plugged RAM must be a positive multiple of 2 MiB, not \(size) bytes"
        case .noFreeHotplugSlot(let available):
            return "no free KVM memory slot for more RAM: all \(available) slots the host offers are in use"
        case .outOfHotplugSpace(let size, let window):
            return "no free \(ResourceFormat.size(size)) range left in the \(ResourceFormat.size(window.count)) hot-plug window \(ResourceFormat.hexRange(window.start, window.end))"
        }
    }
}
