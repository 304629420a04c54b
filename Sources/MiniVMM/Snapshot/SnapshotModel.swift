#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import VMAllocator

// The state file of a snapshot directory, `snapshot.json` (docs/snapshots.md): a header
// that can be read alone, then the machine, the allocators' own Codable state, every
// device's state, every vCPU's state and the VM's. Every type here decodes only values the
// machine could have been in; `SnapshotLoader` then cross-checks the parts.

/// The header: what a reader checks before anything else.
package struct SnapshotHeader: Codable, Hashable, Sendable {
    /// The format's name, always ``SnapshotHeader/formatName``.
    package var format: String
    /// The format's version; this minivmm reads ``SnapshotHeader/currentVersion``.
    package var formatVersion: Int
    /// The minivmm that wrote it.
    package var minivmmVersion: String
    /// When it was written (UTC, ISO 8601). Two snapshots of the same state differ here
    /// and in the time-dependent fields docs/snapshots.md lists (kvmclock, PIT, TSC).
    package var createdAt: String
    /// A full snapshot holds all RAM; a diff only the pages written since its parent.
    package var type: SnapshotKind = .full
    /// A diff's parent: the snapshot directory it was taken after (absolute path).
    package var parent: String?

    /// `"minivmm-snapshot"`.
    package static let formatName = "minivmm-snapshot"
    /// The version this minivmm writes and reads.
    package static let currentVersion = 1

    enum CodingKeys: String, CodingKey {
        case format
        case formatVersion = "format_version"
        case minivmmVersion = "minivmm_version"
        case createdAt = "created_at"
        case type, parent
    }
}

/// Full or diff.
package enum SnapshotKind: String, Codable, Hashable, Sendable {
    /// Every RAM byte.
    case full
    /// The RAM pages written since the parent snapshot.
    case diff
}

/// Just the header of a state file: decoding it skips everything else, so a reader can
/// check the format and version of any file, even one whose rest it cannot read.
package struct SnapshotHeaderOnly: Decodable, Sendable {
    /// The header.
    package var header: SnapshotHeader
}

/// Bytes that encode as base64 in JSON (register blocks, irqchip state).
package struct Base64Bytes: Codable, Hashable, Sendable {
    /// The bytes.
    package var bytes: [UInt8]

    /// Wraps `bytes`.
    package init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    package init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let data = Data(base64Encoded: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not base64"))
        }
        bytes = Array(data)
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Data(bytes).base64EncodedString())
    }
}

/// The complete state file.
package struct SnapshotState: Codable, Hashable, Sendable {
    /// Format, version, writer, time.
    package var header: SnapshotHeader
    /// What the machine is made of.
    package var machine: MachineRecord
    /// The resource manager's allocators, in VMAllocator's own validated Codable form.
    package var allocators: AllocatorsRecord
    /// Every device's state.
    package var devices: DeviceStatesRecord
    /// Every vCPU's state, by vCPU ID.
    package var vcpus: [VcpuRecord]
    /// The VM's state: the irqchips, the PIT, the clock.
    package var vm: VMRecord
}

/// The machine: memory, CPUs, devices, with the ids the control API knows them by.
package struct MachineRecord: Codable, Hashable, Sendable {
    /// Boot RAM in bytes (`--memory`).
    package var memorySize: UInt64
    /// Every RAM region, ascending by base: boot RAM, then hot-plugged RAM.
    package var memory: [MemoryRecord]
    /// vCPU IDs, ascending.
    package var cpus: [UInt32]
    /// The pluggable devices (boot and hot-plugged), by kind then instance.
    package var devices: [DeviceRecord]
    /// The hot-plug controller's window and GSI.
    package var hotplugController: FixedDeviceRecord
    /// Resources the host would not release (never handed out again).
    package var quarantined: QuarantineRecord

    enum CodingKeys: String, CodingKey {
        case memory, cpus, devices, quarantined
        case memorySize = "memory_size"
        case hotplugController = "hotplug_controller"
    }
}

/// One RAM region and the file that holds its bytes.
package struct MemoryRecord: Codable, Hashable, Sendable {
    /// The control API's id (`ram0`, or the name given to `PUT /memory`).
    package var id: String
    /// Its KVM memory slot.
    package var slot: UInt32
    /// Its guest-physical range.
    package var range: RangeInclusive
    /// Whether it was plugged in while the guest ran (else boot RAM).
    package var hotplugged: Bool
    /// The memory file's name in the snapshot directory.
    package var file: String
    /// In a diff: the pages (4 KiB, numbered from the region's base) the file holds, packed
    /// in this order; nil in a full snapshot, whose file holds the whole region.
    package var pages: [PageRun]? = nil

    /// The memory file's size: the whole region, or a diff's pages.
    package var fileSize: UInt64 {
        guard let pages else { return range.count }
        // Saturating: a crafted file's page counts must not trap; the size check refuses them.
        var total: UInt64 = 0
        for run in pages {
            let (sum, overflow) = total.addingReportingOverflow(run.count)
            guard !overflow else { return .max }
            total = sum
        }
        let (bytes, overflow) = total.multipliedReportingOverflow(by: PageRun.pageSize)
        return overflow ? .max : bytes
    }
}

