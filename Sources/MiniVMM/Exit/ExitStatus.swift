import KVM

/// How a run of minivmm ends: the guest's own status, a guest fault, a stop from outside,
/// or a failure before or while the machine ran.
package enum MachineEnd: Error, Hashable, Sendable {
    /// The guest wrote this status (at most 63) to the exit port.
    case guestExited(UInt8)
    /// The guest crashed or broke the ABI.
    case guestFault(GuestFault)
    /// The machine was stopped from outside (`--timeout`, a signal).
    case stopped(StopLatch.Reason)
    /// minivmm could not build or run the machine.
    case failed(MinivmmFailure)
}

/// A guest that crashed or broke the ABI; the run loop reports the details (registers, the
/// vCPU) on stderr.
package enum GuestFault: Hashable, Sendable {
    /// An exit-port value above 63.
    case exitValueTooLarge(UInt64)
    /// Triple fault, emulation failure, failed VM entry, HLT without a wake-up, a system
    /// event or an unexpected exit, on vCPU `vcpu`.
    case crashed(vcpu: UInt32)
}

/// Every failure that ends minivmm before the guest has its say, by layer; each layer's own
/// error type knows nothing of exit statuses.
package enum MinivmmFailure: Error, Hashable, Sendable, CustomStringConvertible {
    /// The command line or configuration was refused.
    case configuration(ConfigurationError)
    /// The plan could not be finished for this host.
    case plan(PlanError)
    /// The guest image could not be loaded.
    case image(ImageError)
    /// Building or running the machine failed in KVM or the host.
    case machine(MachineError)
    /// The snapshot to restore is missing, corrupt or not this minivmm's.
    case snapshot(SnapshotError)

    /// The one-line message for stderr.
    package var description: String {
        switch self {
        case .configuration(let error): error.description
        case .plan(let error): error.description
        case .image(let error): error.description
        case .machine(let error): error.description
        case .snapshot(let error): "cannot restore: \(error)"
        }
    }
}

/// The exit statuses of `minivmm`: the one place that gives each outcome its number.
///
/// `0...63` is the guest's own status from the exit port; the others follow the BSD
/// `sysexits.h` conventions, plus 76 for a guest that crashed, 124 for a timeout (the status
/// `timeout(1)` uses) and 128 + n for a stop by signal n (the shell's convention).
package struct ExitStatus: Hashable, Sendable, CustomStringConvertible {
    /// The process exit status.
    package let code: Int32

    /// Bad command line (64).
    package static let usage = ExitStatus(code: 64)
    /// Invalid guest image: empty or too large (65).
    package static let invalidImage = ExitStatus(code: 65)
    /// Guest image not found, unreadable or a directory (66).
    package static let imageNotFound = ExitStatus(code: 66)
    /// KVM unusable (69).
    package static let kvmUnavailable = ExitStatus(code: 69)
    /// A bug in minivmm (70).
    package static let internalError = ExitStatus(code: 70)
    /// The host OS refused something minivmm needs (71).
    package static let hostFailure = ExitStatus(code: 71)
    /// The guest crashed or broke the ABI (76).
    package static let guestCrashed = ExitStatus(code: 76)
    /// `--timeout` expired (124).
    package static let timeout = ExitStatus(code: 124)

    /// The largest status a guest can pass through the exit port.
    package static let largestGuestStatus: UInt64 = 63

    private init(code: Int32) {
        self.code = code
    }

    /// The status for how the run ended: the one exhaustive mapping from outcomes and errors
    /// to numbers (no `default:`, so a new case cannot slip through unmapped).
    package init(_ end: MachineEnd) {
        switch end {
        case .guestExited(let status):
            self.init(code: Int32(min(UInt64(status), Self.largestGuestStatus)))
        case .guestFault(.exitValueTooLarge), .guestFault(.crashed):
            self = .guestCrashed
        case .stopped(.timeout):
            self = .timeout
        case .stopped(.signal(let number)):
            self.init(code: 128 + number)
        case .stopped(.finished):
            // Only the machine itself requests `finished`, after its run loops have ended.
            self = .internalError
        case .failed(.configuration(.apiSocketExists)):
            // Also when bind(2) finds the path taken after KVM was opened (a race with
            // whoever created it): the user's path is the problem either way.
            self = .usage
        case .failed(.configuration):
            self = .usage
        case .failed(.plan(.tooFewMemorySlots)), .failed(.plan(.resources(.noFreeMemorySlot))):
            self = .kvmUnavailable
        case .failed(.plan(.tooManyCPUs)), .failed(.plan(.resources(.noFreeGSI))),
            .failed(.plan(.resources(.outOfMMIOSpace))), .failed(.plan(.resources(.noFreeInstance))),
            .failed(.plan(.resources(.noFreeVcpuID))), .failed(.plan(.resources(.outOfMMIOSpaceFor))):
            // outOfMMIOSpaceFor: the boot devices left no window for the hot-plug controller.
            self = .usage
        case .failed(.plan(.resources(.reservedRangeTaken))), .failed(.plan(.resources(.notAttached))),
            // Hot-plugged RAM is never planned.
            .failed(.plan(.resources(.badHotplugSize))), .failed(.plan(.resources(.noFreeHotplugSlot))),
            .failed(.plan(.resources(.outOfHotplugSpace))):
            self = .internalError
        case .failed(.image(.notFound)), .failed(.image(.unreadable)), .failed(.image(.directory)):
            self = .imageNotFound
        case .failed(.image(.empty)), .failed(.image(.tooLarge)):
            self = .invalidImage
        case .failed(.image(.stopped)):
            // The machine reports a load cut short by the latch as `.stopped(reason)`.
            self = .internalError
        case .failed(.snapshot):
            self = .invalidImage
        case .failed(.machine(let error)):
            switch error.cause {
            case .kvm(let kvm): self = kvm.meansKVMUnusable ? .kvmUnavailable : .hostFailure
            case .host: self = .hostFailure
            case .inconsistent: self = .internalError
            }
        }
    }

    /// A short name for logs.
    package var description: String {
        switch code {
        case 0...63: "guest status \(code)"
        case 64: "bad command line"
        case 65: "invalid guest image or snapshot"
        case 66: "guest image not found or unreadable"
        case 69: "KVM unavailable"
        case 70: "internal error"
        case 71: "host OS failure"
        case 76: "guest crashed"
        case 124: "timeout"
        default: "stopped by \(Signals.name(code - 128))"
        }
    }
}
