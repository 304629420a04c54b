import Foundation
import KVM
import SystemPackage
import Testing

// Snapshot and restore of vCPU and VM state, and dirty-page logging, on the real KVM.
// Guest code at CPL0 is emulated on some nested hosts (~3 µs an instruction), so every
// guest below runs a few dozen instructions at most.

private let kvmUsable: Bool = (try? Kvm()) != nil
private let kvmUnusable: Comment = "/dev/kvm is missing or not usable by this user"

/// Where the real-mode test programs start.
private let entryPoint: UInt64 = 0x1000

/// A one-vCPU VM set up the way the snapshot recipe restores one: TSS, identity map,
/// in-kernel irqchip and PIT (unless `irqchip` is false), RAM in slot 0 at guest address
/// 0, a vCPU with the host's CPUID, starting in real mode at 0x1000.
private struct StateGuest {
    let kvm: Kvm
    let vm: VirtualMachine
    let memory: GuestMemoryMapping
    let vcpu: Vcpu

    init(
        kvm: Kvm, code: [UInt8] = [], ramSize: Int = 0x10000, flags: VirtualMachine.MemoryRegionFlags = [],
        irqchip: Bool = true
    ) throws {
        self.kvm = kvm
        vm = try kvm.createVM()
        if irqchip {
            try vm.setTSSAddress(0xFFFB_D000)
            try vm.setIdentityMapAddress(0xFFFB_C000)
            try vm.createIRQChip()
            try vm.createPIT2()
        }
        memory = try GuestMemoryMapping(size: ramSize)
        try vm.setUserMemoryRegion(slot: 0, guestAddress: 0, mapping: memory, flags: flags)
        memory.bytes.baseAddress!.advanced(by: Int(entryPoint)).copyMemory(from: code, byteCount: code.count)
        vcpu = try vm.createVcpu(id: 0)
        try vcpu.setCPUID2(try kvm.supportedCPUID())
        try vcpu.modifySpecialRegisters { sregs in
            sregs.cs.base = 0
            sregs.cs.selector = 0
        }
        var registers = Registers()
        registers.rip = entryPoint
        registers.rflags = 0x2
        try vcpu.setRegisters(registers)
    }
}

/// One value the guest wrote to a port.
private struct PortWrite: Hashable, CustomStringConvertible {
    var port: UInt16
    var value: UInt32
    var description: String { "out 0x\(String(port, radix: 16)) = \(value)" }
}

/// The counting guest: each round increments a word in memory (0x2000) and CX, reads a
/// byte from port 0x60 and adds it to a byte in memory (0x2002), then writes the three
/// results to ports 0xF4 (memory counter), 0xF5 (CX) and 0xF6 (the sum).
private let countingProgram: [UInt8] = [
    0xFF, 0x06, 0x00, 0x20,  // 0x1000 inc word [0x2000]
    0x41,  // 0x1004 inc cx
    0xE4, 0x60,  // 0x1005 in al, 0x60
    0x00, 0x06, 0x02, 0x20,  // 0x1007 add [0x2002], al
    0xA1, 0x00, 0x20,  // mov ax, [0x2000]
    0xE7, 0xF4,  // out 0xF4, ax
    0x89, 0xC8,  // mov ax, cx
    0xE7, 0xF5,  // out 0xF5, ax
    0xA0, 0x02, 0x20,  // mov al, [0x2002]
    0xE6, 0xF6,  // out 0xF6, al
    0xEB, 0xE5,  // jmp 0x1000
]

/// Plays the monitor for ``countingProgram``: answers the port-0x60 reads with a known
/// sequence and records the writes. A value type, so a copy continues the same script.
private struct CountingScript {
    /// How many reads of port 0x60 have been answered.
    var inputs = 0
    var writes: [PortWrite] = []

    /// The byte answered to the `n`th read (1-based).
    static func input(_ n: Int) -> UInt8 { UInt8(truncatingIfNeeded: n &* 37 &+ 11) }

    /// What the guest must write in rounds `rounds`.
    static func expectedWrites(_ rounds: ClosedRange<Int>) -> [PortWrite] {
        rounds.flatMap { round -> [PortWrite] in
            let sum = (1...round).reduce(UInt8(0)) { $0 &+ input($1) }
            return [
                PortWrite(port: 0xF4, value: UInt32(round)), PortWrite(port: 0xF5, value: UInt32(round)),
                PortWrite(port: 0xF6, value: UInt32(sum)),
            ]
        }
    }

