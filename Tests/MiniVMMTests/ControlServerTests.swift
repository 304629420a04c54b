import Foundation
import Logging
import Testing

@testable import MiniVMM
@testable import minivmm

/// The control API's server over a real Unix-domain socket, with a fake machine: the
/// socket's life and mode, HTTP through SwiftNIO, limits, idle connections, concurrency.
@Suite("Control API server", .serialized)
struct ControlServerTests {
    private let logger = Logger(label: "control-server-test")

    private func withServer(
        control: FakeControl = FakeControl(), idleTimeout: Duration = .seconds(30),
        _ body: (String, ControlServer, FakeControl) throws -> Void
    ) throws {
        let path = try temporarySocketPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let server = try ControlServer(path: path, control: control, logger: logger, idleTimeout: idleTimeout)
        defer { server.stop() }
        try body(path, server, control)
    }

    @Test func theSocketIsMode0600AndRemovedByStop() throws {
        let path = try temporarySocketPath()
        let server = try ControlServer(path: path, control: FakeControl(), logger: logger)
        var status = stat()
        #expect(lstat(path, &status) == 0)
        #expect(status.st_mode & S_IFMT == S_IFSOCK)
        #expect(status.st_mode & 0o777 == 0o600)
        server.stop()
        #expect(lstat(path, &status) == -1 && errno == ENOENT)
        #expect(RawSocket.connect(path) == nil)
        server.stop()  // idempotent
        try FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
    }

