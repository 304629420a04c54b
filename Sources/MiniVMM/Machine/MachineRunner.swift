import KVM
import Logging
import SystemPackage

/// Runs minivmm's data flow once: plan → KVM → machine → vCPU run loops → how it ended.
/// Messages go to `logger` (stderr); stdout only carries the guest's console bytes and, for
/// `--describe`, the resource map.
package enum MachineRunner {
    /// Finishes the plan for this host, builds the machine and runs the guest; never throws
    /// and never traps on bad input. Expects ``Signals/prepareProcess()`` to have run.
    ///
    /// The signal watcher and the `--timeout` watchdog start first, so a stop request ends
    /// every phase: waiting for a FIFO image, a blocked stdout, the guest. A failure after a
    /// stop request is reported as that stop (124, or 128 + the signal number).
    package static func run(
        _ blueprint: MachinePlan.Blueprint, logger: Logger, stop: StopLatch, console: ConsoleWriter,
        input: FileDescriptor = .standardInput
    ) -> MachineEnd {
        let configuration = blueprint.configuration
        // Before KVM is opened, so a taken path is exit 64 with nothing touched.
        if let path = configuration.apiSocketPath {
            do {
                try ControlServer.checkPathAvailable(path)
            } catch {
                return report(.failed(.configuration(error)), configuration, logger, stop)
            }
        }
        let watcher: SignalWatcher
        do {
            watcher = try SignalWatcher(latch: stop)
        } catch {
            return report(.failed(.machine(MachineError(.startHostIO, .host(error)))), configuration, logger, stop)
        }
        let watchdog = configuration.timeout.map { Watchdog(timeout: $0, latch: stop) }
        defer {
            watchdog?.cancel()
            watcher.stop()
        }
        let clock = ContinuousClock()
        let start = clock.now
        var end: MachineEnd
        do throws(MinivmmFailure) {
            let host = Machine.Host(stop: stop, console: console, input: input, logger: logger)
            let machine: Machine
            if let restore = configuration.restore {
                machine = try restoreMachine(restore, configuration: configuration, host: host)
            } else {
                let (kvm, plan) = try prepare(blueprint, logger: logger)
                machine = try Machine(plan: plan, kvm: kvm, host: host)
            }
            let server = try startControlServer(configuration, machine: machine, logger: logger)
            // Stopped on every way out of run(): guest exit, crash, timeout, signal.
            defer { server?.stop() }
            if let restore = configuration.restore, !restore.startPaused {
                do throws(ControlError) { try machine.controller.setState(.running) } catch {
                    throw MinivmmFailure.machine(MachineError(.startHostIO, .inconsistent("\(error)")))
                }
            }
            let ready = clock.now
            end = machine.run()
            logger.info(
                "guest ran \(ResourceFormat.milliseconds(clock.now - ready)) ms after \(ResourceFormat.milliseconds(ready - start)) ms of set-up")
        } catch {
            end = .failed(error)
        }
        if case .failed = end, let reason = stop.reason { end = .stopped(reason) }
        return report(end, configuration, logger, stop)
    }

    /// Reads and checks the snapshot (nothing is created before it passed), opens KVM,
    /// checks the host can hold it, and builds the machine in its saved state, paused.
    private static func restoreMachine(
        _ restore: MachineConfiguration.RestoreRequest, configuration: MachineConfiguration, host: Machine.Host
    ) throws(MinivmmFailure) -> Machine {
        let chain: SnapshotChain
        let checked: CheckedSnapshot
        do {
            chain = try SnapshotChain(newest: restore.path, verifyMemory: restore.verifyMemory)
            checked = try CheckedSnapshot(chain.newest.state)
        } catch {
            throw .snapshot(error)
        }
        let kvm = try openKVM(configuration.kvmDevicePath, logger: host.logger)
        let slots = (try? kvm.maxMemorySlots()) ?? 0
        let needed = checked.resources.memorySlots.rangeEnd - checked.resources.memorySlots.rangeBase + 1
        guard UInt64(slots) >= UInt64(needed) else {
            throw .plan(.tooFewMemorySlots(needed: Int(needed), available: UInt32(clamping: slots)))
        }
        guard checked.state.machine.cpus.count <= kvm.maxVcpus() else {
            throw .plan(.tooManyCPUs(requested: checked.state.machine.cpus.count, available: kvm.maxVcpus()))
        }
        for (index, record) in checked.state.vcpus.enumerated() {
            do { try record.vcpuState.validate(on: kvm) } catch {
                throw .snapshot(.invalid(file: SnapshotFileNames.state, fieldPath: "vcpus[\(index)].registers", reason: "\(error)"))
            }
        }
        return try Machine(
            plan: MachinePlan(restoring: checked, configuration: configuration), kvm: kvm, host: host,
            restoring: RestoreInput(snapshot: checked, files: chain.baseFiles, overlays: chain.overlays, path: chain.path))
    }

    /// Starts the control API if `--api-socket` asked for it.
    private static func startControlServer(
        _ configuration: MachineConfiguration, machine: Machine, logger: Logger
    ) throws(MinivmmFailure) -> ControlServer? {
        guard let path = configuration.apiSocketPath else { return nil }
        do {
            return try ControlServer(path: path, control: machine.controller, logger: logger)
        } catch {
            switch error {
            case .pathInUse(let path): throw .configuration(.apiSocketExists(path))
            case .host(let error): throw .machine(MachineError(.startHostIO, .host(error)))
            }
        }
    }

    /// Opens the KVM device at `path` and checks what minivmm needs of it.
    private static func openKVM(_ path: String, logger: Logger) throws(MinivmmFailure) -> Kvm {
        do {
            return try kvmStep(.openKVM(path: path)) { () throws(KVMError) in
                let kvm = try Kvm(path: path)
                try kvm.requireCapabilities(KVMCapability.monitorEssentials)
                return kvm
            }
        } catch {
            throw .machine(error)
        }
    }

    /// Opens KVM and finishes the plan with the host's limits.
    private static func prepare(_ blueprint: MachinePlan.Blueprint, logger: Logger) throws(MinivmmFailure) -> (Kvm, MachinePlan) {
        let path = blueprint.configuration.kvmDevicePath
        let kvm = try openKVM(path, logger: logger)
        let slots: Int
        do {
            slots = try kvmStep(.queryHost) { () throws(KVMError) in try kvm.maxMemorySlots() }
        } catch {
            throw .machine(error)
        }
        logger.debug("opened \(path): API version 12, \(slots) memory slots")
        do {
            let limits = MachinePlan.HostLimits(memorySlots: UInt32(clamping: slots), maxVcpus: kvm.maxVcpus())
            return (kvm, try MachinePlan(blueprint, host: limits))
        } catch {
            throw .plan(error)
        }
    }

    /// Logs how the run ended (one line unless the run loop already said more), releases
    /// anything still waiting on the latch, and returns `end`.
    private static func report(
        _ end: MachineEnd, _ configuration: MachineConfiguration, _ logger: Logger, _ stop: StopLatch
    ) -> MachineEnd {
        switch end {
        case .stopped(.timeout):
            let limit = configuration.timeout.map { " of \($0)" } ?? ""
            logger.error("--timeout\(limit) expired; machine stopped")
        case .stopped(.signal(let number)):
            logger.error("stopped by \(Signals.name(number))")
        case .failed(let failure):
            logger.error("\(failure)")
        case .guestExited, .guestFault, .stopped(.finished):
            break
        }
        logger.info("machine stopped: exit status \(ExitStatus(end).code) (\(ExitStatus(end)))")
        stop.request(.finished)
        return end
    }
}
