import Foundation
import Glibc
import SystemPackage
import Testing
import VMAllocator

@testable import MiniVMM

/// A small but complete snapshot: two RAM regions (boot RAM of 2 MiB + 4 KiB, so a file
/// spans more than one write chunk and ends mid-chunk, and 2 MiB of hot-plugged RAM), one
/// vCPU, a timer, real allocators and device states.
private struct SnapshotFixture {
    let state: SnapshotState
    let memory: [[UInt8]]
    let directory: URL

    /// The snapshot's path (not created).
    var path: String { directory.appendingPathComponent("snap").path }

    init() throws {
        var manager = try ResourceManager(memorySlotCount: 8)
        let bootRange = try RangeInclusive(start: 0, count: 2 << 20 + 4096)
        let boot = try manager.takeMemorySlot(for: bootRange, owner: .ram(0))
        let hotplugged = try manager.attachRAM(size: 2 << 20)
        let line = RecordingInterruptLine()
        let console = RecordingConsoleOutput()
        let timer = TimerDevice(interrupt: line)
        let dma = DMAConsole(memory: InMemoryGuestMemory(base: 0, size: 16), output: console, interrupt: line)
        let window = try RangeInclusive(start: 0xD000_0000, count: 0x1000)
        let machine = MachineRecord(
            memorySize: boot.range.count,
            memory: [
                MemoryRecord(id: "ram0", slot: boot.slot, range: boot.range, hotplugged: false, file: "memory-0.bin"),
                MemoryRecord(
                    id: "ram1", slot: hotplugged.slot, range: hotplugged.range, hotplugged: true,
                    file: SnapshotFileNames.memory(slot: hotplugged.slot)),
            ],
            cpus: [0],
            devices: [DeviceRecord(id: "timer0", kind: .timer, instance: 0, window: window, gsi: 5)],
            hotplugController: FixedDeviceRecord(window: try RangeInclusive(start: 0xD010_0000, count: 0x1000), gsi: 6),
            quarantined: QuarantineRecord(gsis: [], ram: []))
        let allocators = AllocatorsRecord(
            memorySlots: manager.memorySlots, ports: manager.ports, mmio: manager.mmio, gsis: manager.gsis,
            vcpuIDs: manager.vcpuIDs, hotplugRAM: manager.hotplugRAM,
            instances: Dictionary(uniqueKeysWithValues: manager.instances.map { ($0.key.rawValue, $0.value) }))
        let devices = DeviceStatesRecord(
            com1: Serial16550(output: console, interrupt: line).snapshot(),
            hotplugController: HotplugController(interrupt: line).snapshot(),
            timers: ["timer0": timer.snapshot()], dmaConsoles: ["dma-console0": dma.snapshot()])
        let vcpu = VcpuRecord(
            id: 0, tscKhz: 2_400_000, mpState: 0,
            registers: ["regs": Base64Bytes([1, 2, 3, 255]), "lapic": Base64Bytes(Array(repeating: 7, count: 1024))],
            msrs: [MSRRecord(index: 0x10, value: 123_456_789)])
        state = SnapshotState(
            header: SnapshotHeader(
                format: SnapshotHeader.formatName, formatVersion: SnapshotHeader.currentVersion,
                minivmmVersion: "test", createdAt: "2026-01-01T00:00:00Z"),
            machine: machine, allocators: allocators, devices: devices, vcpus: [vcpu],
            vm: VMRecord(blocks: ["pic_master": Base64Bytes([0, 1]), "clock": Base64Bytes([9])]))
        var random = SeededRandom(seed: 10)
        memory = machine.memory.map { record in
            // Whole random words: byte-by-byte generation takes seconds in a debug build.
            var bytes = [UInt8](repeating: 0, count: Int(record.range.count))
            bytes.withUnsafeMutableBytes { buffer in
                for offset in stride(from: 0, to: buffer.count - 7, by: 8) {
                    buffer.storeBytes(of: random.next(), toByteOffset: offset, as: UInt64.self)
                }
            }
            return bytes
        }
        directory = try HostTestSupport.temporaryDirectory()
    }

