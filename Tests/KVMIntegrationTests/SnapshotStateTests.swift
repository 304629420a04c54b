import Foundation
import Testing

@testable import MiniVMM

/// What a snapshot carries besides a single CPU's registers and RAM, with the real `minivmm`
/// binary on KVM: hot-plugged devices and RAM (still there, still working, the guest's
/// two-phase removal still answered), a timer armed at snapshot time (fires after restore,
/// once, after the time it had left), several vCPUs (waiting for SIPI, or running and
/// halting), and a snapshot of a restored machine that never ran (the same state, except
/// the documented time-dependent fields).
@Suite("minivmm snapshot state", .tags(.kvm), .enabled(if: minivmmKVMUsable, minivmmKVMSkipReason), .serialized)
struct SnapshotStateTests {
    // MARK: 1. Hot-plugged devices and RAM

    @Test func hotpluggedDevicesAndRAMSurviveAndKeepWorking() throws {
        let scratch = try StateScratch()
        let vm = try ConsoleGuest.hotplug(scratch: scratch, socket: scratch.path("source.sock"))
        let timer = try vm.plug("t1", kind: "timer")
        let console = try vm.plug("c1", kind: "dma-console")
        let ram = try vm.plugRAM("m1", size: "64M")
        #expect(ram.size == 64 << 20)
        let before = try ["/devices", "/memory", "/resources"].map { try vm.get($0) }

        let snapshot = try vm.pauseAndSnapshot(scratch.path("snap"))
        vm.kill()

        // The guest's pattern is in the snapshot's file of m1 (first and last 8 bytes).
        let state = try SnapshotFiles(snapshot)
        let m1File = try state.memoryFile(id: "m1")
        #expect(m1File.count == Int(ram.size))
        #expect(m1File.uint64(at: 0) == ramPattern(ram.base))
        #expect(m1File.uint64(at: m1File.count - 8) == ramPattern(ram.base + ram.size - 8))

        // A new process, a new socket, a new stdout: only what the guest prints from now on.
        let restored = try ConsoleGuest(
            ["--restore", snapshot, "--api-socket", scratch.path("restored.sock"), "--timeout", "60"],
            socket: scratch.path("restored.sock"), generation: vm.generation)
        let after = try ["/devices", "/memory", "/resources"].map { try restored.get($0) }
        for (path, (old, new)) in zip(["/devices", "/memory", "/resources"], zip(before, after)) {
            #expect(jsonDifferences(old, new).isEmpty, "GET \(path) before the snapshot and after the restore: \(jsonDifferences(old, new))")
        }
        #expect(try restored.device("t1") == timer)
        #expect(try restored.device("c1") == console)
        #expect(try restored.region("m1") == ram)
        #expect(restored.stdoutText.isEmpty, "the guest prints nothing until something changes")

        // The controller and the guest's NOTIFY survived: a removal is still two-phase, and
        // the generation goes on from the snapshot's.
        let removal = try APIClient.request(restored.socket, "DELETE", "/devices/t1")
        #expect(removal.status == 202)
        #expect((try? removal.decode(DeviceInfo.self).state) == "removing")
        try restored.expectRemoved(kind: "timer", instance: timer.instance)
        #expect(try APIClient.request(restored.socket, "GET", "/devices/t1").status == 404)
        // A new timer gets its interrupt through the restored IOAPIC and the guest's IDT.
        let t2 = try restored.plug("t2", kind: "timer")
        #expect(t2.instance == timer.instance && t2.window == timer.window && t2.gsi == timer.gsi, "t1's resources, lowest first")
        // New RAM comes from the restored allocators: the next slot, right after m1.
        let m2 = try restored.plugRAM("m2", size: "2M")
        #expect(m2.slot == ram.slot + 1 && m2.base == ram.base + ram.size)

        // m1's bytes survived in the restored process: a snapshot of it holds the same file.
        let second = try restored.pauseAndSnapshot(scratch.path("snap2"))
        let secondState = try SnapshotFiles(second)
        #expect(try secondState.memoryFile(id: "m1") == m1File, "m1's 64 MiB as the guest left them")
        // c1's registers too (the guest's one request: 29 bytes written).
        let c1 = try state.json(["devices", "dma_consoles", "c1"])
        #expect((c1 as? [String: Any])?["written"] as? Int == 29)
        #expect(jsonDifferences(c1, try secondState.json(["devices", "dma_consoles", "c1"])).isEmpty)
        #expect(try APIClient.request(restored.socket, "PATCH", "/vm", body: #"{"state": "running"}"#).status == 204)

        let ramRemoval = try APIClient.request(restored.socket, "DELETE", "/memory/m1")
        #expect(ramRemoval.status == 202)
        try restored.expectRemoved(kind: "ram", instance: ram.slot)
        #expect(try APIClient.request(restored.socket, "GET", "/memory/m1").status == 404)
        #expect(try restored.quit() == 0)
        #expect(restored.stdoutText == restored.transcript + "bye\n")
    }

