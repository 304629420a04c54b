/// Who holds a resource (a memory slot, a port range, an MMIO range or a GSI). Typed inside
/// the machine; rendered as text (`timer0`, `ram1`, `com1`) only at the edge, by
/// ``description``.
package enum Owner: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The RAM region in memory slot `n` (`ram0`, `ram1` for boot RAM; hot-plugged RAM
    /// continues with its own slot).
    case ram(Int)
    /// Device `instance` of `kind` (`timer0`, `dma-console1`).
    case device(DeviceKind, instance: UInt32)
    /// Something with a fixed place in the machine.
    case fixed(FixedOwner)
    /// The vCPU with this ID, which is also its local APIC ID (`cpu0`).
    case cpu(UInt32)
    /// A resource whose release the host refused: never handed out again.
    case quarantined

    /// The owner's name as users see it.
    package var description: String {
        switch self {
        case .ram(let index): "ram\(index)"
        case .device(let kind, let instance): "\(kind.rawValue)\(instance)"
        case .fixed(let owner): owner.rawValue
        case .cpu(let id): "cpu\(id)"
        case .quarantined: "quarantined"
        }
    }
}

/// Holders of the fixed resources every machine has (docs/guest-abi.md).
package enum FixedOwner: String, Hashable, Sendable, Comparable, CaseIterable {
    /// COM1, the 16550 UART.
    case com1
    /// The exit port.
    case exitPort = "exit-port"
    /// The in-kernel master 8259.
    case picMaster = "pic-master"
    /// The in-kernel slave 8259.
    case picSlave = "pic-slave"
    /// The in-kernel 8254.
    case pit
    /// The in-kernel IOAPIC.
    case ioapic
    /// The local APIC page.
    case localAPIC = "local-apic"
    /// KVM's identity-map page.
    case identityMap = "kvm-identity-map"
    /// KVM's TSS pages.
    case tss = "kvm-tss"
    /// The hot-plug controller (guest ABI version 2).
    case hotplugController = "hotplug-controller"

    package static func < (lhs: FixedOwner, rhs: FixedOwner) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}
