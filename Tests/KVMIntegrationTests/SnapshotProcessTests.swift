import Foundation
import Testing

@testable import MiniVMM

/// Snapshot and restore with the real `minivmm` binary: `guest/tests/counter.bin` prints
/// "00001" to "01500" at a steady pace; pausing it at some moment, snapshotting, killing the
/// process and restoring the snapshot in a new one must give, byte for byte, what an
/// uninterrupted run prints.
@Suite("minivmm snapshot and restore", .tags(.kvm), .enabled(if: minivmmKVMUsable, minivmmKVMSkipReason), .serialized)
struct SnapshotProcessTests {
    private let counter = MinivmmProcess.guest("tests/counter.bin")

    /// What an uninterrupted run prints.
    private func uninterrupted() throws -> Data {
        let run = try MinivmmProcess.run([counter, "--timeout", "60"])
        #expect(run.status == 0)
        return run.stdout
    }

    @Test func aRestoredRunContinuesByteForByte() throws {
        let expected = try uninterrupted()
        let seed: UInt64 = 0x5AFE_2026
        print("SnapshotProcessTests seed: \(seed)")
        var random = SplitMix(seed: seed)
        let scratch = try Scratch()
        // Three generations: run, snapshot, kill, restore, run, snapshot, kill, restore, run.
        var printed = Data()
        var restoreFrom: String?
        for generation in 0..<3 {
            let socket = scratch.path("api\(generation).sock")
            let arguments = (restoreFrom.map { ["--restore", $0] } ?? [counter]) + ["--api-socket", socket, "--timeout", "60"]
            let child = try MinivmmChild(arguments)
            try scratch.waitForSocket(socket)
            // Let it print for a while: 50 to 400 ms.
            usleep(UInt32(50_000 + random.next() % 350_000))
            #expect(try APIClient.request(socket, "PATCH", "/vm", body: #"{"state": "paused"}"#).status == 204)
            let snapshot = scratch.path("snap\(generation)")
            let created = try APIClient.request(socket, "PUT", "/snapshot/create", body: #"{"path": "\#(snapshot)"}"#)
            #expect(created.status == 204, "\(String(decoding: created.body, as: UTF8.self))")
            child.send(SIGKILL)
            child.wait()
            printed += try Data(contentsOf: child.stdoutURL)
            #expect(FileManager.default.fileExists(atPath: snapshot + "/manifest.json"))
            #expect(!FileManager.default.fileExists(atPath: snapshot + ".partial"))
            restoreFrom = snapshot
        }
        let last = try MinivmmProcess.run(["--restore", try #require(restoreFrom), "--timeout", "60"])
        #expect(last.status == 0, "\(last.stderr)")
        printed += last.stdout
        #expect(printed.count == expected.count)
        #expect(printed == expected)
    }

    @Test func fullPlusDiffEqualsAFullSnapshotOfTheSameMoment() throws {
        let expected = try uninterrupted()
        let scratch = try Scratch()
        let socket = scratch.path("api.sock")
        let child = try MinivmmChild([counter, "--api-socket", socket, "--timeout", "60"])
        try scratch.waitForSocket(socket)
        func request(_ method: String, _ path: String, _ body: String) throws -> Int {
            try APIClient.request(socket, method, path, body: body).status
        }
        usleep(200_000)
        #expect(try request("PATCH", "/vm", #"{"state": "paused"}"#) == 204)
        // A diff needs a snapshot to build on.
        #expect(try request("PUT", "/snapshot/create", #"{"path": "\#(scratch.path("early"))", "type": "diff"}"#) == 409)
        let full = scratch.path("full")
        #expect(try request("PUT", "/snapshot/create", #"{"path": "\#(full)"}"#) == 204)
        #expect(try request("PATCH", "/vm", #"{"state": "running"}"#) == 204)
        usleep(300_000)
        #expect(try request("PATCH", "/vm", #"{"state": "paused"}"#) == 204)
        let diff = scratch.path("diff")
        let reference = scratch.path("reference")
        #expect(try request("PUT", "/snapshot/create", #"{"path": "\#(diff)", "type": "diff"}"#) == 204)
        #expect(try request("PUT", "/snapshot/create", #"{"path": "\#(reference)"}"#) == 204)
        child.send(SIGKILL)
        child.wait()
        let before = try Data(contentsOf: child.stdoutURL)

        // The diff holds only the pages written since the full snapshot, and names it.
        let diffState = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: diff + "/snapshot.json"))) as? [String: Any]
        let header = try #require(diffState?["header"] as? [String: Any])
        #expect(header["type"] as? String == "diff" && header["parent"] as? String == full)
        let diffMemory = try Data(contentsOf: URL(fileURLWithPath: diff + "/memory-0.bin"))
        let fullMemory = try Data(contentsOf: URL(fileURLWithPath: full + "/memory-0.bin"))
        #expect(diffMemory.count > 0 && diffMemory.count < fullMemory.count / 100)

        // Full + diff = the full snapshot taken at the same moment, byte for byte.
        let machine = try #require(diffState?["machine"] as? [String: Any])
        let record = try #require((machine["memory"] as? [[String: Any]])?.first)
        var layered = fullMemory
        var offset = 0
        for run in try #require(record["pages"] as? [[String: Any]]) {
            let first = try #require(run["first"] as? Int) * 4096
            let count = try #require(run["count"] as? Int) * 4096
            layered.replaceSubrange(first..<first + count, with: diffMemory[offset..<offset + count])
            offset += count
        }
        #expect(offset == diffMemory.count)
        #expect(layered == (try Data(contentsOf: URL(fileURLWithPath: reference + "/memory-0.bin"))))

