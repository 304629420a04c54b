import Testing

@testable import MiniVMM

@Suite("ResourceManager.describe")
struct DescribeTests {
    @Test("the default machine's map, exactly")
    func defaultMachine() throws {
        let machine = try PlanFixtures.plan(memory: 128 << 20, timers: 1, consoles: 1, slots: 32764).resources
        let expected = """
            Memory slots (KVM slots 0-32763):
              0        0x00000000-0x07ffffff  128 MiB  ram0
              1-32763  (free)
            Hot-plug RAM (window 0x100000000-0x4ffffffff):
              0x100000000-0x4ffffffff  16 GiB  (free)
            MMIO (32-bit gap 0xc0000000-0xffffffff):
              0xc0000000-0xc0000fff  4 KiB        timer0
              0xc0001000-0xc0001fff  4 KiB        dma-console0
              0xc0002000-0xc0002fff  4 KiB        hotplug-controller
              0xc0003000-0xfebfffff  1028084 KiB  (free)
              0xfec00000-0xfec00fff  4 KiB        ioapic
              0xfec01000-0xfedfffff  2044 KiB     (free)
              0xfee00000-0xfee00fff  4 KiB        local-apic
              0xfee01000-0xfeffbfff  2028 KiB     (free)
              0xfeffc000-0xfeffcfff  4 KiB        kvm-identity-map
              0xfeffd000-0xfeffffff  12 KiB       kvm-tss
              0xff000000-0xffffffff  16 MiB       (free)
            Port I/O (0x0000-0xffff):
              0x0000-0x001f  32 ports     (free)
              0x0020-0x0021  2 ports      pic-master
              0x0022-0x003f  30 ports     (free)
              0x0040-0x0043  4 ports      pit
              0x0044-0x009f  92 ports     (free)
              0x00a0-0x00a1  2 ports      pic-slave
              0x00a2-0x00f3  82 ports     (free)
              0x00f4-0x00f7  4 ports      exit-port
              0x00f8-0x03f7  768 ports    (free)
              0x03f8-0x03ff  8 ports      com1
              0x0400-0xffff  64512 ports  (free)
            Interrupts (IOAPIC GSIs 4-23):
              4     com1
              5     timer0
              6     dma-console0
              7     hotplug-controller
              8-23  (free)
            vCPUs (vCPU and local APIC IDs 0-63):
              0     cpu0
              1-63  (free)

            """
        #expect(machine.describe() == expected)
    }

    @Test("high memory, several devices: every slot, window and GSI is listed with its owner")
    func largerMachine() throws {
        let machine = try PlanFixtures.plan(memory: 5 << 30, timers: 3, consoles: 2, slots: 509).resources
        let text = machine.describe()
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.contains("  0      0x000000000-0x0bfffffff  3 GiB  ram0"))
        #expect(lines.contains("  1      0x100000000-0x17fffffff  2 GiB  ram1"))
        #expect(lines.contains("  2-508  (free)"))
        #expect(lines.contains("  0xc0004000-0xc0004fff  4 KiB        dma-console1"))
        #expect(lines.contains("  9      dma-console1"))
        #expect(lines.contains("  10     hotplug-controller"))
        #expect(lines.contains("  11-23  (free)"))
        #expect(lines.contains("Hot-plug RAM (window 0x180000000-0x57fffffff):"))
        for owner in ["timer0", "timer1", "timer2", "dma-console0", "dma-console1"] {
            #expect(lines.filter { $0.hasSuffix("  " + owner) }.count == 2, "window and GSI for \(owner)")
        }
        #expect(text == machine.describe(), "stable")
    }

    @Test("columns line up within each section and no line has trailing blanks")
    func alignment() throws {
        let machine = try PlanFixtures.plan(memory: 64 << 30, timers: 10, consoles: 8, slots: 2).resources
        var section: [String] = []
        var sections: [[String]] = []
        for line in machine.describe().split(separator: "\n").map(String.init) {
            #expect(line.last != " ")
            if line.hasPrefix("  ") { section.append(line) } else if !section.isEmpty { sections.append(section); section = [] }
        }
        sections.append(section)
        // RAM, the hot-plug window, MMIO, ports and GSIs, and the vCPUs since SMP.
        #expect(sections.count == 6)
        for rows in sections {
            // The last column starts at the same place on every full-width row.
            let full = rows.filter { $0.split(separator: " ").count == rows.map { $0.split(separator: " ").count }.max() }
            let starts = Set(full.map { row in row.distance(from: row.startIndex, to: row.lastIndex(of: " ")!) })
            #expect(starts.count == 1, "\(rows)")
        }
    }
}
