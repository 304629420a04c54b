import KVM
import VMAllocator

extension Machine {
    /// Creates the devices and attaches each to its allocated window: the exit port and
    /// COM1 on the port bus, timers and DMA consoles on the MMIO bus with irqfd lines.
    static func makeDevices(
        resources: MachineResources, vm: VirtualMachine, memory: GuestMemory, console: ConsoleWriter,
        exitPort: ExitPort, ports: DeviceBus, mmio: DeviceBus
    ) throws(MinivmmError) -> AttachedDevices {
        try attach(exitPort, to: resources.exitPort, on: ports)
        let serial = Serial16550(output: console, interrupt: IRQLine(vm: vm, gsi: resources.com1.gsi))
        try attach(serial, to: resources.com1.ports, on: ports)
        var timers: [TimerDevice] = []
        for timer in resources.timers {
            let device = TimerDevice(interrupt: try irqfd(vm: vm, gsi: timer.gsi, owner: timer.owner))
            timers.append(device)
            try attach(device, to: timer.window, on: mmio)
        }
        for dma in resources.consoles {
            let device = DMAConsole(
                memory: memory, output: console, interrupt: try irqfd(vm: vm, gsi: dma.gsi, owner: dma.owner))
            try attach(device, to: dma.window, on: mmio)
        }
        return AttachedDevices(serial: serial, timers: timers)
    }

    static func irqfd(vm: VirtualMachine, gsi: UInt32, owner: String) throws(MinivmmError) -> IRQFDLine {
        try kvm("irqfd for \(owner) (GSI \(gsi))") { () throws(KVMError) in try IRQFDLine(vm: vm, gsi: gsi) }
    }

    static func attach(_ device: any BusDevice, to window: RangeInclusive, on bus: DeviceBus) throws(MinivmmError) {
        do {
            try bus.attach(device, to: window)
        } catch {
            throw MinivmmError(.internalError, "cannot attach a device to \(bus.spaceName) window \(window): \(error)")
        }
    }
}

/// The devices of one machine that have background work.
struct AttachedDevices {
    /// COM1, fed from stdin.
    let serial: Serial16550
    /// The timers, whose pending expiries must be cancelled at the end.
    let timers: [TimerDevice]

    /// Cancels the timers' pending expiries.
    func shutdown() {
        for timer in timers { timer.shutdown() }
    }
}
