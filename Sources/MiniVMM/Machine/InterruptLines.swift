import KVM

/// An interrupt line driven with `KVM_IRQ_LINE` (COM1's IRQ 4).
package struct IRQLine: InterruptLine {
    /// The VM whose irqchip receives the line.
    package let vm: VirtualMachine
    /// The GSI (IRQ number).
    package let gsi: UInt32

    /// A line on `gsi` of `vm`'s in-kernel irqchip.
    package init(vm: VirtualMachine, gsi: UInt32) {
        self.vm = vm
        self.gsi = gsi
    }

    /// Pulses the line: high, then low.
    package func trigger() {
        setLevel(true)
        setLevel(false)
    }

    /// Drives the line. A failing ioctl cannot be reported to the device, and KVM only
    /// fails it for a VM without an irqchip, which the machine always creates.
    package func setLevel(_ asserted: Bool) {
        try? vm.setIRQLine(gsi, level: asserted)
    }
}

/// An edge-triggered interrupt line backed by an eventfd registered as a KVM irqfd.
package struct IRQFDLine: ConnectedInterrupt {
    /// The eventfd; each signal injects one edge on the GSI.
    package let eventFD: EventFD
    /// The GSI the eventfd is registered for.
    package let gsi: UInt32

    /// Creates an eventfd and registers it with `vm` for `gsi`.
    /// - Throws: ``KVMError`` from eventfd(2) or `KVM_IRQFD`.
    package init(vm: VirtualMachine, gsi: UInt32) throws(KVMError) {
        let eventFD = try EventFD()
        try vm.registerIRQFD(eventFD, gsi: gsi)
        self.eventFD = eventFD
        self.gsi = gsi
    }

    /// Injects one edge.
    package func trigger() {
        try? eventFD.signal()
    }

    /// A rising level is an edge; a falling one does nothing (irqfds are edge-only).
    package func setLevel(_ asserted: Bool) {
        if asserted { trigger() }
    }
}

/// The line of a device kind that has no GSI: raising it does nothing.
package struct NoInterruptLine: InterruptLine {
    /// A line that does nothing.
    package init() {}
    /// Does nothing.
    package func trigger() {}
    /// Does nothing.
    package func setLevel(_ asserted: Bool) {}
}
