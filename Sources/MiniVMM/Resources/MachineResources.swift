import VMAllocator

/// Every resource of one machine — KVM memory slots, port-I/O ranges, MMIO windows and GSIs —
/// handed out by `VMAllocator` allocators at start-up, with one owner recorded per slot,
/// range and GSI (docs/guest-abi.md).
///
/// Pure value: building it touches neither KVM nor memory. The allocators are kept so the
/// run loop can look addresses up (``owner(ofMMIOAddress:)``) or hand out more later.
public struct MachineResources: Sendable {
    /// One RAM region and the KVM memory slot that maps it.
    public struct RAMRegion: Hashable, Sendable {
        /// First guest-physical address.
        public let base: UInt64
        /// Length in bytes.
        public let size: UInt64
        /// KVM memory-slot ID.
        public let slot: UInt32
        /// Owner name, `ram0`, `ram1`, ….
        public let owner: String
    }

    /// The COM1 UART's port window and interrupt.
    public struct SerialPort: Hashable, Sendable {
        /// The eight UART ports `0x3F8`–`0x3FF`.
        public let ports: RangeInclusive
        /// GSI 4 (ISA IRQ 4).
        public let gsi: UInt32
    }

    /// An MMIO device (timer or DMA console): its window, GSI and owner name.
    public struct MMIODevice: Hashable, Sendable {
        /// The device's 4 KiB register window.
        public let window: RangeInclusive
        /// The GSI (IOAPIC pin) it raises.
        public let gsi: UInt32
        /// Owner name, e.g. `timer0` or `dma-console1`.
        public let owner: String
        /// Index among devices of the same kind.
        public let instance: Int
    }

    /// A fixed range that belongs to something other than a minivmm device (in-kernel
    /// irqchip pieces, KVM's private pages).
    public struct ReservedRange: Hashable, Sendable {
        /// The range, in port or guest-physical space.
        public let range: RangeInclusive
        /// Owner name, e.g. `ioapic`.
        public let owner: String
    }

    /// The first GSI of the IOAPIC range the machine hands out.
    public static let firstGSI: UInt32 = 4
    /// COM1's GSI (ISA IRQ 4), taken before any device.
    public static let com1GSI: UInt32 = 4
    /// The first GSI a timer or DMA console can get.
    public static let firstDeviceGSI: UInt32 = 5
    /// The last IOAPIC pin.
    public static let lastGSI: UInt32 = 23
    /// How many timers and DMA consoles fit together (one GSI each).
    public static let maximumDevices = Int(lastGSI - firstDeviceGSI + 1)
    /// Size and alignment of each device's MMIO window.
    public static let deviceWindowSize: UInt64 = 0x1000

    /// COM1's ports.
    public static let com1Ports: ClosedRange<UInt64> = 0x3F8...0x3FF
    /// The exit port window.
    public static let exitPorts: ClosedRange<UInt64> = 0xF4...0xF7
    /// The in-kernel master 8259's ports.
    public static let picMasterPorts: ClosedRange<UInt64> = 0x20...0x21
    /// The in-kernel slave 8259's ports.
    public static let picSlavePorts: ClosedRange<UInt64> = 0xA0...0xA1
    /// The in-kernel 8254's ports.
    public static let pitPorts: ClosedRange<UInt64> = 0x40...0x43

    /// The RAM layout.
    public let layout: GuestMemoryLayout
    /// RAM regions with their memory slots, ascending.
    public let ramRegions: [RAMRegion]
    /// COM1.
    public let com1: SerialPort
    /// The exit port window (`0xF4`–`0xF7`).
    public let exitPort: RangeInclusive
    /// Ports of the in-kernel PIC and PIT, ascending.
    public let legacyPorts: [ReservedRange]
    /// The IOAPIC's page.
    public let ioapic: RangeInclusive
    /// The local APIC's page.
    public let localAPIC: RangeInclusive
    /// KVM's identity-map page.
    public let identityMap: RangeInclusive
    /// KVM's TSS pages.
    public let tss: RangeInclusive
    /// Timers in instance order.
    public let timers: [MMIODevice]
    /// DMA consoles in instance order.
    public let consoles: [MMIODevice]

    /// The memory-slot allocator over `0..<maxMemorySlots`, after the RAM slots were taken.
    public let memorySlots: IdAllocator
    /// The port-I/O allocator over `[0, 0xFFFF]`.
    public let ports: AddressAllocator
    /// The MMIO allocator over the 32-bit gap.
    public let mmio: AddressAllocator
    /// The GSI allocator over `4...23`.
    public let gsis: IdAllocator

