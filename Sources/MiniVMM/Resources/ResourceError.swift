/// Why a machine's memory layout or device resources could not be set up.
///
/// Each case describes itself in one line that can be shown to the user as is. Most cases
/// mean the user asked for a machine that cannot be built (a bad command line);
/// `outOfMemorySlots` is a host limit and `reservedRangeTaken` an internal inconsistency.
public enum ResourceError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Why a memory size was refused.
    public enum MemorySizeProblem: Hashable, Sendable {
        /// Not a multiple of the 4 KiB page size.
        case notPageMultiple
        /// Smaller than ``GuestMemoryLayout/minimumMemorySize``.
        case tooSmall
        /// Larger than ``GuestMemoryLayout/maximumMemorySize``.
        case tooLarge
    }

    /// The memory size cannot be laid out.
    case invalidMemorySize(UInt64, MemorySizeProblem)
    /// A device count was negative.
    case invalidDeviceCount(kind: String, count: Int)
    /// The devices asked for need more GSIs than the IOAPIC range has free.
    case tooManyDevices(requested: Int, available: Int)
    /// No 4 KiB window left in the 32-bit MMIO gap for the named device.
    case outOfMMIOSpace(owner: String)
    /// The RAM regions need more KVM memory slots than the host offers.
    case outOfMemorySlots(needed: Int, available: UInt32)
    /// A fixed range (legacy ports or a reserved page) could not be taken by exact match.
    case reservedRangeTaken(owner: String, start: UInt64, end: UInt64)

    /// A one-line explanation for the user.
    public var description: String {
        switch self {
        case .invalidMemorySize(let size, let problem):
            let shown = ResourceFormat.size(size)
            switch problem {
            case .notPageMultiple:
                return "memory size \(shown) is not a multiple of 4 KiB"
            case .tooSmall:
                return "memory size \(shown) is too small: at least "
                    + "\(ResourceFormat.size(GuestMemoryLayout.minimumMemorySize)) is needed"
            case .tooLarge:
                return "memory size \(shown) is too large: at most "
                    + "\(ResourceFormat.size(GuestMemoryLayout.maximumMemorySize)) is supported"
            }
        case .invalidDeviceCount(let kind, let count):
            return "the number of \(kind) must not be negative (got \(count))"
        case .tooManyDevices(let requested, let available):
            return "\(requested) devices need \(requested) interrupt lines (GSIs) but only "
                + "\(available) are available (GSIs \(MachineResources.firstDeviceGSI)"
                + "-\(MachineResources.lastGSI)); ask for at most \(available) timers and "
                + "consoles together"
        case .outOfMMIOSpace(let owner):
            return "no free 4 KiB window left in the 32-bit MMIO gap for \(owner)"
        case .outOfMemorySlots(let needed, let available):
            return "guest RAM needs \(needed) KVM memory slots but the host offers only \(available)"
        case .reservedRangeTaken(let owner, let start, let end):
            return "internal error: the fixed range \(ResourceFormat.hexRange(start, end)) for \(owner) is not free"
        }
    }
}
