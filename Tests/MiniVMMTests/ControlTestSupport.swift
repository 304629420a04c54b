import Foundation
import Synchronization
import Testing

@testable import MiniVMM

/// A ``VMControl`` with a fixed machine, recording every call; it can be told to refuse
/// `setState` and to take its time (to see whether calls overlap).
final class FakeControl: VMControl {
    private struct State {
        var runState = VMRunState.running
        var setStateCalls: [VMRunState] = []
        var refusal: ControlError?
        var inside = 0
        var mostInside = 0
        var plugged: [DeviceInfo] = []
        var regions: [MemoryRegionInfo] = []
        /// Whether removals are two-phase (the guest enabled notifications).
        var twoPhase = false
        var snapshots: [String] = []
    }

    private let state = Mutex(State())
    /// How long each call takes.
    let delay: Duration

    /// A fake that answers at once, or after `delay`.
    init(delay: Duration = .zero) {
        self.delay = delay
    }

    static let deviceList: [DeviceInfo] = [
        DeviceInfo(
            id: "exit-port", kind: "exit-port", instance: 0, space: "port", window: WindowInfo(start: 0xF4, end: 0xF7),
            gsi: nil, state: "attached"),
        DeviceInfo(
            id: "com1", kind: "uart", instance: 0, space: "port", window: WindowInfo(start: 0x3F8, end: 0x3FF), gsi: 4,
            state: "attached"),
        DeviceInfo(
            id: "timer0", kind: "timer", instance: 0, space: "mmio",
            window: WindowInfo(start: 0xC000_0000, end: 0xC000_0FFF), gsi: 5, state: "attached"),
        DeviceInfo(
            id: "hotplug-controller", kind: "hotplug-controller", instance: 0, space: "mmio",
            window: WindowInfo(start: 0xC000_2000, end: 0xC000_2FFF), gsi: 7, state: "attached"),
    ]

    static let resources = ResourcesInfo(
        memorySlots: NumberPoolInfo(
            range: .init(first: 0, last: 31), allocations: [.init(id: 0, owner: "ram0")], free: [.init(first: 1, last: 31)]),
        hotplugRAM: AddressPoolInfo(
            range: WindowInfo(start: 1 << 32, end: (5 << 32) - 1), allocations: [],
            free: [WindowInfo(start: 1 << 32, end: (5 << 32) - 1)]),
        ports: AddressPoolInfo(
            range: WindowInfo(start: 0, end: 0xFFFF),
            allocations: [.init(start: 0xF4, end: 0xF7, owner: "exit-port")],
            free: [WindowInfo(start: 0, end: 0xF3), WindowInfo(start: 0xF8, end: 0xFFFF)]),
        mmio: AddressPoolInfo(range: WindowInfo(start: 0xC000_0000, end: 0xFEBF_FFFF), allocations: [], free: []),
        gsis: NumberPoolInfo(range: .init(first: 4, last: 23), allocations: [.init(id: 4, owner: "com1")], free: []),
        vcpus: NumberPoolInfo(range: .init(first: 0, last: 63), allocations: [.init(id: 0, owner: "cpu0")], free: []))

    /// Makes the next `setState` calls throw `error` (nil: succeed).
    func refuse(with error: ControlError?) {
        state.withLock { $0.refusal = error }
    }

    /// The states `setState` changed to, in order (refused calls not included).
    var changes: [VMRunState] { state.withLock { $0.setStateCalls } }
    /// The most calls that were ever in progress at once.
    var mostConcurrentCalls: Int { state.withLock { $0.mostInside } }
    /// The current state.
    var runState: VMRunState { state.withLock { $0.runState } }

    /// Marks a call in progress for `delay`, so overlapping calls can be counted.
    private func visit() {
        state.withLock { state in
            state.inside += 1
            state.mostInside = max(state.mostInside, state.inside)
        }
        if delay > .zero {
            Thread.sleep(forTimeInterval: Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)
        }
        state.withLock { $0.inside -= 1 }
    }

    func vmInfo() -> VMInfo {
        visit()
        return VMInfo(
            state: runState, memoryBytes: 128 << 20, devices: Self.deviceList,
            memoryRegions: [MemoryRegionInfo(id: "ram0", slot: 0, base: 0, size: 128 << 20, state: "attached")])
    }

