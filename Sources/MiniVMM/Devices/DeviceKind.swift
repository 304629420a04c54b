import VMAllocator

/// The kinds of device a machine can have any number of (and, later, plug and unplug):
/// each is described once, here, and everything else — the command line, the plan, the
/// resource manager, the boot-information table, `--describe` — works from that description.
///
/// Adding a kind: write its device file (register map at the top), add a case here and its
/// ``descriptor``. See the README's "Adding a device".
package enum DeviceKind: String, CaseIterable, Hashable, Sendable, Codable, Comparable {
    /// A one-shot microsecond timer with an interrupt (Devices/TimerDevice.swift).
    case timer = "timer"
    /// A console that copies guest memory to the output (Devices/DMAConsole.swift).
    case dmaConsole = "dma-console"

    /// Everything the machine needs to know about a kind.
    package var descriptor: DeviceDescriptor {
        switch self {
        case .timer:
            DeviceDescriptor(
                name: rawValue, pluralName: "timers", windowSize: 0x1000, windowAlignment: 0x1000, needsGSI: true,
                bootKind: .timer,
                make: { parts in TimerDevice(interrupt: parts.interrupt) })
        case .dmaConsole:
            DeviceDescriptor(
                name: rawValue, pluralName: "consoles", windowSize: 0x1000, windowAlignment: 0x1000, needsGSI: true,
                bootKind: .dmaConsole,
                make: { parts in DMAConsole(memory: parts.memory, output: parts.console, interrupt: parts.interrupt) })
        }
    }

    /// Kinds in the order their boot devices are attached and listed (declaration order).
    package static func < (lhs: DeviceKind, rhs: DeviceKind) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// One device kind's description: its name, the MMIO window it needs, whether it raises an
/// interrupt, how the guest's boot-information table lists it, and how to make one.
package struct DeviceDescriptor: Sendable {
    /// The kind's name, and the prefix of its devices' names (`timer0`).
    package let name: String
    /// The plural used in messages ("timers").
    package let pluralName: String
    /// Bytes of MMIO window per device.
    package let windowSize: UInt64
    /// Alignment of the window.
    package let windowAlignment: UInt64
    /// Whether each device takes a GSI.
    package let needsGSI: Bool
    /// The boot-information entry kind.
    package let bootKind: BootInformation.Kind
    /// Makes a device from the parts the machine provides.
    package let make: @Sendable (DeviceParts) -> any BusDevice
}

/// What the machine hands a device kind's factory.
package struct DeviceParts {
    /// The device's interrupt line (an irqfd on its GSI), or a line that does nothing for a
    /// kind without a GSI.
    package var interrupt: any InterruptLine
    /// Guest RAM, for devices that do DMA.
    package var memory: any GuestMemoryReader
    /// Where console bytes go.
    package var console: any ConsoleOutput
}
