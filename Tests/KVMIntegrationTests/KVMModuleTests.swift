import Foundation
import KVM
import SystemPackage
import Testing

/// Whether `/dev/kvm` can be opened here; KVM tests skip with a visible reason otherwise.
private let kvmIsUsable: Bool = (try? Kvm()) != nil
private let kvmUnusableReason: Comment = "/dev/kvm is missing or not usable by this user"

/// Guest-physical address where the real-mode test programs start.
private let codeAddress: UInt64 = 0x1000
/// Size of the test guest's RAM: 64 KiB at guest-physical 0, so 0x10000 and up is MMIO.
private let ramSize = 0x10000

/// A one-vCPU VM with 64 KiB of RAM at address 0 and `code` at 0x1000, starting in real
/// mode (``enterLongMode()`` switches to 64-bit mode before the first run).
private struct TinyGuest {
    let kvm: Kvm
    let vm: VirtualMachine
    let memory: GuestMemoryMapping
    let vcpu: Vcpu

    init(code: [UInt8]) throws {
        kvm = try Kvm()
        vm = try kvm.createVM()
        memory = try GuestMemoryMapping(size: ramSize)
        try vm.setUserMemoryRegion(slot: 0, guestAddress: 0, mapping: memory)
        memory.bytes.baseAddress!.advanced(by: Int(codeAddress)).copyMemory(from: code, byteCount: code.count)
        vcpu = try vm.createVcpu(id: 0)
        try vcpu.modifySpecialRegisters { sregs in
            sregs.cs.base = 0
            sregs.cs.selector = 0
        }
        var registers = Registers()
        registers.rip = codeAddress
        registers.rflags = 0x2
        try vcpu.setRegisters(registers)
    }

    /// Switches the vCPU to 64-bit long mode with 2 MiB identity paging of the first 2 MiB
    /// (tables at 0x4000-0x6FFF) and flat segments, still starting at 0x1000.
    func enterLongMode() throws {
        let ram = memory.bytes
        func store(_ value: UInt64, at address: Int) {
            ram.storeBytes(of: value.littleEndian, toByteOffset: address, as: UInt64.self)
        }
        store(0x5000 | 0x3, at: 0x4000)  // PML4[0] -> PDPT
        store(0x6000 | 0x3, at: 0x5000)  // PDPT[0] -> PD
        store(0x0 | 0x83, at: 0x6000)  // PD[0]: 2 MiB page at 0
        try vcpu.modifySpecialRegisters { sregs in
            var code = Segment()
            code.limit = 0xFFFF_FFFF
            code.selector = 0x08
            code.type = 0xB
            code.present = 1
            code.s = 1
            code.l = 1
            code.g = 1
            var data = code
            data.selector = 0x10
            data.type = 0x3
            data.l = 0
            data.db = 1
            sregs.cs = code
            (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data)
            sregs.cr3 = 0x4000
            sregs.cr4 = 0x20  // PAE
            sregs.cr0 = 0x8000_0033  // PG | NE | ET | MP | PE
            sregs.efer = 0x500  // LMA | LME
        }
    }

    /// Runs until the next exit, failing the test on a thrown error.
    func next() throws -> VcpuExit {
        try vcpu.run()
    }
}

/// The port-I/O exit, or a recorded failure and nil.
private func portIO(_ exit: VcpuExit, sourceLocation: SourceLocation = #_sourceLocation) -> PortIO? {
    guard case .io(let io) = exit else {
        Issue.record("expected a port-I/O exit, got \(exit)", sourceLocation: sourceLocation)
        return nil
    }
    return io
}

@Suite("KVM module", .tags(.kvm), .enabled(if: kvmIsUsable, kvmUnusableReason))
struct KVMModuleTests {
    @Test("opens /dev/kvm and reports API version 12")
    func opensDevice() throws {
        let kvm = try Kvm()
        #expect(kvm.path == "/dev/kvm")
        #expect(try kvm.apiVersion() == 12)
        #expect(Kvm.requiredAPIVersion == 12)
    }

