import Foundation
import Testing

@testable import MiniVMM

/// `guest/abi.h`: the guests' copy of the ABI constants, parsed.
private struct ABIHeader {
    /// Object-like `#define NAME VALUE` lines whose value is a plain number.
    var values: [String: UInt64] = [:]
    /// Object-like defines whose value is not a plain number (`(1u << 16)`), or that have none.
    var others: Set<String> = []

    static let path = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // MiniVMMTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // the repository
        .appendingPathComponent("guest/abi.h")

    static func load() throws -> ABIHeader {
        try ABIHeader(text: String(contentsOf: path, encoding: .utf8))
    }

    init(text: String) throws {
        let withoutBlockComments = text.replacing(/\/\*(.|\n)*?\*\//, with: " ")
        for line in withoutBlockComments.split(separator: "\n", omittingEmptySubsequences: true) {
            let code = line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false)[0]
            // `#define NAME(` is function-like: not a constant.
            guard let match = code.wholeMatch(of: /\s*#\s*define\s+([A-Za-z_][A-Za-z0-9_]*)(\(|\s|$)(.*)/) else {
                continue
            }
            let name = String(match.1)
            if match.2 == "(" { continue }
            let value = match.3.trimmingCharacters(in: .whitespaces)
            if let number = Self.number(value) {
                #expect(values[name] == nil, "\(name) is defined twice")
                values[name] = number
            } else {
                others.insert(name)
            }
        }
    }

    /// A C integer literal: decimal or `0x` hex, with an optional `u`/`l` suffix.
    static func number(_ text: String) -> UInt64? {
        guard let match = text.wholeMatch(of: /(0[xX][0-9A-Fa-f]+|[0-9]+)[uUlL]*/) else { return nil }
        let digits = String(match.1)
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") { return UInt64(digits.dropFirst(2), radix: 16) }
        return UInt64(digits)
    }

    /// The value of `name`, recording an issue when the header does not define it.
    func value(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) -> UInt64? {
        let value = values[name]
        if value == nil { Issue.record("guest/abi.h does not define \(name)", sourceLocation: sourceLocation) }
        return value
    }
}

/// Every `BootInformation.Kind` (the enum is not `CaseIterable`: its cases are its raw values).
private let swiftKinds: [BootInformation.Kind] = (0...UInt16.max).compactMap(BootInformation.Kind.init(rawValue:))

/// The `KIND_` name of a Swift kind: the case name in upper snake case (`dmaConsole` →
/// `DMA_CONSOLE`), with the header's abbreviations.
private func headerName(of kind: BootInformation.Kind) -> String {
    let caseName = "\(kind)"
    var snake = ""
    for (index, character) in caseName.enumerated() {
        let previous = index > 0 ? caseName[caseName.index(caseName.startIndex, offsetBy: index - 1)] : nil
        if character.isUppercase, let previous, previous.isLowercase { snake += "_" }
        snake += character.uppercased()
    }
    let abbreviations = ["LOCAL_APIC": "LAPIC"]
    return "KIND_" + (abbreviations[snake] ?? snake)
}

@Suite("guest/abi.h matches the Swift definitions")
struct GuestABIHeaderTests {
    @Test("the parser reads numbers, skips function-like macros and comments")
    func parser() throws {
        let header = try ABIHeader(text: """
            /* A comment with #define NOT_THIS 1
             * over lines. */
            #ifndef GUARD
            #define GUARD
            #define HEX 0x1F /* trailing */
            #define DEC 42 // trailing
            #define SUFFIXED 16u
            #define FUNCTION(pin) (0x10 + 2 * (pin))
            #define EXPRESSION (1u << 16)
              #  define SPACED   0XfF
            #endif
            """)
        #expect(header.values == ["HEX": 0x1F, "DEC": 42, "SUFFIXED": 16, "SPACED": 0xFF])
        #expect(header.others == ["GUARD", "EXPRESSION"])
    }