    func resourcesInfo() -> ResourcesInfo {
        visit()
        return Self.resources
    }

    func devices() -> [DeviceInfo] {
        visit()
        return Self.deviceList + state.withLock { $0.plugged }
    }

    /// The devices plugged in through ``plugDevice(id:kind:)``.
    var pluggedDevices: [DeviceInfo] { state.withLock { $0.plugged } }

    func setState(_ runState: VMRunState) throws(ControlError) {
        visit()
        let refusal = state.withLock { state -> ControlError? in
            if let refusal = state.refusal { return refusal }
            state.runState = runState
            state.setStateCalls.append(runState)
            return nil
        }
        if let refusal { throw refusal }
    }

    /// Plugs a device in unless refused or the id is taken; windows and GSIs follow timer0's.
    func plugDevice(id: String, kind: DeviceKind) throws(ControlError) -> DeviceInfo {
        visit()
        return try state.withLock { state throws(ControlError) in
            if let refusal = state.refusal { throw refusal }
            guard !(Self.deviceList + state.plugged).contains(where: { $0.id == id }) else {
                throw .conflict("device id '\(id)' is in use")
            }
            let index = UInt64(state.plugged.count + 1)
            let device = DeviceInfo(
                id: id, kind: kind.rawValue, instance: UInt32(index), space: "mmio",
                window: WindowInfo(start: 0xC000_0000 + index << 12, end: 0xC000_0FFF + index << 12),
                gsi: 5 + UInt32(index), state: "attached")
            state.plugged.append(device)
            return device
        }
    }

    /// Makes removals two-phase (as if the guest had enabled notifications) or not.
    func setTwoPhase(_ on: Bool) {
        state.withLock { $0.twoPhase = on }
    }

    /// Unplugs a device unless refused; COM1, the exit port and the hot-plug controller are
    /// refused with 409. Two-phase: marks it removing instead.
    func unplugDevice(id: String) throws(ControlError) -> Unplugged<DeviceInfo> {
        visit()
        return try state.withLock { state throws(ControlError) in
            if let refusal = state.refusal { throw refusal }
            if ["com1", "exit-port", "hotplug-controller"].contains(id) { throw .conflict("\(id) cannot be removed") }
            if let index = state.plugged.firstIndex(where: { $0.id == id }) {
                if state.twoPhase {
                    state.plugged[index].state = "removing"
                    return .removing(state.plugged[index])
                }
                state.plugged.remove(at: index)
            } else if id != "timer0" {
                throw .notFound("no device '\(id)'")
            }
            return .removed
        }
    }

    /// Snapshots: refused unless paused; records the paths.
    func createSnapshot(path: String, kind: SnapshotKind) throws(ControlError) {
        visit()
        try state.withLock { state throws(ControlError) in
            if let refusal = state.refusal { throw refusal }
            guard state.runState == .paused else { throw .conflict("The VM must be paused for a snapshot.") }
            state.snapshots.append(path)
        }
    }

    /// The paths snapshots were written to.
    var snapshots: [String] { state.withLock { $0.snapshots } }

    func memoryRegions() -> [MemoryRegionInfo] {
        visit()
        return [MemoryRegionInfo(id: "ram0", slot: 0, base: 0, size: 128 << 20, state: "attached")]
            + state.withLock { $0.regions }
    }

    /// Plugs RAM in unless refused, the id is taken or the size is not a multiple of 2 MiB.
    func plugMemory(id: String, size: UInt64) throws(ControlError) -> MemoryRegionInfo {
        visit()
        return try state.withLock { state throws(ControlError) in
            if let refusal = state.refusal { throw refusal }
            guard id != "ram0", !state.regions.contains(where: { $0.id == id }) else {
                throw .conflict("memory region id '\(id)' is in use")
            }
            guard size > 0, size % (2 << 20) == 0 else { throw .invalid("size must be a multiple of 2 MiB") }
            let base = (1 << 32) + state.regions.reduce(0) { $0 + $1.size }
            let region = MemoryRegionInfo(id: id, slot: UInt32(state.regions.count + 1), base: base, size: size, state: "attached")
            state.regions.append(region)
            return region
        }
    }

