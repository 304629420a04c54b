#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// The control API's routing and validation, with no sockets and no NIO: the server hands
// each complete request to `ControlAPI.respond(to:)`, and the unit tests call it directly.
// docs/api.yaml specifies every route and response; a test checks the two agree.

/// One HTTP request as the API sees it: method, target and the whole body.
package struct ControlRequest: Hashable, Sendable {
    /// The method as sent (`GET`, `PATCH`, …).
    package var method: String
    /// The request target: the path, perhaps with a query (ignored).
    package var target: String
    /// The body (empty for none).
    package var body: [UInt8]

    /// A request.
    package init(method: String, target: String, body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.body = body
    }
}

/// One HTTP response: status, extra headers and a JSON body (empty for 204).
package struct ControlResponse: Hashable, Sendable {
    /// The status code.
    package var status: Int
    /// Headers besides `Content-Type` and `Content-Length`, e.g. `Allow`.
    package var headers: [String: String]
    /// The JSON body; empty only for 204.
    package var body: [UInt8]

    /// A response.
    package init(status: Int, headers: [String: String] = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The `{"fault_message": ...}` response for `status`.
    package static func fault(_ status: Int, _ message: String, headers: [String: String] = [:]) -> ControlResponse {
        ControlResponse(status: status, headers: headers, body: ControlAPI.encode(Fault(faultMessage: message)))
    }
}

/// The body of every error response.
package struct Fault: Codable, Hashable, Sendable {
    /// One sentence that says what to change.
    package var faultMessage: String

    enum CodingKeys: String, CodingKey {
        case faultMessage = "fault_message"
    }
}

/// The control API: maps requests to ``VMControl`` calls and their results to responses.
/// Every request that is refused is refused before `VMControl` is asked to change anything.
package struct ControlAPI: Sendable {
    /// The largest body accepted; a larger one gets 413.
    package static let maximumBodyBytes = 64 * 1024
    /// The deepest JSON nesting accepted (the API's bodies are flat objects, depth 1).
    package static let maximumJSONDepth = 8
    /// The longest device id.
    package static let maximumIDLength = 32

    /// The machine the API controls.
    private let control: any VMControl

    /// An API over `control`.
    package init(control: any VMControl) {
        self.control = control
    }

    /// The routes, for `Allow` headers and 405s; docs/api.yaml lists the same.
    package enum Route: Hashable, Sendable {
        /// `/vm`
        case vm
        /// `/resources`
        case resources
        /// `/devices`
        case devices
        /// `/devices/{id}`, with the id as sent (not yet validated).
        case device(String)
        /// `/memory`
        case memory
        /// `/memory/{id}`, with the id as sent (not yet validated).
        case memoryRegion(String)
        /// `/snapshot/create`
        case snapshotCreate

        /// Every route, with `{id}` standing for a device or region id.
        package static let all: [Route] = [
            .vm, .resources, .devices, .device("{id}"), .memory, .memoryRegion("{id}"), .snapshotCreate,
        ]

        /// The path, as docs/api.yaml writes it (`/devices/{id}` for every device).
        package var template: String {
            switch self {
            case .vm: "/vm"
            case .resources: "/resources"
            case .devices: "/devices"
            case .device: "/devices/{id}"
            case .memory: "/memory"
            case .memoryRegion: "/memory/{id}"
            case .snapshotCreate: "/snapshot/create"
            }
        }

        /// The methods the route answers, in `Allow` order.
        package var methods: [String] {
            switch self {
            case .vm: ["GET", "PATCH"]
            case .resources, .devices, .memory: ["GET"]
            case .device, .memoryRegion: ["GET", "PUT", "DELETE"]
            case .snapshotCreate: ["PUT"]
            }
        }

        /// The route for `path`, or nil for an unknown path.
        package init?(path: String) {
            switch path {
            case "/vm": self = .vm
            case "/resources": self = .resources
            case "/devices": self = .devices
            case "/memory": self = .memory
            case "/snapshot/create": self = .snapshotCreate
            default:
                // `/devices/a/b` is no route; a bad id in the one segment is a 400, below.
                for (prefix, route) in [("/devices/", Route.device), ("/memory/", Route.memoryRegion)] where path.hasPrefix(prefix) {
                    let id = path.dropFirst(prefix.count)
                    guard !id.contains("/") else { return nil }
                    self = route(String(id))
                    return
                }
                return nil
            }
        }
    }

    /// Handles one complete request. Never throws: every failure is a response.
    package func respond(to request: ControlRequest) -> ControlResponse {
        // The body limit first: the server already stops reading past it, and nothing
        // larger is even looked at.
        if request.body.count > Self.maximumBodyBytes {
            return .fault(413, "The request body is \(request.body.count) bytes; send at most \(Self.maximumBodyBytes) bytes.")
        }
        let path = request.target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard let route = Route(path: path) else {
            return .fault(404, "There is no resource at '\(Self.printable(path))'; use /vm, /resources, /devices, /devices/{id}, /memory, /memory/{id} or /snapshot/create.")
        }
        guard route.methods.contains(request.method) else {
            let allowed = route.methods.joined(separator: ", ")
            return .fault(
                405, "\(Self.printable(path)) does not support \(Self.printable(request.method)); use \(allowed).",
                headers: ["Allow": allowed])
        }
        switch (route, request.method) {
        case (.vm, "GET"):
            return .json(control.vmInfo())
        case (.vm, _):
            return patchVM(request.body)
        case (.resources, _):
            return .json(control.resourcesInfo())
        case (.devices, _):
            return .json(control.devices())
        case (.device(let id), let method):
            if let problem = Self.idProblem(id) { return .fault(400, problem) }
            switch method {
            case "PUT":
                return putDevice(id, request.body)
            case "DELETE":
                return Self.removal { () throws(ControlError) in try control.unplugDevice(id: id) }
            default:
                guard let device = control.devices().first(where: { $0.id == id }) else {
                    return .fault(404, "There is no device '\(id)'; GET /devices lists the devices.")
                }
                return .json(device)
            }
        case (.memory, _):
            return .json(control.memoryRegions())
        case (.snapshotCreate, _):
            let create: SnapshotCreate
            do { create = try SnapshotCreate.decode(request.body) } catch { return .fault(400, error.description) }
            do { try control.createSnapshot(path: create.path, kind: create.kind) } catch { return Self.response(for: error) }
            return ControlResponse(status: 204)
        case (.memoryRegion(let id), let method):
            if let problem = Self.idProblem(id, what: "memory region") { return .fault(400, problem) }
            switch method {
            case "PUT":
                return putMemory(id, request.body)
            case "DELETE":
                return Self.removal { () throws(ControlError) in try control.unplugMemory(id: id) }
            default:
                guard let region = control.memoryRegions().first(where: { $0.id == id }) else {
                    return .fault(404, "There is no memory region '\(id)'; GET /memory lists them.")
                }
                return .json(region)
            }
        }
    }

    /// A DELETE's response: 204 when gone, 202 with the state when the guest was asked.
    private static func removal<Info: Encodable>(
        _ remove: () throws(ControlError) -> Unplugged<Info>
    ) -> ControlResponse {
        do {
            switch try remove() {
            case .removed: return ControlResponse(status: 204)
            case .removing(let info): return ControlResponse(status: 202, body: encode(info))
            }
        } catch {
            return response(for: error)
        }
    }

    /// `PUT /memory/{id}`: validates the whole body, then plugs the RAM in.
    private func putMemory(_ id: String, _ body: [UInt8]) -> ControlResponse {
        let size: UInt64
        do {
            size = try MemoryPut.decode(body).size
        } catch {
            return .fault(400, error.description)
        }
        do {
            return .json(try control.plugMemory(id: id, size: size))
        } catch {
            return Self.response(for: error)
        }
    }

    /// `PUT /devices/{id}`: validates the whole body, then plugs the device in.
    private func putDevice(_ id: String, _ body: [UInt8]) -> ControlResponse {
        let kind: DeviceKind
        do {
            kind = try DevicePut.decode(body).kind
        } catch {
            return .fault(400, error.description)
        }
        do {
            return .json(try control.plugDevice(id: id, kind: kind))
        } catch {
            return Self.response(for: error)
        }
    }

    /// `PATCH /vm`: validates the whole body, then asks for the state.
    private func patchVM(_ body: [UInt8]) -> ControlResponse {
        let state: VMRunState
        do {
            state = try StatePatch.decode(body).state
        } catch {
            return .fault(400, error.description)
        }
        do {
            try control.setState(state)
        } catch {
            return Self.response(for: error)
        }
        return ControlResponse(status: 204)
    }

    /// The response for a refusal from ``VMControl``.
    package static func response(for error: ControlError) -> ControlResponse {
        switch error {
        case .invalid(let message): .fault(400, message)
        case .notFound(let message): .fault(404, message)
        case .conflict(let message): .fault(409, message)
        case .internalFailure(let message): .fault(500, message)
        }
    }

    /// Why `id` is not a valid device (or memory region) id, or nil if it is one: 1-32
    /// characters of `[a-z0-9_-]`.
    package static func idProblem(_ id: String, what: String = "device") -> String? {
        DeviceID.isValid(id) ? nil : "The \(what) id '\(printable(id))' is invalid; use 1 to \(maximumIDLength) characters of a-z, 0-9, '_' and '-'."
    }

    /// `text` cut to 64 characters with control characters replaced, safe to echo in a
    /// message.
    static func printable(_ text: String) -> String {
        let cut = text.unicodeScalars.prefix(64).map { $0.properties.generalCategory == .control ? "?" : Character($0) }
        return String(cut) + (text.unicodeScalars.count > 64 ? "…" : "")
    }

    /// `value` as JSON with sorted keys (stable output for clients and tests).
    static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // The model holds only strings, integers and arrays: encoding cannot fail.
        return Array((try? encoder.encode(value)) ?? Data("{}".utf8))
    }
}