        // And restoring the chain continues the guest byte for byte.
        let rest = try MinivmmProcess.run(["--restore", diff, "--timeout", "60"])
        #expect(rest.status == 0, "\(rest.stderr)")
        #expect(before + rest.stdout == expected)
        // A chain with its full snapshot gone is refused.
        try FileManager.default.removeItem(atPath: full)
        let broken = try MinivmmProcess.run(["--restore", diff, "--timeout", "20"])
        #expect(broken.status == 65)
    }

    @Test func aSnapshotNeedsAPausedVMAndANewPath() throws {
        let scratch = try Scratch()
        let socket = scratch.path("api.sock")
        let child = try MinivmmChild([MinivmmProcess.guest("tests/spin.bin"), "--api-socket", socket, "--timeout", "60"])
        defer {
            child.send(SIGKILL)
            child.wait()
        }
        try scratch.waitForSocket(socket)
        let snapshot = scratch.path("snap")
        let running = try APIClient.request(socket, "PUT", "/snapshot/create", body: #"{"path": "\#(snapshot)"}"#)
        #expect(running.status == 409)
        #expect(!FileManager.default.fileExists(atPath: snapshot))
        #expect(try APIClient.request(socket, "PATCH", "/vm", body: #"{"state": "paused"}"#).status == 204)
        #expect(try APIClient.request(socket, "PUT", "/snapshot/create", body: #"{"path": "\#(snapshot)"}"#).status == 204)
        let again = try APIClient.request(socket, "PUT", "/snapshot/create", body: #"{"path": "\#(snapshot)"}"#)
        #expect(again.status == 409, "the directory exists")
        let bogus = try APIClient.request(socket, "PUT", "/snapshot/create", body: #"{"path": "\#(snapshot)2", "type": "partial"}"#)
        #expect(bogus.status == 400)
        #expect(!FileManager.default.fileExists(atPath: snapshot + "2"))
        // The VM stays paused after a snapshot.
        let vm = try APIClient.request(socket, "GET", "/vm")
        #expect(String(decoding: vm.body, as: UTF8.self).contains(#""state":"paused""#))
    }

    @Test func restoreWithPausedWaitsForPatch() throws {
        let scratch = try Scratch()
        let snapshot = try scratch.snapshotOfCounter(counter)
        let socket = scratch.path("restored.sock")
        let child = try MinivmmChild(["--restore", snapshot, "--paused", "--api-socket", socket, "--timeout", "60"])
        try scratch.waitForSocket(socket)
        usleep(300_000)
        let before = try Data(contentsOf: child.stdoutURL)
        #expect(before.isEmpty, "nothing runs before PATCH /vm")
        #expect(String(decoding: try APIClient.request(socket, "GET", "/vm").body, as: UTF8.self).contains(#""state":"paused""#))
        #expect(try APIClient.request(socket, "PATCH", "/vm", body: #"{"state": "running"}"#).status == 204)
        #expect(child.wait() == 0)
        let text = String(decoding: try Data(contentsOf: child.stdoutURL), as: UTF8.self)
        #expect(text.hasSuffix("01500\n"))
    }

    @Test func corruptSnapshotsAreRefusedWith65AndLeaveNothing() throws {
        let scratch = try Scratch()
        let good = try scratch.snapshotOfCounter(counter)
        func refused(_ mutate: (String) throws -> Void) throws -> String {
            let copy = scratch.path("bad-\(UUID().uuidString.prefix(6))")
            try FileManager.default.copyItem(atPath: good, toPath: copy)
            try mutate(copy)
            let socket = scratch.path("bad.sock")
            let run = try MinivmmProcess.run(["--restore", copy, "--api-socket", socket, "--timeout", "20"])
            #expect(run.status == 65)
            #expect(!FileManager.default.fileExists(atPath: socket), "no socket left behind")
            #expect(run.stdout.isEmpty)
            return run.stderr
        }
        // A flipped byte in the header: the manifest's digest no longer matches.
        let flipped = try refused { directory in
            var bytes = try Data(contentsOf: URL(fileURLWithPath: directory + "/snapshot.json"))
            let index = try #require(bytes.firstRange(of: Data("minivmm-snapshot".utf8))).lowerBound
            bytes[index] ^= 0x20
            try bytes.write(to: URL(fileURLWithPath: directory + "/snapshot.json"))
        }
        #expect(flipped.contains("snapshot.json"))
        // A truncated memory file.
        let truncated = try refused { directory in
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/memory-0.bin"))
            try handle.truncate(atOffset: 4096)
            try handle.close()
        }
        #expect(truncated.contains("memory-0.bin"))
        // A missing memory file and a missing manifest.
        #expect(try refused { try FileManager.default.removeItem(atPath: $0 + "/memory-0.bin") }.contains("memory-0.bin"))
        #expect(try refused { try FileManager.default.removeItem(atPath: $0 + "/manifest.json") }.contains("manifest.json"))
        // The state file edited and its digest fixed, so the checks behind the manifest run.
        func edited(_ edit: @escaping (inout [String: Any]) throws -> Void) throws -> String {
            try refused { directory in
                let url = URL(fileURLWithPath: directory + "/snapshot.json")
                var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
                try edit(&object)
                let bytes = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                try bytes.write(to: url)
                try Scratch.fixManifest(directory, file: "snapshot.json", bytes: bytes)
            }
        }
        let version = try edited { state in
            var header = try #require(state["header"] as? [String: Any])
            header["format_version"] = 7
            state["header"] = header
        }
        #expect(version.contains("snapshot format version 7; this minivmm reads 1"))
        let wrongType = try edited { state in
            var machine = try #require(state["machine"] as? [String: Any])
            machine["cpus"] = "four"
            state["machine"] = machine
        }
        #expect(wrongType.contains("snapshot.json") && wrongType.contains("machine.cpus"))
        // A device record that disagrees with the allocators: timer0 moved to a free GSI.
        let disagree = try edited { state in
            var machine = try #require(state["machine"] as? [String: Any])
            var devices = try #require(machine["devices"] as? [[String: Any]])
            devices[0]["gsi"] = 20
            machine["devices"] = devices
            state["machine"] = machine
        }
        #expect(disagree.contains("allocators.gsis") && disagree.contains("does not match the device and RAM records"))
        // An allocator state that no allocator can be in: overlapping MMIO allocations.
        let overlapping = try edited { state in
            var allocators = try #require(state["allocators"] as? [String: Any])
            var mmio = try #require(allocators["mmio"] as? [String: Any])
            var allocations = try #require(mmio["allocations"] as? [Any])
            allocations.append(try #require(allocations.first))
            mmio["allocations"] = allocations
            allocators["mmio"] = mmio
            state["allocators"] = allocators
        }
        #expect(overlapping.contains("allocators.mmio"))
        // Giving both an image and --restore is a usage error.
        let both = try MinivmmProcess.run([counter, "--restore", good])
        #expect(both.status == 64)
    }
}

/// A directory for one test's sockets and snapshots, removed afterwards.
private final class Scratch {
    let root: String

    init() throws {
        root = "/tmp/minivmm-snap-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: root)
    }

    func path(_ name: String) -> String { root + "/" + name }

    /// Rewrites `file`'s size and SHA-256 in `directory`'s manifest (sha256sum computes it).
    static func fixManifest(_ directory: String, file: String, bytes: Data) throws {
        let hasher = Process()
        hasher.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        hasher.arguments = ["sha256sum", directory + "/" + file]
        let output = Pipe()
        hasher.standardOutput = output
        try hasher.run()
        let digest = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).prefix(64)
        hasher.waitUntilExit()
        let url = URL(fileURLWithPath: directory + "/manifest.json")
        var manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        var files = try #require(manifest["files"] as? [[String: Any]])
        for index in files.indices where files[index]["name"] as? String == file {
            files[index]["sha256"] = String(digest)
            files[index]["size"] = bytes.count
        }
        manifest["files"] = files
        try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys]).write(to: url)
    }

    /// Waits up to 10 s for minivmm's socket to appear.
    func waitForSocket(_ socket: String) throws {
        for _ in 0..<1000 where !FileManager.default.fileExists(atPath: socket) { usleep(10_000) }
        guard FileManager.default.fileExists(atPath: socket) else {
            throw SnapshotTestFailure(description: "minivmm did not create \(socket)")
        }
    }

    /// A snapshot of the counter guest taken about 100 ms into its run.
    func snapshotOfCounter(_ counter: String) throws -> String {
        let socket = path("source.sock")
        let child = try MinivmmChild([counter, "--api-socket", socket, "--timeout", "60"])
        defer {
            child.send(SIGKILL)
            child.wait()
        }
        try waitForSocket(socket)
        usleep(100_000)
        guard try APIClient.request(socket, "PATCH", "/vm", body: #"{"state": "paused"}"#).status == 204 else {
            throw SnapshotTestFailure(description: "pause failed")
        }
        let snapshot = path("source-snap")
        let reply = try APIClient.request(socket, "PUT", "/snapshot/create", body: #"{"path": "\#(snapshot)"}"#)
        guard reply.status == 204 else {
            throw SnapshotTestFailure(description: "snapshot failed: \(String(decoding: reply.body, as: UTF8.self))")
        }
        return snapshot
    }
}

private struct SnapshotTestFailure: Error, CustomStringConvertible {
    let description: String
}

/// A small seeded generator (SplitMix64), so a failing interleaving can be replayed.
private struct SplitMix {
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
