import KVM

/// An interrupt line driven with `KVM_IRQ_LINE` (COM1's IRQ 4).
public struct IRQLine: InterruptLine {
    /// The VM whose irqchip receives the line.
    public let vm: VirtualMachine
    /// The GSI (IRQ number).
    public let gsi: UInt32

    /// A line on `gsi` of `vm`'s in-kernel irqchip.
    public init(vm: VirtualMachine, gsi: UInt32) {
        self.vm = vm
        self.gsi = gsi
    }

    /// Pulses the line: high, then low.
    public func trigger() {
        setLevel(true)
        setLevel(false)
    }

    /// Drives the line. A failing ioctl cannot be reported to the device, and KVM only
    /// fails it for a VM without an irqchip, which the machine always creates.
    public func setLevel(_ asserted: Bool) {
        try? vm.setIRQLine(gsi, level: asserted)
    }
}

/// An edge-triggered interrupt line backed by an eventfd registered as a KVM irqfd.
public struct IRQFDLine: InterruptLine {
    /// The eventfd; each signal injects one edge on the GSI.
    public let eventFD: EventFD
    /// The GSI the eventfd is registered for.
    public let gsi: UInt32

    /// Creates an eventfd and registers it with `vm` for `gsi`.
    /// - Throws: ``KVMError`` from eventfd(2) or `KVM_IRQFD`.
    public init(vm: VirtualMachine, gsi: UInt32) throws(KVMError) {
        let eventFD = try EventFD()
        try vm.registerIRQFD(eventFD, gsi: gsi)
        self.eventFD = eventFD
        self.gsi = gsi
    }

    /// Injects one edge.
    public func trigger() {
        try? eventFD.signal()
    }

    /// A rising level is an edge; a falling one does nothing (irqfds are edge-only).
    public func setLevel(_ asserted: Bool) {
        if asserted { trigger() }
    }
}