    /// Runs until the guest has written `count` more values.
    mutating func run(_ vcpu: Vcpu, writes count: Int) throws {
        let target = writes.count + count
        while writes.count < target {
            try step(vcpu)
        }
    }

    /// Runs until the next read of port 0x60 and answers it, without running the guest
    /// again: the vCPU then has a pending input exit.
    mutating func runToInput(_ vcpu: Vcpu) throws {
        let before = inputs
        while inputs == before {
            try step(vcpu)
        }
    }

    private mutating func step(_ vcpu: Vcpu) throws {
        let exit = try vcpu.run()
        guard case .io(let io) = exit else {
            Issue.record("expected port I/O, got \(exit)\n\(vcpu.stateDescription())")
            throw KVMError.failed(operation: "unexpected exit", errno: .ioError)
        }
        if io.isWrite {
            writes.append(PortWrite(port: io.port, value: io.value(at: 0)))
        } else {
            #expect(io.port == 0x60)
            inputs += 1
            io.setValue(UInt32(Self.input(inputs)), at: 0)
        }
    }
}

/// XSAVE layout facts used to plant a recognisable SSE register value.
private let xmm0Offset = 160  // XMM0 in the legacy FXSAVE region
private let xstateBVOffset = 512  // XSTATE_BV in the XSAVE header
private let xmm0Pattern: [UInt8] = (0..<16).map { UInt8(0xA0 + $0) }

/// Runs `body` and returns how long it took.
private func timed<T>(_ body: () throws -> T) rethrows -> (T, Duration) {
    let start = ContinuousClock.now
    let result = try body()
    return (result, ContinuousClock.now - start)
}

@Suite("KVM state: snapshot, restore, dirty log", .tags(.kvm), .enabled(if: kvmUsable, kvmUnusable))
struct KVMStateTests {
    @Test("a guest paused at a pending input exit continues exactly in a fresh VM")
    func snapshotRestoreContinuesExactly() throws {
        let kvm = try Kvm()
        let origin = try StateGuest(kvm: kvm, code: countingProgram)

        // Plant a value in XMM0 through the XSAVE blob (restoring into the same live vCPU),
        // so the restore into the fresh VM has non-trivial SSE state to carry.
        var seeded = try origin.vcpu.saveState(using: kvm)
        seeded.xsaveBytes.replaceSubrange(xmm0Offset..<(xmm0Offset + 16), with: xmm0Pattern)
        seeded.xsaveBytes[xstateBVOffset] |= 0x2  // SSE state present
        try origin.vcpu.restoreState(seeded, using: kvm)

        var script = CountingScript()
        try script.run(origin.vcpu, writes: 12)
        #expect(script.writes == CountingScript.expectedWrites(1...4))

        // Stop in round 5 with the IN answered but not yet consumed by the guest, then
        // let KVM finish the instruction before saving.
        try script.runToInput(origin.vcpu)
        #expect(try origin.vcpu.completePendingIO() == nil)
        #expect(origin.vcpu.isKickPending)
        let (saved, saveTime) = try timed { try origin.vcpu.saveState(using: kvm) }
        let savedVM = try origin.vm.saveState()
        let tscKhz = try origin.vcpu.getTSCKhz()
        let savedRegisters = try #require(saved.registers)
        #expect(savedRegisters.rip == entryPoint + 7)  // just past `in al, 0x60`
        #expect(UInt8(truncatingIfNeeded: savedRegisters.rax) == CountingScript.input(5))  // the IN completed
        #expect(savedRegisters.rcx == 5)
        #expect(Array(saved.xsaveBytes[xmm0Offset..<(xmm0Offset + 16)]) == xmm0Pattern)
        #expect(saved.mpState == 0)  // runnable
        #expect(!saved.msrs.isEmpty)
        try saved.validate(on: kvm)
        try savedVM.validate()

        // A fresh VM in the recipe's order: devices, memory (a copy of the RAM), vCPU,
        // CPUID (in StateGuest), TSC rate, the vCPU's state, then the VM's.
        let fresh = try StateGuest(kvm: kvm)
        fresh.memory.bytes.copyMemory(from: UnsafeRawBufferPointer(origin.memory.bytes))
        try fresh.vcpu.setTSCKhz(tscKhz)
        let (_, restoreTime) = try timed {
            try fresh.vcpu.restoreState(saved, using: kvm)
            try fresh.vm.restoreState(savedVM)
        }
        print("KVMStateTests: vCPU save \(saveTime), vCPU+VM restore \(restoreTime), \(saved.msrs.count) MSRs, XSAVE \(saved.xsaveBytes.count) bytes")

        // Read back, the fresh vCPU holds the saved state. MSRs that count time move on.
        let restored = try fresh.vcpu.saveState(using: kvm)
        for blob in VcpuState.Blob.allCases {
            #expect(restored[blob] == saved[blob], "\(blob) differs after restore")
        }
        #expect(restored.mpState == saved.mpState)
        let timeMSRs: Set<UInt32> = [0x10]  // IA32_TSC
        #expect(restored.msrs.map(\.index) == saved.msrs.map(\.index))
        for (before, after) in zip(saved.msrs, restored.msrs) where !timeMSRs.contains(before.index) {
            #expect(after == before, "MSR 0x\(String(before.index, radix: 16)) differs after restore")
        }

        // Both machines now run the rest of round 5 and rounds 6 and 7 identically.
        var freshScript = script
        try freshScript.run(fresh.vcpu, writes: 9)
        origin.vcpu.clearKick()
        try script.run(origin.vcpu, writes: 9)
        let expected = CountingScript.expectedWrites(5...7)
        #expect(Array(freshScript.writes.suffix(9)) == expected)
        #expect(Array(script.writes.suffix(9)) == expected)
        #expect(freshScript.inputs == 7)
        #expect(fresh.memory.bytes.load(fromByteOffset: 0x2000, as: UInt16.self) == 7)
    }

