import KVM

/// The vCPU state at entry that docs/guest-abi.md promises: 64-bit long mode with paging,
/// flat segments from the GDT, interrupts off, `RIP` at the image, `RDI` at the
/// boot-information table.
package enum BootState {
    /// CR0: PE, MP, ET, NE, WP, PG.
    package static let cr0: UInt64 = 1 << 0 | 1 << 1 | 1 << 4 | 1 << 5 | 1 << 16 | 1 << 31
    /// CR4: PAE, OSFXSR, OSXMMEXCPT.
    package static let cr4: UInt64 = 1 << 5 | 1 << 9 | 1 << 10
    /// EFER: LME, LMA.
    package static let efer: UInt64 = 1 << 8 | 1 << 10
    /// RFLAGS: only the always-one bit 1 (interrupts disabled).
    package static let rflags: UInt64 = 0x2

    /// The KVM segment for `descriptor` loaded with `selector`.
    package static func segment(_ descriptor: SegmentDescriptor, selector: UInt16) -> Segment {
        var segment = Segment()
        segment.base = UInt64(descriptor.base)
        segment.limit = descriptor.byteLimit
        segment.selector = selector
        segment.type = descriptor.type
        segment.present = descriptor.isPresent ? 1 : 0
        segment.dpl = descriptor.privilegeLevel
        segment.db = descriptor.isDefaultBig ? 1 : 0
        segment.s = descriptor.isCodeOrData ? 1 : 0
        segment.l = descriptor.isLongMode ? 1 : 0
        segment.g = descriptor.granularity ? 1 : 0
        segment.avl = descriptor.isAvailable ? 1 : 0
        segment.unusable = 0
        return segment
    }

    /// Applies the entry special registers to `registers` (the vCPU's current ones, so
    /// fields the ABI does not mention keep KVM's reset values).
    package static func apply(to registers: inout SpecialRegisters) {
        registers.cs = segment(GlobalDescriptorTable.code, selector: GlobalDescriptorTable.codeSelector)
        let data = segment(GlobalDescriptorTable.data, selector: GlobalDescriptorTable.dataSelector)
        registers.ds = data
        registers.es = data
        registers.fs = data
        registers.gs = data
        registers.ss = data
        registers.gdt.base = GuestMemoryLayout.gdtAddress
        registers.gdt.limit = GlobalDescriptorTable.limit
        registers.idt.base = 0
        registers.idt.limit = 0
        registers.cr0 = cr0
        registers.cr3 = GuestMemoryLayout.pageTablesAddress
        registers.cr4 = cr4
        registers.efer = efer
    }

    /// The entry general-purpose registers: everything 0 except RIP, RSP, RDI and RFLAGS.
    package static func generalRegisters() -> Registers {
        var registers = Registers()
        registers.rip = GuestMemoryLayout.imageBase
        registers.rsp = GuestMemoryLayout.stackTop
        registers.rdi = GuestMemoryLayout.bootInfoAddress
        registers.rflags = rflags
        return registers
    }

    /// The CPUID leaves for the vCPU with local APIC ID `apicID`: what KVM supports, with
    /// the initial APIC ID in leaf 1 (EBX bits 31:24) and the x2APIC ID in leaves 0xB and
    /// 0x1F (EDX) set to `apicID`, as each processor of a real machine reports its own.
    ///
    /// - Complexity: O(n) in the number of leaves.
    package static func cpuid(_ supported: [CPUIDEntry], apicID: UInt32) -> [CPUIDEntry] {
        supported.map { leaf in
            var leaf = leaf
            switch leaf.function {
            case 0x1: leaf.ebx = (leaf.ebx & 0x00FF_FFFF) | (apicID & 0xFF) << 24
            case 0xB, 0x1F: leaf.edx = apicID
            default: break
            }
            return leaf
        }
    }

    /// The identity-map page tables for `layout`: the low 4 GiB, all boot RAM and the
    /// hot-plug window above it, so hot-plugged RAM needs no new tables.
    package static func pageTables(for layout: GuestMemoryLayout) throws(IdentityPageTables.BuildError) -> IdentityPageTables {
        try IdentityPageTables(
            base: GuestMemoryLayout.pageTablesAddress,
            mappedEnd: layout.hotplugWindow.end + 1,
            maxPages: Int(GuestMemoryLayout.pageTablesCapacity / IdentityPageTables.tablePageSize))
    }
}
