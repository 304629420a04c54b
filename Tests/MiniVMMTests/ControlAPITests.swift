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

    /// The fault body has exactly one key, `fault_message`, holding one sentence; returns
    /// the message. `sentence: false` for a message `VMControl` gave, which the API passes
    /// on as it is.
    @discardableResult
    private func expectFault(
        _ response: ControlResponse, _ status: Int, sentence: Bool = true, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> String {
        #expect(response.status == status, sourceLocation: sourceLocation)
        let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        #expect(object?.keys.sorted() == ["fault_message"], sourceLocation: sourceLocation)
        let message = try decode(Fault.self, response).faultMessage
        if sentence {
            #expect(message.hasSuffix(".") && message.count > 10, "\(message)", sourceLocation: sourceLocation)
        }
        return message
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
        #expect(String(decoding: resources.body, as: UTF8.self).contains("\"hotplug_ram\":{\"allocations\":[],"))
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

    @Test(arguments: [
        "/", "/vm/", "/VM", "/devices/timer0/registers", "/memory/ram0/size", "/memory/ram0/", "/Memory", "/memories",
        "/resources/gsis", "vm", "",
    ])
    func unknownPathsAre404(target: String) throws {
        let message = try expectFault(respond(FakeControl(), "GET", target), 404)
        #expect(message.hasSuffix("use /vm, /resources, /devices, /devices/{id}, /memory, /memory/{id} or /snapshot/create."))
    }

    @Test func everyRouteAnswersGET() {
        for target in ["/vm", "/resources", "/devices", "/devices/timer0", "/memory", "/memory/ram0"] {
            #expect(respond(FakeControl(), "GET", target).status == 200, "\(target)")
        }
    }

    @Test(arguments: [
        ("DELETE", "/vm", "GET, PATCH"), ("PUT", "/vm", "GET, PATCH"), ("POST", "/vm", "GET, PATCH"),
        ("HEAD", "/vm", "GET, PATCH"), ("PATCH", "/resources", "GET"), ("PUT", "/devices", "GET"),
        ("POST", "/devices/timer0", "GET, PUT, DELETE"), ("patch", "/vm", "GET, PATCH"),
        ("PATCH", "/memory", "GET"), ("PUT", "/memory", "GET"), ("DELETE", "/memory", "GET"),
        ("POST", "/memory/ram0", "GET, PUT, DELETE"), ("PATCH", "/memory/hot1", "GET, PUT, DELETE"),
        ("PATCH", "/devices/hotplug-controller", "GET, PUT, DELETE"),
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

    // MARK: - Memory

    @Test func getMemory() throws {
        let control = FakeControl()
        let list = respond(control, "GET", "/memory")
        #expect(list.status == 200)
        #expect(try decode([MemoryRegionInfo].self, list) == control.memoryRegions())
        #expect(String(decoding: list.body, as: UTF8.self) == #"[{"base":0,"id":"ram0","size":134217728,"slot":0,"state":"attached"}]"#)
        let ram0 = respond(control, "GET", "/memory/ram0?x=1")
        #expect(ram0.status == 200)
        #expect(try decode(MemoryRegionInfo.self, ram0) == control.memoryRegions()[0])
    }

    static let mebibyte: UInt64 = 1 << 20

    @Test(arguments: [
        ("256M", 256 * mebibyte), ("256m", 256 * mebibyte), ("2M", 2 * mebibyte), ("2097152", 2 * mebibyte),
        ("4096K", 4 * mebibyte), ("4096k", 4 * mebibyte), ("1G", 1024 * mebibyte), ("16g", 16384 * mebibyte),
    ] as [(String, UInt64)])
    func putMemoryTakesSizes(size: String, bytes: UInt64) throws {
        let control = FakeControl()
        let response = respond(control, "PUT", "/memory/hot1", #"{"size": "\#(size)"}"#)
        #expect(response.status == 200)
        let region = try decode(MemoryRegionInfo.self, response)
        #expect(region.id == "hot1" && region.size == bytes && region.state == "attached")
        #expect(control.memoryRegions().last == region)
        #expect(try decode(MemoryRegionInfo.self, respond(control, "GET", "/memory/hot1")) == region)
    }

    static let sizeMustBe =
        #"The field "size" must be a string of bytes with an optional K, M or G suffix, such as "256M" (a multiple of 2 MiB)."#

    @Test(arguments: [
        (#"{"size": ""}"#, ControlAPITests.sizeMustBe), (#"{"size": "12X"}"#, ControlAPITests.sizeMustBe), (#"{"size": "M"}"#, ControlAPITests.sizeMustBe),
        (#"{"size": " 256M"}"#, ControlAPITests.sizeMustBe), (#"{"size": "256M "}"#, ControlAPITests.sizeMustBe), (#"{"size": "+256M"}"#, ControlAPITests.sizeMustBe),
        (#"{"size": "-2M"}"#, ControlAPITests.sizeMustBe), (#"{"size": "256MiB"}"#, ControlAPITests.sizeMustBe), (#"{"size": "256MB"}"#, ControlAPITests.sizeMustBe),
        (#"{"size": "1.5G"}"#, ControlAPITests.sizeMustBe), (#"{"size": "0x200000"}"#, ControlAPITests.sizeMustBe), (#"{"size": "\u0662M"}"#, ControlAPITests.sizeMustBe),
        (#"{"size": "17179869184G"}"#, ControlAPITests.sizeMustBe), (#"{"size": "18446744073709551616"}"#, ControlAPITests.sizeMustBe),
        // Wrong JSON types.
        (#"{"size": 268435456}"#, ControlAPITests.sizeMustBe), (#"{"size": 2.5}"#, ControlAPITests.sizeMustBe), (#"{"size": true}"#, ControlAPITests.sizeMustBe),
        (#"{"size": null}"#, ControlAPITests.sizeMustBe), (#"{"size": ["256M"]}"#, ControlAPITests.sizeMustBe), (#"{"size": {"value": "256M"}}"#, ControlAPITests.sizeMustBe),
        // Missing or unknown fields.
        ("{}", #"The field "size" is missing; send {"size": "256M"}, for example."#),
        (#"{"Size": "256M"}"#, #"The field 'Size' is unknown; send only "size"."#),
        (#"{"size": "256M", "slot": 3}"#, #"The field 'slot' is unknown; send only "size"."#),
        (#"{"kind": "timer"}"#, #"The field 'kind' is unknown; send only "size"."#),
        (#"{"base": 0, "size": "256M"}"#, #"The field 'base' is unknown; send only "size"."#),
    ])
    func badMemoryBodiesAre400AndPlugNothing(body: String, message: String) throws {
        let control = FakeControl()
        #expect(try expectFault(respond(control, "PUT", "/memory/hot1", body), 400) == message)
        #expect(control.memoryRegions().map(\.id) == ["ram0"])
    }

    @Test(arguments: ["", "256M", "[]", #""256M""#, "null", #"{"size": "256M""#, #"{"size": "256M"} {"#])
    func malformedMemoryBodiesAre400(body: String) throws {
        let control = FakeControl()
        let message = try expectFault(respond(control, "PUT", "/memory/hot1", body), 400)
        #expect(message.contains("JSON"), "\(message)")
        #expect(control.memoryRegions().map(\.id) == ["ram0"])
    }

    /// The parser takes any byte count; the granule is the machine's to check, and its
    /// refusal (here the fake's) is the 400's message.
    @Test(arguments: ["3M", "0", "1K", "2049K", "18446744073709551615"])
    func sizesOffTheGranuleAreRefusedByTheMachine(size: String) throws {
        let control = FakeControl()
        let message = try expectFault(respond(control, "PUT", "/memory/hot1", #"{"size": "\#(size)"}"#), 400, sentence: false)
        #expect(message == "size must be a multiple of 2 MiB")
        #expect(control.memoryRegions().map(\.id) == ["ram0"])
    }

    @Test func memoryBodyOver64KiBIs413() throws {
        let control = FakeControl()
        let body = #"{"size": "256M"}"# + String(repeating: " ", count: ControlAPI.maximumBodyBytes)
        try expectFault(respond(control, "PUT", "/memory/hot1", body), 413)
        #expect(control.memoryRegions().map(\.id) == ["ram0"])
    }

    @Test(arguments: [
        ("GET", "/memory/nothing0", 404), ("DELETE", "/memory/nothing0", 404),
        ("GET", "/memory/" + String(repeating: "a", count: 32), 404),
        ("GET", "/memory/" + String(repeating: "a", count: 33), 400), ("GET", "/memory/", 400), ("GET", "/memory/Ram0", 400),
        ("GET", "/memory/ram%30", 400), ("GET", "/memory/ram.0", 400), ("GET", "/memory/rám0", 400),
        ("PUT", "/memory/Hot1", 400), ("PUT", "/memory/", 400), ("PUT", "/memory/hot 1", 400),
        ("DELETE", "/memory/RAM0", 400), ("DELETE", "/memory/", 400),
    ])
    func memoryRegionIDs(method: String, target: String, status: Int) throws {
        let control = FakeControl()
        let response = respond(control, method, target, #"{"size": "256M"}"#)
        // Bad ids are refused by the API in one sentence; an unknown id on DELETE is the
        // machine's message.
        let message = try expectFault(response, status, sentence: method != "DELETE" || status == 400)
        if status == 400 {
            #expect(message.hasPrefix("The memory region id '"), "\(message)")
            #expect(message.hasSuffix("is invalid; use 1 to 32 characters of a-z, 0-9, '_' and '-'."), "\(message)")
        } else if method == "GET" {
            #expect(message == "There is no memory region '\(target.dropFirst("/memory/".count))'; GET /memory lists them.")
        }
        #expect(control.memoryRegions().map(\.id) == ["ram0"])
    }

    @Test func memoryIDsInUseAre409() throws {
        let control = FakeControl()
        #expect(respond(control, "PUT", "/memory/hot1", #"{"size": "256M"}"#).status == 200)
        let again = try expectFault(respond(control, "PUT", "/memory/hot1", #"{"size": "2M"}"#), 409, sentence: false)
        #expect(again == "memory region id 'hot1' is in use")
        try expectFault(respond(control, "PUT", "/memory/ram0", #"{"size": "2M"}"#), 409, sentence: false)
        #expect(control.memoryRegions().map(\.size) == [128 << 20, 256 << 20])
    }

    @Test(arguments: [
        ControlError.conflict("no free 32 GiB range left in the 16 GiB hot-plug window 0x100000000-0x4ffffffff"),
        .conflict("no free memory slot: all 32764 are in use"), .conflict("the boot-information table is full"),
        .internalFailure("KVM refused the memory slot."),
    ])
    func plugMemoryRefusalsPassThrough(error: ControlError) throws {
        let control = FakeControl()
        control.refuse(with: error)
        let response = respond(control, "PUT", "/memory/hot1", #"{"size": "32G"}"#)
        let status = if case .conflict = error { 409 } else { 500 }
        #expect(try expectFault(response, status, sentence: false) == error.description)
        control.refuse(with: nil)
        #expect(control.memoryRegions().map(\.id) == ["ram0"])
    }

    @Test func deleteMemoryWithoutNotificationsIs204() throws {
        let control = FakeControl()
        #expect(respond(control, "PUT", "/memory/hot1", #"{"size": "256M"}"#).status == 200)
        let response = respond(control, "DELETE", "/memory/hot1")
        #expect(response.status == 204)
        #expect(response.body.isEmpty)
        #expect(control.memoryRegions().map(\.id) == ["ram0"])
        try expectFault(respond(control, "GET", "/memory/hot1"), 404)
        try expectFault(respond(control, "DELETE", "/memory/hot1"), 404, sentence: false)
    }

    @Test func deleteMemoryWithNotificationsIs202WithTheRegionRemoving() throws {
        let control = FakeControl()
        control.setTwoPhase(true)
        let plugged = try decode(MemoryRegionInfo.self, respond(control, "PUT", "/memory/hot1", #"{"size": "256M"}"#))
        let response = respond(control, "DELETE", "/memory/hot1")
        #expect(response.status == 202)
        var removing = plugged
        removing.state = "removing"
        #expect(try decode(MemoryRegionInfo.self, response) == removing)
        #expect(String(decoding: response.body, as: UTF8.self).contains(#""state":"removing""#))
        // Still listed until the guest ejects it.
        #expect(try decode(MemoryRegionInfo.self, respond(control, "GET", "/memory/hot1")) == removing)
        #expect(try decode([MemoryRegionInfo].self, respond(control, "GET", "/memory")).last == removing)
    }

    @Test(arguments: [false, true])
    func bootRAMCannotBeRemoved(twoPhase: Bool) throws {
        let control = FakeControl()
        control.setTwoPhase(twoPhase)
        let message = try expectFault(respond(control, "DELETE", "/memory/ram0"), 409, sentence: false)
        #expect(message == "ram0 is boot RAM, which cannot be removed")
        #expect(control.memoryRegions().map(\.state) == ["attached"])
    }

    // MARK: - Device removal

    @Test func deleteDeviceWithoutNotificationsIs204() throws {
        let control = FakeControl()
        #expect(respond(control, "PUT", "/devices/t1", #"{"kind": "timer"}"#).status == 200)
        let response = respond(control, "DELETE", "/devices/t1")
        #expect(response.status == 204)
        #expect(response.body.isEmpty)
        #expect(control.pluggedDevices.isEmpty)
        try expectFault(respond(control, "GET", "/devices/t1"), 404)
    }

    @Test func deleteDeviceWithNotificationsIs202WithTheDeviceRemoving() throws {
        let control = FakeControl()
        control.setTwoPhase(true)
        let plugged = try decode(DeviceInfo.self, respond(control, "PUT", "/devices/t1", #"{"kind": "dma-console"}"#))
        let response = respond(control, "DELETE", "/devices/t1")
        #expect(response.status == 202)
        var removing = plugged
        removing.state = "removing"
        #expect(try decode(DeviceInfo.self, response) == removing)
        #expect(try decode(DeviceInfo.self, respond(control, "GET", "/devices/t1")) == removing)
        #expect(control.pluggedDevices == [removing])
    }

    @Test(arguments: ["com1", "exit-port", "hotplug-controller"])
    func fixedDevicesCannotBeRemoved(id: String) throws {
        let control = FakeControl()
        control.setTwoPhase(true)
        let message = try expectFault(respond(control, "DELETE", "/devices/\(id)"), 409, sentence: false)
        #expect(message == "\(id) cannot be removed")
        #expect(try decode([DeviceInfo].self, respond(control, "GET", "/devices")) == FakeControl.deviceList)
    }

    @Test func theHotplugControllerIsListed() throws {
        let controller = try decode(DeviceInfo.self, respond(FakeControl(), "GET", "/devices/hotplug-controller"))
        #expect(controller.kind == "hotplug-controller" && controller.space == "mmio" && controller.state == "attached")
    }

    @Test(arguments: [("DELETE", "/devices/nothing0", 404), ("DELETE", "/devices/Timer0", 400), ("DELETE", "/devices/", 400)])
    func deleteDeviceRefusals(method: String, target: String, status: Int) throws {
        let control = FakeControl()
        try expectFault(respond(control, method, target), status, sentence: status == 400)
        #expect(try decode([DeviceInfo].self, respond(control, "GET", "/devices")) == FakeControl.deviceList)
    }
}
