/// The register state of a 16550A, without locking or I/O: ``Serial16550`` owns one behind
/// a mutex and does the output and interrupt-line calls.
package struct SerialState {
    /// Interrupt-enable register bits.
    enum IER {
        static let receivedData: UInt8 = 0x01
        static let transmitterEmpty: UInt8 = 0x02
        static let lineStatus: UInt8 = 0x04
        static let modemStatus: UInt8 = 0x08
    }

    /// Interrupt-identification register values, highest priority first.
    enum IIR {
        static let noInterruptPending: UInt8 = 0x01
        static let lineStatus: UInt8 = 0x06
        static let receivedData: UInt8 = 0x04
        static let characterTimeout: UInt8 = 0x0C
        static let transmitterEmpty: UInt8 = 0x02
        static let modemStatus: UInt8 = 0x00
        static let fifosEnabled: UInt8 = 0xC0
    }

    /// FIFO-control register bits.
    enum FCR {
        static let enable: UInt8 = 0x01
        static let clearReceive: UInt8 = 0x02
        static let clearTransmit: UInt8 = 0x04
    }

    /// Line-status register bits.
    enum LSR {
        static let dataReady: UInt8 = 0x01
        static let overrun: UInt8 = 0x02
        static let transmitHoldingEmpty: UInt8 = 0x20
        static let transmitterEmpty: UInt8 = 0x40
    }

    /// Modem-control register bits.
    enum MCR {
        static let dtr: UInt8 = 0x01
        static let rts: UInt8 = 0x02
        static let out1: UInt8 = 0x04
        static let out2: UInt8 = 0x08
        static let loopback: UInt8 = 0x10
        static let writable: UInt8 = 0x1F
    }

    /// Modem-status register bits (deltas in the low nibble).
    enum MSR {
        static let deltaCTS: UInt8 = 0x01
        static let deltaDSR: UInt8 = 0x02
        static let trailingEdgeRI: UInt8 = 0x04
        static let deltaDCD: UInt8 = 0x08
        static let cts: UInt8 = 0x10
        static let dsr: UInt8 = 0x20
        static let ri: UInt8 = 0x40
        static let dcd: UInt8 = 0x80
    }

    static let fifoCapacity = 16
    static let dlab: UInt8 = 0x80

    var receiveFIFO = ByteQueue()
    var backlog = ByteQueue()
    var interruptEnable: UInt8 = 0
    var lineControl: UInt8 = 0
    var modemControl: UInt8 = 0
    var scratch: UInt8 = 0
    // 115200 baud; the divisor only matters to guests that read it back.
    var divisorLatch: UInt16 = 1
    var fifosEnabled = false
    var receiveTriggerLevel = 1
    var overrun = false
    var transmitterEmptyPending = false
    var modemStatusDeltas: UInt8 = 0
    /// What the interrupt line was last driven to.
    var lineAsserted = false

    private var dlabSet: Bool { lineControl & Self.dlab != 0 }
    private var loopback: Bool { modemControl & MCR.loopback != 0 }
    private var receiveCapacity: Int { fifosEnabled ? Self.fifoCapacity : 1 }

    /// The current IIR value (no side effects).
    var interruptIdentification: UInt8 {
        let fifoBits = fifosEnabled ? IIR.fifosEnabled : 0
        return fifoBits | highestPendingInterrupt
    }

    private var highestPendingInterrupt: UInt8 {
        if interruptEnable & IER.lineStatus != 0 && overrun { return IIR.lineStatus }
        if interruptEnable & IER.receivedData != 0 && !receiveFIFO.isEmpty {
            // No character timer: data below the trigger level reports the timeout
            // interrupt at once, which drivers service exactly like received data.
            if fifosEnabled && receiveFIFO.count < receiveTriggerLevel { return IIR.characterTimeout }
            return IIR.receivedData
        }
        if interruptEnable & IER.transmitterEmpty != 0 && transmitterEmptyPending { return IIR.transmitterEmpty }
        if interruptEnable & IER.modemStatus != 0 && modemStatusDeltas != 0 { return IIR.modemStatus }
        return IIR.noInterruptPending
    }

    /// The modem-status lines: wired to MCR in loopback, otherwise a connected, ready peer.
    private var modemStatusLines: UInt8 {
        guard loopback else { return MSR.dcd | MSR.dsr | MSR.cts }
        var lines: UInt8 = 0
        if modemControl & MCR.rts != 0 { lines |= MSR.cts }
        if modemControl & MCR.dtr != 0 { lines |= MSR.dsr }
        if modemControl & MCR.out1 != 0 { lines |= MSR.ri }
        if modemControl & MCR.out2 != 0 { lines |= MSR.dcd }
        return lines
    }

    private var lineStatus: UInt8 {
        var status = LSR.transmitHoldingEmpty | LSR.transmitterEmpty
        if !receiveFIFO.isEmpty { status |= LSR.dataReady }
        if overrun { status |= LSR.overrun }
        return status
    }

    /// Whether the received-data interrupt is enabled, so that host input may be announced
    /// to the guest without it looking.
    var receiveInterruptEnabled: Bool { interruptEnable & IER.receivedData != 0 }

    /// Moves backlog bytes into the receive FIFO while it has room. In loopback the
    /// receiver is cut off from the outside, so the backlog waits.
    ///
    /// Called only when the guest could see the result (a read of RBR, LSR or IIR, or with
    /// the received-data interrupt enabled): bytes stay in the backlog until then, so a FIFO
    /// reset (FCR) during the guest's UART set-up cannot discard input it never saw.
    mutating func refillReceiveFIFO() {
        guard !loopback else { return }
        while receiveFIFO.count < receiveCapacity, let byte = backlog.popFirst() {
            receiveFIFO.append(byte)
        }
    }

    /// Reads register `register` (0...7), with the chip's read side effects.
    mutating func read(register: UInt64) -> UInt8 {
        switch register {
        case 0:
            if dlabSet { return UInt8(truncatingIfNeeded: divisorLatch) }
            refillReceiveFIFO()
            let byte = receiveFIFO.popFirst() ?? 0
            refillIfAnnounced()
            return byte
        case 1:
            return dlabSet ? UInt8(truncatingIfNeeded: divisorLatch >> 8) : interruptEnable
        case 2:
            refillReceiveFIFO()
            let identification = interruptIdentification
            // Reading IIR while it reports THR empty acknowledges that interrupt.
            if identification & 0x0F == IIR.transmitterEmpty { transmitterEmptyPending = false }
            return identification
        case 3:
            return lineControl
        case 4:
            return modemControl
        case 5:
            refillReceiveFIFO()
            let status = lineStatus
            overrun = false
            return status
        case 6:
            let status = modemStatusLines | modemStatusDeltas
            modemStatusDeltas = 0
            return status
        default:
            return scratch
        }
    }

    /// Writes `byte` to register `register` (0...7); returns the byte to transmit when
    /// this was a THR write outside loopback.
    mutating func write(register: UInt64, byte: UInt8) -> UInt8? {
        switch register {
        case 0:
            if dlabSet {
                divisorLatch = divisorLatch & 0xFF00 | UInt16(byte)
                return nil
            }
            // The byte leaves at once, so THR is empty again right away.
            transmitterEmptyPending = true
            guard loopback else { return byte }
            if receiveFIFO.count < receiveCapacity { receiveFIFO.append(byte) } else { overrun = true }
        case 1:
            if dlabSet {
                divisorLatch = divisorLatch & 0x00FF | UInt16(byte) << 8
                return nil
            }
            let enabled = byte & 0x0F
            if enabled & IER.transmitterEmpty != interruptEnable & IER.transmitterEmpty {
                // Enabling it with THR empty raises it at once; disabling drops it.
                transmitterEmptyPending = enabled & IER.transmitterEmpty != 0
            }
            interruptEnable = enabled
            refillIfAnnounced()
        case 2:
            writeFIFOControl(byte)
        case 3:
            lineControl = byte
        case 4:
            writeModemControl(byte & MCR.writable)
        case 5, 6:
            break  // LSR and MSR are read-only.
        default:
            scratch = byte
        }
        return nil
    }

    private mutating func writeFIFOControl(_ byte: UInt8) {
        let enable = byte & FCR.enable != 0
        if enable != fifosEnabled {
            // Switching FIFO mode resets both FIFOs.
            fifosEnabled = enable
            receiveFIFO.removeAll()
        }
        if enable {
            if byte & FCR.clearReceive != 0 { receiveFIFO.removeAll() }
            // The transmit FIFO is always empty: nothing to clear.
            receiveTriggerLevel = [1, 4, 8, 14][Int(byte >> 6)]
        }
        refillIfAnnounced()
    }

    /// Refills the receive FIFO when the received-data interrupt would announce the bytes;
    /// otherwise they wait in the backlog for the guest's next RBR, LSR or IIR read.
    mutating func refillIfAnnounced() {
        if receiveInterruptEnabled { refillReceiveFIFO() }
    }

    private mutating func writeModemControl(_ value: UInt8) {
        let before = modemStatusLines
        modemControl = value
        let after = modemStatusLines
        let changed = before ^ after
        if changed & MSR.cts != 0 { modemStatusDeltas |= MSR.deltaCTS }
        if changed & MSR.dsr != 0 { modemStatusDeltas |= MSR.deltaDSR }
        if before & MSR.ri != 0 && after & MSR.ri == 0 { modemStatusDeltas |= MSR.trailingEdgeRI }
        if changed & MSR.dcd != 0 { modemStatusDeltas |= MSR.deltaDCD }
        refillIfAnnounced()
    }
}

