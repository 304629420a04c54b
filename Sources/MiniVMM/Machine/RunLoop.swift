import KVM
import Logging

/// The single vCPU's run loop: runs the guest and dispatches each exit to the buses until
/// the guest asks to stop, crashes or a stop is requested (timeout or signal).
///
/// The port-I/O and MMIO paths neither allocate nor log (after the first unclaimed access
/// to an address), so the per-exit cost stays close to that of a bare C loop.
final class RunLoop {
    private let vcpu: Vcpu
    private let ports: DeviceBus
    private let mmio: DeviceBus
    private let exitPort: ExitPort
    private let stop: StopLatch
    private let logger: Logger

    init(vcpu: Vcpu, ports: DeviceBus, mmio: DeviceBus, exitPort: ExitPort, stop: StopLatch, logger: Logger) {
        self.vcpu = vcpu
        self.ports = ports
        self.mmio = mmio
        self.exitPort = exitPort
        self.stop = stop
        self.logger = logger
    }

    /// Runs until the machine stops and returns the status to exit with.
    func run() -> MinivmmExitStatus {
        while true {
            let exit: VcpuExit
            do {
                exit = try vcpu.run()
            } catch {
                return crash(.hostFailure, "KVM_RUN failed: \(error)")
            }
            switch exit {
            case .io(let access):
                handle(access)
                if let status = exitPort.requestedStatus {
                    if status == .guestCrashed {
                        logger.error("guest wrote an exit value above \(MinivmmExitStatus.largestGuestStatus) to port 0xF4")
                    }
                    return status
                }
            case .mmio(let access):
                if access.isWrite {
                    mmio.write(access.address, width: access.length, value: access.value)
                } else {
                    access.setValue(mmio.read(access.address, width: access.length))
                }
            case .interrupted:
                // Clear first, then check: a request between the two kicks again, so
                // it is seen on the next KVM_RUN at the latest; never lost.
                vcpu.clearKick()
                if let reason = stop.reason { return MachineRunner.status(for: reason) }
            case .hlt:
                return crash(.guestCrashed, "guest halted with no way to wake up (KVM_EXIT_HLT)")
            case .shutdown:
                return crash(.guestCrashed, "guest shut down (triple fault)")
            case .failEntry(let reason, let cpu):
                return crash(.guestCrashed, "VM entry failed on cpu \(cpu): hardware reason 0x\(String(reason, radix: 16))")
            case .internalError(let suberror, let data):
                let kind = suberror == 1 ? "emulation failure" : "suberror \(suberror)"
                let words = data.map { "0x" + String($0, radix: 16) }.joined(separator: " ")
                return crash(.guestCrashed, "KVM internal error: \(kind) [\(words)]")
            case .systemEvent(let type, _):
                return crash(.guestCrashed, "guest raised system event \(type) (shutdown or reset)")
            case .unknown(let reason):
                return crash(.guestCrashed, "unexpected KVM exit reason \(reason)")
            }
        }
    }

    /// Handles every element of a port-I/O exit, in order.
    @inline(__always)
    private func handle(_ access: PortIO) {
        let port = UInt64(access.port)
        let width = access.size
        if access.count == 1 {
            // Plain IN/OUT, the common case: skip the element loop.
            if access.isWrite {
                ports.write(port, width: width, value: UInt64(access.value(at: 0)))
            } else {
                access.setValue(UInt32(truncatingIfNeeded: ports.read(port, width: width)), at: 0)
            }
            return
        }
        // String I/O: one bus lookup, and the device sees every element in one call.
        if access.isWrite {
            ports.writeString(port, width: width, data: UnsafeRawBufferPointer(access.data))
        } else {
            ports.readString(port, width: width, into: access.data)
        }
    }

    private func crash(_ status: MinivmmExitStatus, _ reason: String) -> MinivmmExitStatus {
        logger.error("\(reason); vCPU state:\n\(vcpu.stateDescription())")
        return status
    }
}
