import Foundation
import Testing

@testable import MiniVMM

/// The control API's routing and validation, without sockets: every status code, and
/// nothing changed by a refused request.
@Suite("Control API routing and validation")
struct ControlAPITests {
    private func respond(_ control: FakeControl, _ method: String, _ target: String, _ body: String) -> ControlResponse {
        ControlAPI(control: control).respond(to: ControlRequest(method: method, target: target, body: Array(body.utf8)))
    }

    private func respond(_ control: FakeControl, _ method: String, _ target: String, bytes: [UInt8] = []) -> ControlResponse {
        ControlAPI(control: control).respond(to: ControlRequest(method: method, target: target, body: bytes))
    }

    private func decode<T: Decodable>(_ type: T.Type, _ response: ControlResponse) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(response.body))
    }

    /// The fault body has exactly one key, `fault_message`, holding one sentence.
    private func expectFault(_ response: ControlResponse, _ status: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(response.status == status, sourceLocation: sourceLocation)
        let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        #expect(object?.keys.sorted() == ["fault_message"], sourceLocation: sourceLocation)
        let message = try decode(Fault.self, response).faultMessage
        #expect(message.hasSuffix(".") && message.count > 10, "\(message)", sourceLocation: sourceLocation)
    }

    @Test func getVM() throws {
        let control = FakeControl()
        let response = respond(control, "GET", "/vm")
        #expect(response.status == 200)
        #expect(try decode(VMInfo.self, response) == control.vmInfo())
        let text = String(decoding: response.body, as: UTF8.self)
        #expect(text.contains("\"memory_bytes\":134217728"))
        #expect(text.contains("\"memory_regions\":[{"))
    }

    @Test func getResourcesAndDevices() throws {
        let control = FakeControl()
        let resources = respond(control, "GET", "/resources")
        #expect(resources.status == 200)
        #expect(try decode(ResourcesInfo.self, resources) == FakeControl.resources)
        #expect(String(decoding: resources.body, as: UTF8.self).contains("\"memory_slots\":{"))
        let devices = respond(control, "GET", "/devices")
        #expect(devices.status == 200)
        #expect(try decode([DeviceInfo].self, devices) == FakeControl.deviceList)
        let timer = respond(control, "GET", "/devices/timer0")
        #expect(timer.status == 200)
        #expect(try decode(DeviceInfo.self, timer) == FakeControl.deviceList[2])
        // A device without a GSI has no "gsi" key at all.
        let exitPort = String(decoding: respond(control, "GET", "/devices/exit-port").body, as: UTF8.self)
        #expect(!exitPort.contains("gsi"))
    }

    @Test func aQueryIsIgnored() {
        #expect(respond(FakeControl(), "GET", "/vm?verbose=1").status == 200)
    }

    @Test func patchPausesAndResumes() throws {
        let control = FakeControl()
        let paused = respond(control, "PATCH", "/vm", #"{"state": "paused"}"#)
        #expect(paused.status == 204)
        #expect(paused.body.isEmpty)
        #expect(try decode(VMInfo.self, respond(control, "GET", "/vm")).state == .paused)
        #expect(respond(control, "PATCH", "/vm", #"{"state":"running"}"#).status == 204)
        #expect(control.changes == [.paused, .running])
        #expect(control.runState == .running)
    }

    @Test(arguments: [
        ("", "empty"),
        ("paused", "not JSON"),
        (#"{"state": "paused""#, "truncated"),
        ("[]", "an array"),
        (#""paused""#, "a string"),
        ("null", "null"),
        ("{}", "no state"),
        (#"{"state": "stopped"}"#, "unknown state"),
        (#"{"state": "PAUSED"}"#, "wrong case"),
        (#"{"state": 1}"#, "a number"),
        (#"{"state": null}"#, "null state"),
        (#"{"state": ["paused"]}"#, "an array state"),
        (#"{"state": "paused", "force": true}"#, "unknown field"),
        (#"{"State": "paused"}"#, "unknown field by case"),
        (#"{"state": "paused"} {"#, "trailing garbage"),
        (String(repeating: "[", count: 10_000), "deep arrays"),
        ("{\"state\": " + String(repeating: "{\"a\": ", count: 20) + "1" + String(repeating: "}", count: 20) + "}", "deep object"),
    ])
    func badBodiesAre400AndChangeNothing(body: String, why: String) throws {
        let control = FakeControl()
        let response = respond(control, "PATCH", "/vm", body)
        try expectFault(response, 400)
        #expect(control.changes.isEmpty, "\(why)")
    }

    @Test func invalidUTF8Is400AndChangesNothing() throws {
        let control = FakeControl()
        for bytes: [UInt8] in [[0x7B, 0x22, 0x73, 0xFF, 0x22, 0x7D], Array(#"{"state": "paused"}"#.utf8) + [0xC3], [0xED, 0xA0, 0x80]] {
            let response = respond(control, "PATCH", "/vm", bytes: bytes)
            try expectFault(response, 400)
            #expect(try decode(Fault.self, response).faultMessage.contains("UTF-8"))
        }
        #expect(control.changes.isEmpty)
    }

    @Test func nestingDepthIsCountedOutsideStrings() {
        #expect(JSONBody.depth(of: Array(#"{"a": "[[[[{{{{"}"#.utf8)) == 1)
        #expect(JSONBody.depth(of: Array(#"{"a": "\"[[", "b": [[1]]}"#.utf8)) == 3)
    }

    @Test func bodyOver64KiBIs413AndChangesNothing() throws {
        let control = FakeControl()
        let padded = #"{"state": "paused"}"# + String(repeating: " ", count: ControlAPI.maximumBodyBytes - 19)
        #expect(padded.utf8.count == ControlAPI.maximumBodyBytes)
        try expectFault(respond(control, "PATCH", "/vm", padded + " "), 413)
        #expect(control.changes.isEmpty)
        // Exactly the limit is accepted.
        #expect(respond(control, "PATCH", "/vm", padded).status == 204)
    }

    @Test(arguments: [
        ("/devices/nothing0", 404), ("/devices/" + String(repeating: "a", count: 32), 404),
        ("/devices/" + String(repeating: "a", count: 33), 400), ("/devices/", 400), ("/devices/Timer0", 400),
        ("/devices/timer%30", 400), ("/devices/timer.0", 400), ("/devices/tïmer", 400),
    ])
    func deviceIDs(target: String, status: Int) throws {
        try expectFault(respond(FakeControl(), "GET", target), status)
    }

    @Test(arguments: ["/", "/vm/", "/VM", "/devices/timer0/registers", "/memory", "/resources/gsis", "vm", ""])
    func unknownPathsAre404(target: String) throws {
        try expectFault(respond(FakeControl(), "GET", target), 404)
    }

    @Test(arguments: [
        ("DELETE", "/vm", "GET, PATCH"), ("PUT", "/vm", "GET, PATCH"), ("POST", "/vm", "GET, PATCH"),
        ("HEAD", "/vm", "GET, PATCH"), ("PATCH", "/resources", "GET"), ("PUT", "/devices", "GET"),
        ("POST", "/devices/timer0", "GET, PUT, DELETE"), ("patch", "/vm", "GET, PATCH"),
    ])
    func unsupportedMethodsAre405WithAllow(method: String, target: String, allow: String) throws {
        let control = FakeControl()
        let response = respond(control, method, target, #"{"state": "paused"}"#)
        try expectFault(response, 405)
        #expect(response.headers["Allow"] == allow)
        #expect(control.changes.isEmpty)
    }

    @Test(arguments: [
        (ControlError.invalid("The VM cannot do that."), 400), (.notFound("No such thing."), 404),
        (.conflict("The VM is being stopped; try again later."), 409), (.internalFailure("KVM refused the pause."), 500),
    ])
    func controlRefusalsMapToTheirStatus(error: ControlError, status: Int) throws {
        let control = FakeControl()
        control.refuse(with: error)
        let response = respond(control, "PATCH", "/vm", #"{"state": "paused"}"#)
        try expectFault(response, status)
        #expect(try decode(Fault.self, response).faultMessage == error.description)
        #expect(control.changes.isEmpty)
        #expect(control.runState == .running)
    }

    @Test func faultMessagesDoNotEchoControlCharacters() throws {
        let response = respond(FakeControl(), "GET", "/x\u{1B}[31m\n")
        try expectFault(response, 404)
        #expect(!(try decode(Fault.self, response).faultMessage.contains("\u{1B}")))
    }
}