    /// Writes the snapshot to `path` (by default ``path``) with buffers named by the records.
    func write(to path: String? = nil, names: [String]? = nil) throws(SnapshotError) {
        let names = names ?? state.machine.memory.map(\.file)
        try withBuffers(names) { (files) throws(SnapshotError) in
            try SnapshotDirectory.write(state: state, memory: files, to: path ?? self.path)
        }
    }

    /// `body` with the memory buffers as ``MemoryFile``s named `names`.
    private func withBuffers(_ names: [String], _ body: ([MemoryFile]) throws(SnapshotError) -> Void) throws(SnapshotError) {
        func nest(_ index: Int, _ files: [MemoryFile]) throws(SnapshotError) {
            guard index < memory.count else { return try body(files) }
            try memory[index].withUnsafeBytes { bytes in
                Result { () throws(SnapshotError) in try nest(index + 1, files + [MemoryFile(name: names[index], bytes: bytes)]) }
            }.get()
        }
        try nest(0, [])
    }

    /// The file `name` of the written snapshot.
    func url(_ name: String) -> URL { URL(fileURLWithPath: path).appendingPathComponent(name) }

    /// Edits `snapshot.json` as JSON, then fixes its manifest entry, so that the reader gets
    /// past the digest check to the decoding.
    func editState(_ edit: (inout [String: Any]) throws -> Void) throws {
        let data = try Data(contentsOf: url(SnapshotFileNames.state))
        var object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        try edit(&object)
        try replaceState(with: Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])))
    }

    /// Replaces `snapshot.json` with `bytes` and fixes its manifest entry.
    func replaceState(with bytes: [UInt8]) throws {
        try Data(bytes).write(to: url(SnapshotFileNames.state))
        let manifest = try JSONDecoder().decode(SnapshotManifest.self, from: Data(contentsOf: url(SnapshotFileNames.manifest)))
        var files = manifest.files.filter { $0.name != SnapshotFileNames.state }
        files.append(SnapshotManifest.Entry(name: SnapshotFileNames.state, contents: bytes))
        try JSONEncoder().encode(SnapshotManifest(files: files)).write(to: url(SnapshotFileNames.manifest))
    }

    /// The error reading the snapshot throws, or `nil` if it reads.
    func readError(verifyMemory: Bool = false) -> SnapshotError? {
        do {
            _ = try SnapshotDirectory.read(from: path, verifyMemory: verifyMemory)
            return nil
        } catch {
            return error
        }
    }

    /// Whether anything is at `path`.
    func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

/// Sets the value at `path` (keys and array positions) inside a JSON object.
private func setJSON(_ object: inout [String: Any], _ path: [Any], to value: Any) throws {
    func set(_ node: Any, _ rest: ArraySlice<Any>) throws -> Any {
        guard let first = rest.first else { return value }
        if let key = first as? String, var dictionary = node as? [String: Any] {
            dictionary[key] = try set(dictionary[key] as Any, rest.dropFirst())
            return dictionary
        }
        if let index = first as? Int, var array = node as? [Any], array.indices.contains(index) {
            array[index] = try set(array[index], rest.dropFirst())
            return array
        }
        throw CocoaError(.coderInvalidValue)
    }
    object = try #require(try set(object, path[...]) as? [String: Any])
}

@Suite("SnapshotDirectory: write, read, refuse")
struct SnapshotDirectoryTests {
    @Test("a written snapshot reads back equal, its memory files byte for byte, with and without verifying memory")
    func roundTrip() throws {
        let fixture = try SnapshotFixture()
        defer { fixture.remove() }
        try fixture.write()
        #expect(!fixture.exists(fixture.path + ".partial"))
        for verify in [false, true] {
            let loaded = try SnapshotDirectory.read(from: fixture.path, verifyMemory: verify)
            #expect(loaded.state == fixture.state)
            #expect(loaded.memory.map(\.record) == fixture.state.machine.memory)
            #expect(loaded.memory.map(\.size) == fixture.memory.map { UInt64($0.count) })
            for (file, bytes) in zip(loaded.memory, fixture.memory) {
                #expect(file.path == fixture.path + "/" + file.record.file)
                #expect(try Array(Data(contentsOf: URL(fileURLWithPath: file.path))) == bytes)
            }
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: fixture.path).sorted()
        #expect(names == ["manifest.json", "memory-0.bin", "memory-1.bin", "snapshot.json"])
        // A trailing slash names the same directory.
        #expect(try SnapshotDirectory.read(from: fixture.path + "/", verifyMemory: false).state == fixture.state)
    }