    /// Removes plugged RAM (two-phase when set); boot RAM is refused with 409.
    func unplugMemory(id: String) throws(ControlError) -> Unplugged<MemoryRegionInfo> {
        visit()
        return try state.withLock { state throws(ControlError) in
            if let refusal = state.refusal { throw refusal }
            if id == "ram0" { throw .conflict("ram0 is boot RAM, which cannot be removed") }
            guard let index = state.regions.firstIndex(where: { $0.id == id }) else { throw .notFound("no memory region '\(id)'") }
            if state.twoPhase {
                state.regions[index].state = "removing"
                return .removing(state.regions[index])
            }
            state.regions.remove(at: index)
            return .removed
        }
    }
}

/// One HTTP response as a client saw it.
struct HTTPReply {
    /// The status code (0 if none was read).
    var status: Int
    /// Header names lowercased.
    var headers: [String: String]
    /// The body.
    var body: Data

    /// The body decoded as `T`.
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try JSONDecoder().decode(T.self, from: body) }

    /// The `fault_message`, if the body is a fault.
    var faultMessage: String? { (try? decode(Fault.self))?.faultMessage }

    /// Splits a raw response (status line, headers, blank line, body).
    init(raw: Data) {
        let separator = Data("\r\n\r\n".utf8)
        let split = raw.range(of: separator)
        let head = String(decoding: split.map { raw[..<$0.lowerBound] } ?? raw, as: UTF8.self)
        body = split.map { Data(raw[$0.upperBound...]) } ?? Data()
        let lines = head.components(separatedBy: "\r\n")
        let statusWords = lines.first?.split(separator: " ") ?? []
        status = statusWords.count > 1 ? Int(statusWords[1]) ?? 0 : 0
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        self.headers = headers
    }
}

/// curl over a Unix-domain socket: the HTTP client of the control API's tests.
enum Curl {
    /// Starts curl for one request; `wait(_:)` collects the reply.
    static func start(socket: String, _ method: String, _ path: String, body: Data? = nil) throws -> (Process, Pipe) {
        var arguments = ["-s", "-i", "--max-time", "20", "--unix-socket", socket, "-X", method]
        if let body {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("curl-body-\(UUID().uuidString)")
            try body.write(to: file)
            arguments += ["--data-binary", "@\(file.path)", "-H", "Content-Type: application/json"]
        }
        arguments.append("http://localhost\(path)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["curl"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        return (process, output)
    }

    /// Waits for a started curl and parses what it printed.
    static func wait(_ started: (Process, Pipe)) -> HTTPReply {
        let data = started.1.fileHandleForReading.readDataToEndOfFile()
        started.0.waitUntilExit()
        return HTTPReply(raw: data)
    }

    /// One request, waited for.
    static func request(socket: String, _ method: String, _ path: String, body: Data? = nil) throws -> HTTPReply {
        wait(try start(socket: socket, method, path, body: body))
    }
}

/// Raw bytes over a Unix-domain socket, for requests no HTTP client would send.
enum RawSocket {
    /// Connects to `path`, or returns nil.
    static func connect(_ path: String) -> Int32? {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.prefix(buffer.count - 1).enumerated() { buffer[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            close(descriptor)
            return nil
        }
        return descriptor
    }

    /// Sends `bytes` (ignoring a peer that closes early) and reads until the peer closes or
    /// `timeout` seconds pass without data.
    static func exchange(_ path: String, _ bytes: [UInt8], timeout: Int = 5) -> Data? {
        guard let descriptor = connect(path) else { return nil }
        defer { close(descriptor) }
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { break }
            sent += count
        }
        return readAll(descriptor, timeout: timeout)
    }

    /// Reads until end of file or `timeout` seconds without data.
    static func readAll(_ descriptor: Int32, timeout: Int) -> Data {
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
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

/// A fresh socket path in a private temporary directory (short enough for `sun_path`).
func temporarySocketPath() throws -> String {
    let directory = "/tmp/minivmm-api-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    return directory + "/api.sock"
}