    // MARK: 2. A timer armed at snapshot time

    @Test func aTimerArmedAtSnapshotTimeFiresOnceAfterTheTimeItHadLeft() throws {
        let scratch = try StateScratch()
        let sourceSocket = scratch.path("source.sock")
        let source = try MinivmmChild([MinivmmProcess.guest("tests/timer-once.bin"), "--api-socket", sourceSocket, "--timeout", "30"])
        defer {
            source.send(SIGKILL)
            source.wait()
        }
        try waitForSocket(sourceSocket, of: source)
        // The guest arms DELAY_US = 300000, then prints its line: pause 150 ms after that.
        try waitForStdout(of: source) { $0 == "timer armed\n" }
        let armedSeen = ContinuousClock.now
        Thread.sleep(until: armedSeen + .milliseconds(150))
        // The timer runs at least until the request is sent.
        let ranFor = ContinuousClock.now - armedSeen
        #expect(try APIClient.request(sourceSocket, "PATCH", "/vm", body: #"{"state": "paused"}"#).status == 204)
        let snapshot = scratch.path("snap")
        try createSnapshot(sourceSocket, snapshot)
        source.send(SIGKILL)
        source.wait()
        #expect(String(decoding: source.stdout, as: UTF8.self) == "timer armed\n", "the timer had not fired when it was paused")

        let timer = try #require(try SnapshotFiles(snapshot).json(["devices", "timers", "timer0"]) as? [String: Any])
        #expect(timer["delay_us"] as? Int == 300_000 && timer["count"] as? Int == 0 && timer["fired"] as? Bool == false)
        let remaining = try #require(timer["remaining_us"] as? Int, "an armed timer has time left: \(timer)")
        #expect(remaining > 0 && Double(remaining) <= 300_000 - microseconds(ranFor) + 1_000, "\(remaining) µs left after \(ranFor)")

        // Restored paused: the timer stays frozen, however long it waits.
        let socket = scratch.path("restored.sock")
        let restored = try MinivmmChild(["--restore", snapshot, "--paused", "--api-socket", socket, "--timeout", "30"])
        defer {
            restored.send(SIGKILL)
            restored.wait()
        }
        try waitForSocket(socket, of: restored)
        Thread.sleep(forTimeInterval: 0.4)
        #expect(restored.stdout.isEmpty, "nothing fires while the restored machine is paused")
        let resumed = ContinuousClock.now
        #expect(try APIClient.request(socket, "PATCH", "/vm", body: #"{"state": "running"}"#).status == 204)
        try waitForStdout(of: restored) { $0.contains("\n") }
        let firedAfter = microseconds(ContinuousClock.now - resumed)
        #expect(restored.wait(limit: 20) == 0, "\(restored.stderr)")
        // Once: one line, COUNT 1, and no second interrupt in the guest's check afterwards.
        #expect(String(decoding: restored.stdout, as: UTF8.self) == "fired, count 1\n")
        // After about the time it had left: not at once, and well short of a full 300 ms
        // more (the time is measured from before PATCH /vm to the line on stdout).
        print("SnapshotStateTests: \(remaining) µs left at the snapshot, fired \(Int(firedAfter)) µs after resume")
        #expect(firedAfter >= Double(remaining) - 10_000, "fired \(Int(firedAfter)) µs after resume with \(remaining) µs left")
        #expect(firedAfter <= Double(remaining) + 120_000, "fired \(Int(firedAfter)) µs after resume with \(remaining) µs left")
    }

