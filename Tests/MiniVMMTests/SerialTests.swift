import Synchronization
import Testing

@testable import MiniVMM

/// Register offsets as a guest driver names them.
private enum Reg {
    static let rbr: UInt64 = 0, thr: UInt64 = 0, dll: UInt64 = 0
    static let ier: UInt64 = 1, dlm: UInt64 = 1
    static let iir: UInt64 = 2, fcr: UInt64 = 2
    static let lcr: UInt64 = 3, mcr: UInt64 = 4, lsr: UInt64 = 5, msr: UInt64 = 6, scr: UInt64 = 7
}

private struct UART {
    let device: Serial16550
    let output = RecordingConsoleOutput()
    let line = RecordingInterruptLine()

    init() {
        device = Serial16550(output: output, interrupt: line)
    }

    func read(_ register: UInt64) -> UInt8 { UInt8(device.read(offset: register, width: 1)) }
    func write(_ register: UInt64, _ value: UInt8) { device.write(offset: register, width: 1, value: UInt64(value)) }

    /// Reads RBR while LSR.DR says there is data, like a polling driver.
    func drain(limit: Int = 100_000) -> [UInt8] {
        var bytes: [UInt8] = []
        while read(Reg.lsr) & 0x01 != 0 && bytes.count < limit { bytes.append(read(Reg.rbr)) }
        return bytes
    }
}

@Suite("Serial16550 registers")
struct SerialRegisterTests {
    @Test("reset state is what a driver probes for")
    func resetState() {
        let uart = UART()
        #expect(uart.read(Reg.ier) == 0)
        #expect(uart.read(Reg.iir) == 0x01)
        #expect(uart.read(Reg.lcr) == 0)
        #expect(uart.read(Reg.mcr) == 0)
        #expect(uart.read(Reg.lsr) == 0x60)
        #expect(uart.read(Reg.msr) == 0xB0)
        #expect(uart.read(Reg.scr) == 0)
        #expect(uart.line.events.isEmpty)
    }

    @Test("THR bytes reach the output at once, one write each")
    func transmit() {
        let uart = UART()
        for byte in Array("Hi\n".utf8) { uart.write(Reg.thr, byte) }
        #expect(uart.output.text == "Hi\n")
        #expect(uart.output.writeCount == 3)
        #expect(uart.read(Reg.lsr) & 0x60 == 0x60)
    }

    @Test("the divisor latch shadows RBR/THR and IER while DLAB is set")
    func divisorLatch() {
        let uart = UART()
        uart.write(Reg.lcr, 0x83)  // DLAB + 8N1
        uart.write(Reg.dll, 0x0C)
        uart.write(Reg.dlm, 0x01)
        #expect(uart.read(Reg.dll) == 0x0C)
        #expect(uart.read(Reg.dlm) == 0x01)
        #expect(uart.output.bytes.isEmpty)
        uart.write(Reg.lcr, 0x03)
        #expect(uart.read(Reg.ier) == 0)
        #expect(uart.read(Reg.lcr) == 0x03)
        uart.write(Reg.thr, 0x41)
        #expect(uart.output.text == "A")
        uart.write(Reg.lcr, 0x80)
        #expect(uart.read(Reg.dll) == 0x0C && uart.read(Reg.dlm) == 0x01)
    }

    @Test("scratch register and IER keep what was written; LSR and MSR ignore writes")
    func plainRegisters() {
        let uart = UART()
        uart.write(Reg.scr, 0x5A)
        #expect(uart.read(Reg.scr) == 0x5A)
        uart.write(Reg.ier, 0xF5)
        #expect(uart.read(Reg.ier) == 0x05)
        uart.write(Reg.lsr, 0x00)
        uart.write(Reg.msr, 0x00)
        #expect(uart.read(Reg.lsr) == 0x60)
        #expect(uart.read(Reg.msr) == 0xB0)
    }

    @Test("wider accesses act on consecutive registers; beyond the UART reads 0xFF")
    func wideAccess() {
        let uart = UART()
        uart.device.write(offset: 0, width: 2, value: 0x0542)  // THR 'B', IER 0x05
        #expect(uart.output.text == "B")
        #expect(uart.read(Reg.ier) == 0x05)
        uart.write(Reg.mcr, 0x03)
        #expect(uart.device.read(offset: 4, width: 2) == 0x6003)
        #expect(uart.device.read(offset: 6, width: 4) == 0xFFFF_00B0)
        #expect(uart.device.read(offset: 8, width: 1) == 0xFF)
    }
}

