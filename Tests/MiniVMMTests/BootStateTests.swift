import Foundation
import KVM
import Testing

@testable import MiniVMM

@Suite("Boot state")
struct BootStateTests {
    @Test func entryRegistersFollowTheABI() {
        let registers = BootState.generalRegisters()
        #expect(registers.rip == 0x10_0000)
        #expect(registers.rsp == 0x8_0000 && registers.rsp % 16 == 0)
        #expect(registers.rdi == 0x2000)
        #expect(registers.rflags == 0x2)
        #expect(registers.rax == 0 && registers.rsi == 0 && registers.r15 == 0)
    }

    @Test func specialRegistersEnterLongModeWithFlatSegments() {
        var sregs = SpecialRegisters()
        BootState.apply(to: &sregs)
        #expect(sregs.cr0 == 0x8001_0033)
        #expect(sregs.cr4 == 0x620)
        #expect(sregs.efer == 0x500)
        #expect(sregs.cr3 == 0x10000)
        #expect(sregs.gdt.base == 0x1000 && sregs.gdt.limit == 23)
        #expect(sregs.idt.limit == 0)
        #expect(sregs.cs.selector == 0x08 && sregs.cs.l == 1 && sregs.cs.db == 0 && sregs.cs.type == 0xB)
        #expect(sregs.cs.present == 1 && sregs.cs.s == 1 && sregs.cs.g == 1 && sregs.cs.dpl == 0)
        for segment in [sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss] {
            #expect(segment.selector == 0x10 && segment.type == 0x3 && segment.db == 1 && segment.l == 0)
            #expect(segment.limit == 0xFFFF_FFFF && segment.base == 0 && segment.unusable == 0)
        }
    }
}
