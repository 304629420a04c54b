import Synchronization

// DMA console register map (4 KiB MMIO window; aligned 32-bit accesses only):
//
// | off  | name     | access | meaning                                                     |
// |------|----------|--------|-------------------------------------------------------------|
// | 0x00 | MAGIC    | R      | 0x414D4443 ("CDMA")                                         |
// | 0x04 | STATUS   | R      | last request: 0 OK, 1 bad address or length                 |
// | 0x08 | ADDR_LO  | RW     | guest-physical address of the bytes, low 32 bits            |
// | 0x0C | ADDR_HI  | RW     | high 32 bits                                                |
// | 0x10 | LENGTH   | RW     | number of bytes, at most 1 MiB                              |
// | 0x14 | DOORBELL | W      | 1: copy LENGTH bytes at ADDR to the output, then set STATUS |
// | 0x18 | CTRL     | RW     | bit 0: raise the interrupt when a request completes         |
// | 0x1C | WRITTEN  | R      | total bytes written (wraps at 2^32)                         |
//
// A request is all or nothing: bytes not entirely inside one RAM region, or more than 1 MiB,
// write nothing and set STATUS to 1.

/// A console that copies guest memory to an output when the guest rings its doorbell.
///
/// Every guest-memory access goes through the bounds-checked `GuestMemoryReader`, so a bad
/// request can only set STATUS, never read outside guest RAM.
package final class DMAConsole: BusDevice {
    /// MAGIC register value, `"CDMA"`.
    package static let magic: UInt32 = 0x414D_4443
    /// The longest request accepted (1 MiB).
    package static let maximumLength: UInt32 = 1 << 20

    /// Register offsets.
    package enum Register {
        /// MAGIC (R).
        package static let magic: UInt64 = 0x00
        /// STATUS (R).
        package static let status: UInt64 = 0x04
        /// ADDR_LO (RW).
        package static let addressLow: UInt64 = 0x08
        /// ADDR_HI (RW).
        package static let addressHigh: UInt64 = 0x0C
        /// LENGTH (RW).
        package static let length: UInt64 = 0x10
        /// DOORBELL (W).
        package static let doorbell: UInt64 = 0x14
        /// CTRL (RW).
        package static let control: UInt64 = 0x18
        /// WRITTEN (R).
        package static let written: UInt64 = 0x1C
    }

    /// STATUS values.
    package enum Status {
        /// The last request was copied.
        package static let ok: UInt32 = 0
        /// The last request had a bad address or length; nothing was written.
        package static let badRequest: UInt32 = 1
    }

    /// CTRL bit 0: interrupt on completion.
    package static let interruptOnCompletion: UInt32 = 0x1

    /// What a snapshot keeps of a console: its registers.
    package struct Snapshot: Codable, Hashable, Sendable {
        /// STATUS.
        package var status: UInt32 = Status.ok
        /// ADDR_LO.
        package var addressLow: UInt32 = 0
        /// ADDR_HI.
        package var addressHigh: UInt32 = 0
        /// LENGTH.
        package var length: UInt32 = 0
        /// CTRL.
        package var control: UInt32 = 0
        /// WRITTEN.
        package var written: UInt32 = 0

        enum CodingKeys: String, CodingKey {
            case status, length, control, written
            case addressLow = "address_low"
            case addressHigh = "address_high"
        }

        /// A console's reset state.
        package init() {}

        /// Decodes only register values the console can hold.
        package init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            status = try container.decode(UInt32.self, forKey: .status)
            addressLow = try container.decode(UInt32.self, forKey: .addressLow)
            addressHigh = try container.decode(UInt32.self, forKey: .addressHigh)
            length = try container.decode(UInt32.self, forKey: .length)
            control = try container.decode(UInt32.self, forKey: .control)
            written = try container.decode(UInt32.self, forKey: .written)
            guard status == Status.ok || status == Status.badRequest else {
                throw DecodingError.dataCorruptedError(forKey: .status, in: container, debugDescription: "STATUS is 0 or 1")
            }
            guard control & ~DMAConsole.interruptOnCompletion == 0 else {
                throw DecodingError.dataCorruptedError(forKey: .control, in: container, debugDescription: "CTRL has only bit 0")
            }
        }

        var address: UInt64 { UInt64(addressHigh) << 32 | UInt64(addressLow) }
    }

    private typealias State = Snapshot

    /// The console's registers.
    package func snapshot() -> Snapshot {
        state.withLock { $0 }
    }

    /// Takes `snapshot`'s registers.
    package func restore(_ snapshot: Snapshot) {
        state.withLock { $0 = snapshot }
    }


    private let memory: any GuestMemoryReader
    private let output: any ConsoleOutput
    private let interrupt: any InterruptLine
    private let state = Mutex(State())

    /// Creates a console that reads guest RAM through `memory`, writes to `output` and
    /// pulses `interrupt` on completion when CTRL asks for it.
    package init(memory: some GuestMemoryReader, output: some ConsoleOutput, interrupt: some InterruptLine) {
        self.memory = memory
        self.output = output
        self.interrupt = interrupt
    }

    /// Handles a guest read; only aligned 32-bit reads of readable registers are answered.
    package func read(offset: UInt64, width: Int) -> UInt64 {
        guard let register = DeviceAccess.register(offset: offset, width: width) else {
            return DeviceBus.mask(width: width)
        }
        return state.withLock { state in
            switch register {
            case Register.magic: return UInt64(Self.magic)
            case Register.status: return UInt64(state.status)
            case Register.addressLow: return UInt64(state.addressLow)
            case Register.addressHigh: return UInt64(state.addressHigh)
            case Register.length: return UInt64(state.length)
            case Register.control: return UInt64(state.control)
            case Register.written: return UInt64(state.written)
            default: return DeviceBus.mask(width: width)
            }
        }
    }

    /// Handles a guest write; a doorbell write of 1 performs the request synchronously.
    ///
    /// - Complexity: O(LENGTH) for a doorbell.
    package func write(offset: UInt64, width: Int, value: UInt64) {
        guard let register = DeviceAccess.register(offset: offset, width: width) else { return }
        let word = UInt32(truncatingIfNeeded: value)
        let completed: Bool = state.withLock { state in
            switch register {
            case Register.addressLow: state.addressLow = word
            case Register.addressHigh: state.addressHigh = word
            case Register.length: state.length = word
            case Register.control: state.control = word & Self.interruptOnCompletion
            case Register.doorbell where word == 1:
                // Under the lock so concurrent requests never interleave their bytes.
                state.status = perform(address: state.address, length: state.length)
                if state.status == Status.ok { state.written &+= state.length }
                return state.control & Self.interruptOnCompletion != 0
            default: break
            }
            return false
        }
        if completed { interrupt.trigger() }
    }

    private func perform(address: UInt64, length: UInt32) -> UInt32 {
        guard length <= Self.maximumLength else { return Status.badRequest }
        guard length > 0 else { return Status.ok }
        // The reader checks bounds too; refusing a wrapping range here keeps the device
        // safe with any reader.
        guard address.addingReportingOverflow(UInt64(length) - 1).overflow == false else {
            return Status.badRequest
        }
        let copied = memory.withBytes(at: address, count: Int(length)) { bytes in
            output.write(bytes)
        }
        return copied ? Status.ok : Status.badRequest
    }
}