    // MARK: 3. Several vCPUs

    @Test func aFourCPUMachineWhoseAPsWaitForSIPIContinuesByteForByte() throws {
        let seed: UInt64 = 0x5350_4934
        print("SnapshotStateTests counter --cpus 4 seed: \(seed)")
        var random = StateSplitMix(seed: seed)
        let expected = Data((1...1500).map { String(format: "%05d\n", $0) }.joined().utf8)
        let parts = try runThroughSnapshots(
            [MinivmmProcess.guest("tests/counter.bin"), "--cpus", "4"], generations: 1, random: &random) { state, _ in
                let vcpus = try #require(state.json(["vcpus"]) as? [[String: Any]])
                #expect(vcpus.map { $0["id"] as? Int } == [0, 1, 2, 3])
                // The BSP runs; the APs were never started (KVM_MP_STATE_UNINITIALIZED).
                #expect(vcpus.map { $0["mp_state"] as? Int } == [0, 1, 1, 1])
            }
        #expect(parts.allSatisfy { !$0.isEmpty }, "snapshotted mid-run: \(parts.map(\.count))")
        #expect(parts.reduce(Data(), +) == expected)
    }

    @Test func aFourCPUMachineWhoseCPUsAllRunContinuesByteForByte() throws {
        let seed: UInt64 = 0x5245_4C41
        print("SnapshotStateTests smp-relay --cpus 4 seed: \(seed)")
        var random = StateSplitMix(seed: seed)
        let expected = Data((1...6000).map { String(format: "%05d cpu %d\n", $0, ($0 - 1) % 4) }.joined().utf8)
        let parts = try runThroughSnapshots(
            [MinivmmProcess.guest("tests/smp-relay.bin"), "--cpus", "4"], generations: 2, random: &random) { state, printed in
                let vcpus = try #require(state.json(["vcpus"]) as? [[String: Any]])
                #expect(vcpus.map { $0["id"] as? Int } == [0, 1, 2, 3])
                // Every CPU has been started: running or halted (KVM_MP_STATE_RUNNABLE or _HALTED).
                #expect(vcpus.allSatisfy { [0, 3].contains($0["mp_state"] as? Int) }, "\(vcpus.map { $0["mp_state"] ?? "none" })")
                #expect(!printed.isEmpty && printed.count < expected.count, "snapshotted mid-run")
            }
        #expect(parts.allSatisfy { !$0.isEmpty }, "every generation printed something: \(parts.map(\.count))")
        let printed = parts.reduce(Data(), +)
        #expect(printed.count == expected.count)
        #expect(printed == expected)
    }

