@testable import MiniVMM
import Synchronization
import Testing

/// The entries a controller handed to its eject handler.
private final class Ejects: Sendable {
    let list = Mutex<[BootInformation.EntryID]>([])
}

@Suite("Hot-plug controller registers")
struct HotplugControllerTests {
    typealias R = HotplugController.Register

    private func make() -> (HotplugController, RecordingInterruptLine, Ejects) {
        let line = RecordingInterruptLine()
        let controller = HotplugController(interrupt: line)
        let ejects = Ejects()
        controller.setEjectHandler { [ejects] entry in ejects.list.withLock { $0.append(entry) } }
        return (controller, line, ejects)
    }

    @Test("MAGIC spells HPLG; a fresh controller is at generation 0 with CTRL and STATUS clear")
    func freshState() {
        let (controller, _, _) = make()
        #expect(controller.read(offset: R.magic, width: 4) == 0x474C_5048)
        #expect(Array("HPLG".utf8) == withUnsafeBytes(of: HotplugController.magic.littleEndian) { Array($0) })
        for offset in [R.generation, R.control, R.status, R.eject] {
            #expect(controller.read(offset: offset, width: 4) == 0, "offset \(offset)")
        }
        #expect(!controller.notificationsEnabled && controller.removing.isEmpty)
    }

    @Test("other widths and unlisted offsets read all ones and ignore writes")
    func otherAccesses() {
        let (controller, _, _) = make()
        #expect(controller.read(offset: R.magic, width: 1) == 0xFF)
        #expect(controller.read(offset: R.magic, width: 2) == 0xFFFF)
        #expect(controller.read(offset: R.magic, width: 8) == .max)
        #expect(controller.read(offset: 0x14, width: 4) == 0xFFFF_FFFF)
        controller.write(offset: R.control, width: 2, value: 1)
        controller.write(offset: R.control, width: 8, value: 1)
        #expect(!controller.notificationsEnabled)
    }

    @Test("every table change counts, sets CHANGED, and interrupts only with NOTIFY set")
    func tableChanges() {
        let (controller, line, _) = make()
        controller.tableChanged()
        #expect(controller.read(offset: R.generation, width: 4) == 1)
        #expect(controller.read(offset: R.status, width: 4) == 1)
        #expect(line.triggerCount == 0)
        controller.write(offset: R.control, width: 4, value: 0xFFFF_FFFF)
        #expect(controller.read(offset: R.control, width: 4) == 1, "only NOTIFY is writable")
        controller.tableChanged()
        controller.tableChanged()
        #expect(controller.read(offset: R.generation, width: 4) == 3 && line.triggerCount == 2)
        // STATUS is write-1-to-clear: writing 0 keeps CHANGED.
        controller.write(offset: R.status, width: 4, value: 0)
        #expect(controller.read(offset: R.status, width: 4) == 1)
        controller.write(offset: R.status, width: 4, value: 1)
        #expect(controller.read(offset: R.status, width: 4) == 0)
        #expect(controller.read(offset: R.generation, width: 4) == 3, "reading or clearing never moves GENERATION")
    }

    @Test("EJECT of a requested entry hands it to the machine once; anything else sets EJECT_ERROR only")
    func eject() {
        let (controller, _, ejects) = make()
        let timer = BootInformation.EntryID(kind: .timer, instance: 2)
        #expect(timer.ejectValue == 0x0006_0002)
        #expect(BootInformation.EntryID(ejectValue: 0x0006_0002) == timer)
        #expect(BootInformation.EntryID(ejectValue: 0x0063_0000) == nil, "kind 0x63 is no kind")

        controller.write(offset: R.eject, width: 4, value: UInt64(timer.ejectValue))
        #expect(controller.read(offset: R.status, width: 4) == 2, "nothing was requested")
        #expect(ejects.list.withLock { $0 }.isEmpty)
        controller.write(offset: R.status, width: 4, value: 2)

        controller.requestRemoval(of: timer)
        #expect(controller.removing == [timer])
        controller.write(offset: R.eject, width: 4, value: 0x0006_0003)  // another instance
        controller.write(offset: R.eject, width: 4, value: 0x0007_0002)  // another kind
        #expect(controller.read(offset: R.status, width: 4) == 2 && ejects.list.withLock { $0 }.isEmpty)
        controller.write(offset: R.status, width: 4, value: 2)

        controller.write(offset: R.eject, width: 4, value: UInt64(timer.ejectValue))
        #expect(controller.read(offset: R.status, width: 4) == 0)
        #expect(ejects.list.withLock { $0 } == [timer])
        #expect(controller.removing == [timer], "still flagged until the machine completes it")
        controller.write(offset: R.eject, width: 4, value: UInt64(timer.ejectValue))
        #expect(controller.read(offset: R.status, width: 4) == 2, "a second EJECT is an error")
        #expect(ejects.list.withLock { $0 } == [timer])
        controller.forgetRemoval(of: timer)
        #expect(controller.removing.isEmpty)
    }

    @Test("without an eject handler an EJECT is refused")
    func noHandler() {
        let controller = HotplugController(interrupt: RecordingInterruptLine())
        let entry = BootInformation.EntryID(kind: .ram, instance: 1)
        controller.requestRemoval(of: entry)
        controller.write(offset: R.eject, width: 4, value: UInt64(entry.ejectValue))
        #expect(controller.read(offset: R.status, width: 4) == 2 && controller.removing == [entry])
    }
}
