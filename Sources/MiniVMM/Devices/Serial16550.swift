import Synchronization

// 16550A UART register map (offsets from the base port, 0x3F8 for COM1):
//
// | off | DLAB=0 read | DLAB=0 write | DLAB=1        |
// |-----|-------------|--------------|---------------|
// | 0   | RBR         | THR          | DLL (divisor) |
// | 1   | IER         | IER          | DLM (divisor) |
// | 2   | IIR         | FCR          | IIR / FCR     |
// | 3   | LCR (bit 7 = DLAB)                         |
// | 4   | MCR (bit 4 = loopback)                     |
// | 5   | LSR (read-only)                            |
// | 6   | MSR (read-only)                            |
// | 7   | SCR                                        |
//
// Transmission is instantaneous, so THR and the transmitter are always empty (LSR.THRE and
// LSR.TEMT stay set). Host input waits in an unbounded backlog and moves into the receive
// FIFO (16 bytes, or 1 with FIFOs off) only when the guest could see it: when it reads RBR,
// LSR or IIR, or while the received-data interrupt is enabled. So a FIFO reset (FCR) can
// only discard bytes the guest could already have seen, and input that arrives before the
// guest sets up its UART is never lost. The only overrun is in loopback mode, where the
// guest feeds the FIFO itself.

