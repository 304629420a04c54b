import Synchronization
import VMAllocator

/// The running machine as the control API sees it: its state, devices, RAM and resources,
/// and pause/resume. One lock serialises every request, so a reader never sees a change
/// half-applied.
final class MachineController: VMControl {
    private struct State {
        var runState = VMRunState.running
        /// The control API's id of each device: its owner's name for boot devices, the
        /// name given in `PUT /devices/{id}` for plugged ones.
        var ids: [Owner: String] = [:]
    }

    private let plan: MachinePlan
    private let gate: PauseGate
    // Touched only with `state`'s lock held: the lock serialises every request.
    nonisolated(unsafe) private let deviceSet: DeviceSet
    private let state = Mutex(State())

    /// A controller for the machine `plan` describes, pausing through `gate`, with the
    /// devices and resources of `devices`.
    init(plan: MachinePlan, gate: PauseGate, devices: DeviceSet) {
        self.plan = plan
        self.gate = gate
        self.deviceSet = devices
        state.withLock { state in
            for plugged in devices.devices { state.ids[plugged.resources.owner] = "\(plugged.resources.owner)" }
        }
    }

    func vmInfo() -> VMInfo {
        state.withLock { state in
            VMInfo(
                state: state.runState, memoryBytes: plan.layout.memorySize, devices: deviceList(state),
                memoryRegions: plan.ram.map(\.info))
        }
    }

    func resourcesInfo() -> ResourcesInfo {
        state.withLock { _ in deviceSet.resources.info }
    }

    func devices() -> [DeviceInfo] {
        state.withLock { state in deviceList(state) }
    }

    /// Call with the lock held.
    private func deviceList(_ state: State) -> [DeviceInfo] {
        let resources = deviceSet.resources
        var list: [DeviceInfo] = []
        for (owner, kind, gsi) in [(FixedOwner.exitPort, "exit-port", UInt32?.none), (.com1, "uart", ResourceManager.com1GSI)] {
            if let ports = resources.ports(of: owner) {
                list.append(DeviceInfo(
                    id: owner.rawValue, kind: kind, instance: 0, space: "port",
                    window: WindowInfo(start: ports.start, end: ports.end), gsi: gsi, state: "attached"))
            }
        }
        for device in deviceSet.devices.map(\.resources) {
            list.append(DeviceInfo(
                id: state.ids[device.owner] ?? "\(device.owner)", kind: device.kind.rawValue, instance: device.instance, space: "mmio",
                window: WindowInfo(start: device.window.start, end: device.window.end), gsi: device.gsi,
                state: "attached"))
        }
        return list
    }

    func setState(_ runState: VMRunState) throws(ControlError) {
        state.withLock { state in
            guard state.runState != runState else { return }
            switch runState {
            case .paused:
                gate.pause()
                for plugged in deviceSet.devices { plugged.device.suspend() }
            case .running:
                for plugged in deviceSet.devices { plugged.device.resume() }
                gate.resume()
            }
            state.runState = runState
        }
    }

    func plugDevice(id: String, kind: DeviceKind) throws(ControlError) -> DeviceInfo {
        try state.withLock { state throws(ControlError) in
            guard DeviceID.isValid(id) else {
                throw .invalid("device id '\(id)' is not 1 to 32 characters of a-z, 0-9, '_' and '-'")
            }
            guard !deviceList(state).contains(where: { $0.id == id }) else {
                throw .conflict("device id '\(id)' is in use: choose another id or delete that device first")
            }
            let taken: DeviceResources
            do throws(PlugError) {
                taken = try whilePaused(state) { () throws(PlugError) in try deviceSet.plug(kind) }
            } catch {
                throw Self.controlError(error)
            }
            state.ids[taken.owner] = id
            guard let info = deviceList(state).first(where: { $0.id == id }) else {
                throw .internalFailure("device \(id) was plugged in but is not listed")
            }
            return info
        }
    }

    func unplugDevice(id: String) throws(ControlError) {
        try state.withLock { state throws(ControlError) in
            guard let info = deviceList(state).first(where: { $0.id == id }) else {
                throw .notFound("no device '\(id)': GET /devices lists them")
            }
            guard let owner = state.ids.first(where: { $0.value == id })?.key else {
                throw .conflict("\(info.id) cannot be removed: COM1 and the exit port are part of every machine")
            }
            do throws(PlugError) {
                try whilePaused(state) { () throws(PlugError) in try deviceSet.unplug(owner) }
            } catch {
                throw Self.controlError(error)
            }
            state.ids[owner] = nil
        }
    }

    /// Runs `change` with every vCPU out of `KVM_RUN`, resuming them after if they ran.
    private func whilePaused<T>(_ state: State, _ change: () throws(PlugError) -> T) throws(PlugError) -> T {
        let running = state.runState == .running
        if running { gate.pause() }
        defer { if running { gate.resume() } }
        return try change()
    }

    private static func controlError(_ error: PlugError) -> ControlError {
        switch error {
        case .resources(.notAttached), .notPlugged: .notFound(error.description)
        case .resources: .conflict(error.description)
        case .machine: .internalFailure(error.description)
        }
    }
}