    @Test("completing I/O with nothing pending returns nil and leaves the vCPU kicked")
    func completeWithNothingPending() throws {
        let kvm = try Kvm()
        let guest = try StateGuest(kvm: kvm, code: countingProgram)
        #expect(try guest.vcpu.completePendingIO() == nil)
        #expect(guest.vcpu.isKickPending)
        #expect(try guest.vcpu.getRegisters().rip == entryPoint)  // no guest instruction ran
        guard case .interrupted = try guest.vcpu.run() else {
            Issue.record("a kicked vCPU must not enter the guest")
            return
        }
        guest.vcpu.clearKick()
        var script = CountingScript()
        try script.run(guest.vcpu, writes: 3)
        #expect(script.writes == CountingScript.expectedWrites(1...1))
    }

    @Test("a string output paused across a page boundary continues with the next element")
    func pendingStringOutput() throws {
        let kvm = try Kvm()
        let guest = try StateGuest(
            kvm: kvm,
            code: [
                0xBE, 0xFC, 0x2F,  // mov si, 0x2FFC    four bytes before a page boundary
                0xB9, 0x08, 0x00,  // mov cx, 8
                0xBA, 0xF8, 0x03,  // mov dx, 0x3F8
                0xFC,  // cld
                0xF3, 0x6E,  // rep outsb
                0xE6, 0xF4,  // out 0xF4, al
            ])
        let message = Array("snapshot".utf8)
        guest.memory.bytes.baseAddress!.advanced(by: 0x2FFC).copyMemory(from: message, byteCount: message.count)
        var received: [UInt8] = []
        func collect(_ exit: VcpuExit) throws {
            guard case .io(let io) = exit, io.port == 0x3F8 else {
                Issue.record("expected output to 0x3F8, got \(exit)")
                throw KVMError.failed(operation: "unexpected exit", errno: .ioError)
            }
            for index in 0..<io.count { received.append(UInt8(io.value(at: index))) }
        }
        try collect(try guest.vcpu.run())
        // Finish the pending part of the string; any exit it makes is handled like a run's.
        while let exit = try guest.vcpu.completePendingIO() { try collect(exit) }
        let saved = try guest.vcpu.saveState(using: kvm)
        let fresh = try StateGuest(kvm: kvm)
        fresh.memory.bytes.copyMemory(from: UnsafeRawBufferPointer(guest.memory.bytes))
        try fresh.vcpu.restoreState(saved, using: kvm)
        try fresh.vm.restoreState(try guest.vm.saveState())
        while true {
            let exit = try fresh.vcpu.run()
            if case .io(let io) = exit, io.port == 0xF4 { break }
            try collect(exit)
        }
        #expect(received == message)
    }