/// A 16550A UART as a guest driver sees it: divisor latch, FIFOs, line and modem status,
/// loopback, and interrupts with the chip's priorities.
///
/// The interrupt output follows IIR: the line is driven high (`setLevel(true)`) while any
/// enabled interrupt is pending and low otherwise, with a call only when that changes. It is
/// not gated by MCR.OUT2, so minimal guests need only IER. `InterruptLine` and
/// `ConsoleOutput` must not call back into the UART.
package final class Serial16550: BusDevice {
    private let output: any ConsoleOutput
    private let interrupt: any InterruptLine
    private let state = Mutex(SerialState())
    /// The one-shot ``notifyWhenPendingInput(below:_:)`` request: threshold and callback.
    private let drainWaiter = Mutex<(limit: Int, body: @Sendable () -> Void)?>(nil)

    /// Creates a UART in its reset state; transmitted bytes go to `output`, interrupts to
    /// `interrupt`.
    package init(output: some ConsoleOutput, interrupt: some InterruptLine) {
        self.output = output
        self.interrupt = interrupt
    }

    /// The UART's registers, FIFO and unread host input.
    package func snapshot() -> SerialState.Snapshot {
        state.withLock { SerialState.Snapshot($0) }
    }

    /// Takes `snapshot`'s state (the in-kernel irqchip's copy of the line is restored with it).
    package func restore(_ snapshot: SerialState.Snapshot) {
        state.withLock { $0 = SerialState(snapshot) }
    }

    /// Queues host input for the guest (from the stdin reader thread). Nothing is dropped:
    /// bytes wait in a host-side backlog until the receive FIFO has room.
    ///
    /// - Complexity: O(bytes.count), amortised.
    package func receive(_ bytes: some Collection<UInt8>) {
        guard !bytes.isEmpty else { return }
        state.withLock { state in
            state.backlog.append(contentsOf: bytes)
            state.refillIfAnnounced()
            updateLine(&state)
        }
    }

    /// Bytes of host input not yet read by the guest (backlog and FIFO together); a reader
    /// may use it to pause when the guest falls far behind.
    package var pendingInputCount: Int {
        state.withLock { $0.backlog.count + $0.receiveFIFO.count }
    }

    /// Calls `body` once, from the thread of the guest read that brings
    /// ``pendingInputCount`` below `limit`, or at once when it is below already: how the
    /// stdin pump waits for the guest without polling. A new request replaces an unfired one.
    /// `body` must not call back into the UART.
    func notifyWhenPendingInput(below limit: Int, _ body: @escaping @Sendable () -> Void) {
        drainWaiter.withLock { $0 = (limit, body) }
        notifyDrainWaiter()
    }

    /// Fires the drain waiter if the pending input is below its limit. Called after guest
    /// reads, outside the state lock; costs one uncontended lock when nobody waits.
    private func notifyDrainWaiter() {
        let body: (@Sendable () -> Void)? = drainWaiter.withLock { waiter in
            guard let current = waiter, pendingInputCount < current.limit else { return nil }
            waiter = nil
            return current.body
        }
        body?()
    }

    /// Handles an `in` of `width` bytes; each byte is a read of the register at its port,
    /// as on an ISA bus. Bytes beyond the eight registers read as `0xFF`.
    package func read(offset: UInt64, width: Int) -> UInt64 {
        // Only an RBR read (offset 0) lowers the pending input.
        defer { if offset == 0 { notifyDrainWaiter() } }
        return state.withLock { state in
            var value: UInt64 = 0
            for index in 0..<min(max(width, 0), 8) {
                let port = offset &+ UInt64(index)
                let byte = port < 8 ? state.read(register: port) : 0xFF
                value |= UInt64(byte) << (UInt64(index) * 8)
            }
            updateLine(&state)
            return value
        }
    }

    /// Handles an `out` of `width` bytes; each byte is a write to the register at its port.
    /// A transmitted byte goes to the output before this returns.
    package func write(offset: UInt64, width: Int, value: UInt64) {
        // At most one byte of an access lands on offset 0, so at most one byte is sent.
        let sent: UInt8? = state.withLock { state in
            var sent: UInt8?
            for index in 0..<min(max(width, 0), 8) {
                let port = offset &+ UInt64(index)
                guard port < 8 else { continue }
                let byte = UInt8(truncatingIfNeeded: value >> (UInt64(index) * 8))
                if let transmitted = state.write(register: port, byte: byte) { sent = transmitted }
            }
            updateLine(&state)
            return sent
        }
        // Written outside the lock so a slow stdout never blocks the stdin reader.
        if var byte = sent {
            withUnsafeBytes(of: &byte) { output.write($0) }
        }
    }

    /// Handles a string `out` (`rep outsb` and friends): `data` holds consecutive elements of
    /// `width` bytes, each written as by ``write(offset:width:value:)``, in order, under one
    /// lock. The transmitted bytes go to the output in a single call, so a long `rep outsb`
    /// costs one host write instead of one per byte. A trailing partial element is ignored.
    ///
    /// - Complexity: O(data.count).
    package func writeString(offset: UInt64, width: Int, data: UnsafeRawBufferPointer) {
        guard (1...8).contains(width) else { return }
        let elements = data.count / width
        var transmitted: [UInt8] = []
        state.withLock { state in
            for element in 0..<elements {
                for index in 0..<width {
                    let port = offset &+ UInt64(index)
                    guard port < 8 else { continue }
                    if let byte = state.write(register: port, byte: data[element * width + index]) {
                        transmitted.append(byte)
                    }
                }
                updateLine(&state)
            }
        }
        if !transmitted.isEmpty {
            transmitted.withUnsafeBytes { output.write($0) }
        }
    }

    /// Handles a string `in` (`rep insb` and friends): fills `buffer` with consecutive
    /// elements of `width` bytes, each read as by ``read(offset:width:)``, under one lock. A
    /// trailing partial element is left untouched.
    ///
    /// - Complexity: O(buffer.count).
    package func readString(offset: UInt64, width: Int, into buffer: UnsafeMutableRawBufferPointer) {
        guard (1...8).contains(width) else { return }
        defer { notifyDrainWaiter() }
        let elements = buffer.count / width
        state.withLock { state in
            for element in 0..<elements {
                for index in 0..<width {
                    let port = offset &+ UInt64(index)
                    buffer[element * width + index] = port < 8 ? state.read(register: port) : 0xFF
                }
                updateLine(&state)
            }
        }
    }

    private func updateLine(_ state: inout SerialState) {
        let pending = state.interruptIdentification & SerialState.IIR.noInterruptPending == 0
        if pending != state.lineAsserted {
            state.lineAsserted = pending
            interrupt.setLevel(pending)
        }
    }
}
