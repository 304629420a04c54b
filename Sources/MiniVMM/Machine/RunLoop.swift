import KVM
import Logging

/// What a run loop needs of a vCPU: the seam that lets tests drive ``RunLoop`` with scripted
/// exits instead of KVM.
package protocol VcpuRunning: AnyObject {
    /// The vCPU ID (also its local APIC ID).
    var id: UInt32 { get }
    /// Runs until the next exit that needs the monitor (`KVM_RUN`).
    func run() throws(KVMError) -> VcpuExit
    /// Clears a pending kick so the next `run()` enters the guest again.
    func clearKick()
    /// The registers, for crash reports.
    func stateDescription() -> String
}

extension Vcpu: VcpuRunning {}

/// One vCPU's run loop: runs the guest and dispatches each exit to the buses until the
/// guest asks to stop, crashes, or the machine's stop latch is set (by `--timeout`, a signal,
/// or another vCPU that ended the machine).
///
/// The port-I/O and MMIO paths neither allocate nor log (after the first unclaimed access
/// to an address), so the per-exit cost stays close to that of a bare C loop. Generic over
/// the vCPU so the hot path has no dynamic dispatch.
package final class RunLoop<V: VcpuRunning> {
    private let vcpu: V
    private let ports: DeviceBus
    private let mmio: DeviceBus
    private let exitPort: ExitPort
    private let stop: StopLatch
    private let pause: PauseGate?
    private let logger: Logger
    /// When the machine started running guest code, for start-up timings in debug logs.
    private let epoch: ContinuousClock.Instant

    /// A loop for `vcpu` over the machine's buses, exit port, stop latch and pause gate.
    package init(
        vcpu: V, ports: DeviceBus, mmio: DeviceBus, exitPort: ExitPort, stop: StopLatch, pause: PauseGate? = nil,
        logger: Logger, epoch: ContinuousClock.Instant = .now
    ) {
        self.epoch = epoch
        self.pause = pause
        self.vcpu = vcpu
        self.ports = ports
        self.mmio = mmio
        self.exitPort = exitPort
        self.stop = stop
        self.logger = logger
    }

    /// Runs until this vCPU is done and says how: ``MachineEnd/stopped(_:)`` when the latch
    /// stopped it, otherwise the end this vCPU saw.
    package func run() -> MachineEnd {
        defer { pause?.vcpuEnded() }
        // This vCPU's lookup caches, one per bus: locals, so no exclusivity checks per exit.
        var portCache = DeviceBus.Cache()
        var mmioCache = DeviceBus.Cache()
        // A machine may start paused (a restored one): wait before the first entry. A stop
        // releases the gate, and the kick it set makes the first KVM_RUN return at once.
        pause?.park()
        while true {
            let exit: VcpuExit
            do {
                exit = try vcpu.run()
            } catch .failed(_, .resourceTemporarilyUnavailable) {
                // An AP woken from wait-for-SIPI returns EAGAIN once: enter it again.
                logger.debug("vCPU \(vcpu.id) started by the guest \(ResourceFormat.milliseconds(ContinuousClock.now - epoch)) ms after the first guest instruction")
                continue
            } catch {
                // The runner reports failures, once.
                return .failed(.machine(MachineError(.runVcpu(vcpu.id), .kvm(error))))
            }
            switch exit {
            case .io(let access):
                handle(access, cache: &portCache)
                if let value = exitPort.requestedValue { return exitRequested(value) }
            case .mmio(let access):
                if access.isWrite {
                    mmio.write(access.address, width: access.length, value: access.value, cache: &mmioCache)
                } else {
                    access.setValue(mmio.read(access.address, width: access.length, cache: &mmioCache))
                }
            case .interrupted:
                // Clear the kick first, then look at the latch: a stop requested in between
                // leaves the kick set again, so the next run() returns at once; none is lost.
                vcpu.clearKick()
                if let reason = stop.reason { return .stopped(reason) }
                pause?.park()
            case .hlt:
                return crash("guest halted with no way to wake up (KVM_EXIT_HLT)")
            case .shutdown:
                return crash("guest shut down (triple fault)")
            case .failEntry(let reason, let cpu):
                return crash("VM entry failed on cpu \(cpu): hardware reason 0x\(String(reason, radix: 16))")
            case .internalError(let suberror, let data):
                let kind = suberror == 1 ? "emulation failure" : "suberror \(suberror)"
                let words = data.map { "0x" + String($0, radix: 16) }.joined(separator: " ")
                return crash("KVM internal error: \(kind) [\(words)]")
            case .systemEvent(let type, _):
                return crash("guest raised system event \(type) (shutdown or reset)")
            case .unknown(let reason):
                return crash("unexpected KVM exit reason \(reason)")
            }
        }
    }

    private func exitRequested(_ value: UInt64) -> MachineEnd {
        guard value <= ExitStatus.largestGuestStatus else {
            logger.error("guest wrote \(value), an exit value above \(ExitStatus.largestGuestStatus), to port 0xF4")
            return .guestFault(.exitValueTooLarge(value))
        }
        return .guestExited(UInt8(value))
    }

    /// Handles every element of a port-I/O exit, in order.
    @inline(__always)
    private func handle(_ access: PortIO, cache portCache: inout DeviceBus.Cache) {
        let port = UInt64(access.port)
        let width = access.size
        if access.count == 1 {
            // Plain IN/OUT, the common case: skip the element loop.
            if access.isWrite {
                ports.write(port, width: width, value: UInt64(access.value(at: 0)), cache: &portCache)
            } else {
                access.setValue(UInt32(truncatingIfNeeded: ports.read(port, width: width, cache: &portCache)), at: 0)
            }
            return
        }
        // String I/O: one bus lookup, and the device sees every element in one call.
        if access.isWrite {
            ports.writeString(port, width: width, data: UnsafeRawBufferPointer(access.data), cache: &portCache)
        } else {
            ports.readString(port, width: width, into: access.data, cache: &portCache)
        }
    }

    private func crash(_ reason: String) -> MachineEnd {
        logger.error("vCPU \(vcpu.id): \(reason); registers:\n\(vcpu.stateDescription())")
        return .guestFault(.crashed(vcpu: vcpu.id))
    }
}