extension ControlResponse {
    /// A 200 response with `value` as its JSON body.
    static func json(_ value: some Encodable) -> ControlResponse {
        ControlResponse(status: 200, body: ControlAPI.encode(value))
    }
}

/// Why a request body was refused (400); the description is the `fault_message`.
package struct BodyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// One sentence that says what to change.
    package let description: String

    /// A refusal saying `description`.
    init(_ description: String) {
        self.description = description
    }
}

/// The body of `PATCH /vm`: exactly `{"state": "paused"}` or `{"state": "running"}`.
package struct StatePatch: Hashable, Sendable {
    /// The state asked for.
    package var state: VMRunState

    /// Checks `body` in order — UTF-8, nesting depth, JSON syntax, an object, no unknown
    /// field, a valid `state` — and returns the patch.
    package static func decode(_ body: [UInt8]) throws(BodyError) -> StatePatch {
        StatePatch(state: try JSONBody.decode(SingleField<VMRunState>.self, from: body, example: #"{"state": "paused"}"#).value)
    }
}

/// The body of `PUT /devices/{id}`: exactly `{"kind": KIND}` with a registry kind.
package struct DevicePut: Hashable, Sendable {
    /// The kind asked for.
    package var kind: DeviceKind

    /// Checks `body` like ``StatePatch/decode(_:)`` and returns the request.
    package static func decode(_ body: [UInt8]) throws(BodyError) -> DevicePut {
        DevicePut(kind: try JSONBody.decode(SingleField<DeviceKind>.self, from: body, example: #"{"kind": "timer"}"#).value)
    }
}

/// The body of `PUT /memory/{id}`: exactly `{"size": SIZE}` with SIZE a byte count with
/// an optional `K`, `M` or `G` suffix, as a string (`"256M"`).
package struct MemoryPut: Hashable, Sendable {
    /// The size asked for, in bytes (the resource manager checks the 2 MiB granule).
    package var size: UInt64

    /// Checks `body` like ``StatePatch/decode(_:)`` and returns the request.
    package static func decode(_ body: [UInt8]) throws(BodyError) -> MemoryPut {
        MemoryPut(size: try JSONBody.decode(SingleField<MemorySizeText>.self, from: body, example: #"{"size": "256M"}"#).value.bytes)
    }
}

/// The body of `PUT /snapshot/create`: `{"path": DIR}`, optionally with `"type": "full"`
/// or `"diff"`.
package struct SnapshotCreate: Hashable, Sendable {
    /// Where the snapshot directory goes.
    package var path: String
    /// Full (the default) or diff.
    package var kind: SnapshotKind

    /// Checks `body` like ``StatePatch/decode(_:)`` and returns the request.
    package static func decode(_ body: [UInt8]) throws(BodyError) -> SnapshotCreate {
        try JSONBody.decode(SnapshotCreate.self, from: body, example: #"{"path": "/tmp/snap1"}"#)
    }
}

extension SnapshotCreate: Decodable {
    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: JSONBody.AnyKey.self)
        if let unknown = container.allKeys.map(\.stringValue).sorted().first(where: { $0 != "path" && $0 != "type" }) {
            throw BodyError("The field '\(ControlAPI.printable(unknown))' is unknown; send \"path\" and, optionally, \"type\".")
        }
        guard let path = try? container.decode(String.self, forKey: .init(stringValue: "path")), !path.isEmpty,
              !path.utf8.contains(0)
        else {
            throw BodyError(#"The field "path" must be the snapshot directory's path, such as {"path": "/tmp/snap1"}."#)
        }
        let typeKey = JSONBody.AnyKey(stringValue: "type")
        var kind = SnapshotKind.full
        if container.contains(typeKey) {
            guard let type = try? container.decode(String.self, forKey: typeKey), let given = SnapshotKind(rawValue: type) else {
                throw BodyError(#"The field "type" must be "full" or "diff"."#)
            }
            kind = given
        }
        self.path = path
        self.kind = kind
    }
}

/// A size as `PUT /memory/{id}` takes it.
struct MemorySizeText: RawRepresentable, BodyField {
    static var fieldName: String { "size" }
    /// The examples a refusal shows.
    static var allCases: [MemorySizeText] { [MemorySizeText(rawValue: "256M")!] }

    let rawValue: String
    let bytes: UInt64

    init?(rawValue: String) {
        guard let bytes = try? MemorySize.parseBytes(rawValue) else { return nil }
        self.rawValue = rawValue
        self.bytes = bytes
    }
}

/// A value the control API takes as the one string field of a JSON object.
protocol BodyField: RawRepresentable<String>, CaseIterable {
    /// The field's name.
    static var fieldName: String { get }
    /// What a bad value is told, when listing every case does not say it.
    static var mustBe: String? { get }
}

extension BodyField {
    static var mustBe: String? { nil }
}

extension MemorySizeText {
    static var mustBe: String? {
        "The field \"size\" must be a string of bytes with an optional K, M or G suffix, such as \"256M\" (a multiple of 2 MiB)."
    }
}

extension VMRunState: BodyField {
    static var fieldName: String { "state" }
}

extension DeviceKind: BodyField {
    static var fieldName: String { "kind" }
}

/// The JSON shape `{"<field>": "<value>"}`, decoded with every key seen so unknown fields are
/// refused, and each refusal saying what to send.
private struct SingleField<Value: BodyField>: Decodable {
    let value: Value

    init(from decoder: any Decoder) throws {
        let name = Value.fieldName
        let values = Value.allCases.map { "\"\($0.rawValue)\"" }
        let container = try decoder.container(keyedBy: JSONBody.AnyKey.self)
        if let unknown = container.allKeys.map(\.stringValue).sorted().first(where: { $0 != name }) {
            throw BodyError("The field '\(ControlAPI.printable(unknown))' is unknown; send only \"\(name)\".")
        }
        let key = JSONBody.AnyKey(stringValue: name)
        guard container.contains(key) else {
            throw BodyError("The field \"\(name)\" is missing; send {\"\(name)\": \(values[0])}, for example.")
        }
        guard let text = try? container.decode(String.self, forKey: key), let value = Value(rawValue: text) else {
            throw BodyError(Value.mustBe ?? "The field \"\(name)\" must be \(values.joined(separator: " or ")).")
        }
        self.value = value
    }
}

/// Checks and decodes JSON request bodies.
package enum JSONBody {
    /// Any key of a JSON object, so a decoder can list every key it was sent.
    struct AnyKey: CodingKey {
        /// The key as sent.
        let stringValue: String
        /// Object keys are strings only.
        var intValue: Int? { nil }

        /// The key `stringValue`.
        init(stringValue: String) {
            self.stringValue = stringValue
        }

        /// Never: object keys are strings only.
        init?(intValue: Int) {
            nil
        }
    }

    /// `body` decoded as `T`, checked first for being non-empty, valid UTF-8 and nested at
    /// most ``ControlAPI/maximumJSONDepth`` deep, then for being a well-formed JSON object.
    /// `T` throws ``BodyError`` for fields it refuses.
    package static func decode<T: Decodable>(_ type: T.Type, from body: [UInt8], example: String) throws(BodyError) -> T {
        guard !body.isEmpty else { throw BodyError("The request body is empty; send a JSON object.") }
        guard String(validating: body, as: UTF8.self) != nil else {
            throw BodyError("The request body is not valid UTF-8; send UTF-8 JSON.")
        }
        // Checked before parsing so a hostile body cannot make the parser recurse deeply.
        if depth(of: body) > ControlAPI.maximumJSONDepth {
            throw BodyError("The JSON body is nested too deeply; send a flat JSON object.")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(body))
        } catch let error as BodyError {
            throw error
        } catch DecodingError.typeMismatch(_, let context) where context.codingPath.isEmpty {
            throw BodyError("The request body must be a JSON object, such as \(example).")
        } catch {
            throw BodyError("The request body is not a valid JSON object; send one such as \(example).")
        }
    }

    /// The deepest nesting of `[` and `{` outside strings. Malformed input still gets a
    /// number; the parser refuses it afterwards.
    package static func depth(of body: [UInt8]) -> Int {
        var depth = 0
        var deepest = 0
        var inString = false
        var escaped = false
        for byte in body {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return deepest
    }
}
