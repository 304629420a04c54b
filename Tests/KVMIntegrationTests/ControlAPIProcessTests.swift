import Foundation
import Testing

@testable import MiniVMM

/// The control API of the real `minivmm` binary, driven with curl over `--api-socket` while
/// a guest runs.
@Suite("minivmm --api-socket", .tags(.kvm), .enabled(if: minivmmKVMUsable, minivmmKVMSkipReason), .serialized)
struct ControlAPIProcessTests {
    private let spin = MinivmmProcess.guest("tests/spin.bin")

    /// A socket path in a fresh private directory, and the directory.
    private func socketPath() throws -> (path: String, directory: String) {
        let directory = "/tmp/minivmm-kvm-api-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return (directory + "/api.sock", directory)
    }

    private func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0
    }

    /// Waits until minivmm has created its socket.
    private func waitForSocket(_ path: String, limit: TimeInterval = 15) throws {
        let deadline = Date().addingTimeInterval(limit)
        while !exists(path) {
            guard Date() < deadline else { throw CancellationError() }
            usleep(10_000)
        }
    }

    @Test func devicesArePluggedAndUnpluggedWhileTheGuestRuns() throws {
        let (path, directory) = try socketPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let child = try MinivmmChild([spin, "--api-socket", path, "--timeout", "120"])
        try waitForSocket(path)
        let initial = try APIClient.request(path, "GET", "/resources").decode(ResourcesInfo.self)

        let put = try APIClient.request(path, "PUT", "/devices/t1", body: #"{"kind": "timer"}"#)
        #expect(put.status == 200)
        let device = try put.decode(DeviceInfo.self)
        #expect(device.id == "t1" && device.kind == "timer" && device.instance == 1 && device.gsi == 8)
        // The hot-plug controller holds 0xC0002000 and GSI 7, after the boot devices.
        #expect(device.window == WindowInfo(start: 0xC000_3000, end: 0xC000_3FFF))
        let withTimer = try APIClient.request(path, "GET", "/resources").decode(ResourcesInfo.self)
        #expect(withTimer.mmio.allocations.contains { $0.start == 0xC000_3000 && $0.owner == "timer1" })
        #expect(withTimer.gsis.allocations.contains { $0.id == 8 && $0.owner == "timer1" })
        #expect(try APIClient.request(path, "GET", "/devices/t1").decode(DeviceInfo.self) == device)
        #expect(try APIClient.request(path, "PUT", "/devices/t1", body: #"{"kind": "timer"}"#).status == 409)
        #expect(try APIClient.request(path, "DELETE", "/devices/com1").status == 409)
        #expect(try APIClient.request(path, "DELETE", "/devices/nope").status == 404)
        #expect(try APIClient.request(path, "DELETE", "/devices/t1").status == 204)
        #expect(try APIClient.request(path, "GET", "/resources").decode(ResourcesInfo.self) == initial)

        // Fill every device GSI, get the 409 that names what ran out, unplug all, plug again:
        // the same windows and GSIs come back, lowest first.
        var first: [DeviceInfo] = []
        for index in 0..<16 {
            let kind = index % 2 == 0 ? "timer" : "dma-console"
            let reply = try APIClient.request(path, "PUT", "/devices/d\(index)", body: "{\"kind\": \"\(kind)\"}")
            #expect(reply.status == 200)
            first.append(try reply.decode(DeviceInfo.self))
        }
        let full = try APIClient.request(path, "PUT", "/devices/extra", body: #"{"kind": "timer"}"#)
        #expect(full.status == 409)
        #expect(full.faultMessage?.contains("No free GSI") == true, "\(full.faultMessage ?? "")")
        for index in 0..<16 { #expect(try APIClient.request(path, "DELETE", "/devices/d\(index)").status == 204) }
        #expect(try APIClient.request(path, "GET", "/resources").decode(ResourcesInfo.self) == initial)
        for index in 0..<16 {
            let kind = index % 2 == 0 ? "timer" : "dma-console"
            let again = try APIClient.request(path, "PUT", "/devices/d\(index)", body: "{\"kind\": \"\(kind)\"}")
            #expect(try again.decode(DeviceInfo.self) == first[index])
        }
        for index in 0..<16 { _ = try APIClient.request(path, "DELETE", "/devices/d\(index)") }

        // Plug/unplug cycles against the running guest end where they started.
        for cycle in 0..<100 {
            let kind = cycle % 2 == 0 ? "timer" : "dma-console"
            #expect(try APIClient.request(path, "PUT", "/devices/c", body: "{\"kind\": \"\(kind)\"}").status == 200)
            #expect(try APIClient.request(path, "DELETE", "/devices/c").status == 204)
        }
        #expect(try APIClient.request(path, "GET", "/resources").decode(ResourcesInfo.self) == initial)
        #expect(try APIClient.request(path, "GET", "/vm").decode(VMInfo.self).state == .running)
        child.send(SIGTERM)
        #expect(child.wait() == 143)
    }

    @Test func aRunningGuestIsInspectedPausedAndResumed() throws {
        let (path, directory) = try socketPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let child = try MinivmmChild([spin, "--api-socket", path, "--timeout", "60"])
        try waitForSocket(path)

        var status = stat()
        #expect(lstat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFSOCK)
        #expect(status.st_mode & 0o777 == 0o600)

        let vm = try APIClient.request(path, "GET", "/vm").decode(VMInfo.self)
        #expect(vm.state == .running)
        #expect(vm.memoryBytes == 128 << 20)
        #expect(vm.memoryRegions.map(\.id) == ["ram0"])
        #expect(vm.memoryRegions.first?.size == 128 << 20)
        #expect(Set(vm.devices.map(\.id)) == ["exit-port", "com1", "timer0", "dma-console0", "hotplug-controller"])
        #expect(try APIClient.request(path, "GET", "/devices").decode([DeviceInfo].self) == vm.devices)
        let timer = try APIClient.request(path, "GET", "/devices/timer0").decode(DeviceInfo.self)
        #expect(timer.kind == "timer" && timer.space == "mmio" && timer.gsi == 5)
        #expect(try APIClient.request(path, "GET", "/devices/timer9").status == 404)

        // Paused: the vCPU is out of KVM_RUN, so the spinning guest burns no CPU.
        #expect(try APIClient.request(path, "PATCH", "/vm", body: #"{"state": "paused"}"#).status == 204)
        #expect(try APIClient.request(path, "GET", "/vm").decode(VMInfo.self).state == .paused)
        let pausedStart = child.cpuTicks
        usleep(500_000)
        let pausedTicks = child.cpuTicks - pausedStart
        #expect(pausedTicks <= 5, "CPU ticks while paused: \(pausedTicks)")
        // Pausing twice changes nothing.
        #expect(try APIClient.request(path, "PATCH", "/vm", body: #"{"state": "paused"}"#).status == 204)

        #expect(try APIClient.request(path, "PATCH", "/vm", body: #"{"state": "running"}"#).status == 204)
        #expect(try APIClient.request(path, "GET", "/vm").decode(VMInfo.self).state == .running)
        let runningStart = child.cpuTicks
        usleep(500_000)
        #expect(child.cpuTicks - runningStart > pausedTicks, "the guest spins again")

        // The same resources as --describe prints for the same machine.
        let resources = try APIClient.request(path, "GET", "/resources").decode(ResourcesInfo.self)
        let described = try MinivmmProcess.run([spin, "--describe", "--timeout", "0.2"])
        #expect(described.status == 124)
        #expect(resources.describe(regions: vm.memoryRegions) == described.stdoutText)

        child.send(SIGTERM)
        #expect(child.wait() == 143)
        #expect(!exists(path), "the socket is removed when minivmm exits")
    }

    @Test func badRequestsGet4xxWhileTheGuestKeepsRunning() throws {
        let (path, directory) = try socketPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let child = try MinivmmChild([spin, "--api-socket", path, "--timeout", "60"])
        try waitForSocket(path)

        let malformed = HTTPReply(raw: RawSocket.exchange(path, Array("NOT HTTP AT ALL\r\n\r\n".utf8)))
        #expect(malformed.status == 400)
        let headers = "GET /vm HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "h", count: 200_000) + "\r\n\r\n"
        #expect(HTTPReply(raw: RawSocket.exchange(path, Array(headers.utf8))).status == 431)
        let large = #"{"state": "paused"}"# + String(repeating: " ", count: 70_000)
        #expect(try APIClient.request(path, "PATCH", "/vm", body: large).status == 413)
        #expect(try APIClient.request(path, "PATCH", "/vm", bytes: [0x7B, 0x22, 0xFF, 0x22, 0x7D]).status == 400)
        let deep = String(repeating: "[", count: 20_000) + String(repeating: "]", count: 20_000)
        #expect(try APIClient.request(path, "PATCH", "/vm", body: deep).status == 400)
        #expect(try APIClient.request(path, "PATCH", "/vm", body: #"{"state": "off"}"#).status == 400)
        #expect(try APIClient.request(path, "DELETE", "/vm").status == 405)
        #expect(try APIClient.request(path, "GET", "/nothing").status == 404)

        // Nothing changed, and the API keeps answering quickly while the guest spins.
        let start = Date()
        for _ in 0..<20 {
            #expect(try APIClient.request(path, "GET", "/vm").decode(VMInfo.self).state == .running)
        }
        #expect(Date().timeIntervalSince(start) < 10)
        let running = child.cpuTicks
        usleep(300_000)
        #expect(child.cpuTicks > running, "the guest still runs")

        child.send(SIGTERM)
        #expect(child.wait() == 143)
        #expect(!exists(path))
    }

    @Test func fiftyConcurrentClientsGetConsistentAnswers() throws {
        let (path, directory) = try socketPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let child = try MinivmmChild([spin, "--api-socket", path, "--timeout", "60", "--device", "timer=3"])
        try waitForSocket(path)
        let expected = try APIClient.request(path, "GET", "/vm").body
        let started = try (0..<50).map { index in
            try APIClient.start(path, "GET", index % 5 == 4 ? "/resources" : "/vm")
        }
        let replies = started.map(APIClient.wait)
        let resources = try APIClient.request(path, "GET", "/resources").body
        for (index, reply) in replies.enumerated() {
            #expect(reply.status == 200)
            #expect(reply.body == (index % 5 == 4 ? resources : expected), "client \(index)")
        }
        child.send(SIGTERM)
        #expect(child.wait() == 143)
        #expect(!exists(path))
    }

    @Test(arguments: [
        (["tests/exit42.bin"], Int32(42), "the guest exits"),
        (["tests/triplefault.bin"], 76, "the guest crashes"),
        (["tests/spin.bin", "--timeout", "1"], 124, "the timeout expires"),
    ])
    func theSocketIsRemovedHoweverMinivmmEnds(arguments: [String], status: Int32, why: String) throws {
        let (path, directory) = try socketPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try MinivmmProcess.run(
            [MinivmmProcess.guest(arguments[0])] + arguments.dropFirst() + ["--api-socket", path])
        #expect(result.status == status, "\(why): \(result.stderr)")
        #expect(!exists(path), "\(why)")
    }

    @Test func aPausedGuestStillStopsOnASignalAndTheTimeout() throws {
        for (signal, status) in [(SIGINT, Int32(130)), (0, 124)] {
            let (path, directory) = try socketPath()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let child = try MinivmmChild([spin, "--api-socket", path, "--timeout", signal == 0 ? "2" : "60"])
            try waitForSocket(path)
            #expect(try APIClient.request(path, "PATCH", "/vm", body: #"{"state": "paused"}"#).status == 204)
            if signal != 0 { child.send(signal) }
            #expect(child.wait(limit: 30) == status)
            #expect(!exists(path))
        }
    }

    @Test func anExistingPathIsExit64AndLeftUntouchedBeforeKVMIsOpened() throws {
        let (path, directory) = try socketPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data("not a socket".utf8).write(to: URL(fileURLWithPath: path))
        var before = stat()
        lstat(path, &before)
        // A KVM device that does not exist: 64 rather than 69 shows the path was checked first.
        for kvm in ["/dev/kvm", "/nonexistent/kvm"] {
            let result = try MinivmmProcess.run([spin, "--api-socket", path, "--timeout", "5", "--kvm-device", kvm])
            #expect(result.status == 64)
            #expect(result.stderr == "minivmm: error: --api-socket '\(path)' already exists; remove it or choose another path\n")
            #expect(result.stdout.isEmpty)
        }
        var after = stat()
        lstat(path, &after)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "not a socket")
        #expect(after.st_ino == before.st_ino && after.st_mtim.tv_sec == before.st_mtim.tv_sec
            && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec && after.st_mode == before.st_mode)
    }

    @Test func aMissingDirectoryOrALongPathIsExit64() throws {
        let missing = try MinivmmProcess.run([spin, "--api-socket", "/nonexistent-minivmm/api.sock"])
        #expect(missing.status == 64)
        #expect(missing.stderr.hasPrefix("minivmm: error: invalid --api-socket '/nonexistent-minivmm/api.sock': "))
        let long = try MinivmmProcess.run([spin, "--api-socket", "/tmp/" + String(repeating: "s", count: 120)])
        #expect(long.status == 64)
        #expect(long.stderr.contains("at most 107 bytes"))
    }
}

