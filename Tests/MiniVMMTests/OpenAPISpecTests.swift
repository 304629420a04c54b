import Foundation
import Testing
import Yams

@testable import MiniVMM

/// docs/api.yaml against the API: the same paths and methods, and every response the API
/// gives — each status of each operation, refusals included — is one the spec lists, with
/// a body that matches its schema.
@Suite("docs/api.yaml matches the control API")
struct OpenAPISpecTests {
    static let specPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/api.yaml").path

    private static let methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]

    private let spec: [String: Any]

    init() throws {
        let text = try String(contentsOfFile: Self.specPath, encoding: .utf8)
        spec = try #require(try Yams.load(yaml: text) as? [String: Any])
    }

    private var paths: [String: [String: Any]] { (spec["paths"] as? [String: [String: Any]]) ?? [:] }

    /// Follows `$ref`s within the document.
    private func resolve(_ node: Any?) -> Any? {
        guard let object = node as? [String: Any], let reference = object["$ref"] as? String else { return node }
        var current: Any? = spec
        for part in reference.dropFirst(2).split(separator: "/") { current = (current as? [String: Any])?[String(part)] }
        return resolve(current)
    }

    /// Why `value` does not match `schema`, or nil when it does (the subset of JSON Schema
    /// the spec uses: type, properties, required, additionalProperties, items, enum,
    /// pattern, minimum). The model has no booleans, so a JSON number is checked only for
    /// being whole.
    private func mismatch(_ value: Any, _ schemaNode: Any?, at path: String = "$") -> String? {
        guard let schema = resolve(schemaNode) as? [String: Any] else { return "\(path): no schema" }
        if let choices = schema["enum"] as? [Any], !choices.contains(where: { "\($0)" == "\(value)" }) {
            return "\(path): \(value) is not one of \(choices)"
        }
        switch schema["type"] as? String {
        case "object":
            guard let object = value as? [String: Any] else { return "\(path): not an object" }
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for key in schema["required"] as? [String] ?? [] where object[key] == nil { return "\(path): \(key) is missing" }
            for (key, item) in object {
                guard let property = properties[key] else {
                    if schema["additionalProperties"] as? Bool == false { return "\(path): \(key) is not in the schema" }
                    continue
                }
                if let problem = mismatch(item, property, at: "\(path).\(key)") { return problem }
            }
        case "array":
            guard let array = value as? [Any] else { return "\(path): not an array" }
            for (index, item) in array.enumerated() {
                if let problem = mismatch(item, schema["items"], at: "\(path)[\(index)]") { return problem }
            }
        case "string":
            guard let text = value as? String else { return "\(path): not a string" }
            if let pattern = schema["pattern"] as? String, (try? Regex(pattern).wholeMatch(in: text)) == nil {
                return "\(path): '\(text)' does not match \(pattern)"
            }
        case "integer":
            guard let number = value as? NSNumber, number.doubleValue.rounded() == number.doubleValue else {
                return "\(path): not an integer"
            }
            if let minimum = schema["minimum"] as? Int, number.doubleValue < Double(minimum) { return "\(path): below \(minimum)" }
        case let other:
            return "\(path): unsupported schema type \(other ?? "none")"
        }
        return nil
    }

    @Test func isOpenAPI31() {
        #expect(spec["openapi"] as? String == "3.1.0")
    }

    @Test func pathsAndMethodsAreTheAPIs() {
        #expect(Set(paths.keys) == Set(ControlAPI.Route.all.map(\.template)))
        for route in ControlAPI.Route.all {
            let operations = (paths[route.template] ?? [:]).keys.filter(Self.methods.contains).map { $0.uppercased() }
            #expect(Set(operations) == Set(route.methods), "\(route.template)")
        }
    }

    /// One request, sent to a fresh ``FakeControl`` after the requests of `before` (sent
    /// without a refusal), with removals two-phase if `twoPhase` (the guest enabled
    /// notifications), and refused with `refuse` if set.
    private struct Case {
        var request: ControlRequest
        var refuse: ControlError?
        var before: [ControlRequest] = []
        var twoPhase = false
    }

    /// Requests that between them produce every status of every operation.
    private static let requests: [Case] = {
        let request = { (method: String, target: String) in ControlRequest(method: method, target: target) }
        let patch = { (body: String) in ControlRequest(method: "PATCH", target: "/vm", body: Array(body.utf8)) }
        let put = { (id: String, body: String) in ControlRequest(method: "PUT", target: "/devices/\(id)", body: Array(body.utf8)) }
        let putMemory = { (id: String, body: String) in
            ControlRequest(method: "PUT", target: "/memory/\(id)", body: Array(body.utf8))
        }
        let snapshot = { (body: String) in ControlRequest(method: "PUT", target: "/snapshot/create", body: Array(body.utf8)) }
        let tooLarge = String(repeating: " ", count: ControlAPI.maximumBodyBytes + 1)
        return [
            Case(request: request("GET", "/vm")),
            Case(request: request("GET", "/vm"), before: [putMemory("hot1", #"{"size": "2M"}"#)]),
            Case(request: request("GET", "/resources")),
            Case(request: request("GET", "/devices")),
            Case(request: request("GET", "/devices"), before: [put("t1", #"{"kind": "timer"}"#), request("DELETE", "/devices/t1")],
                 twoPhase: true),
            Case(request: request("GET", "/devices/timer0")),
            Case(request: request("GET", "/devices/exit-port")),
            Case(request: request("GET", "/devices/hotplug-controller")),
            Case(request: request("GET", "/devices/none0")),
            Case(request: request("GET", "/devices/NO!")),
            Case(request: patch(#"{"state": "paused"}"#)),
            Case(request: patch(#"{"state": "running"}"#)),
            Case(request: patch(#"{"state": "asleep"}"#)),
            Case(request: patch(#"{"state": "paused", "x": 1}"#)),
            Case(request: patch("{")),
            Case(request: patch(tooLarge)),
            Case(request: patch(#"{"state": "paused"}"#), refuse: .conflict("The VM is stopping; do not change its state now.")),
            Case(request: patch(#"{"state": "paused"}"#), refuse: .internalFailure("The vCPUs could not be paused.")),
            Case(request: request("GET", "/nowhere")),
            Case(request: put("timer1", #"{"kind": "timer"}"#)),
            Case(request: put("console7", #"{"kind": "dma-console"}"#)),
            Case(request: put("timer1", #"{"kind": "disk"}"#)),
            Case(request: put("timer1", #"{"kind": "timer", "size": 1}"#)),
            Case(request: put("Timer!", #"{"kind": "timer"}"#)),
            Case(request: put("timer0", #"{"kind": "timer"}"#)),
            Case(request: put("timer1", tooLarge)),
            Case(request: put("timer1", #"{"kind": "timer"}"#), refuse: .conflict("no free GSI for timer19: all 19 device GSIs are in use")),
            Case(request: put("timer1", #"{"kind": "timer"}"#), refuse: .internalFailure("KVM refused the irqfd.")),
            Case(request: request("DELETE", "/devices/timer0")),
            Case(request: request("DELETE", "/devices/t1"), before: [put("t1", #"{"kind": "timer"}"#)], twoPhase: true),
            Case(request: request("DELETE", "/devices/none0")),
            Case(request: request("DELETE", "/devices/com1")),
            Case(request: request("DELETE", "/devices/hotplug-controller")),
            Case(request: request("DELETE", "/devices/NO!")),
            Case(request: request("DELETE", "/devices/timer0"), refuse: .internalFailure("KVM refused.")),
            Case(request: request("POST", "/devices/timer0")),
            Case(request: request("DELETE", "/vm")),
            Case(request: request("POST", "/resources")),
            Case(request: request("GET", "/memory")),
            Case(request: request("GET", "/memory"), before: [putMemory("hot1", #"{"size": "2M"}"#), request("DELETE", "/memory/hot1")],
                 twoPhase: true),
            Case(request: request("GET", "/memory/ram0")),
            Case(request: request("GET", "/memory/hot1"), before: [putMemory("hot1", #"{"size": "1G"}"#)]),
            Case(request: request("GET", "/memory/none0")),
            Case(request: request("GET", "/memory/NO!")),
            Case(request: putMemory("hot1", #"{"size": "256M"}"#)),
            Case(request: putMemory("hot1", #"{"size": "2097152"}"#)),
            Case(request: putMemory("hot1", #"{"size": "3M"}"#)),
            Case(request: putMemory("hot1", #"{"size": "12X"}"#)),
            Case(request: putMemory("hot1", #"{"size": 268435456}"#)),
            Case(request: putMemory("hot1", #"{"size": "256M", "slot": 1}"#)),
            Case(request: putMemory("Hot!", #"{"size": "256M"}"#)),
            Case(request: putMemory("ram0", #"{"size": "256M"}"#)),
            Case(request: putMemory("hot1", tooLarge)),
            Case(request: putMemory("hot1", #"{"size": "32G"}"#),
                 refuse: .conflict("no free 32 GiB range left in the 16 GiB hot-plug window 0x100000000-0x4ffffffff")),
            Case(request: putMemory("hot1", #"{"size": "256M"}"#), refuse: .internalFailure("KVM refused the memory slot.")),
            Case(request: request("DELETE", "/memory/hot1"), before: [putMemory("hot1", #"{"size": "256M"}"#)]),
            Case(request: request("DELETE", "/memory/hot1"), before: [putMemory("hot1", #"{"size": "256M"}"#)], twoPhase: true),
            Case(request: request("DELETE", "/memory/ram0")),
            Case(request: request("DELETE", "/memory/none0")),
            Case(request: request("DELETE", "/memory/NO!")),
            Case(request: request("DELETE", "/memory/hot1"), refuse: .internalFailure("KVM refused."),
                 before: [putMemory("hot1", #"{"size": "256M"}"#)]),
            Case(request: snapshot(#"{"path": "/tmp/s1"}"#), before: [patch(#"{"state": "paused"}"#)]),
            Case(request: snapshot(#"{"path": "/tmp/s1", "type": "full"}"#), before: [patch(#"{"state": "paused"}"#)]),
            Case(request: snapshot(#"{"path": "/tmp/s1"}"#)),
            Case(request: snapshot(#"{"path": "/tmp/s1", "type": "diff"}"#)),
            Case(request: snapshot(#"{"path": "/tmp/s1", "type": "partial"}"#)),
            Case(request: snapshot(#"{"path": ""}"#)),
            Case(request: snapshot(#"{"path": "/tmp/s1", "when": 1}"#)),
            Case(request: snapshot(tooLarge)),
            Case(request: snapshot(#"{"path": "/tmp/s1"}"#), refuse: .internalFailure("The disk is full.")),
            Case(request: request("GET", "/snapshot/create")),
            Case(request: request("PATCH", "/memory")),
            Case(request: request("POST", "/memory/hot1")),
        ]
    }()

    @Test func everyResponseIsSpecifiedAndMatchesItsSchema() throws {
        var produced: Set<String> = []
        for testCase in Self.requests {
            let control = FakeControl()
            control.setTwoPhase(testCase.twoPhase)
            for earlier in testCase.before {
                let status = ControlAPI(control: control).respond(to: earlier).status
                #expect((200..<300).contains(status), "\(earlier.method) \(earlier.target) → \(status) before the case")
            }
            control.refuse(with: testCase.refuse)
            let request = testCase.request
            let response = ControlAPI(control: control).respond(to: request)
            let label = "\(request.method) \(request.target) → \(response.status)"
            let body: Any? = response.body.isEmpty ? nil : try JSONSerialization.jsonObject(with: Data(response.body))
            guard let route = ControlAPI.Route(path: request.target), let item = paths[route.template] else {
                // A path the spec does not have.
                #expect(response.status == 404, "\(label)")
                let described = resolve(["$ref": "#/components/responses/NotFound"]) as? [String: Any]
                let content = (described?["content"] as? [String: Any])?["application/json"] as? [String: Any]
                #expect(mismatch(body ?? "", content?["schema"]) == nil, "\(label)")
                continue
            }
            guard let operation = item[request.method.lowercased()] as? [String: Any] else {
                // A method the path does not have: 405 with the spec's methods in Allow.
                #expect(response.status == 405, "\(label)")
                let specified = Self.methods.filter { item[$0] != nil }.map { $0.uppercased() }
                #expect(response.headers["Allow"]?.components(separatedBy: ", ") == specified, "\(label)")
                let described = resolve(["$ref": "#/components/responses/MethodNotAllowed"]) as? [String: Any]
                let content = (described?["content"] as? [String: Any])?["application/json"] as? [String: Any]
                #expect(mismatch(body ?? "", content?["schema"]) == nil, "\(label)")
                continue
            }
            let responses = operation["responses"] as? [String: Any] ?? [:]
            let specified = try #require(resolve(responses[String(response.status)]) as? [String: Any], "\(label) is not in the spec")
            produced.insert("\(request.method) \(route.template) \(response.status)")
            if let content = (specified["content"] as? [String: Any])?["application/json"] as? [String: Any] {
                let problem = try #require(body.map { mismatch($0, content["schema"]) }, "\(label) has no body")
                #expect(problem == nil, "\(label): \(problem ?? "")")
            } else {
                #expect(response.body.isEmpty, "\(label) has a body the spec does not give it")
            }
            if (200..<300).contains(response.status), let requestBody = operation["requestBody"] as? [String: Any] {
                let content = (requestBody["content"] as? [String: Any])?["application/json"] as? [String: Any]
                let sent = try JSONSerialization.jsonObject(with: Data(request.body))
                #expect(mismatch(sent, content?["schema"]) == nil, "\(label): the accepted body does not match the spec")
            }
        }
        // Every status the spec lists was produced, except 500 for reads: reads cannot fail
        // in ``VMControl``; the server answers 500 to anything only while it stops.
        for (template, item) in paths {
            for method in Self.methods {
                guard let operation = item[method] as? [String: Any] else { continue }
                for status in (operation["responses"] as? [String: Any] ?? [:]).keys where !(method == "get" && status == "500") {
                    #expect(produced.contains("\(method.uppercased()) \(template) \(status)"), "\(method) \(template) \(status) never produced")
                }
            }
        }
    }

    @Test(arguments: [("DeviceID", "device"), ("MemoryRegionID", "memory region")])
    func theIDPatternsAreTheAPIs(schemaName: String, what: String) throws {
        let schema = try #require(resolve(["$ref": "#/components/schemas/\(schemaName)"]) as? [String: Any])
        for id in ["timer0", "dma-console12", "a", String(repeating: "z", count: 32), "", "Timer0", "a.b", String(repeating: "z", count: 33), "é"] {
            #expect((mismatch(id, schema) == nil) == (ControlAPI.idProblem(id, what: what) == nil), "\(id)")
        }
    }

    /// The spec's pattern for `size` accepts what the API's parser accepts, except sizes
    /// too large for 64 bits (which no pattern of digits can refuse). Whether a size is a
    /// positive multiple of 2 MiB is checked later, so "0" and "3M" pass both.
    @Test func theMemorySizePatternIsTheAPIs() throws {
        let put = try #require(resolve(["$ref": "#/components/schemas/MemoryPut"]) as? [String: Any])
        let schema = (put["properties"] as? [String: Any])?["size"]
        for size in [
            "256M", "256m", "2097152", "1G", "4096K", "4096k", "0", "3M", "007M", "", "12X", " 2M", "2M ", "+2M", "-2M",
            "2MiB", "2MB", "1.5G", "M", "0x200000", "2e6", "\u{0662}M", "2_000M",
        ] {
            let accepted = (try? MemoryPut.decode(Array(#"{"size": "\#(size)"}"#.utf8))) != nil
            #expect((mismatch(size, schema) == nil) == accepted, "\(size)")
        }
    }
}
