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

    /// Requests that between them produce every status of every operation.
    private static let requests: [(ControlRequest, refuse: ControlError?)] = {
        let patch = { (body: String) in ControlRequest(method: "PATCH", target: "/vm", body: Array(body.utf8)) }
        let put = { (id: String, body: String) in ControlRequest(method: "PUT", target: "/devices/\(id)", body: Array(body.utf8)) }
        return [
            (ControlRequest(method: "GET", target: "/vm"), nil),
            (ControlRequest(method: "GET", target: "/resources"), nil),
            (ControlRequest(method: "GET", target: "/devices"), nil),
            (ControlRequest(method: "GET", target: "/devices/timer0"), nil),
            (ControlRequest(method: "GET", target: "/devices/exit-port"), nil),
            (ControlRequest(method: "GET", target: "/devices/none0"), nil),
            (ControlRequest(method: "GET", target: "/devices/NO!"), nil),
            (patch(#"{"state": "paused"}"#), nil),
            (patch(#"{"state": "running"}"#), nil),
            (patch(#"{"state": "asleep"}"#), nil),
            (patch(#"{"state": "paused", "x": 1}"#), nil),
            (patch("{"), nil),
            (patch(String(repeating: " ", count: ControlAPI.maximumBodyBytes + 1)), nil),
            (patch(#"{"state": "paused"}"#), .conflict("The VM is stopping; do not change its state now.")),
            (patch(#"{"state": "paused"}"#), .internalFailure("The vCPUs could not be paused.")),
            (ControlRequest(method: "GET", target: "/nowhere"), nil),
            (put("timer1", #"{"kind": "timer"}"#), nil),
            (put("console7", #"{"kind": "dma-console"}"#), nil),
            (put("timer1", #"{"kind": "disk"}"#), nil),
            (put("timer1", #"{"kind": "timer", "size": 1}"#), nil),
            (put("Timer!", #"{"kind": "timer"}"#), nil),
            (put("timer0", #"{"kind": "timer"}"#), nil),
            (put("timer1", String(repeating: " ", count: ControlAPI.maximumBodyBytes + 1)), nil),
            (put("timer1", #"{"kind": "timer"}"#), .conflict("no free GSI for timer19: all 19 device GSIs are in use")),
            (put("timer1", #"{"kind": "timer"}"#), .internalFailure("KVM refused the irqfd.")),
            (ControlRequest(method: "DELETE", target: "/devices/timer0"), nil),
            (ControlRequest(method: "DELETE", target: "/devices/none0"), nil),
            (ControlRequest(method: "DELETE", target: "/devices/com1"), nil),
            (ControlRequest(method: "DELETE", target: "/devices/NO!"), nil),
            (ControlRequest(method: "DELETE", target: "/devices/timer0"), .internalFailure("KVM refused.")),
            (ControlRequest(method: "POST", target: "/devices/timer0"), nil),
            (ControlRequest(method: "DELETE", target: "/vm"), nil),
            (ControlRequest(method: "POST", target: "/resources"), nil),
        ]
    }()

    @Test func everyResponseIsSpecifiedAndMatchesItsSchema() throws {
        var produced: Set<String> = []
        for (request, refusal) in Self.requests {
            let control = FakeControl()
            control.refuse(with: refusal)
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

    @Test func theDeviceIDPatternIsTheAPIs() throws {
        let schema = try #require(resolve(["$ref": "#/components/schemas/DeviceID"]) as? [String: Any])
        for id in ["timer0", "dma-console12", "a", String(repeating: "z", count: 32), "", "Timer0", "a.b", String(repeating: "z", count: 33), "é"] {
            #expect((mismatch(id, schema) == nil) == (ControlAPI.idProblem(id) == nil), "\(id)")
        }
    }
}