@Suite("Serial16550 receive path and FIFO")
struct SerialReceiveTests {
    @Test("received bytes arrive in order without FIFOs, none lost")
    func receiveWithoutFIFO() {
        let uart = UART()
        #expect(uart.read(Reg.lsr) & 0x01 == 0)
        uart.device.receive(Array("hello".utf8))
        #expect(uart.device.pendingInputCount == 5)
        #expect(uart.read(Reg.lsr) & 0x01 == 0x01)
        #expect(String(decoding: uart.drain(), as: UTF8.self) == "hello")
        #expect(uart.read(Reg.rbr) == 0, "an empty RBR reads 0")
        #expect(uart.device.pendingInputCount == 0)
    }

    @Test("FIFO mode reports itself in IIR and delivers a large backlog in order")
    func fifoBacklog() {
        let uart = UART()
        uart.write(Reg.fcr, 0x07)
        #expect(uart.read(Reg.iir) == 0xC1)
        let input = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        uart.device.receive(input)
        #expect(uart.drain() == input)
        uart.write(Reg.fcr, 0x00)
        #expect(uart.read(Reg.iir) == 0x01)
    }

    @Test("clearing the receive FIFO drops the 16 bytes the guest saw in it; the backlog follows")
    func clearReceiveFIFO() {
        let uart = UART()
        uart.write(Reg.fcr, 0x01)
        uart.device.receive(Array(0..<20))
        #expect(uart.read(Reg.lsr) & 0x01 != 0)  // The guest sees data: 16 bytes move into the FIFO.
        uart.write(Reg.fcr, 0x03)
        #expect(uart.drain() == [16, 17, 18, 19])
    }

    @Test("turning the FIFOs off drops their seen contents; one holding byte follows from the backlog")
    func disableFIFO() {
        let uart = UART()
        uart.write(Reg.fcr, 0x01)
        uart.device.receive(Array(0..<20))
        _ = uart.read(Reg.lsr)
        uart.write(Reg.fcr, 0x00)
        #expect(uart.device.pendingInputCount == 4)
        #expect(uart.read(Reg.rbr) == 16)
        #expect(uart.device.pendingInputCount == 3)
        #expect(uart.drain() == [17, 18, 19])
    }

    @Test("input before the guest sets up its UART survives the usual FCR = 0xC7", arguments: [
        [UInt8](), [0x00], [0x01], [0x01, 0x00],
    ])
    func inputBeforeSetUpIsKept(earlierFCRWrites: [UInt8]) {
        let uart = UART()
        uart.device.receive(Array("abc".utf8))
        // A typical set-up: IER off, divisor, 8N1, FIFOs on and cleared, DTR/RTS/OUT2.
        for value in earlierFCRWrites { uart.write(Reg.fcr, value) }
        uart.write(Reg.ier, 0x00)
        uart.write(Reg.lcr, 0x80)
        uart.write(Reg.dll, 0x01)
        uart.write(Reg.dlm, 0x00)
        uart.write(Reg.lcr, 0x03)
        uart.write(Reg.fcr, 0xC7)
        uart.write(Reg.mcr, 0x0B)
        #expect(uart.drain() == Array("abc".utf8))
    }

    @Test("host input moves into the receive FIFO only when the guest could see it")
    func inputMovesWhenTheGuestLooks() {
        let uart = UART()
        uart.write(Reg.fcr, 0x01)
        uart.device.receive(Array(0..<20))
        uart.write(Reg.fcr, 0x07)  // Nothing seen yet: nothing to drop.
        #expect(uart.device.pendingInputCount == 20)
        // Enabling the received-data interrupt announces the data: it is seen from then on.
        uart.write(Reg.ier, 0x01)
        #expect(uart.line.isAsserted)
        uart.write(Reg.fcr, 0x07)
        #expect(uart.device.pendingInputCount == 4)
        // An RBR read without a prior LSR read still gets the next byte.
        uart.write(Reg.ier, 0x00)
        #expect(uart.read(Reg.rbr) == 16)
    }

    @Test("the drain callback fires once when the guest reads the input below the limit")
    func drainNotification() {
        let uart = UART()
        let fired = Mutex(0)
        uart.device.receive(Array(repeating: 7, count: 10))
        uart.device.notifyWhenPendingInput(below: 8) { fired.withLock { $0 += 1 } }
        #expect(fired.withLock { $0 } == 0)
        _ = uart.read(Reg.rbr)
        _ = uart.read(Reg.rbr)
        #expect(fired.withLock { $0 } == 0)
        _ = uart.read(Reg.rbr)
        #expect(fired.withLock { $0 } == 1)
        _ = uart.drain()
        #expect(fired.withLock { $0 } == 1)
        // Already below: at once.
        uart.device.notifyWhenPendingInput(below: 8) { fired.withLock { $0 += 1 } }
        #expect(fired.withLock { $0 } == 2)
    }