    /// Runs `arguments` with an API socket, and `generations` times: waits a random 100 to
    /// 500 ms, pauses, snapshots, kills, checks the snapshot with `check` (given all stdout
    /// so far) and restores it; the last restored run goes on to its end (exit 0). Returns
    /// each process's stdout.
    private func runThroughSnapshots(
        _ arguments: [String], generations: Int, random: inout StateSplitMix,
        check: (SnapshotFiles, Data) throws -> Void
    ) throws -> [Data] {
        let scratch = try StateScratch()
        var parts: [Data] = []
        var restoreFrom: String?
        for generation in 0..<generations {
            let socket = scratch.path("api\(generation).sock")
            let child = try MinivmmChild((restoreFrom.map { ["--restore", $0] } ?? arguments) + ["--api-socket", socket, "--timeout", "20"])
            defer {
                child.send(SIGKILL)
                child.wait()
            }
            try waitForSocket(socket, of: child)
            Thread.sleep(forTimeInterval: Double(100 + random.next() % 400) / 1000)
            #expect(try APIClient.request(socket, "PATCH", "/vm", body: #"{"state": "paused"}"#).status == 204)
            let snapshot = scratch.path("snap\(generation)")
            try createSnapshot(socket, snapshot)
            child.send(SIGKILL)
            child.wait()
            parts.append(child.stdout)
            try check(try SnapshotFiles(snapshot), parts.reduce(Data(), +))
            restoreFrom = snapshot
        }
        let last = try MinivmmProcess.run(["--restore", try #require(restoreFrom), "--timeout", "20"], limit: 30)
        #expect(last.status == 0, "\(last.stderr)")
        parts.append(last.stdout)
        return parts
    }

    // MARK: 4. A snapshot of a restored machine that never ran

    enum Source: String, CaseIterable, CustomTestStringConvertible {
        /// The counter guest with 4 vCPUs (3 waiting for SIPI), mid-run.
        case counterFourCPUs
        /// smp-relay with 4 vCPUs, all started, mid-run.
        case relayFourCPUs
        /// timer-once halted with its timer armed and its GSI routed.
        case armedTimer
        /// The hot-plug guest with 2 vCPUs, a timer, a DMA console and 64 MiB plugged in.
        case hotplugged

        var testDescription: String { rawValue }
    }

    @Test(arguments: Source.allCases)
    func aRestoredMachineSnapshottedAgainWithoutRunningHasTheSameState(_ source: Source) throws {
        let scratch = try StateScratch()
        let first = scratch.path("first")
        let socket = scratch.path("source.sock")
        switch source {
        case .hotplugged:
            let vm = try ConsoleGuest.hotplug(scratch: scratch, socket: socket, arguments: ["--cpus", "2"])
            _ = try vm.plug("t1", kind: "timer")
            _ = try vm.plug("c1", kind: "dma-console")
            _ = try vm.plugRAM("m1", size: "64M")
            _ = try vm.pauseAndSnapshot(first)
            vm.kill()
        case .counterFourCPUs, .relayFourCPUs, .armedTimer:
            let arguments = switch source {
            case .counterFourCPUs: ["tests/counter.bin", "--cpus", "4"]
            case .relayFourCPUs: ["tests/smp-relay.bin", "--cpus", "4"]
            default: ["tests/timer-once.bin"]
            }
            let child = try MinivmmChild(
                [MinivmmProcess.guest(arguments[0])] + arguments.dropFirst() + ["--api-socket", socket, "--timeout", "30"])
            defer {
                child.send(SIGKILL)
                child.wait()
            }
            try waitForSocket(socket, of: child)
            try waitForStdout(of: child) { !$0.isEmpty }
            #expect(try APIClient.request(socket, "PATCH", "/vm", body: #"{"state": "paused"}"#).status == 204)
            try createSnapshot(socket, first)
        }
        let createdFirst = ContinuousClock.now

        let restoredSocket = scratch.path("restored.sock")
        let restored = try MinivmmChild(["--restore", first, "--paused", "--api-socket", restoredSocket, "--timeout", "30"])
        defer {
            restored.send(SIGKILL)
            restored.wait()
        }
        try waitForSocket(restoredSocket, of: restored)
        // created_at has whole seconds: let one pass, so that it differs every time.
        Thread.sleep(until: createdFirst + .milliseconds(1_050))
        let second = scratch.path("second")
        try createSnapshot(restoredSocket, second)
        #expect(restored.stdout.isEmpty)

        let a = try SnapshotFiles(first)
        let b = try SnapshotFiles(second)
        let vcpus = try #require(a.json(["vcpus"]) as? [[String: Any]])
        #expect(vcpus.count == (source == .hotplugged ? 2 : source == .armedTimer ? 1 : 4))
        var expected: Set<String> = ["header.created_at", "vm.blocks.clock", "vm.blocks.pit"]
        for (i, vcpu) in vcpus.enumerated() {
            let msrs = try #require(vcpu["msrs"] as? [[String: Any]])
            let tsc = try #require(msrs.firstIndex { $0["index"] as? Int == 16 }, "vcpus[\(i)] has IA32_TSC")
            expected.insert("vcpus[\(i)].msrs[\(tsc)].value")
        }
        let differences = jsonDifferences(a.state, b.state)
        #expect(Set(differences) == expected, "\(source): differing fields \(differences.sorted())")
        if source == .armedTimer {
            let timer = try #require(a.json(["devices", "timers", "timer0"]) as? [String: Any])
            #expect((timer["remaining_us"] as? Int ?? 0) > 0, "armed at both snapshots, the same time left: \(timer)")
        }
        // RAM: the same files, byte for byte.
        let names = try a.memoryFileNames()
        #expect(names == (try b.memoryFileNames()))
        #expect(names.count == (source == .hotplugged ? 2 : 1))
        for name in names {
            #expect(try a.file(name) == (try b.file(name)), "\(source): \(name)")
        }
    }
}

// MARK: - Snapshot directories

/// A snapshot directory as a test reads it: `snapshot.json` as JSON values, the files' bytes.
private struct SnapshotFiles {
    let path: String
    /// `snapshot.json`, parsed.
    let state: Any

    init(_ path: String) throws {
        self.path = path
        state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path + "/snapshot.json")))
    }

    /// The value at `keys` (object keys from the top).
    func json(_ keys: [String]) throws -> Any {
        var value = state
        for key in keys {
            value = try #require((value as? [String: Any])?[key], "snapshot.json has no \(keys.joined(separator: "."))")
        }
        return value
    }

    func file(_ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: path + "/" + name))
    }

    /// The memory files `machine.memory` names, in its order.
    func memoryFileNames() throws -> [String] {
        let memory = try #require(try json(["machine", "memory"]) as? [[String: Any]])
        return memory.compactMap { $0["file"] as? String }
    }

    /// The bytes of the RAM region the control API calls `id`.
    func memoryFile(id: String) throws -> Data {
        let memory = try #require(try json(["machine", "memory"]) as? [[String: Any]])
        let record = try #require(memory.first { $0["id"] as? String == id }, "machine.memory has no \(id)")
        return try file(try #require(record["file"] as? String))
    }
}