    @Test func anExistingPathIsRefusedAndLeftAlone() throws {
        let path = try temporarySocketPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: ConfigurationError.apiSocketExists(path)) { try ControlServer.checkPathAvailable(path) }
        #expect(throws: ControlServerError.pathInUse(path)) {
            try ControlServer(path: path, control: FakeControl(), logger: logger)
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "keep me")
        // A dangling symbolic link is something too.
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: "/nonexistent/target")
        #expect(throws: ConfigurationError.apiSocketExists(path)) { try ControlServer.checkPathAvailable(path) }
    }

    @Test func aMissingDirectoryIsAConfigurationError() throws {
        let path = "/nonexistent-minivmm-dir/api.sock"
        #expect(throws: ConfigurationError.invalidAPISocketPath(path, reason: "the directory '/nonexistent-minivmm-dir' does not exist")) {
            try ControlServer.checkPathAvailable(path)
        }
    }

    @Test func aStopLeavesAFileThatReplacedTheSocket() throws {
        let path = try temporarySocketPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let server = try ControlServer(path: path, control: FakeControl(), logger: logger)
        try FileManager.default.removeItem(atPath: path)
        try Data("someone else's".utf8).write(to: URL(fileURLWithPath: path))
        server.stop()
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "someone else's")
    }

    @Test func servesEveryEndpointOverHTTP() throws {
        try withServer { (path, _, control) throws in
            let vm = try Curl.request(socket: path, "GET", "/vm")
            #expect(vm.status == 200)
            #expect(vm.headers["content-type"] == "application/json")
            #expect(try vm.decode(VMInfo.self).state == .running)
            #expect(try Curl.request(socket: path, "GET", "/resources").decode(ResourcesInfo.self) == FakeControl.resources)
            #expect(try Curl.request(socket: path, "GET", "/devices").decode([DeviceInfo].self) == FakeControl.deviceList)
            #expect(try Curl.request(socket: path, "GET", "/devices/com1").decode(DeviceInfo.self).gsi == 4)
            #expect(try Curl.request(socket: path, "GET", "/devices/com2").status == 404)
            let paused = try Curl.request(socket: path, "PATCH", "/vm", body: Data(#"{"state": "paused"}"#.utf8))
            #expect(paused.status == 204)
            #expect(paused.body.isEmpty)
            #expect(control.changes == [.paused])
            let wrong = try Curl.request(socket: path, "DELETE", "/vm")
            #expect(wrong.status == 405)
            #expect(wrong.headers["allow"] == "GET, PATCH")
            #expect(wrong.faultMessage != nil)
        }
    }

    @Test func anOversizedBodyIs413AndChangesNothing() throws {
        try withServer { (path, _, control) throws in
            let body = Data(#"{"state": "paused"}"#.utf8) + Data(repeating: 0x20, count: 70_000)
            let reply = try Curl.request(socket: path, "PATCH", "/vm", body: body)
            #expect(reply.status == 413)
            #expect(reply.faultMessage?.contains("65536") == true)
            // Chunked, so the size is not announced: refused when it is exceeded.
            let chunked = "PATCH /vm HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "10000\r\n" + String(repeating: " ", count: 0x10000) + "\r\n" + "10\r\n" + String(repeating: " ", count: 16) + "\r\n0\r\n\r\n"
            let raw = HTTPReply(raw: RawSocket.exchange(path, Array(chunked.utf8)) ?? Data())
            #expect(raw.status == 413)
            #expect(control.changes.isEmpty)
            #expect(try Curl.request(socket: path, "GET", "/vm").status == 200)
        }
    }

    @Test(arguments: [
        "GARBAGE\r\n\r\n", "GET /vm HTTP/9.9\r\n\r\n", "GET /vm HTTP/1.1\r\nHost x\r\n\r\n",
        "GET /vm HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "GET /vm HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "PATCH /vm HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
    ])
    func malformedHTTPIs400AndChangesNothing(request: String) throws {
        try withServer { (path, _, control) throws in
            let reply = HTTPReply(raw: RawSocket.exchange(path, Array(request.utf8)) ?? Data())
            #expect(reply.status == 400)
            #expect(reply.faultMessage != nil)
            #expect(control.changes.isEmpty)
            #expect(try Curl.request(socket: path, "GET", "/vm").status == 200)
        }
    }

    @Test func oversizedHeadersAre431() throws {
        try withServer { (path, _, _) throws in
            let request = "GET /vm HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 200_000) + "\r\n\r\n"
            let reply = HTTPReply(raw: RawSocket.exchange(path, Array(request.utf8)) ?? Data())
            #expect(reply.status == 431)
            #expect(reply.faultMessage != nil)
        }
    }

    @Test func invalidUTF8AndDeepJSONOverTheSocketAre400() throws {
        try withServer { (path, _, control) throws in
            #expect(try Curl.request(socket: path, "PATCH", "/vm", body: Data([0x7B, 0xFF, 0xFE, 0x7D])).status == 400)
            let deep = Data((String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)).utf8)
            #expect(try Curl.request(socket: path, "PATCH", "/vm", body: deep).status == 400)
            #expect(control.changes.isEmpty)
        }
    }

    @Test func keepAliveServesSeveralRequestsOnOneConnection() throws {
        try withServer { (path, _, _) throws in
            let one = "GET /vm HTTP/1.1\r\nHost: x\r\n\r\n"
            let last = "GET /devices/timer0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let raw = RawSocket.exchange(path, Array((one + one + last).utf8)) ?? Data()
            let text = String(decoding: raw, as: UTF8.self)
            #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count == 4)
        }
    }

    @Test func idleConnectionsAreClosed() throws {
        try withServer(idleTimeout: .milliseconds(300)) { (path, _, _) throws in
            let descriptor = try #require(RawSocket.connect(path))
            defer { close(descriptor) }
            let start = Date()
            // Sends nothing: the server closes the connection, so the read sees end of file.
            let received = RawSocket.readAll(descriptor, timeout: 10)
            #expect(received.isEmpty)
            #expect(Date().timeIntervalSince(start) < 5)
        }
    }

    @Test func fiftyConcurrentClientsGetConsistentAnswersOneAtATime() throws {
        let control = FakeControl(delay: .milliseconds(2))
        try withServer(control: control) { (path, _, _) throws in
            var started: [(Process, Pipe)] = []
            for index in 0..<50 {
                if index % 10 == 9 {
                    let state = index % 20 == 9 ? "paused" : "running"
                    started.append(try Curl.start(socket: path, "PATCH", "/vm", body: Data(#"{"state": "\#(state)"}"#.utf8)))
                } else {
                    started.append(try Curl.start(socket: path, index % 2 == 0 ? "GET" : "GET", index % 3 == 0 ? "/devices" : "/vm"))
                }
            }
            let replies = started.map(Curl.wait)
            for (index, reply) in replies.enumerated() {
                if index % 10 == 9 {
                    #expect(reply.status == 204)
                } else if index % 3 == 0 {
                    #expect(try reply.decode([DeviceInfo].self) == FakeControl.deviceList)
                } else {
                    let info = try reply.decode(VMInfo.self)
                    #expect(info.devices == FakeControl.deviceList && info.memoryBytes == 128 << 20)
                }
            }
            #expect(control.changes.count == 5)
            #expect(control.mostConcurrentCalls == 1)
        }
    }
}

/// `--api-socket` from the command line to the configuration and the exit status.
@Suite("--api-socket option")
struct APISocketOptionTests {
    @Test func theOptionReachesTheConfiguration() throws {
        let (blueprint, _) = try MinivmmCommand.interpret(["guest.bin", "--api-socket", "/tmp/x.sock"]).get()
        #expect(blueprint.configuration.apiSocketPath == "/tmp/x.sock")
        let (plain, _) = try MinivmmCommand.interpret(["guest.bin"]).get()
        #expect(plain.configuration.apiSocketPath == nil)
    }

    @Test func anEmptyOrTooLongPathIsExit64() {
        for path in ["", "/tmp/" + String(repeating: "p", count: 103)] {
            guard case .failure(let outcome) = MinivmmCommand.interpret(["guest.bin", "--api-socket", path]) else {
                Issue.record("'\(path)' was accepted")
                continue
            }
            #expect(outcome.status == 64)
            #expect(outcome.text.hasPrefix("minivmm: error: invalid --api-socket"))
        }
        // 107 bytes is the most a socket address holds.
        #expect((try? MinivmmCommand.interpret(["guest.bin", "--api-socket", "/tmp/" + String(repeating: "p", count: 102)]).get()) != nil)
    }

    @Test func aTakenPathIsExit64() {
        #expect(ExitStatus(.failed(.configuration(.apiSocketExists("/tmp/x.sock")))).code == 64)
        #expect(ConfigurationError.apiSocketExists("/tmp/x.sock").description
            == "--api-socket '/tmp/x.sock' already exists; remove it or choose another path")
    }

    @Test func headGets405WithoutABody() throws {
        let path = try temporarySocketPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let server = try ControlServer(path: path, control: FakeControl(), logger: Logger(label: "test"))
        defer { server.stop() }
        let raw = RawSocket.exchange(path, Array("HEAD /vm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)) ?? Data()
        let reply = HTTPReply(raw: raw)
        #expect(reply.status == 405)
        #expect(reply.body.isEmpty)
    }
}