/// A run of 4 KiB pages.
package struct PageRun: Codable, Hashable, Sendable {
    /// The page size.
    package static let pageSize: UInt64 = 4096
    /// The first page's number.
    package var first: UInt64
    /// How many pages.
    package var count: UInt64

    /// A run.
    package init(first: UInt64, count: UInt64) {
        self.first = first
        self.count = count
    }

    /// The runs of consecutive numbers in `pages` (ascending).
    ///
    /// - Complexity: O(n).
    package static func runs(of pages: some Sequence<UInt64>) -> [PageRun] {
        var runs: [PageRun] = []
        for page in pages {
            if let last = runs.last, last.first + last.count == page {
                runs[runs.count - 1].count += 1
            } else {
                runs.append(PageRun(first: page, count: 1))
            }
        }
        return runs
    }
}

/// One pluggable device.
package struct DeviceRecord: Codable, Hashable, Sendable {
    /// The control API's id (`timer0`, or the name given to `PUT /devices`).
    package var id: String
    /// Its kind.
    package var kind: DeviceKind
    /// Its instance number.
    package var instance: UInt32
    /// Its MMIO window.
    package var window: RangeInclusive
    /// Its GSI, if the kind has one.
    package var gsi: UInt32?
}

/// A fixed device's resources.
package struct FixedDeviceRecord: Codable, Hashable, Sendable {
    /// Its MMIO window.
    package var window: RangeInclusive
    /// Its GSI.
    package var gsi: UInt32
}

/// Quarantined resources.
package struct QuarantineRecord: Codable, Hashable, Sendable {
    /// Quarantined GSIs.
    package var gsis: [UInt32]
    /// Quarantined RAM: slot and range.
    package var ram: [QuarantinedRAM]

    /// One quarantined RAM region.
    package struct QuarantinedRAM: Codable, Hashable, Sendable {
        /// Its memory slot.
        package var slot: UInt32
        /// Its range in the hot-plug window.
        package var range: RangeInclusive
    }
}

/// The resource manager's allocators.
package struct AllocatorsRecord: Codable, Hashable, Sendable {
    /// KVM memory slots.
    package var memorySlots: IdAllocator
    /// Port I/O.
    package var ports: AddressAllocator
    /// The 32-bit MMIO gap.
    package var mmio: AddressAllocator
    /// GSIs.
    package var gsis: IdAllocator
    /// vCPU IDs.
    package var vcpuIDs: IdAllocator
    /// The hot-plug RAM window.
    package var hotplugRAM: AddressAllocator
    /// Instance numbers, by kind.
    package var instances: [String: IdAllocator]

    enum CodingKeys: String, CodingKey {
        case ports, mmio, gsis, instances
        case memorySlots = "memory_slots"
        case vcpuIDs = "vcpu_ids"
        case hotplugRAM = "hotplug_ram"
    }
}

/// Every device's state.
package struct DeviceStatesRecord: Codable, Hashable, Sendable {
    /// COM1.
    package var com1: SerialState.Snapshot
    /// The hot-plug controller.
    package var hotplugController: HotplugController.Snapshot
    /// Timers, by device id.
    package var timers: [String: TimerDevice.Snapshot]
    /// DMA consoles, by device id.
    package var dmaConsoles: [String: DMAConsole.Snapshot]

    enum CodingKeys: String, CodingKey {
        case com1, timers
        case hotplugController = "hotplug_controller"
        case dmaConsoles = "dma_consoles"
    }
}

/// One vCPU's state: KVM's register blocks as they come from the kernel.
package struct VcpuRecord: Codable, Hashable, Sendable {
    /// The vCPU ID (and local APIC ID).
    package var id: UInt32
    /// The guest TSC rate in kHz.
    package var tscKhz: UInt32
    /// `KVM_GET_MP_STATE`.
    package var mpState: UInt32
    /// REGS, SREGS, FPU, XSAVE, XCRS, LAPIC, VCPU_EVENTS, DEBUGREGS.
    package var registers: [String: Base64Bytes]
    /// Every readable MSR.
    package var msrs: [MSRRecord]

    enum CodingKeys: String, CodingKey {
        case id, registers, msrs
        case tscKhz = "tsc_khz"
        case mpState = "mp_state"
    }
}

/// One MSR.
package struct MSRRecord: Codable, Hashable, Sendable {
    /// Its index.
    package var index: UInt32
    /// Its value.
    package var value: UInt64
}

/// The VM's state.
package struct VMRecord: Codable, Hashable, Sendable {
    /// PIC master, PIC slave, IOAPIC, PIT2, CLOCK: KVM's structures as they come.
    package var blocks: [String: Base64Bytes]
}

extension SnapshotHeader {
    /// The version of minivmm that writes snapshots.
    package static let minivmmVersion = "0.5.0"

    /// A header for a snapshot written now.
    package static func now() -> SnapshotHeader {
        SnapshotHeader(
            format: formatName, formatVersion: currentVersion, minivmmVersion: minivmmVersion,
            createdAt: Date.now.formatted(.iso8601))
    }
}