/// One HTTP response as the client saw it.
struct HTTPReply {
    /// The status code (0 if none was read).
    var status: Int
    /// The body.
    var body: Data

    /// The body decoded as `T`.
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try JSONDecoder().decode(T.self, from: body) }

    /// The `fault_message` of an error body.
    var faultMessage: String? {
        (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["fault_message"] as? String
    }

    /// Splits a raw response into its status and body.
    init(raw: Data) {
        let split = raw.range(of: Data("\r\n\r\n".utf8))
        let head = String(decoding: split.map { raw[..<$0.lowerBound] } ?? raw, as: UTF8.self)
        let words = head.split(separator: " ", maxSplits: 2)
        status = words.count > 1 ? Int(words[1]) ?? 0 : 0
        body = split.map { Data(raw[$0.upperBound...]) } ?? Data()
    }
}

/// curl over the Unix-domain socket.
enum APIClient {
    /// Starts one curl request; ``wait(_:)`` collects the reply.
    static func start(_ socket: String, _ method: String, _ path: String, bytes: [UInt8]? = nil) throws -> (Process, Pipe) {
        var arguments = ["curl", "-s", "-i", "--max-time", "20", "--unix-socket", socket, "-X", method]
        if let bytes {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("minivmm-curl-\(UUID().uuidString)")
            try Data(bytes).write(to: file)
            arguments += ["--data-binary", "@\(file.path)", "-H", "Content-Type: application/json"]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments + ["http://localhost\(path)"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        return (process, output)
    }

    /// Waits for a started request.
    static func wait(_ started: (Process, Pipe)) -> HTTPReply {
        let data = started.1.fileHandleForReading.readDataToEndOfFile()
        started.0.waitUntilExit()
        return HTTPReply(raw: data)
    }

    /// One request with a raw body.
    static func request(_ socket: String, _ method: String, _ path: String, bytes: [UInt8]? = nil) throws -> HTTPReply {
        wait(try start(socket, method, path, bytes: bytes))
    }

    /// One request with a text body.
    static func request(_ socket: String, _ method: String, _ path: String, body: String) throws -> HTTPReply {
        try request(socket, method, path, bytes: Array(body.utf8))
    }
}

/// Raw bytes over the socket, for requests no HTTP client sends.
enum RawSocket {
    /// Connects to `path`, sends `bytes` and reads until the server closes (or 10 s pass).
    static func exchange(_ path: String, _ bytes: [UInt8]) -> Data {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return Data() }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.prefix(buffer.count - 1).enumerated() { buffer[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else { return Data() }
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { break }
            sent += count
        }
        var limit = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            received.append(contentsOf: buffer[..<count])
        }
        return received
    }
}