    /// Owner of each taken memory slot.
    public let slotOwners: [UInt32: String]
    /// Owner of each taken port range.
    public let portOwners: [RangeInclusive: String]
    /// Owner of each taken MMIO range.
    public let mmioOwners: [RangeInclusive: String]
    /// Owner of each taken GSI.
    public let gsiOwners: [UInt32: String]

    /// Lays out a machine with `memorySize` bytes of RAM, `timers` timers and `consoles`
    /// DMA consoles, taking every resource from `VMAllocator` allocators in the order of
    /// docs/guest-abi.md.
    ///
    /// - Parameter maxMemorySlots: how many KVM memory slots the host has
    ///   (`KVM_CAP_NR_MEMSLOTS`); slot IDs come from `0..<maxMemorySlots`.
    /// - Throws: ``ResourceError/tooManyDevices(requested:available:)`` before anything else
    ///   when the devices need more GSIs than `5...23` holds; otherwise a bad memory size,
    ///   too few memory slots or too little MMIO space.
    /// - Complexity: O(d log d) for d devices.
    public init(memorySize: UInt64, timers: Int, consoles: Int, maxMemorySlots: UInt32) throws(ResourceError) {
        let gap: AddressAllocator
        do {
            gap = try AddressAllocator(
                base: GuestMemoryLayout.mmioGapStart,
                size: GuestMemoryLayout.mmioGapLastAddress - GuestMemoryLayout.mmioGapStart + 1)
        } catch {
            fatalError("the fixed MMIO gap is a valid range: \(error)")
        }
        try self.init(
            memorySize: memorySize, timers: timers, consoles: consoles,
            maxMemorySlots: maxMemorySlots, mmioSpace: gap)
    }

