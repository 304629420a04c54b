/// A ``VMControl`` that answers from the machine's plan and pauses through its
/// ``PauseGate``: the resources never change after boot, so the plan is their exact state.
/// (It does not freeze device timers; the machine's own controller does.)
package final class PlanControl: VMControl {
    private let plan: MachinePlan
    private let gate: PauseGate

    /// A controller for the machine built from `plan`, pausing through `gate`.
    package init(plan: MachinePlan, gate: PauseGate) {
        self.plan = plan
        self.gate = gate
    }

    /// `GET /vm`.
    package func vmInfo() -> VMInfo {
        VMInfo(
            state: gate.isPaused ? .paused : .running, memoryBytes: plan.layout.memorySize, devices: devices(),
            memoryRegions: plan.ram.map {
                MemoryRegionInfo(id: "\($0.owner)", slot: $0.slot, base: $0.base, size: $0.size, state: "attached")
            })
    }

    /// `GET /resources`.
    package func resourcesInfo() -> ResourcesInfo { plan.resources.info }

    /// `GET /devices`: the fixed port devices, then the boot devices in plan order.
    package func devices() -> [DeviceInfo] {
        let resources = plan.resources
        let fixed: [(FixedOwner, String, UInt32?)] = [(.com1, "uart", ResourceManager.com1GSI), (.exitPort, "exit-port", nil)]
        var list = fixed.compactMap { entry -> DeviceInfo? in
            let (owner, kind, gsi) = entry
            return resources.ports(of: owner).map {
                DeviceInfo(
                    id: owner.rawValue, kind: kind, instance: 0, space: "port",
                    window: WindowInfo(start: $0.start, end: $0.end), gsi: gsi, state: "attached")
            }
        }
        list += plan.devices.map {
            DeviceInfo(
                id: "\($0.owner)", kind: $0.kind.rawValue, instance: $0.instance, space: "mmio",
                window: WindowInfo(start: $0.window.start, end: $0.window.end), gsi: $0.gsi, state: "attached")
        }
        return list
    }

    /// `PATCH /vm`: pauses or resumes every vCPU.
    package func setState(_ state: VMRunState) throws(ControlError) {
        switch state {
        case .paused: gate.pause()
        case .running: gate.resume()
        }
    }
}
