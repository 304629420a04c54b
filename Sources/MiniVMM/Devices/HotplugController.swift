import Synchronization

// Hot-plug controller register map (4 KiB MMIO window; aligned 32-bit accesses only;
// guest ABI version 2, docs/guest-abi.md):
//
// | off  | name       | access | meaning                                                     |
// |------|------------|--------|-------------------------------------------------------------|
// | 0x00 | MAGIC      | R      | 0x474C5048 ("HPLG")                                         |
// | 0x04 | GENERATION | R      | 0 at boot; +1 at every rewrite of the boot-information table |
// | 0x08 | CTRL       | RW     | bit 0 NOTIFY: raise the GSI on changes; removals are asked   |
// |      |            |        | for (two-phase) instead of done by surprise                  |
// | 0x0C | STATUS     | R, W1C | bit 0 CHANGED: the table changed; bit 1 EJECT_ERROR          |
// | 0x10 | EJECT      | W      | kind << 16 | instance of an entry marked REMOVING: completes  |
// |      |            |        | its removal (asynchronously); anything else sets EJECT_ERROR |
//
// The machine tells the controller about every table rewrite (`tableChanged()`) and which
// entries are being removed; the controller tells the machine which the guest ejected.

/// The hot-plug controller: announces changes of the boot-information table to the guest
/// and takes the guest's go-ahead (EJECT) for a two-phase removal.
///
/// It owns the list of entries whose removal was requested, under its lock, because the
/// guest's EJECT writes arrive on vCPU threads while requests arrive from the control API.
/// An accepted EJECT hands the entry to the eject handler, which completes the removal
/// later, off the vCPU thread (it must pause every vCPU, this one included).
package final class HotplugController: BusDevice {
    /// MAGIC register value, `"HPLG"`.
    package static let magic: UInt32 = 0x474C_5048
    /// Bytes of MMIO window.
    package static let windowSize: UInt64 = 0x1000

    /// Register offsets.
    package enum Register {
        /// MAGIC (R).
        package static let magic: UInt64 = 0x00
        /// GENERATION (R).
        package static let generation: UInt64 = 0x04
        /// CTRL (RW).
        package static let control: UInt64 = 0x08
        /// STATUS (R, W1C).
        package static let status: UInt64 = 0x0C
        /// EJECT (W; reads 0).
        package static let eject: UInt64 = 0x10
    }

    /// CTRL bits.
    package enum Control {
        /// Raise the GSI on changes; removals are two-phase.
        package static let notify: UInt32 = 0x1
    }

    /// STATUS bits.
    package enum Status {
        /// The table changed since the bit was last cleared.
        package static let changed: UInt32 = 0x1
        /// An EJECT write named nothing being removed.
        package static let ejectError: UInt32 = 0x2
    }

    struct State {
        var generation: UInt32 = 0
        var control: UInt32 = 0
        var status: UInt32 = 0
        /// Entries marked REMOVING that the guest has not ejected yet.
        var requested: Set<BootInformation.EntryID> = []
        /// Entries the guest ejected whose removal the machine has not completed yet.
        var ejected: Set<BootInformation.EntryID> = []
        var onEject: (@Sendable (BootInformation.EntryID) -> Void)?
    }

    private let interrupt: any InterruptLine
    private let state = Mutex(State())

    /// What a snapshot keeps of the controller: its registers and the removals under way.
    package struct Snapshot: Codable, Hashable, Sendable {
        /// GENERATION.
        package var generation: UInt32
        /// CTRL.
        package var control: UInt32
        /// STATUS.
        package var status: UInt32
        /// Entries marked REMOVING that the guest has not ejected, ascending.
        package var requested: [BootInformation.EntryID]
        /// Entries the guest ejected whose removal was not complete, ascending.
        package var ejected: [BootInformation.EntryID]

        /// Decodes only register bits the controller has, and each entry in one list once.
        package init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            generation = try container.decode(UInt32.self, forKey: .generation)
            control = try container.decode(UInt32.self, forKey: .control)
            status = try container.decode(UInt32.self, forKey: .status)
            requested = try container.decode([BootInformation.EntryID].self, forKey: .requested)
            ejected = try container.decode([BootInformation.EntryID].self, forKey: .ejected)
            guard control & ~Control.notify == 0 else {
                throw DecodingError.dataCorruptedError(forKey: .control, in: container, debugDescription: "CTRL has bit 0 only")
            }
            guard status & ~(Status.changed | Status.ejectError) == 0 else {
                throw DecodingError.dataCorruptedError(forKey: .status, in: container, debugDescription: "STATUS has bits 0-1 only")
            }
            guard Set(requested + ejected).count == requested.count + ejected.count else {
                throw DecodingError.dataCorruptedError(
                    forKey: .ejected, in: container, debugDescription: "an entry is listed twice")
            }
        }

        init(_ state: State) {
            generation = state.generation
            control = state.control
            status = state.status
            requested = state.requested.sorted()
            ejected = state.ejected.sorted()
        }

        enum CodingKeys: String, CodingKey {
            case generation, control, status, requested, ejected
        }
    }

    /// The controller's registers and removals under way.
    package func snapshot() -> Snapshot {
        state.withLock { Snapshot($0) }
    }

    /// Takes `snapshot`'s state (the eject handler stays); returns the entries the guest had
    /// ejected, whose removal the machine must still complete.
    package func restore(_ snapshot: Snapshot) -> [BootInformation.EntryID] {
        state.withLock { state in
            state.generation = snapshot.generation
            state.control = snapshot.control
            state.status = snapshot.status
            state.requested = Set(snapshot.requested)
            state.ejected = Set(snapshot.ejected)
        }
        return snapshot.ejected
    }

    /// A controller at generation 0 with notifications off, raising `interrupt`.
    package init(interrupt: any InterruptLine) {
        self.interrupt = interrupt
    }

    /// Sets what runs when the guest ejects an entry (on the vCPU thread: it must not
    /// block; the machine queues the removal).
    package func setEjectHandler(_ handler: @escaping @Sendable (BootInformation.EntryID) -> Void) {
        state.withLock { $0.onEject = handler }
    }

    /// Whether the guest asked for notifications, so removals are two-phase.
    package var notificationsEnabled: Bool {
        state.withLock { $0.control & Control.notify != 0 }
    }

    /// Every entry whose REMOVING flag is set: requested, or ejected and not yet removed.
    package var removing: Set<BootInformation.EntryID> {
        state.withLock { $0.requested.union($0.ejected) }
    }

    /// The current generation (what GENERATION reads).
    package var generation: UInt32 {
        state.withLock { $0.generation }
    }

    /// Marks `entry` REMOVING, before the table that flags it is written.
    package func requestRemoval(of entry: BootInformation.EntryID) {
        state.withLock { _ = $0.requested.insert(entry) }
    }

    /// Forgets a removal of `entry`: it completed (the entry left the table), or the
    /// request is rolled back because its table could not be written.
    package func forgetRemoval(of entry: BootInformation.EntryID) {
        state.withLock { state in
            state.requested.remove(entry)
            state.ejected.remove(entry)
        }
    }

    /// Records a rewrite of the table: GENERATION + 1, CHANGED, and with NOTIFY set, an
    /// interrupt.
    package func tableChanged() {
        let notify = state.withLock { state in
            state.generation &+= 1
            state.status |= Status.changed
            return state.control & Control.notify != 0
        }
        if notify { interrupt.trigger() }
    }

    package func read(offset: UInt64, width: Int) -> UInt64 {
        guard width == 4 else { return Self.allOnes(width) }
        return state.withLock { state -> UInt64 in
            switch offset {
            case Register.magic: UInt64(Self.magic)
            case Register.generation: UInt64(state.generation)
            case Register.control: UInt64(state.control)
            case Register.status: UInt64(state.status)
            case Register.eject: 0
            default: Self.allOnes(width)
            }
        }
    }

    package func write(offset: UInt64, width: Int, value: UInt64) {
        guard width == 4 else { return }
        let word = UInt32(truncatingIfNeeded: value)
        let accepted: (BootInformation.EntryID, @Sendable (BootInformation.EntryID) -> Void)? = state.withLock { state in
            switch offset {
            case Register.control:
                state.control = word & Control.notify
            case Register.status:
                state.status &= ~(word & (Status.changed | Status.ejectError))
            case Register.eject:
                guard let entry = BootInformation.EntryID(ejectValue: word), state.requested.contains(entry),
                      let handler = state.onEject
                else {
                    state.status |= Status.ejectError
                    return nil
                }
                state.requested.remove(entry)
                state.ejected.insert(entry)
                return (entry, handler)
            default:
                break
            }
            return nil
        }
        if let (entry, handler) = accepted { handler(entry) }
    }

    private static func allOnes(_ width: Int) -> UInt64 {
        width >= 8 ? .max : (1 << (UInt64(width) * 8)) - 1
    }
}