    @Test("a wrong-size blob is refused with a typed error before anything is restored")
    func wrongSizeBlobsThrow() throws {
        let kvm = try Kvm()
        let guest = try StateGuest(kvm: kvm, code: [0xF4])
        let good = try guest.vcpu.saveState(using: kvm)
        let xsaveSize = kvm.xsaveStateSize()
        for blob in VcpuState.Blob.allCases {
            #expect(good[blob].count == VcpuState.expectedSize(of: blob, on: kvm), "\(blob)")
        }
        #expect(VcpuState.expectedSize(of: .registers, xsaveSize: xsaveSize) == 144)
        #expect(VcpuState.expectedSize(of: .lapic, xsaveSize: xsaveSize) == 1024)
        #expect(xsaveSize >= VcpuState.legacyXSaveSize)

        // Registers that would show if anything were written before the bad blob is found.
        var marked = good
        var registers = try #require(good.registers)
        registers.rax = 0xBAD
        marked.registersBytes = withUnsafeBytes(of: registers) { Array($0) }

        for blob in VcpuState.Blob.allCases {
            let size = good[blob].count
            for wrongSize in [0, 1, size - 1, size + 1, 2 * size] {
                var corrupt = marked
                corrupt[blob] = Array(repeating: 0xEE, count: wrongSize)
                let expected = KVMError.failed(
                    operation: "validate VcpuState.\(blob.rawValue) (\(wrongSize) bytes, expected \(size))",
                    errno: .invalidArgument)
                #expect(throws: expected) { try corrupt.validate(on: kvm) }
                #expect(throws: expected) { try guest.vcpu.restoreState(corrupt, using: kvm) }
            }
        }
        #expect(try guest.vcpu.getRegisters().rax != 0xBAD)

        var truncated = good
        truncated.registersBytes.removeLast()
        #expect(truncated.registers == nil)  // the typed view refuses it too

        // A rejected MSR names itself; the good state still restores.
        var badMSR = good
        badMSR.msrs.append(MSREntry(index: 0xDEAD_0000, value: 1))
        #expect(throws: KVMError.failed(operation: "KVM_SET_MSRS (MSR 0xdead0000)", errno: .invalidArgument)) {
            try guest.vcpu.restoreState(badMSR, using: kvm)
        }
        try guest.vcpu.restoreState(marked, using: kvm)
        #expect(try guest.vcpu.getRegisters().rax == 0xBAD)