    @Test("a trailing slash names the same directory; a path naming none is refused")
    func pathForms() throws {
        let fixture = try SnapshotFixture()
        defer { fixture.remove() }
        try fixture.write(to: fixture.path + "//")
        #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.directory.path) == ["snap"])
        #expect(try SnapshotDirectory.read(from: fixture.path, verifyMemory: true).state == fixture.state)
        for path in ["", "/", fixture.path + "/.."] {
            #expect(throws: SnapshotError.invalid(file: path, fieldPath: "", reason: "names no directory to snapshot to")) {
                try fixture.write(to: path)
            }
        }
        #expect(throws: SnapshotError.notFound(file: "")) { try SnapshotDirectory.read(from: "", verifyMemory: false) }
    }

    @Test("a failure after files were written leaves neither the snapshot nor its partial directory")
    func failureRemovesPartial() throws {
        let fixture = try SnapshotFixture()
        defer { fixture.remove() }
        // A plain name, so it passes every check, but longer than a file name can be: the
        // first memory file is written, then creating the second fails.
        let long = String(repeating: "m", count: 300)
        var state = fixture.state
        state.machine.memory[1].file = long
        let error = #expect(throws: SnapshotError.self) {
            try fixture.memory[0].withUnsafeBytes { first in
                try fixture.memory[1].withUnsafeBytes { second in
                    try SnapshotDirectory.write(
                        state: state, memory: [MemoryFile(name: "memory-0.bin", bytes: first), MemoryFile(name: long, bytes: second)],
                        to: fixture.path)
                }
            }
        }
        #expect(error == .unwritable(file: long, HostError("open", .fileNameTooLong)))
        #expect(!fixture.exists(fixture.path))
        #expect(!fixture.exists(fixture.path + ".partial"))
    }

    @Test("memory buffers that do not match the records are refused before anything is created")
    func mismatchedBuffers() throws {
        let fixture = try SnapshotFixture()
        defer { fixture.remove() }
        #expect(throws: SnapshotError.invalid(file: "../memory-1.bin", fieldPath: "", reason: "memory buffer's name '../memory-1.bin' is not a plain file name")) {
            try fixture.write(names: ["memory-0.bin", "../memory-1.bin"])
        }
        #expect(throws: SnapshotError.invalid(file: "snapshot.json", fieldPath: "machine.memory[1].file", reason: "no memory buffer named 'memory-1.bin'")) {
            try fixture.write(names: ["memory-0.bin", "memory-9.bin"])
        }
        var state = fixture.state
        state.machine.memory[0].range = try RangeInclusive(start: 0, count: 4096)
        #expect(throws: SnapshotError.memorySize(file: "memory-0.bin", expected: 4096, actual: 2 << 20 + 4096)) {
            try fixture.memory[0].withUnsafeBytes { first in
                try fixture.memory[1].withUnsafeBytes { second in
                    try SnapshotDirectory.write(
                        state: state, memory: [MemoryFile(name: "memory-0.bin", bytes: first), MemoryFile(name: "memory-1.bin", bytes: second)],
                        to: fixture.path)
                }
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.directory.path).isEmpty)
    }

    @Test("an existing path is refused and left untouched; so is an existing partial directory")
    func existingPathRefused() throws {
        let fixture = try SnapshotFixture()
        defer { fixture.remove() }
        try FileManager.default.createDirectory(atPath: fixture.path, withIntermediateDirectories: false)
        try Data("mine".utf8).write(to: fixture.url("keep"))
        #expect(throws: SnapshotError.exists(path: fixture.path)) { try fixture.write() }
        #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.path) == ["keep"])
        #expect(try Data(contentsOf: fixture.url("keep")) == Data("mine".utf8))
        #expect(!fixture.exists(fixture.path + ".partial"))
        #expect(SnapshotError.exists(path: fixture.path).description == "snapshot directory '\(fixture.path)' already exists")

        let other = fixture.directory.appendingPathComponent("other").path
        try FileManager.default.createDirectory(atPath: other + ".partial", withIntermediateDirectories: false)
        try Data("theirs".utf8).write(to: URL(fileURLWithPath: other + ".partial/memory-0.bin"))
        #expect(throws: SnapshotError.partialExists(path: other)) { try fixture.write(to: other) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: other + ".partial/memory-0.bin")) == Data("theirs".utf8))
        #expect(!fixture.exists(other))
    }

    @Test("a flipped byte in the header fails the manifest's digest before anything is decoded")
    func flippedHeaderByte() throws {
        let fixture = try SnapshotFixture()
        defer { fixture.remove() }
        try fixture.write()
        var bytes = Array(try Data(contentsOf: fixture.url("snapshot.json")))
        let format = Array("minivmm-snapshot".utf8)
        let at = try #require(bytes.indices.first { bytes[$0...].starts(with: format) })
        bytes[at] ^= 0x01
        try Data(bytes).write(to: fixture.url("snapshot.json"))
        let manifest = try JSONDecoder().decode(SnapshotManifest.self, from: Data(contentsOf: fixture.url("manifest.json")))
        let recorded = try #require(manifest.entry(named: "snapshot.json")).sha256
        let actual = SnapshotManifest.Entry(name: "snapshot.json", contents: bytes).sha256
        #expect(fixture.readError() == .manifestMismatch(file: "snapshot.json", what: "SHA-256 is \(actual), the manifest says \(recorded)"))
        #expect(
            fixture.readError()?.description
                == "snapshot.json: does not match manifest.json: SHA-256 is \(actual), the manifest says \(recorded)")
    }

    @Test("a truncated or grown state file fails the manifest's size")
    func stateFileSize() throws {
        let fixture = try SnapshotFixture()
        defer { fixture.remove() }
        try fixture.write()
        let bytes = Array(try Data(contentsOf: fixture.url("snapshot.json")))
        try Data(bytes.dropLast()).write(to: fixture.url("snapshot.json"))
        #expect(
            fixture.readError()
                == .manifestMismatch(file: "snapshot.json", what: "holds \(bytes.count - 1) bytes, the manifest says \(bytes.count)"))
    }

    @Test("a field of the wrong type names the file and the field's path")
    func wrongType() throws {
        let fixture = try SnapshotFixture()
        defer { fixture.remove() }
        try fixture.write()
        try fixture.editState { try setJSON(&$0, ["machine", "devices", 0, "window"], to: "0xd0000000") }
        let error = try #require(fixture.readError())
        guard case .invalid(file: "snapshot.json", fieldPath: "machine.devices[0].window", let reason) = error else {
            Issue.record("unexpected error \(error)")
            return
        }
        #expect(reason.contains("string"))
        #expect(error.description.hasPrefix("snapshot.json: machine.devices[0].window: "))
        #expect(!error.description.contains("\n"))
    }

    @Test("a missing field and a null one name the path too")
    func missingField() throws {
        let fixture = try SnapshotFixture()
        defer { fixture.remove() }
        try fixture.write()
        try fixture.editState { object in
            var vcpus = try #require(object["vcpus"] as? [[String: Any]])
            vcpus[0]["tsc_khz"] = nil
            object["vcpus"] = vcpus
        }
        #expect(fixture.readError() == .invalid(file: "snapshot.json", fieldPath: "vcpus[0].tsc_khz", reason: "missing"))
        #expect(fixture.readError()?.description == "snapshot.json: vcpus[0].tsc_khz: missing")
        try fixture.editState { object in
            var vcpus = try #require(object["vcpus"] as? [[String: Any]])
            vcpus[0]["tsc_khz"] = 1
            object["vcpus"] = vcpus
        }
        #expect(fixture.readError() == nil)
        try fixture.editState { try setJSON(&$0, ["devices", "timers", "timer0", "count"], to: NSNull()) }
        #expect(fixture.readError() == .invalid(file: "snapshot.json", fieldPath: "devices.timers.timer0.count", reason: "null, expected UInt32"))
    }

    @Test("allocator state with overlapping or out-of-range allocations is refused by VMAllocator's decoder")
    func invalidAllocators() throws {
        let fixture = try SnapshotFixture()
        defer { fixture.remove() }
        try fixture.write()
        let mmio = fixture.state.allocators.mmio
        let first = try #require(mmio.allocations.first)
        try fixture.editState {
            try setJSON(&$0, ["allocators", "mmio", "allocations"], to: [[first.start, first.end], [first.start, first.end + 1]])
        }
        #expect(
            fixture.readError()
                == .invalid(file: "snapshot.json", fieldPath: "allocators.mmio.allocations", reason: "allocation 1 overlaps or precedes the one before it"))
        try fixture.editState { try setJSON(&$0, ["allocators", "mmio", "allocations"], to: [[0, 0xFFF]]) }
        #expect(
            fixture.readError()
                == .invalid(
                    file: "snapshot.json", fieldPath: "allocators.mmio.allocations",
                    reason: "allocation 0 [0x0, 0xfff] is outside the managed space"))
        #expect(
            fixture.readError()?.description
                == "snapshot.json: allocators.mmio.allocations: allocation 0 [0x0, 0xfff] is outside the managed space")
    }

    @Test("an unknown version is reported as such, however the rest of the file looks")
    func unknownVersion() throws {
        let fixture = try SnapshotFixture()
        defer { fixture.remove() }
        try fixture.write()
        // A later version may change everything but the format's name and version.
        try fixture.replaceState(with: Array(#"{"header": {"format": "minivmm-snapshot", "format_version": 7}, "machine": 1}"#.utf8))
        #expect(fixture.readError() == .unknownVersion(7))
        #expect(fixture.readError()?.description == "snapshot format version 7; this minivmm reads 1")
    }

    @Test("another format's name is reported before its version")
    func wrongFormat() throws {
        let fixture = try SnapshotFixture()
        defer { fixture.remove() }
        try fixture.write()
        try fixture.replaceState(with: Array(#"{"header": {"format": "firecracker", "format_version": "v1.7"}}"#.utf8))
        #expect(fixture.readError() == .wrongFormat("firecracker"))
        #expect(fixture.readError()?.description == "snapshot.json: header.format: 'firecracker' is not 'minivmm-snapshot'")
        try fixture.replaceState(with: Array(#"{"header": {"format_version": 1}}"#.utf8))
        #expect(fixture.readError() == .invalid(file: "snapshot.json", fieldPath: "header.format", reason: "missing"))
        try fixture.replaceState(with: Array(#"{"header": {"format": "minivmm-snapshot", "format_version": 1, "created_at": 5}}"#.utf8))
        #expect(fixture.readError() == .invalid(file: "snapshot.json", fieldPath: "header.minivmm_version", reason: "missing"))
    }

    @Test("malformed JSON is one line naming the file")
    func malformedJSON() throws {
        let fixture = try SnapshotFixture()
        defer { fixture.remove() }
        try fixture.write()
        try fixture.replaceState(with: Array("{\"header\":\n\u{1B}[31m".utf8))
        let error = try #require(fixture.readError())
        guard case .invalid(file: "snapshot.json", fieldPath: "", _) = error else {
            Issue.record("unexpected error \(error)")
            return
        }
        #expect(error.description.hasPrefix("snapshot.json: "))
        #expect(!error.description.contains { $0.isNewline || $0 == "\u{1B}" })
    }

    @Test("a truncated memory file, a missing one and one whose bytes changed are refused")
    func memoryFiles() throws {
        let fixture = try SnapshotFixture()
        defer { fixture.remove() }
        try fixture.write()
        let size = UInt64(fixture.memory[1].count)
        try Data(fixture.memory[1].dropLast()).write(to: fixture.url("memory-1.bin"))
        #expect(fixture.readError() == .memorySize(file: "memory-1.bin", expected: size, actual: size - 1))
        #expect(fixture.readError()?.description == "memory-1.bin: holds \(size - 1) bytes instead of \(size)")

        var changed = fixture.memory[1]
        changed[12345] ^= 0x80
        try Data(changed).write(to: fixture.url("memory-1.bin"))
        #expect(fixture.readError() == nil, "sizes only without verifyMemory")
        let error = try #require(fixture.readError(verifyMemory: true))
        guard case .manifestMismatch(file: "memory-1.bin", let what) = error else {
            Issue.record("unexpected error \(error)")
            return
        }
        #expect(what.hasPrefix("SHA-256 is ") && what.contains(", the manifest says "))

        try FileManager.default.removeItem(at: fixture.url("memory-0.bin"))
        #expect(fixture.readError() == .notFound(file: "memory-0.bin"))
        #expect(fixture.readError()?.description == "memory-0.bin: not found")
    }

    @Test("memory records and the manifest must agree one to one")
    func recordsAndManifest() throws {
        let fixture = try SnapshotFixture()
        defer { fixture.remove() }
        try fixture.write()
        try fixture.editState { try setJSON(&$0, ["machine", "memory", 1, "file"], to: "../../etc/passwd") }
        #expect(
            fixture.readError()
                == .invalid(file: "snapshot.json", fieldPath: "machine.memory[1].file", reason: "'../../etc/passwd' is not a plain file name"))
        try fixture.editState { try setJSON(&$0, ["machine", "memory", 1, "file"], to: "memory-0.bin") }
        #expect(
            fixture.readError()
                == .invalid(file: "snapshot.json", fieldPath: "machine.memory[1].file", reason: "also the file of machine.memory[0]"))
        try fixture.editState { try setJSON(&$0, ["machine", "memory", 1, "file"], to: "memory-7.bin") }
        #expect(fixture.readError() == .manifestMismatch(file: "memory-7.bin", what: "not listed"))
        try fixture.editState { object in
            var machine = try #require(object["machine"] as? [String: Any])
            machine["memory"] = try #require(machine["memory"] as? [Any]).prefix(1).map { $0 }
            object["machine"] = machine
        }
        #expect(
            fixture.readError()
                == .manifestMismatch(file: "memory-1.bin", what: "listed, but no record in machine.memory names it"))
    }

    @Test("a missing manifest, a malformed one and a missing directory are named")
    func manifest() throws {
        let fixture = try SnapshotFixture()
        defer { fixture.remove() }
        #expect(fixture.readError() == .notFound(file: fixture.path))
        try fixture.write()
        let manifest = try Data(contentsOf: fixture.url("manifest.json"))
        try FileManager.default.removeItem(at: fixture.url("manifest.json"))
        #expect(fixture.readError() == .notFound(file: "manifest.json"))
        #expect(fixture.readError()?.description == "manifest.json: not found")

        let text = String(decoding: manifest, as: UTF8.self)
        try Data(text.replacingOccurrences(of: "memory-0.bin", with: "../memory-0.bin").utf8).write(to: fixture.url("manifest.json"))
        #expect(
            fixture.readError()
                == .invalid(file: "manifest.json", fieldPath: "files[0].name", reason: "'../memory-0.bin' is not a plain file name"))
        try Data(text.replacingOccurrences(of: "memory-1.bin", with: "memory-2.bin").utf8).write(to: fixture.url("manifest.json"))
        #expect(fixture.readError() == .manifestMismatch(file: "memory-1.bin", what: "not listed"))
        try manifest.write(to: fixture.url("manifest.json"))
        #expect(fixture.readError() == nil)
    }

    @Test("every error's description is one line")
    func oneLineDescriptions() {
        let host = HostError("open", .permissionDenied)
        let errors: [SnapshotError] = [
            .exists(path: "a"), .partialExists(path: "a"), .notFound(file: "f"), .unreadable(file: "f", host),
            .unwritable(file: "f", host), .manifestMismatch(file: "f", what: "x\ny"), .unknownVersion(7),
            .wrongFormat("a\nb"), .invalid(file: "f", fieldPath: "p\n", reason: "r\r\n\u{1B}[2J"),
            .memorySize(file: "f", expected: 1, actual: 2),
        ]
        for error in errors {
            #expect(!error.description.contains { $0.isNewline || $0 == "\u{1B}" }, "\(error)")
        }
        #expect(SnapshotError.invalid(file: "f", fieldPath: "", reason: String(repeating: "x", count: 1000)).description.count < 220)
    }
}