    @Test("receive is safe from another thread while the guest reads")
    func concurrentReceive() async {
        let uart = UART()
        uart.write(Reg.fcr, 0x01)
        let input = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let device = uart.device
        let feeder = Task.detached {
            for start in stride(from: 0, to: input.count, by: 97) {
                device.receive(input[start..<min(start + 97, input.count)])
            }
        }
        var received: [UInt8] = []
        while received.count < input.count {
            let chunk = uart.drain()
            received += chunk
            if chunk.isEmpty { await Task.yield() }
        }
        await feeder.value
        #expect(received == input)
    }
}

@Suite("Serial16550 line status, loopback and modem status")
struct SerialLoopbackTests {
    @Test("loopback keeps THR bytes inside, and an overrun sets OE until LSR is read")
    func loopbackOverrun() {
        let uart = UART()
        uart.write(Reg.mcr, 0x10)
        uart.write(Reg.thr, 0x31)
        uart.write(Reg.thr, 0x32)  // without FIFOs the holding register is full
        #expect(uart.output.bytes.isEmpty)
        #expect(uart.read(Reg.lsr) == 0x63)
        #expect(uart.read(Reg.lsr) == 0x61, "reading LSR clears OE")
        #expect(uart.read(Reg.rbr) == 0x31)
    }

    @Test("loopback wires MCR to MSR the way Linux's 8250 probe checks, with deltas")
    func loopbackModemStatus() {
        let uart = UART()
        uart.write(Reg.mcr, 0x10 | 0x0A)  // loop + RTS + OUT2
        let status = uart.read(Reg.msr)
        #expect(status & 0xF0 == 0x90)
        #expect(status & 0x0F == 0x02, "DSR dropped compared with the connected peer")
        #expect(uart.read(Reg.msr) == 0x90, "reading MSR clears the deltas")
        uart.write(Reg.mcr, 0x10 | 0x04)  // OUT1 -> RI
        #expect(uart.read(Reg.msr) & 0xF0 == 0x40)
        uart.write(Reg.mcr, 0x10)
        #expect(uart.read(Reg.msr) == 0x04, "RI's trailing edge")
    }

    @Test("host input waits while loopback is on")
    func loopbackHoldsHostInput() {
        let uart = UART()
        uart.write(Reg.mcr, 0x10)
        uart.device.receive([0x7A])
        #expect(uart.read(Reg.lsr) & 0x01 == 0)
        uart.write(Reg.mcr, 0x00)
        #expect(uart.drain() == [0x7A])
    }
}

@Suite("Serial16550 interrupts")
struct SerialInterruptTests {
    @Test("IIR reports the highest-priority pending interrupt first")
    func priorities() {
        let uart = UART()
        uart.write(Reg.ier, 0x0F)
        uart.write(Reg.mcr, 0x10 | 0x02)  // loopback; RTS gives a CTS delta
        uart.write(Reg.thr, 0x61)
        uart.write(Reg.thr, 0x62)  // overrun
        #expect(uart.read(Reg.iir) == 0x06, "line status first")
        _ = uart.read(Reg.lsr)
        #expect(uart.read(Reg.iir) == 0x04, "then received data")
        _ = uart.read(Reg.rbr)
        #expect(uart.read(Reg.iir) == 0x02, "then THR empty")
        #expect(uart.read(Reg.iir) == 0x00, "reading IIR acknowledged THRE; modem status is left")
        _ = uart.read(Reg.msr)
        #expect(uart.read(Reg.iir) == 0x01)
        #expect(uart.line.levels == [true, false])
    }

    @Test("received data raises the line until the data is read")
    func receivedDataInterrupt() {
        let uart = UART()
        uart.write(Reg.ier, 0x01)
        #expect(uart.line.events.isEmpty)
        uart.device.receive([0x78, 0x79])
        #expect(uart.line.levels == [true])
        #expect(uart.read(Reg.iir) == 0x04)
        _ = uart.read(Reg.rbr)
        #expect(uart.line.levels == [true], "one byte is still waiting")
        _ = uart.read(Reg.rbr)
        #expect(uart.line.levels == [true, false])
    }

    @Test("data below the FIFO trigger level reports the character timeout")
    func triggerLevel() {
        let uart = UART()
        uart.write(Reg.fcr, 0xC1)  // FIFO on, trigger at 14 bytes
        uart.write(Reg.ier, 0x01)
        uart.device.receive(Array(repeating: 0x20, count: 3))
        #expect(uart.read(Reg.iir) == 0xCC)
        uart.device.receive(Array(repeating: 0x20, count: 11))
        #expect(uart.read(Reg.iir) == 0xC4)
        #expect(uart.line.levels == [true])
    }