extension SerialState {
    /// What a snapshot keeps of a 16550: every register, both FIFOs' bytes and the host
    /// input the guest has not seen yet.
    package struct Snapshot: Codable, Hashable, Sendable {
        var receiveFIFO: [UInt8]
        var backlog: [UInt8]
        var interruptEnable: UInt8
        var lineControl: UInt8
        var modemControl: UInt8
        var scratch: UInt8
        var divisorLatch: UInt16
        var fifosEnabled: Bool
        var receiveTriggerLevel: Int
        var overrun: Bool
        var transmitterEmptyPending: Bool
        var modemStatusDeltas: UInt8
        var lineAsserted: Bool

        enum CodingKeys: String, CodingKey {
            case backlog, scratch, overrun
            case receiveFIFO = "receive_fifo"
            case interruptEnable = "ier"
            case lineControl = "lcr"
            case modemControl = "mcr"
            case divisorLatch = "divisor"
            case fifosEnabled = "fifos_enabled"
            case receiveTriggerLevel = "receive_trigger_level"
            case transmitterEmptyPending = "thr_empty_pending"
            case modemStatusDeltas = "msr_deltas"
            case lineAsserted = "line_asserted"
        }

        /// Decodes only a state the UART can be in: a FIFO within its capacity, a trigger
        /// level FCR can set, register bits the chip has.
        package init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            receiveFIFO = try container.decode([UInt8].self, forKey: .receiveFIFO)
            backlog = try container.decode([UInt8].self, forKey: .backlog)
            interruptEnable = try container.decode(UInt8.self, forKey: .interruptEnable)
            lineControl = try container.decode(UInt8.self, forKey: .lineControl)
            modemControl = try container.decode(UInt8.self, forKey: .modemControl)
            scratch = try container.decode(UInt8.self, forKey: .scratch)
            divisorLatch = try container.decode(UInt16.self, forKey: .divisorLatch)
            fifosEnabled = try container.decode(Bool.self, forKey: .fifosEnabled)
            receiveTriggerLevel = try container.decode(Int.self, forKey: .receiveTriggerLevel)
            overrun = try container.decode(Bool.self, forKey: .overrun)
            transmitterEmptyPending = try container.decode(Bool.self, forKey: .transmitterEmptyPending)
            modemStatusDeltas = try container.decode(UInt8.self, forKey: .modemStatusDeltas)
            lineAsserted = try container.decode(Bool.self, forKey: .lineAsserted)
            func refuse(_ key: CodingKeys, _ why: String) -> DecodingError {
                .dataCorruptedError(forKey: key, in: container, debugDescription: why)
            }
            guard receiveFIFO.count <= (fifosEnabled ? SerialState.fifoCapacity : 1) else {
                throw refuse(.receiveFIFO, "\(receiveFIFO.count) bytes do not fit the receive FIFO")
            }
            guard [1, 4, 8, 14].contains(receiveTriggerLevel) else {
                throw refuse(.receiveTriggerLevel, "the trigger level is 1, 4, 8 or 14")
            }
            guard interruptEnable & 0xF0 == 0 else { throw refuse(.interruptEnable, "IER has bits 0-3 only") }
            guard modemControl & ~MCR.writable == 0 else { throw refuse(.modemControl, "MCR has bits 0-4 only") }
            guard modemStatusDeltas & 0xF0 == 0 else { throw refuse(.modemStatusDeltas, "MSR deltas are bits 0-3") }
        }

