import Synchronization
import VMAllocator

/// The running machine as the control API sees it: its state, devices, RAM and resources,
/// and pause/resume. One lock serialises every request, so a reader never sees a change
/// half-applied.
final class MachineController: VMControl {
    private struct State {
        var runState = VMRunState.running
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
    }

    func vmInfo() -> VMInfo {
        state.withLock { state in
            VMInfo(
                state: state.runState, memoryBytes: plan.layout.memorySize, devices: deviceList(),
                memoryRegions: plan.ram.map(\.info))
        }
    }

    func resourcesInfo() -> ResourcesInfo {
        state.withLock { _ in deviceSet.resources.info }
    }

    func devices() -> [DeviceInfo] {
        state.withLock { _ in deviceList() }
    }

    /// Call with the lock held.
    private func deviceList() -> [DeviceInfo] {
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
                id: "\(device.owner)", kind: device.kind.rawValue, instance: device.instance, space: "mmio",
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
}