    @Test("THR empty: raised on enable and after each byte, cleared by reading IIR")
    func transmitterEmptyInterrupt() {
        let uart = UART()
        uart.write(Reg.ier, 0x02)
        #expect(uart.line.levels == [true])
        #expect(uart.read(Reg.iir) == 0x02)
        #expect(uart.line.levels == [true, false])
        #expect(uart.read(Reg.iir) == 0x01)
        uart.write(Reg.thr, 0x21)
        uart.write(Reg.thr, 0x22)
        #expect(uart.line.levels == [true, false, true], "the level is driven only on changes")
        uart.write(Reg.ier, 0x00)
        #expect(uart.line.levels == [true, false, true, false])
        #expect(uart.output.text == "!\"")
    }

    @Test("with interrupts disabled nothing touches the line")
    func pollingDriverLeavesLineAlone() {
        let uart = UART()
        uart.device.receive(Array("abc".utf8))
        for byte in Array("xyz".utf8) { uart.write(Reg.thr, byte) }
        _ = uart.drain()
        #expect(uart.line.events.isEmpty)
    }
}

@Suite("Serial16550 string I/O")
struct SerialStringIOTests {
    @Test("rep outsb of 100,000 bytes arrives whole, in one output write")
    func writeString() {
        let uart = UART()
        let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 % 253) }
        data.withUnsafeBytes { uart.device.writeString(offset: 0, width: 1, data: $0) }
        #expect(uart.output.bytes == data)
        #expect(uart.output.writeCount == 1)
    }

    @Test("string elements act like single accesses, including register side effects")
    func writeStringElements() {
        let uart = UART()
        // 16-bit elements: THR byte, then IER byte; the last element enables THRE.
        let data: [UInt8] = [0x61, 0x00, 0x62, 0x02, 0x63]
        data.withUnsafeBytes { uart.device.writeString(offset: 0, width: 2, data: $0) }
        #expect(uart.output.text == "ab", "the trailing partial element is ignored")
        #expect(uart.read(Reg.ier) == 0x02)
        #expect(uart.line.levels == [true])
        [UInt8]().withUnsafeBytes { uart.device.writeString(offset: 0, width: 0, data: $0) }
        #expect(uart.output.writeCount == 1)
    }

    @Test("rep insb drains the receive path in order and reads past the data as 0")
    func readString() {
        let uart = UART()
        uart.write(Reg.fcr, 0x01)
        uart.write(Reg.ier, 0x01)
        uart.device.receive(Array("input".utf8))
        var buffer = [UInt8](repeating: 0xEE, count: 7)
        buffer.withUnsafeMutableBytes { uart.device.readString(offset: 0, width: 1, into: $0) }
        #expect(buffer == Array("input".utf8) + [0, 0])
        #expect(uart.line.levels == [true, false])
        var status = [UInt8](repeating: 0, count: 4)
        status.withUnsafeMutableBytes { uart.device.readString(offset: 5, width: 2, into: $0) }
        #expect(status == [0x60, 0xB0, 0x60, 0xB0], "LSR and MSR pairs")
    }
}

@Suite("Serial16550 under random accesses")
struct SerialRandomAccessTests {
    @Test("random register traffic never breaks the invariants (seeded)")
    func randomTraffic() {
        let seed: UInt64 = 0x16550
        print("SerialRandomAccessTests.randomTraffic seed: \(seed)")
        var random = SeededRandom(seed: seed)
        let uart = UART()
        var fed = 0
        for _ in 0..<20_000 {
            let offset = UInt64.random(in: 0...9, using: &random)
            let width = [1, 1, 1, 2, 4, 8].randomElement(using: &random)!
            switch UInt8.random(in: 0...3, using: &random) {
            case 0:
                uart.device.write(offset: offset, width: width, value: random.next())
            case 1:
                let chunk = Int.random(in: 0...40, using: &random)
                uart.device.receive((0..<chunk).map { _ in UInt8.random(in: 0...255, using: &random) })
                fed += chunk
            default:
                _ = uart.device.read(offset: offset, width: width)
            }
            // The transmitter is always empty, and the line follows IIR exactly.
            let lsr = uart.read(Reg.lsr)
            #expect(lsr & 0x60 == 0x60)
            // IIR reports the state the line was last driven from.
            let asserted = uart.line.isAsserted
            #expect(asserted == (uart.read(Reg.iir) & 0x01 == 0))
        }
        #expect(uart.device.pendingInputCount <= fed)
        let levels = uart.line.levels
        #expect(zip(levels, levels.dropFirst()).allSatisfy { $0 != $1 }, "the level is driven only on changes")
    }
}