/// The paths (`a.b[2].c`) at which two JSON values differ: leaves compared by value, objects
/// by the union of their keys, arrays element by element (a length difference is reported at
/// the array's path).
private func jsonDifferences(_ a: Any, _ b: Any, at path: String = "") -> [String] {
    if let a = a as? [String: Any], let b = b as? [String: Any] {
        return Set(a.keys).union(b.keys).sorted().flatMap { key -> [String] in
            let inner = path.isEmpty ? key : path + "." + key
            guard let x = a[key], let y = b[key] else { return [inner] }
            return jsonDifferences(x, y, at: inner)
        }
    }
    if let a = a as? [Any], let b = b as? [Any] {
        guard a.count == b.count else { return [path] }
        return zip(a, b).enumerated().flatMap { jsonDifferences($1.0, $1.1, at: "\(path)[\($0)]") }
    }
    return canonicalJSON(a) == canonicalJSON(b) ? [] : [path]
}

/// Two JSON documents' differences (see the other overload).
private func jsonDifferences(_ a: Data, _ b: Data) -> [String] {
    guard let x = try? JSONSerialization.jsonObject(with: a), let y = try? JSONSerialization.jsonObject(with: b) else {
        return ["(not JSON)"]
    }
    return jsonDifferences(x, y)
}

private func canonicalJSON(_ value: Any) -> Data? {
    try? JSONSerialization.data(withJSONObject: [value], options: [.sortedKeys, .fragmentsAllowed])
}

/// The demo's (and the hot-plug guest's) RAM pattern (guest/demo/checks.h).
private func ramPattern(_ address: UInt64) -> UInt64 {
    (address &* 0x9E37_79B9_7F4A_7C15) ^ 0xA5A5_A5A5_5A5A_5A5A
}

extension Data {
    /// The little-endian 64-bit value at `offset`.
    fileprivate func uint64(at offset: Int) -> UInt64 {
        self[(startIndex + offset)..<(startIndex + offset + 8)].reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
}

private func microseconds(_ duration: Duration) -> Double {
    let (seconds, attoseconds) = duration.components
    return Double(seconds) * 1_000_000 + Double(attoseconds) / 1_000_000_000_000
}

extension Thread {
    fileprivate static func sleep(until instant: ContinuousClock.Instant) {
        let left = instant - ContinuousClock.now
        if left > .zero { sleep(forTimeInterval: microseconds(left) / 1_000_000) }
    }
}

// MARK: - Processes

/// A directory for one test's sockets and snapshots, removed afterwards.
private final class StateScratch {
    let root: String

    init() throws {
        root = "/tmp/minivmm-state-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: root)
    }

