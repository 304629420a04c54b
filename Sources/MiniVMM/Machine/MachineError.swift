import KVM

/// A failure while building or running the machine: the step that failed (typed, not a
/// string) and why. What it means for the process is decided in ``ExitStatus``.
package struct MachineError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What the machine was doing.
    package enum Step: Hashable, Sendable, CustomStringConvertible {
        /// Opening the KVM device and checking its API and capabilities.
        case openKVM(path: String)
        /// Asking KVM for its limits.
        case queryHost
        /// Creating the VM, its irqchip and PIT.
        case createVM
        /// Mapping guest RAM and registering its memory slots.
        case mapMemory
        /// Copying the GDT, page tables and boot-information table into RAM.
        case loadBootStructures
        /// Creating or configuring vCPU `id`.
        case setUpVcpu(UInt32)
        /// Creating a device's interrupt line (irqfd) or attaching it to its bus.
        case attachDevice(Owner)
        /// Registering or unregistering the irqfd of a GSI.
        case connectInterrupt(gsi: UInt32)
        /// Starting the host's helpers: the stdin pump, the watchdog.
        case startHostIO
        /// Running vCPU `id` (`KVM_RUN` failed).
        case runVcpu(UInt32)
        /// Mapping or registering hot-plugged RAM `owner`, or deleting its memory slot.
        case hotplugRAM(Owner)
        /// A hot-plug change: rewriting the table, completing a removal.
        case hotplug

        /// The step as users read it.
        package var description: String {
            switch self {
            case .openKVM(let path): "open \(path)"
            case .queryHost: "query KVM's limits"
            case .createVM: "VM set-up"
            case .mapMemory: "guest memory"
            case .loadBootStructures: "boot structures"
            case .setUpVcpu(let id): "vCPU \(id) set-up"
            case .attachDevice(let owner): "attach \(owner)"
            case .connectInterrupt(let gsi): "irqfd for GSI \(gsi)"
            case .startHostIO: "host I/O set-up"
            case .runVcpu(let id): "run vCPU \(id)"
            case .hotplugRAM(let owner): "hot-plug RAM \(owner)"
            case .hotplug: "hot-plug"
            }
        }
    }

    /// Why the step failed.
    package enum Cause: Hashable, Sendable {
        /// A KVM call failed (or KVM is unusable).
        case kvm(KVMError)
        /// A host call failed.
        case host(HostError)
        /// minivmm's own pieces disagree (a bug): what was found.
        case inconsistent(String)
    }

    /// The step that failed.
    package let step: Step
    /// Why.
    package let cause: Cause

    /// Creates an error.
    package init(_ step: Step, _ cause: Cause) {
        self.step = step
        self.cause = cause
    }

    /// One line for stderr.
    package var description: String {
        switch cause {
        case .kvm(let error) where error.meansKVMUnusable: "KVM unusable: \(error)"
        case .kvm(let error): "\(step): \(error)"
        case .host(let error): "\(step): \(error)"
        case .inconsistent(let what): "internal error in \(step): \(what)"
        }
    }
}

/// Runs `body`, turning a ``KVMError`` into a ``MachineError`` for `step`.
func kvmStep<T>(_ step: MachineError.Step, _ body: () throws(KVMError) -> T) throws(MachineError) -> T {
    do { return try body() } catch { throw MachineError(step, .kvm(error)) }
}