    /// Like the public initializer, but device windows come from `mmioSpace`, which may
    /// already have allocations (tests use it to run out of MMIO space). The reserved APIC,
    /// identity-map and TSS pages must still be free in it.
    init(
        memorySize: UInt64, timers: Int, consoles: Int, maxMemorySlots: UInt32,
        mmioSpace: AddressAllocator
    ) throws(ResourceError) {
        if timers < 0 { throw .invalidDeviceCount(kind: "timers", count: timers) }
        if consoles < 0 { throw .invalidDeviceCount(kind: "consoles", count: consoles) }
        // Checked one by one first so the sum below cannot overflow.
        let available = Self.maximumDevices
        if timers > available || consoles > available || timers + consoles > available {
            let requested = timers.addingReportingOverflow(consoles)
            throw .tooManyDevices(
                requested: requested.overflow ? Int.max : requested.partialValue, available: available)
        }

        let layout = try GuestMemoryLayout(memorySize: memorySize)
        self.layout = layout

        // Memory slots: one per RAM region.
        var slotOwners: [UInt32: String] = [:]
        var ramRegions: [RAMRegion] = []
        guard maxMemorySlots >= UInt32(layout.regions.count) else {
            throw .outOfMemorySlots(needed: layout.regions.count, available: maxMemorySlots)
        }
        var slots = Self.makeIdAllocator(first: 0, last: maxMemorySlots - 1)
        for (index, region) in layout.regions.enumerated() {
            let owner = "ram\(index)"
            let slot: UInt32
            do { slot = try slots.allocateID() } catch {
                throw .outOfMemorySlots(needed: layout.regions.count, available: maxMemorySlots)
            }
            slotOwners[slot] = owner
            ramRegions.append(RAMRegion(base: region.base, size: region.size, slot: slot, owner: owner))
        }
        self.memorySlots = slots
        self.slotOwners = slotOwners
        self.ramRegions = ramRegions

        // Port I/O: fixed legacy ports by exact match.
        var ports = Self.makeAddressAllocator(first: 0, last: 0xFFFF)
        var portOwners: [RangeInclusive: String] = [:]
        let pic0 = try Self.take(Self.picMasterPorts, owner: "pic-master", from: &ports, owners: &portOwners)
        let pic1 = try Self.take(Self.picSlavePorts, owner: "pic-slave", from: &ports, owners: &portOwners)
        let pit = try Self.take(Self.pitPorts, owner: "pit", from: &ports, owners: &portOwners)
        self.exitPort = try Self.take(Self.exitPorts, owner: "exit-port", from: &ports, owners: &portOwners)
        let com1Ports = try Self.take(Self.com1Ports, owner: "com1", from: &ports, owners: &portOwners)
        self.legacyPorts = [
            ReservedRange(range: pic0, owner: "pic-master"),
            ReservedRange(range: pit, owner: "pit"),
            ReservedRange(range: pic1, owner: "pic-slave"),
        ]
        self.ports = ports
        self.portOwners = portOwners

        // MMIO: reserved pages by exact match first, then one window per device.
        var mmio = mmioSpace
        var mmioOwners: [RangeInclusive: String] = [:]
        func reserve(_ base: UInt64, _ size: UInt64, _ owner: String) throws(ResourceError) -> RangeInclusive {
            try Self.take(base...(base + size - 1), owner: owner, from: &mmio, owners: &mmioOwners)
        }
        self.ioapic = try reserve(GuestMemoryLayout.ioapicAddress, GuestMemoryLayout.ioapicSize, "ioapic")
        self.localAPIC = try reserve(
            GuestMemoryLayout.localAPICAddress, GuestMemoryLayout.localAPICSize, "local-apic")
        self.identityMap = try reserve(
            GuestMemoryLayout.identityMapAddress, GuestMemoryLayout.identityMapSize, "kvm-identity-map")
        self.tss = try reserve(GuestMemoryLayout.tssAddress, GuestMemoryLayout.tssSize, "kvm-tss")

        let timerOwners = (0..<timers).map { "timer\($0)" }
        let consoleOwners = (0..<consoles).map { "dma-console\($0)" }
        var windows: [RangeInclusive] = []
        for owner in timerOwners + consoleOwners {
            let window: RangeInclusive
            do {
                window = try mmio.allocate(
                    size: Self.deviceWindowSize, alignment: Self.deviceWindowSize, policy: .firstMatch)
            } catch {
                throw .outOfMMIOSpace(owner: owner)
            }
            mmioOwners[window] = owner
            windows.append(window)
        }
        self.mmio = mmio
        self.mmioOwners = mmioOwners

        // GSIs: 4 for COM1, then one per device in the same order as the windows.
        var gsis = Self.makeIdAllocator(first: Self.firstGSI, last: Self.lastGSI)
        var gsiOwners: [UInt32: String] = [:]
        do { try gsis.allocate(id: Self.com1GSI) } catch {
            fatalError("GSI 4 is free in a new allocator: \(error)")
        }
        gsiOwners[Self.com1GSI] = "com1"
        self.com1 = SerialPort(ports: com1Ports, gsi: Self.com1GSI)
        var devices: [MMIODevice] = []
        for (index, owner) in (timerOwners + consoleOwners).enumerated() {
            let gsi: UInt32
            // The count check above makes this unreachable; keep a typed error anyway.
            do { gsi = try gsis.allocateID() } catch {
                throw .tooManyDevices(requested: timers + consoles, available: available)
            }
            gsiOwners[gsi] = owner
            let instance = index < timers ? index : index - timers
            devices.append(MMIODevice(window: windows[index], gsi: gsi, owner: owner, instance: instance))
        }
        self.gsis = gsis
        self.gsiOwners = gsiOwners
        self.timers = Array(devices[..<timers])
        self.consoles = Array(devices[timers...])
    }

    /// The owner of the MMIO allocation containing `address`, if any.
    ///
    /// - Complexity: O(log n) in the number of MMIO allocations.
    public func owner(ofMMIOAddress address: UInt64) -> String? {
        mmio.allocation(containing: address).flatMap { mmioOwners[$0] }
    }

    /// The owner of the port range containing `port`, if any.
    ///
    /// - Complexity: O(log n) in the number of port allocations.
    public func owner(ofPort port: UInt64) -> String? {
        ports.allocation(containing: port).flatMap { portOwners[$0] }
    }

    private static func take(
        _ range: ClosedRange<UInt64>, owner: String, from allocator: inout AddressAllocator,
        owners: inout [RangeInclusive: String]
    ) throws(ResourceError) -> RangeInclusive {
        let size = range.upperBound - range.lowerBound + 1
        do {
            let taken = try allocator.allocate(size: size, alignment: 1, policy: .exactMatch(range.lowerBound))
            owners[taken] = owner
            return taken
        } catch {
            throw .reservedRangeTaken(owner: owner, start: range.lowerBound, end: range.upperBound)
        }
    }

    private static func makeIdAllocator(first: UInt32, last: UInt32) -> IdAllocator {
        do { return try IdAllocator(rangeBase: first, rangeEnd: last) } catch {
            fatalError("callers pass first <= last: \(error)")
        }
    }

    private static func makeAddressAllocator(first: UInt64, last: UInt64) -> AddressAllocator {
        do { return try AddressAllocator(base: first, size: last - first + 1) } catch {
            fatalError("callers pass a valid range: \(error)")
        }
    }
}