    func path(_ name: String) -> String { root + "/" + name }
}

private struct StateTestFailure: Error, CustomStringConvertible {
    let description: String
}

extension MinivmmChild {
    /// Whether the child has ended (a zombie not yet reaped counts), from /proc, so that the
    /// status stays for ``wait(limit:)``.
    fileprivate var hasExited: Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return true }
        let state = stat[stat.index(after: close)...].dropFirst().first
        return state == "Z" || state == "X"
    }
}

/// Waits up to 15 s for `child` to create its API socket.
private func waitForSocket(_ socket: String, of child: MinivmmChild) throws {
    let deadline = Date().addingTimeInterval(15)
    while !FileManager.default.fileExists(atPath: socket) {
        if child.hasExited || Date() > deadline {
            Issue.record("no API socket at \(socket); stderr: \(child.stderr)")
            throw StateTestFailure(description: "no API socket")
        }
        usleep(2000)
    }
}

/// Waits up to 15 s until `child`'s stdout satisfies `done`, polling every millisecond.
private func waitForStdout(of child: MinivmmChild, _ done: (String) -> Bool) throws {
    let deadline = Date().addingTimeInterval(15)
    while true {
        let text = String(decoding: child.stdout, as: UTF8.self)
        if done(text) { return }
        if child.hasExited || Date() > deadline {
            let ended = child.hasExited ? "minivmm ended (\(child.wait(limit: 5)))" : "minivmm still runs"
            Issue.record("stdout never got there: \(ended); stdout: \(text.suffix(300)); stderr: \(child.stderr)")
            throw StateTestFailure(description: "unexpected stdout")
        }
        usleep(1000)
    }
}