        init(_ state: SerialState) {
            receiveFIFO = state.receiveFIFO.bytes
            backlog = state.backlog.bytes
            interruptEnable = state.interruptEnable
            lineControl = state.lineControl
            modemControl = state.modemControl
            scratch = state.scratch
            divisorLatch = state.divisorLatch
            fifosEnabled = state.fifosEnabled
            receiveTriggerLevel = state.receiveTriggerLevel
            overrun = state.overrun
            transmitterEmptyPending = state.transmitterEmptyPending
            modemStatusDeltas = state.modemStatusDeltas
            lineAsserted = state.lineAsserted
        }
    }

    /// The state `snapshot` describes.
    init(_ snapshot: Snapshot) {
        receiveFIFO = ByteQueue(snapshot.receiveFIFO)
        backlog = ByteQueue(snapshot.backlog)
        interruptEnable = snapshot.interruptEnable
        lineControl = snapshot.lineControl
        modemControl = snapshot.modemControl
        scratch = snapshot.scratch
        divisorLatch = snapshot.divisorLatch
        fifosEnabled = snapshot.fifosEnabled
        receiveTriggerLevel = snapshot.receiveTriggerLevel
        overrun = snapshot.overrun
        transmitterEmptyPending = snapshot.transmitterEmptyPending
        modemStatusDeltas = snapshot.modemStatusDeltas
        lineAsserted = snapshot.lineAsserted
    }
}