    @Test("reports the capabilities a monitor needs and a memory-slot count")
    func capabilities() throws {
        let kvm = try Kvm()
        try kvm.requireCapabilities(KVMCapability.monitorEssentials)
        #expect(kvm.supports(.userMemory))
        #expect(try kvm.maxMemorySlots() >= 32)
        #expect(try kvm.vcpuMmapSize() >= 4096)
        #expect(kvm.checkExtension(KVMCapability(rawValue: 1_000_000)) == 0)
        #expect(KVMCapability.irqchip.description == "KVM_CAP_IRQCHIP")
    }

    @Test("reports supported CPUID leaves, including leaf 0")
    func supportedCPUID() throws {
        let entries = try Kvm().supportedCPUID()
        #expect(entries.count > 1)
        #expect(entries.contains { $0.function == 0 })
    }

    @Test("a missing device path is deviceNotFound")
    func missingDevice() {
        #expect(throws: KVMError.deviceNotFound(path: "/nonexistent/kvm")) {
            try Kvm(path: "/nonexistent/kvm")
        }
        let error = KVMError.deviceNotFound(path: "/x")
        #expect(error.meansKVMUnusable)
        #expect(error.errno == .noSuchFileOrDirectory)
    }

    @Test("/dev/null opens but is not a KVM device")
    func notKVMDevice() {
        #expect(throws: KVMError.notKVMDevice(path: "/dev/null")) {
            try Kvm(path: "/dev/null")
        }
    }

    @Test("a directory is an unavailable device with its errno")
    func directoryIsUnavailable() {
        #expect(throws: KVMError.deviceUnavailable(path: "/", errno: .isDirectory)) {
            try Kvm(path: "/")
        }
    }

    @Test("opening errors explain what to fix")
    func errorDescriptions() {
        #expect(KVMError.permissionDenied(path: "/dev/kvm").description.contains("kvm group"))
        #expect(KVMError.unsupportedAPIVersion(path: "/dev/kvm", found: 11).description.contains("12"))
        #expect(KVMError.missingCapability(.irqfd).description.contains("KVM_CAP_IRQFD"))
        let failure = KVMError.failed(operation: "KVM_RUN", errno: .badFileDescriptor)
        #expect(failure.operation == "KVM_RUN")
        #expect(failure.errno == .badFileDescriptor)
        #expect(!failure.meansKVMUnusable)
    }

    @Test("a failing ioctl throws with its operation and errno instead of trapping")
    func failingIoctlThrows() throws {
        let vm = try Kvm().createVM()
        // Slot memory must be page-aligned: KVM answers EINVAL.
        #expect(throws: KVMError.failed(operation: "KVM_SET_USER_MEMORY_REGION", errno: .invalidArgument)) {
            try vm.unsafeSetUserMemoryRegion(slot: 0, guestAddress: 0x123, size: 0x1000, hostAddress: nil)
        }
        _ = try vm.createVcpu(id: 0)
        #expect(throws: KVMError.failed(operation: "KVM_CREATE_VCPU", errno: .fileExists)) {
            try vm.createVcpu(id: 0)
        }
    }

    @Test("registers round-trip through set and get")
    func registersRoundTrip() throws {
        let guest = try TinyGuest(code: [0xF4])
        try guest.vcpu.modifyRegisters { $0.rax = 0xDEAD_BEEF; $0.r15 = 42 }
        let registers = try guest.vcpu.getRegisters()
        #expect(registers.rax == 0xDEAD_BEEF)
        #expect(registers.r15 == 42)
        #expect(registers.rip == codeAddress)
        #expect(try guest.vcpu.getSpecialRegisters().cs.base == 0)
        try guest.vcpu.setCPUID2(try guest.kvm.supportedCPUID())
        #expect(guest.vcpu.stateDescription().contains("rip=0x1000"))
    }

    @Test("OUT to ports and HLT produce typed exits with their details")
    func outAndHalt() throws {
        let guest = try TinyGuest(code: [
            0xBA, 0xF8, 0x03,  // mov dx, 0x3F8
            0xB0, 0x41,  // mov al, 'A'
            0xEE,  // out dx, al
            0xB8, 0x34, 0x12,  // mov ax, 0x1234
            0xE7, 0xF4,  // out 0xF4, ax
            0xE4, 0x60,  // in al, 0x60
            0xE6, 0xF4,  // out 0xF4, al
            0xF4,  // hlt
        ])
        let first = try #require(portIO(try guest.next()))
        #expect(first.direction == .output)
        #expect(first.port == 0x3F8)
        #expect(first.size == 1)
        #expect(first.count == 1)
        #expect(first.value(at: 0) == 0x41)

        let second = try #require(portIO(try guest.next()))
        #expect(second.port == 0xF4)
        #expect(second.size == 2)
        #expect(second.value(at: 0) == 0x1234)

        let input = try #require(portIO(try guest.next()))
        #expect(input.direction == .input)
        #expect(input.port == 0x60)
        input.setValue(0xA5, at: 0)

        let echoed = try #require(portIO(try guest.next()))
        #expect(echoed.port == 0xF4)
        #expect(echoed.value(at: 0) == 0xA5)

        let last = try guest.next()
        guard case .hlt = last else {
            Issue.record("expected HLT, got \(last)")
            return
        }
        #expect(try guest.vcpu.getRegisters().rip == codeAddress + 16)
    }

    @Test("rep outsb hands over every element of the string in one exit")
    func stringOutput() throws {
        let guest = try TinyGuest(code: [
            0xBE, 0x00, 0x20,  // mov si, 0x2000
            0xB9, 0x0A, 0x00,  // mov cx, 10
            0xBA, 0xF8, 0x03,  // mov dx, 0x3F8
            0xFC,  // cld
            0xF3, 0x6E,  // rep outsb
            0xF4,  // hlt
        ])
        let message = Array("0123456789".utf8)
        guest.memory.bytes.baseAddress!.advanced(by: 0x2000).copyMemory(from: message, byteCount: message.count)
        var received: [UInt8] = []
        while true {
            let exit = try guest.next()
            if case .hlt = exit { break }
            let io = try #require(portIO(exit))
            #expect(io.port == 0x3F8 && io.size == 1 && io.isWrite)
            for index in 0..<io.count { received.append(UInt8(io.value(at: index))) }
        }
        #expect(received == message)
    }

    @Test("rep insw takes every element the monitor supplies")
    func stringInput() throws {
        let guest = try TinyGuest(code: [
            0xBF, 0x00, 0x30,  // mov di, 0x3000
            0xB9, 0x08, 0x00,  // mov cx, 8
            0xBA, 0x60, 0x00,  // mov dx, 0x60
            0xFC,  // cld
            0xF3, 0x6D,  // rep insw
            0xF4,  // hlt
        ])
        var elements = 0
        while true {
            let exit = try guest.next()
            if case .hlt = exit { break }
            let io = try #require(portIO(exit))
            #expect(io.direction == .input && io.port == 0x60 && io.size == 2)
            #expect(io.data.count == io.count * 2)
            for index in 0..<io.count {
                io.setValue(UInt32(0xA000 + elements), at: index)
                elements += 1
            }
        }
        #expect(elements == 8)
        let stored = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(guest.memory.bytes)[0x3000..<0x3010])
        let words = (0..<8).map { UInt16(stored[2 * $0]) | UInt16(stored[2 * $0 + 1]) << 8 }
        #expect(words == (0..<8).map { UInt16(0xA000 + $0) })
    }

    @Test("accesses outside every memory slot are MMIO exits, and reads take the monitor's value")
    func mmio() throws {
        let guest = try TinyGuest(code: [
            0xB8, 0x00, 0x10,  // mov ax, 0x1000
            0x8E, 0xD8,  // mov ds, ax          (ds base 0x10000: just past RAM)
            0xC6, 0x06, 0x00, 0x00, 0x5A,  // mov byte [0], 0x5A
            0xA0, 0x01, 0x00,  // mov al, [1]
            0xE6, 0xF4,  // out 0xF4, al
            0xF4,  // hlt
        ])
        guard case .mmio(let write) = try guest.next() else {
            Issue.record("expected an MMIO write")
            return
        }
        #expect(write.isWrite && write.address == 0x10000 && write.length == 1 && write.value == 0x5A)

        guard case .mmio(let read) = try guest.next() else {
            Issue.record("expected an MMIO read")
            return
        }
        #expect(!read.isWrite && read.address == 0x10001 && read.length == 1)
        read.setValue(0x77)

        let out = try #require(portIO(try guest.next()))
        #expect(out.value(at: 0) == 0x77)
    }

    @Test("a triple fault is a shutdown exit")
    func tripleFault() throws {
        // In long mode with an empty IDT, UD2 raises #UD, then #GP, #DF and the triple fault.
        let guest = try TinyGuest(code: [0xE6, 0x80, 0x0F, 0x0B])  // out 0x80, al; ud2
        try guest.enterLongMode()
        try guest.vcpu.modifySpecialRegisters { $0.idt.limit = 0 }
        #expect(portIO(try guest.next())?.port == 0x80)  // long mode runs
        let exit = try guest.next()
        guard case .shutdown = exit else {
            Issue.record("expected shutdown, got \(exit)")
            return
        }
    }

    @Test("a kick stops a spinning vCPU from another thread, and stays pending until cleared")
    func kickInterruptsSpinningGuest() throws {
        let guest = try TinyGuest(code: [0xEB, 0xFE])  // jmp $
        let kick = try guest.vcpu.kickHandle()
        let kicker = Thread {
            usleep(100_000)
            kick.kick()
        }
        kicker.start()
        let started = ContinuousClock.now
        let exit = try guest.next()
        guard case .interrupted = exit else {
            Issue.record("expected interrupted, got \(exit)")
            return
        }
        #expect(ContinuousClock.now - started >= .milliseconds(90))
        #expect(guest.vcpu.isKickPending)

        // Sticky: the next run returns at once without entering the guest.
        guard case .interrupted = try guest.next() else {
            Issue.record("a pending kick must interrupt the next run")
            return
        }

        // Cleared: the guest spins again until the next kick.
        guest.vcpu.clearKick()
        #expect(!guest.vcpu.isKickPending)
        let second = Thread {
            usleep(50_000)
            kick.kick()
        }
        second.start()
        guard case .interrupted = try guest.next() else {
            Issue.record("expected a second interruption")
            return
        }
    }

    @Test("a kick handle outlives its vCPU safely")
    func kickAfterVcpuIsGone() throws {
        var guest: TinyGuest? = try TinyGuest(code: [0xF4])
        let kick = try #require(guest).vcpu.kickHandle()
        guest = nil
        kick.kick()  // the kvm_run mapping is still owned by the handle; no thread to signal
    }

    @Test("an irqfd and an IRQ line can be registered with the in-kernel irqchip")
    func interrupts() throws {
        let vm = try Kvm().createVM()
        try vm.setTSSAddress(0xFFFB_D000)
        try vm.setIdentityMapAddress(0xFFFB_C000)
        try vm.createIRQChip()
        try vm.createPIT2()
        let event = try EventFD()
        try vm.registerIRQFD(event, gsi: 5)
        try event.signal()
        try vm.setIRQLine(4, level: true)
        try vm.setIRQLine(4, level: false)
        try vm.unregisterIRQFD(event, gsi: 5)
        _ = try vm.createVcpu(id: 0)
    }

    @Test("an eventfd counts signals and reads back to zero")
    func eventFD() throws {
        let event = try EventFD(nonBlocking: true)
        #expect(try event.read() == 0)
        try event.signal()
        try event.add(2)
        #expect(try event.read() == 3)
        #expect(try event.read() == 0)
    }

    @Test("guest memory mappings round up to pages and reject size 0")
    func guestMemoryMapping() throws {
        let mapping = try GuestMemoryMapping(size: 1)
        #expect(mapping.size == 4096)
        #expect(mapping.bytes.allSatisfy { $0 == 0 })
        #expect(throws: KVMError.failed(operation: "mmap", errno: .invalidArgument)) {
            try GuestMemoryMapping(size: 0)
        }
        // MAP_NORESERVE: 16 GiB costs nothing until touched.
        let large = try GuestMemoryMapping(size: 16 << 30)
        large.bytes[large.size - 1] = 1
        #expect(large.bytes[large.size - 1] == 1)
    }
}