/// `PUT /snapshot/create` of the paused machine behind `socket` into `path`: 204.
private func createSnapshot(_ socket: String, _ path: String) throws {
    let reply = try APIClient.request(socket, "PUT", "/snapshot/create", body: #"{"path": "\#(path)"}"#)
    guard reply.status == 204, FileManager.default.fileExists(atPath: path + "/manifest.json") else {
        Issue.record("PUT /snapshot/create answered \(reply.status): \(String(decoding: reply.body, as: UTF8.self))")
        throw StateTestFailure(description: "no snapshot")
    }
}

/// A guest with a console the test reads and types into: stdout checked as a whole
/// transcript (every line the test expects, in order, nothing else), stdin a socket.
/// For `guest/hotplug.bin` it knows the lines of guest/README.md.
private final class ConsoleGuest {
    let child: MinivmmChild
    let socket: String
    /// The test's end of minivmm's stdin; -1 once closed.
    private var input: Int32
    /// Everything stdout must hold so far.
    private(set) var transcript = ""
    /// The generation of the hot-plug guest's last copy of the table.
    private(set) var generation: Int

    init(_ arguments: [String], socket: String, generation: Int = 0) throws {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw POSIXError(.EIO)
        }
        defer { close(pair[0]) }
        do {
            child = try MinivmmChild(arguments, stdin: pair[0])
        } catch {
            close(pair[1])
            throw error
        }
        input = pair[1]
        self.socket = socket
        self.generation = generation
        try waitForSocket(socket, of: child)
    }

    deinit {
        if input >= 0 { close(input) }
    }

    /// `guest/hotplug.bin` with an API socket, once it is ready (NOTIFY set).
    static func hotplug(scratch: StateScratch, socket: String, arguments: [String] = []) throws -> ConsoleGuest {
        let vm = try ConsoleGuest(
            [MinivmmProcess.guest("hotplug.bin"), "--api-socket", socket, "--timeout", "60"] + arguments, socket: socket)
        try vm.expect(["minivmm hotplug guest", "hotplug: ready, generation 0"])
        return vm
    }

    var stdoutText: String { String(decoding: child.stdout, as: UTF8.self) }

    /// Appends `lines` to the transcript and waits until stdout is exactly the transcript.
    func expect(_ lines: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        transcript += lines.map { $0 + "\n" }.joined()
        let deadline = Date().addingTimeInterval(15)
        var text = stdoutText
        while text.utf8.count < transcript.utf8.count && !child.hasExited && Date() < deadline {
            usleep(500)
            text = stdoutText
        }
        guard text != transcript else { return }
        let ended = child.hasExited ? "minivmm ended (\(child.wait(limit: 5))): \(child.stderr)" : "minivmm still runs"
        Issue.record(
            "the guest's stdout is not the expected transcript; \(ended)\n--- expected ---\n\(transcript)--- got ---\n\(text)",
            sourceLocation: sourceLocation)
        throw StateTestFailure(description: "unexpected guest output")
    }

    /// `GET path`'s body (200).
    func get(_ path: String) throws -> Data {
        let reply = try APIClient.request(socket, "GET", path)
        guard reply.status == 200 else { throw StateTestFailure(description: "GET \(path): \(reply.status)") }
        return reply.body
    }

    func device(_ id: String) throws -> DeviceInfo { try JSONDecoder().decode(DeviceInfo.self, from: get("/devices/\(id)")) }
    func region(_ id: String) throws -> MemoryRegionInfo { try JSONDecoder().decode(MemoryRegionInfo.self, from: get("/memory/\(id)")) }

    /// `PUT /devices/id` and the hot-plug guest's lines for it.
    func plug(_ id: String, kind: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> DeviceInfo {
        let reply = try APIClient.request(socket, "PUT", "/devices/\(id)", body: "{\"kind\": \"\(kind)\"}")
        guard reply.status == 200 else { throw StateTestFailure(description: "PUT /devices/\(id): \(reply.status)") }
        let device = try reply.decode(DeviceInfo.self)
        let (base, gsi, n) = (Self.hex(device.window.start), device.gsi.map { "\($0)" } ?? "none", device.instance)
        generation += 1
        if kind == "timer" {
            try expect([
                "added timer #\(n): base \(base) gsi \(gsi)", "ok timer #\(n): interrupt from gsi \(gsi)",
                "hotplug: generation \(generation) done",
            ], sourceLocation: sourceLocation)
        } else {
            try expect([
                "added dma-console #\(n): base \(base) gsi \(gsi)", "hello through dma-console #\(n)",
                "ok dma-console #\(n): wrote 29 bytes", "hotplug: generation \(generation) done",
            ], sourceLocation: sourceLocation)
        }
        return device
    }

    /// `PUT /memory/id` and the hot-plug guest's lines for it.
    func plugRAM(_ id: String, size: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> MemoryRegionInfo {
        let reply = try APIClient.request(socket, "PUT", "/memory/\(id)", body: "{\"size\": \"\(size)\"}")
        guard reply.status == 200 else { throw StateTestFailure(description: "PUT /memory/\(id): \(reply.status)") }
        let region = try reply.decode(MemoryRegionInfo.self)
        generation += 1
        try expect([
            "added ram #\(region.slot): base \(Self.hex(region.base)) size \(Self.hex(region.size)) slot \(region.slot)",
            "ok ram #\(region.slot): pattern at \(Self.hex(region.base)) and \(Self.hex(region.base + region.size - 8))",
            "hotplug: generation \(generation) done",
        ], sourceLocation: sourceLocation)
        return region
    }

    /// The hot-plug guest's lines for a removal request of `kind #instance` and its completion.
    func expectRemoved(kind: String, instance: UInt32, sourceLocation: SourceLocation = #_sourceLocation) throws {
        generation += 2
        try expect([
            "removing \(kind) #\(instance)", "eject \(kind) #\(instance)", "hotplug: generation \(generation - 1) done",
            "removed \(kind) #\(instance)", "hotplug: generation \(generation) done",
        ], sourceLocation: sourceLocation)
    }

    /// Pauses the machine and snapshots it into `path`; the machine stays paused.
    func pauseAndSnapshot(_ path: String) throws -> String {
        #expect(try APIClient.request(socket, "PATCH", "/vm", body: #"{"state": "paused"}"#).status == 204)
        try createSnapshot(socket, path)
        return path
    }

    func kill() {
        child.send(SIGKILL)
        child.wait()
    }

    /// Types `q`: the hot-plug guest prints `bye` and exits; returns minivmm's exit status.
    func quit() throws -> Int32 {
        let sent = "q".withCString { send(input, $0, 1, Int32(MSG_NOSIGNAL)) }
        #expect(sent == 1, "writing q to minivmm's stdin")
        close(input)
        input = -1
        return child.wait(limit: 20)
    }

    static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
}

/// A small seeded generator (SplitMix64), so a failing interleaving can be replayed.
private struct StateSplitMix {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