    @Test("the boot-information table's constants")
    func bootInformation() throws {
        let header = try ABIHeader.load()
        #expect(header.value("BOOTINFO_MAGIC") == UInt64(BootInformation.magic))
        #expect(header.value("BOOTINFO_VERSION") == UInt64(BootInformation.version))
        #expect(header.value("BOOTINFO_HEADER_SIZE") == UInt64(BootInformation.headerSize))
        #expect(header.value("BOOTINFO_ENTRY_SIZE") == UInt64(BootInformation.entrySize))
        #expect(header.value("BOOTINFO_NO_GSI") == UInt64(BootInformation.none))
        #expect(header.value("BOOTINFO_NO_SLOT") == UInt64(BootInformation.none))
        // The boot table's address, if the header gives it.
        for name in ["BOOTINFO_ADDRESS", "BOOTINFO_ADDR", "BOOTINFO_BASE", "BOOT_INFO"] {
            if let address = header.values[name] { #expect(address == GuestMemoryLayout.bootInfoAddress, "\(name)") }
        }
    }

    @Test("the header and entry field offsets are where the encoder writes the fields")
    func fieldOffsets() throws {
        let header = try ABIHeader.load()
        let entry = BootInformation.Entry(
            kind: .timer, instance: 0x0A0B, gsi: 0x0C0D_0E0F, base: 0x1112_1314_1516_1718, size: 0x2122_2324_2526_2728,
            memorySlot: 0x3132_3334, flags: 0x4142_4344)
        let bytes = BootInformation.encode([entry])
        func read<T: FixedWidthInteger>(_ name: String, _: T.Type, entry: Bool = false) -> T? {
            guard let offset = header.value(name) else { return nil }
            let start = Int(offset) + (entry ? BootInformation.headerSize : 0)
            return (0..<MemoryLayout<T>.size).reduce(T.zero) { $0 | T(bytes[start + $1]) << ($1 * 8) }
        }
        #expect(read("BI_MAGIC", UInt32.self) == BootInformation.magic)
        #expect(read("BI_VERSION", UInt16.self) == BootInformation.version)
        #expect(read("BI_HEADER_SIZE", UInt16.self) == UInt16(BootInformation.headerSize))
        #expect(read("BI_COUNT", UInt16.self) == 1)
        #expect(read("BI_ENTRY_SIZE", UInt16.self) == UInt16(BootInformation.entrySize))
        #expect(read("BI_TOTAL_SIZE", UInt32.self) == UInt32(bytes.count))
        #expect(read("BE_KIND", UInt16.self, entry: true) == BootInformation.Kind.timer.rawValue)
        #expect(read("BE_INSTANCE", UInt16.self, entry: true) == 0x0A0B)
        #expect(read("BE_GSI", UInt32.self, entry: true) == 0x0C0D_0E0F)
        #expect(read("BE_BASE", UInt64.self, entry: true) == 0x1112_1314_1516_1718)
        #expect(read("BE_SIZE", UInt64.self, entry: true) == 0x2122_2324_2526_2728)
        #expect(read("BE_SLOT", UInt32.self, entry: true) == 0x3132_3334)
        #expect(read("BE_FLAGS", UInt32.self, entry: true) == 0x4142_4344)
    }

    @Test("every Swift entry kind has its KIND_ define with the same value")
    func swiftKindsAreInTheHeader() throws {
        let header = try ABIHeader.load()
        #expect(swiftKinds.count >= 8)
        for kind in swiftKinds {
            #expect(header.value(headerName(of: kind)) == UInt64(kind.rawValue), "\(kind)")
        }
    }

    @Test("every KIND_ define is a Swift entry kind with the same name")
    func headerKindsAreInSwift() throws {
        let header = try ABIHeader.load()
        let defines = header.values.filter { $0.key.hasPrefix("KIND_") }
        #expect(!defines.isEmpty)
        for (name, value) in defines {
            let kind = UInt16(exactly: value).flatMap(BootInformation.Kind.init(rawValue:))
            #expect(kind != nil, "\(name) = \(value) has no BootInformation.Kind")
            if let kind { #expect(headerName(of: kind) == name) }
        }
        #expect(Set(defines.values) == Set(swiftKinds.map { UInt64($0.rawValue) }))
        #expect(header.others.filter { $0.hasPrefix("KIND_") }.isEmpty)
    }

    @Test("every device kind's boot entry kind is in the header")
    func deviceKindsAreInTheHeader() throws {
        let header = try ABIHeader.load()
        for kind in DeviceKind.allCases {
            let bootKind = kind.descriptor.bootKind
            #expect(header.value(headerName(of: bootKind)) == UInt64(bootKind.rawValue), "\(kind)")
        }
    }

    @Test("fixed ports and addresses")
    func fixedPlaces() throws {
        let header = try ABIHeader.load()
        let ports = Dictionary(uniqueKeysWithValues: ResourceManager.fixedPorts.map { ($0.owner, $0.range) })
        #expect(header.value("EXIT_PORT") == UInt64(ExitPort.port))
        #expect(header.value("EXIT_PORT") == ports[.exitPort]?.lowerBound)
        #expect(header.value("COM1_BASE") == ports[.com1]?.lowerBound)
        #expect(header.value("PIC1_DATA").map { ports[.picMaster]?.contains($0) == true } == true)
        #expect(header.value("PIC2_DATA").map { ports[.picSlave]?.contains($0) == true } == true)
        #expect(header.value("IMAGE_BASE") == GuestMemoryLayout.imageBase)
        #expect(header.value("LAPIC_BASE") == GuestMemoryLayout.localAPICAddress)
        #expect(header.value("BOOT_PAGE_TABLES") == GuestMemoryLayout.pageTablesAddress)
        #expect(header.value("AP_MAX_CPUS") == UInt64(MachineConfiguration.maximumCPUs))
    }

    @Test("the UART bits minivmm implements")
    func uart() throws {
        let header = try ABIHeader.load()
        #expect(header.value("UART_LSR_DR") == UInt64(SerialState.LSR.dataReady))
        #expect(header.value("UART_LSR_THRE") == UInt64(SerialState.LSR.transmitHoldingEmpty))
        #expect(header.value("UART_LCR_DLAB") == UInt64(SerialState.dlab))
    }

    @Test("the timer's registers and values")
    func timer() throws {
        let header = try ABIHeader.load()
        #expect(header.value("TIMER_MAGIC_VALUE") == UInt64(TimerDevice.magic))
        #expect(header.value("TIMER_MAGIC") == TimerDevice.Register.magic)
        #expect(header.value("TIMER_DELAY_US") == TimerDevice.Register.delayMicroseconds)
        #expect(header.value("TIMER_STATUS") == TimerDevice.Register.status)
        #expect(header.value("TIMER_COUNT") == TimerDevice.Register.count)
        #expect(header.value("TIMER_STATUS_FIRED") == UInt64(TimerDevice.Status.fired))
        #expect(header.value("TIMER_STATUS_ARMED") == UInt64(TimerDevice.Status.armed))
    }

    @Test("the DMA console's registers and values")
    func dmaConsole() throws {
        let header = try ABIHeader.load()
        #expect(header.value("DMA_MAGIC_VALUE") == UInt64(DMAConsole.magic))
        #expect(header.value("DMA_MAGIC") == DMAConsole.Register.magic)
        #expect(header.value("DMA_STATUS") == DMAConsole.Register.status)
        #expect(header.value("DMA_ADDR_LO") == DMAConsole.Register.addressLow)
        #expect(header.value("DMA_ADDR_HI") == DMAConsole.Register.addressHigh)
        #expect(header.value("DMA_LENGTH") == DMAConsole.Register.length)
        #expect(header.value("DMA_DOORBELL") == DMAConsole.Register.doorbell)
        #expect(header.value("DMA_CTRL") == DMAConsole.Register.control)
        #expect(header.value("DMA_WRITTEN") == DMAConsole.Register.written)
        #expect(header.value("DMA_STATUS_OK") == UInt64(DMAConsole.Status.ok))
        #expect(header.value("DMA_STATUS_BAD") == UInt64(DMAConsole.Status.badRequest))
        #expect(header.value("DMA_MAX_LENGTH") == UInt64(DMAConsole.maximumLength))
    }

    @Test("the hot-plug controller's registers, values, entry flags and RAM granule")
    func hotplugController() throws {
        let header = try ABIHeader.load()
        #expect(header.value("HOTPLUG_MAGIC_VALUE") == UInt64(HotplugController.magic))
        #expect(header.value("HOTPLUG_MAGIC") == HotplugController.Register.magic)
        #expect(header.value("HOTPLUG_GENERATION") == HotplugController.Register.generation)
        #expect(header.value("HOTPLUG_CTRL") == HotplugController.Register.control)
        #expect(header.value("HOTPLUG_STATUS") == HotplugController.Register.status)
        #expect(header.value("HOTPLUG_EJECT") == HotplugController.Register.eject)
        #expect(header.value("HOTPLUG_CTRL_NOTIFY") == UInt64(HotplugController.Control.notify))
        #expect(header.value("HOTPLUG_STATUS_CHANGED") == UInt64(HotplugController.Status.changed))
        #expect(header.value("HOTPLUG_STATUS_EJECT_ERROR") == UInt64(HotplugController.Status.ejectError))
        #expect(header.value("BE_FLAG_REMOVING") == UInt64(BootInformation.removingFlag))
        #expect(header.value("HOTPLUG_RAM_ALIGNMENT") == GuestMemoryLayout.hotplugAlignment)
        // The flags word is the entry's last: after the slot.
        #expect(header.value("BE_FLAGS") == header.value("BE_SLOT").map { $0 + 4 })
        #expect(header.value("BE_FLAGS").map { Int($0) + 4 } == BootInformation.entrySize)
    }

    /// Defines with no Swift counterpart: guest-side register maps of the in-kernel IOAPIC,
    /// local APIC and 16550 offsets (KVM and the UART's switch implement them), and the
    /// guests' own use of their RAM.
    static let guestOnly: Set<String> = [
        "UART_RBR", "UART_THR", "UART_DLL", "UART_IER", "UART_DLM", "UART_FCR", "UART_LCR", "UART_MCR", "UART_LSR",
        "UART_LCR_8N1", "IOAPIC_IOREGSEL", "IOAPIC_IOWIN", "IOAPIC_REDIR_MASKED", "LAPIC_ID", "LAPIC_ID_SHIFT",
        "LAPIC_EOI", "LAPIC_SVR", "LAPIC_SVR_ENABLE", "LAPIC_LVT_TIMER", "LAPIC_LVT_LINT0", "LAPIC_LVT_MASKED",
        "LAPIC_TIMER_INITIAL", "LAPIC_ICR_LOW", "LAPIC_ICR_HIGH", "LAPIC_ICR_DEST_SHIFT", "LAPIC_ICR_INIT",
        "LAPIC_ICR_STARTUP", "LAPIC_ICR_FIXED", "LAPIC_TIMER_DIVIDE", "LAPIC_TIMER_DIVIDE_BY_16", "AP_TRAMPOLINE",
        "AP_STACKS_BASE", "AP_STACK_SIZE", "MINIVMM_GUEST_ABI_H",
    ]

    @Test("every define is either checked against Swift above or known to be guest-only")
    func everyDefineIsAccountedFor() throws {
        let header = try ABIHeader.load()
        let checked: Set<String> = [
            "BOOTINFO_MAGIC", "BOOTINFO_VERSION", "BOOTINFO_HEADER_SIZE", "BOOTINFO_ENTRY_SIZE", "BOOTINFO_NO_GSI",
            "BOOTINFO_NO_SLOT", "BI_MAGIC", "BI_VERSION", "BI_HEADER_SIZE", "BI_COUNT", "BI_ENTRY_SIZE",
            "BI_TOTAL_SIZE", "BE_KIND", "BE_INSTANCE", "BE_GSI", "BE_BASE", "BE_SIZE", "BE_SLOT", "EXIT_PORT",
            "COM1_BASE", "PIC1_DATA", "PIC2_DATA", "IMAGE_BASE", "LAPIC_BASE", "BOOT_PAGE_TABLES", "AP_MAX_CPUS",
            "UART_LSR_DR", "UART_LSR_THRE", "UART_LCR_DLAB", "TIMER_MAGIC_VALUE", "TIMER_MAGIC", "TIMER_DELAY_US",
            "TIMER_STATUS", "TIMER_COUNT", "TIMER_STATUS_FIRED", "TIMER_STATUS_ARMED", "DMA_MAGIC_VALUE", "DMA_MAGIC",
            "DMA_STATUS", "DMA_ADDR_LO", "DMA_ADDR_HI", "DMA_LENGTH", "DMA_DOORBELL", "DMA_CTRL", "DMA_WRITTEN",
            "DMA_STATUS_OK", "DMA_STATUS_BAD", "DMA_MAX_LENGTH", "HOTPLUG_MAGIC_VALUE", "HOTPLUG_MAGIC",
            "HOTPLUG_GENERATION", "HOTPLUG_CTRL", "HOTPLUG_STATUS", "HOTPLUG_EJECT", "HOTPLUG_CTRL_NOTIFY",
            "HOTPLUG_STATUS_CHANGED", "HOTPLUG_STATUS_EJECT_ERROR", "BE_FLAG_REMOVING", "HOTPLUG_RAM_ALIGNMENT", "BE_FLAGS",
            "BOOTINFO_ADDRESS", "BOOTINFO_ADDR", "BOOTINFO_BASE",
            "BOOT_INFO",
        ]
        let kinds = Set(header.values.keys.filter { $0.hasPrefix("KIND_") })
        let unaccounted = Set(header.values.keys).union(header.others)
            .subtracting(checked).subtracting(kinds).subtracting(Self.guestOnly)
        #expect(unaccounted.isEmpty, "compare these with Swift, or list them as guest-only: \(unaccounted.sorted())")
    }
}