        // The VM state is checked the same way, chip ids included.
        let vmState = try guest.vm.saveState()
        for blob in VMState.Blob.allCases {
            #expect(vmState[blob].count == VMState.expectedSize(of: blob), "\(blob)")
            var corrupt = vmState
            corrupt[blob].removeLast(3)
            let size = VMState.expectedSize(of: blob)
            #expect(
                throws: KVMError.failed(
                    operation: "validate VMState.\(blob.rawValue) (\(size - 3) bytes, expected \(size))",
                    errno: .invalidArgument)
            ) { try guest.vm.restoreState(corrupt) }
        }
        var swapped = vmState
        swapped.picSlaveBytes = vmState.picMasterBytes
        #expect(
            throws: KVMError.failed(
                operation: "validate VMState.picSlave (chip_id 0, expected 1)", errno: .invalidArgument)
        ) { try guest.vm.restoreState(swapped) }
    }

    @Test("the dirty log shows exactly the 4 KiB pages the guest wrote, once")
    func dirtyLog() throws {
        let kvm = try Kvm()
        let pages = 256  // 1 MiB
        let guest = try StateGuest(
            kvm: kvm,
            code: [
                0xC6, 0x06, 0x00, 0x30, 0x01,  // mov byte [0x3000], 1      page 3
                0xC6, 0x06, 0xFF, 0x3F, 0x02,  // mov byte [0x3FFF], 2      page 3 again
                0xC6, 0x06, 0x00, 0x50, 0x03,  // mov byte [0x5000], 3      page 5
                0xC7, 0x06, 0xFF, 0x6F, 0x34, 0x12,  // mov word [0x6FFF], 0x1234  pages 6 and 7
                0xB8, 0x00, 0xF0,  // mov ax, 0xF000
                0x8E, 0xD8,  // mov ds, ax
                0xC6, 0x06, 0x00, 0xF0, 0x05,  // mov byte [0xF000], 5      0xFF000: page 255
                0xF4,  // hlt
                0xC6, 0x06, 0x00, 0x00, 0x06,  // mov byte [0], 6           0xF0000: page 240
                0xF4,  // hlt
                0xC6, 0x06, 0x10, 0xF0, 0x07,  // mov byte [0xF010], 7      page 255 again
                0xF4,  // hlt
            ],
            ramSize: pages * DirtyBitmap.pageSize, flags: .logDirtyPages, irqchip: false)
        func runToHalt() throws {
            let exit = try guest.vcpu.run()
            guard case .hlt = exit else {
                Issue.record("expected HLT, got \(exit)")
                return
            }
        }

        // The host's own writes (the code) are not guest writes.
        #expect(try guest.vm.dirtyLog(slot: 0, pageCount: pages).isEmpty)

        try runToHalt()
        let (first, fetchTime) = try timed { try guest.vm.dirtyLog(slot: 0, pageCount: pages) }
        #expect(Array(first.dirtyPages) == [3, 5, 6, 7, 255])
        #expect(first.count == 5)
        #expect(first.pageCount == pages)
        #expect(first.isDirty(3) && first.isDirty(255))
        #expect(!first.isDirty(4) && !first.isDirty(1) && !first.isDirty(-1) && !first.isDirty(pages))
        print("KVMStateTests: KVM_GET_DIRTY_LOG of \(pages) pages took \(fetchTime)")

        // Fetching reset the log.
        let second = try guest.vm.dirtyLog(slot: 0, pageCount: pages)
        #expect(second.isEmpty)
        #expect(second.count == 0)
        #expect(Array(second.dirtyPages).isEmpty)

        try runToHalt()
        #expect(Array(try guest.vm.dirtyLog(slot: 0, pageCount: pages).dirtyPages) == [240])

        // A page count that hides part of the slot is an error, not a buffer overrun.
        try runToHalt()  // dirties page 255
        #expect(
            throws: KVMError.failed(
                operation: "KVM_GET_DIRTY_LOG (slot 0 has more than 250 pages)", errno: .invalidArgument)
        ) { try guest.vm.dirtyLog(slot: 0, pageCount: 250) }
        #expect(throws: KVMError.failed(operation: "KVM_GET_DIRTY_LOG", errno: .badAddress)) {
            try guest.vm.dirtyLog(slot: 0, pageCount: 64)
        }
        #expect(throws: KVMError.failed(operation: "KVM_GET_DIRTY_LOG", errno: .invalidArgument)) {
            try guest.vm.dirtyLog(slot: 0, pageCount: 0)
        }
        // A larger count reports the extra pages clean.
        #expect(try guest.vm.dirtyLog(slot: 0, pageCount: 2 * pages).pageCount == 2 * pages)

        // A slot without dirty logging, and one that does not exist.
        let other = try GuestMemoryMapping(size: 0x1000)
        try guest.vm.setUserMemoryRegion(slot: 1, guestAddress: 0x10_0000, mapping: other)
        #expect(throws: KVMError.failed(operation: "KVM_GET_DIRTY_LOG", errno: .noSuchFileOrDirectory)) {
            try guest.vm.dirtyLog(slot: 1, pageCount: 1)
        }
        #expect(throws: KVMError.failed(operation: "KVM_GET_DIRTY_LOG", errno: .noSuchFileOrDirectory)) {
            try guest.vm.dirtyLog(slot: 7, pageCount: 1)
        }
    }

    @Test("dirty bitmaps built from words keep only their pages")
    func dirtyBitmapValue() {
        let bitmap = DirtyBitmap(pageCount: 70, words: [0x8000_0000_0000_0001, 0xFF])
        #expect(Array(bitmap.dirtyPages) == [0, 63, 64, 65, 66, 67, 68, 69])
        #expect(bitmap.count == 8)
        #expect(bitmap.words == [0x8000_0000_0000_0001, 0x3F])
        #expect(DirtyBitmap(pageCount: 130, words: []).words == [0, 0, 0])
        #expect(DirtyBitmap(pageCount: 64, words: [1, 1]) == DirtyBitmap(pageCount: 64, words: [1]))
    }

    @Test("VM state survives save, restore into the same VM and save again")
    func vmStateRoundTrip() throws {
        let kvm = try Kvm()
        let guest = try StateGuest(
            kvm: kvm,
            code: [
                0xB0, 0xFF,  // mov al, 0xFF
                0xE6, 0x21,  // out 0x21, al     mask the master PIC
                0xE6, 0xA1,  // out 0xA1, al     mask the slave PIC
                0xB0, 0x30,  // mov al, 0x30     PIT channel 0, lobyte/hibyte, mode 0 (one shot)
                0xE6, 0x43,  // out 0x43, al
                0xB0, 0x34,  // mov al, 0x34
                0xE6, 0x40,  // out 0x40, al
                0xB0, 0x12,  // mov al, 0x12
                0xE6, 0x40,  // out 0x40, al     count 0x1234: fires once after ~3.9 ms
                0xE6, 0xF4,  // out 0xF4, al
                0xEB, 0xFE,  // jmp $
            ])
        let exit = try guest.vcpu.run()
        guard case .io(let io) = exit, io.port == 0xF4 else {
            Issue.record("expected out 0xF4, got \(exit)")
            return
        }
        usleep(20_000)  // let the one-shot fire, so the PIC's request register is settled

        let saved = try guest.vm.saveState()
        let pit = try #require(saved.pit)
        #expect(pit.channels.0.mode == 0)
        #expect(pit.channels.0.count == 0x1234)
        #expect(try #require(saved.picMaster).chip.pic.imr == 0xFF)
        #expect(try #require(saved.picSlave).chip.pic.imr == 0xFF)
        #expect(try #require(saved.picMaster).chip.pic.irr & 1 == 1)  // the PIT's IRQ 0 is requested
        #expect(try #require(saved.ioapic).chip_id == 2)

        usleep(30_000)
        let (again, restoreToSave) = try timed { () throws -> VMState in
            try guest.vm.restoreState(saved)
            return try guest.vm.saveState()
        }
        #expect(again.picMasterBytes == saved.picMasterBytes)
        #expect(again.picSlaveBytes == saved.picSlaveBytes)
        #expect(again.ioapicBytes == saved.ioapicBytes)
        // KVM restarts the PIT counters on restore: only their load time differs.
        #expect(withoutLoadTimes(try #require(again.pit)) == withoutLoadTimes(pit))
        // kvmclock continues from the saved value: it advanced by the time between restore
        // and save, not by the 30 ms slept before.
        let savedClock = try #require(saved.clock).clock
        let continued = try #require(again.clock).clock
        let (seconds, attoseconds) = restoreToSave.components
        let bound = UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000) + 1_000_000
        #expect(continued >= savedClock)
        #expect(continued - savedClock <= bound, "kvmclock advanced \(continued - savedClock) ns")

        // Restoring again with the elapsed real time added keeps the guest clock in step.
        if try #require(saved.clock).flags & 0x4 != 0 {  // KVM_CLOCK_REALTIME
            try guest.vm.restoreState(saved, advanceClockByElapsedRealtime: true)
            let advanced = try #require(try guest.vm.saveState().clock).clock
            #expect(advanced >= savedClock + 30_000_000, "kvmclock advanced \(advanced - savedClock) ns")
        } else {
            print("KVMStateTests: KVM_GET_CLOCK reports no realtime here; advancing is not checked")
        }
    }
}

/// The PIT state's bytes with the channels' `count_load_time` zeroed.
private func withoutLoadTimes(_ state: PITState) -> [UInt8] {
    var state = state
    state.channels.0.count_load_time = 0
    state.channels.1.count_load_time = 0
    state.channels.2.count_load_time = 0
    return withUnsafeBytes(of: state) { Array($0) }
}
