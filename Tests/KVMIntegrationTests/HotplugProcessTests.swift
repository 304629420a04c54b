import Foundation
import Testing

@testable import MiniVMM

/// Live hot-plug through the control API of the real `minivmm` binary: devices and RAM
/// plugged and removed while `guest/hotplug.bin` acknowledges every change (two-phase
/// removals with the guest's EJECT), and while `guest/tests/spin.bin` never looks (surprise
/// removals).
///
/// The hot-plug guest's console is checked as a whole transcript: every request appends the
/// lines guest/README.md specifies (built from the API's answer, so the addresses, sizes and
/// GSIs the guest prints must match the ones the API reported), and the test waits until
/// stdout has exactly that text. A line too many (a spurious table change), too few or
/// different fails at once.
@Suite("minivmm hot-plug", .tags(.kvm), .enabled(if: minivmmKVMUsable, minivmmKVMSkipReason), .serialized)
struct HotplugProcessTests {
    // MARK: 1. Plug and remove with the guest's acknowledgement

    @Test func theGuestUsesPluggedDevicesAndRAMAndEjectsThemOnRequest() throws {
        let vm = try HotplugVM()
        let initial = try vm.api.resources()
        let initialDevices = try vm.api.devices()
        let initialMemory = try vm.api.memory()

        let timerReply = try vm.api.request("PUT", "/devices/t1", body: #"{"kind": "timer"}"#)
        #expect(timerReply.status == 200)
        let timer = try timerReply.decode(DeviceInfo.self)
        #expect(timer.id == "t1" && timer.kind == "timer" && timer.instance == 1 && timer.space == "mmio")
        #expect(timer.state == "attached" && timer.gsi != nil)
        try vm.guest.expectPlugged(timer)
        #expect(try vm.api.request("GET", "/devices/t1").decode(DeviceInfo.self) == timer)

        let consoleReply = try vm.api.request("PUT", "/devices/c1", body: #"{"kind": "dma-console"}"#)
        #expect(consoleReply.status == 200)
        let console = try consoleReply.decode(DeviceInfo.self)
        #expect(console.id == "c1" && console.kind == "dma-console" && console.instance == 1)
        #expect(console.gsi != nil && console.gsi != timer.gsi && console.window != timer.window)
        try vm.guest.expectPlugged(console)

        let ramReply = try vm.api.request("PUT", "/memory/m1", body: #"{"size": "256M"}"#)
        #expect(ramReply.status == 200)
        let ram = try ramReply.decode(MemoryRegionInfo.self)
        #expect(ram.id == "m1" && ram.size == 256 << 20 && ram.state == "attached")
        #expect(ram.base == initial.hotplugRAM.range.start, "the lowest address of the hot-plug window")
        #expect(ram.slot == initial.memorySlots.free.first?.first, "the lowest free memory slot")
        // The guest prints the base, size and slot it found in its table, and writes and
        // reads back the first and the last 8 bytes of the new RAM.
        try vm.guest.expectPlugged(ram)
        #expect(try vm.api.request("GET", "/memory/m1").decode(MemoryRegionInfo.self) == ram)
        #expect(try vm.api.memory() == initialMemory + [ram])

        // Two-phase removal: 202 "removing", the guest stops using it and ejects it, and only
        // then is it gone.
        let plugged = [("/devices/t1", "timer", timer.instance), ("/devices/c1", "dma-console", console.instance)]
        for (path, kind, instance) in plugged {
            let reply = try vm.api.request("DELETE", path)
            #expect(reply.status == 202, "DELETE \(path)")
            var removing = try reply.decode(DeviceInfo.self)
            #expect(removing.state == "removing", "DELETE \(path)")
            removing.state = "attached"
            #expect(removing == (kind == "timer" ? timer : console), "DELETE \(path) answers the device")
            try vm.guest.expectRemoved(kind: kind, instance: instance)
            #expect(try vm.api.request("GET", path).status == 404, "\(path) is gone after the guest's eject")
        }
        let ramRemoval = try vm.api.request("DELETE", "/memory/m1")
        #expect(ramRemoval.status == 202)
        let removingRAM = try ramRemoval.decode(MemoryRegionInfo.self)
        #expect(removingRAM.state == "removing" && removingRAM.base == ram.base && removingRAM.size == ram.size)
        try vm.guest.expectRemoved(kind: "ram", instance: ram.slot)
        #expect(try vm.api.request("GET", "/memory/m1").status == 404)

        #expect(try vm.api.devices() == initialDevices)
        #expect(try vm.api.memory() == initialMemory)
        #expect(try vm.api.resources() == initial)

        #expect(vm.guest.generation == 9, "3 plugs, 3 removal requests, 3 completed removals")
        #expect(try vm.guest.quit() == 0)
        #expect(vm.guest.stdoutText == vm.guest.transcript + "bye\n")
    }

    // MARK: 2. Exhaustion, and the same resources again after removal

    @Test func exhaustingTheGSIsIs409AndChangesNothingAndRemovalGivesTheSameResourcesBack() throws {
        let vm = try HotplugVM()
        let initial = try vm.api.resources()
        let initialDevices = try vm.api.devices()
        // What the lowest-first allocators must hand out: the free GSIs in order, and
        // consecutive 4 KiB windows from the first free MMIO address.
        let freeGSIs = initial.gsis.free.flatMap { Array($0.first...$0.last) }
        let firstWindow = try #require(initial.mmio.free.first?.start)
        #expect(freeGSIs.count == 16, "19 device GSIs less timer0, dma-console0 and the controller: \(freeGSIs)")

        var first: [DeviceInfo] = []
        var refused: TestHTTPReply?
        while first.count <= freeGSIs.count {
            let before = try vm.api.resources()
            let devicesBefore = try vm.api.devices()
            let reply = try vm.api.request("PUT", "/devices/d\(first.count)", body: #"{"kind": "timer"}"#)
            guard reply.status == 200 else {
                refused = reply
                // The refused request changed nothing: not the resources, not the devices.
                #expect(try vm.api.resources() == before)
                #expect(try vm.api.devices() == devicesBefore)
                break
            }
            first.append(try reply.decode(DeviceInfo.self))
        }
        #expect(first.count == freeGSIs.count, "plugged before the refusal")
        #expect(first.map(\.gsi) == freeGSIs, "GSIs lowest first")
        #expect(first.map(\.window.start) == first.indices.map { firstWindow + UInt64($0) * 0x1000 }, "windows lowest first")
        #expect(first.map(\.instance) == Array(1...UInt32(first.count)), "instances lowest first")
        let refusal = try #require(refused)
        #expect(refusal.status == 409)
        #expect(refusal.faultMentions("no free GSI"), "\(refusal.text)")
        #expect(refusal.faultMentions("all 19 device GSIs are in use"), "\(refusal.text)")

        // Every timer raises its own GSI in the guest, up to GSI 23.
        try vm.guest.waitForLines(first.map(HotplugGuestConsole.okLine))

        // Nor does a refused DMA console, which needs a GSI too.
        let full = try vm.api.resources()
        let fullDevices = try vm.api.devices()
        let again = try vm.api.request("PUT", "/devices/extra", body: #"{"kind": "dma-console"}"#)
        #expect(again.status == 409, "a DMA console needs a GSI too")
        #expect(try vm.api.request("GET", "/devices/extra").status == 404)
        #expect(try vm.api.resources() == full)
        #expect(try vm.api.devices() == fullDevices)
        #expect(fullDevices == expectedDevices(initialDevices, plugged: first))

        // All removals asked for at once: the guest ejects every one.
        try removeAll(first, from: vm)
        #expect(try vm.api.resources() == initial)
        #expect(try vm.api.devices() == initialDevices)

        // Plugged again (this time one after the other with the guest's acknowledgement):
        // the same windows, GSIs and instance numbers, lowest first.
        for (index, expected) in first.enumerated() {
            let mark = vm.guest.mark()
            let reply = try vm.api.request("PUT", "/devices/d\(index)", body: #"{"kind": "timer"}"#)
            #expect(reply.status == 200)
            let device = try reply.decode(DeviceInfo.self)
            #expect(device == expected, "plug \(index) again")
            try vm.guest.waitForLines([HotplugGuestConsole.okLine(device)], after: mark)
        }
        #expect(try vm.api.request("PUT", "/devices/extra", body: #"{"kind": "timer"}"#).status == 409)
        try removeAll(first, from: vm)
        #expect(try vm.api.resources() == initial)
        #expect(try vm.api.devices() == initialDevices)

        // Every table change was one generation, the refusals none: 2 × 16 plugs, 2 × 16
        // removal requests and 2 × 16 completed removals.
        #expect(try vm.guest.quit() == 0)
        #expect(vm.guest.stdoutText.hasSuffix("hotplug: generation \(6 * freeGSIs.count) done\nbye\n"), "\(vm.guest.stdoutText)")
    }

    /// Asks for the removal of every device in `devices` at once (each 202), then waits for
    /// the guest to report each one removed.
    private func removeAll(_ devices: [DeviceInfo], from vm: HotplugVM) throws {
        let mark = vm.guest.mark()
        for device in devices {
            let reply = try vm.api.request("DELETE", "/devices/\(device.id)")
            #expect(reply.status == 202, "DELETE \(device.id)")
            #expect((try? reply.decode(DeviceInfo.self).state) == "removing")
        }
        try vm.guest.waitForLines(devices.map { "removed timer #\($0.instance)" }, after: mark)
        // The guest prints "removed" from a table that no longer lists the device: gone.
        for device in devices {
            #expect(try vm.api.request("GET", "/devices/\(device.id)").status == 404)
        }
    }

    // MARK: 3. Many cycles with the guest's acknowledgement

    @Test func twoHundredAcknowledgedPlugAndRemovalCyclesEndWhereTheyStarted() throws {
        let cycles = 200
        let vm = try HotplugVM()
        let initial = try vm.api.resources()
        let initialDevices = try vm.api.devices()
        let initialMemory = try vm.api.memory()
        let start = Date()
        var seen: [String: Set<String>] = [:]
        for cycle in 0..<cycles {
            let id = "c\(cycle)"
            switch cycle % 3 {
            case 0, 1:
                let kind = cycle % 3 == 0 ? "timer" : "dma-console"
                let reply = try vm.api.request("PUT", "/devices/\(id)", body: "{\"kind\": \"\(kind)\"}")
                try #require(reply.status == 200, "cycle \(cycle): PUT \(kind) answered \(reply.status) \(reply.text)")
                let device = try reply.decode(DeviceInfo.self)
                seen[kind, default: []].insert("\(device.instance) \(device.window.start) \(device.gsi ?? 0)")
                try vm.guest.expectPlugged(device)
                let removal = try vm.api.request("DELETE", "/devices/\(id)")
                try #require(removal.status == 202, "cycle \(cycle): DELETE answered \(removal.status) \(removal.text)")
                try vm.guest.expectRemoved(kind: kind, instance: device.instance)
            default:
                let reply = try vm.api.request("PUT", "/memory/\(id)", body: #"{"size": "2M"}"#)
                try #require(reply.status == 200, "cycle \(cycle): PUT memory answered \(reply.status) \(reply.text)")
                let region = try reply.decode(MemoryRegionInfo.self)
                seen["ram", default: []].insert("\(region.slot) \(region.base) \(region.size)")
                try vm.guest.expectPlugged(region)
                let removal = try vm.api.request("DELETE", "/memory/\(id)")
                try #require(removal.status == 202, "cycle \(cycle): DELETE answered \(removal.status) \(removal.text)")
                try vm.guest.expectRemoved(kind: "ram", instance: region.slot)
            }
        }
        let elapsed = Date().timeIntervalSince(start)
        print("hot-plug: \(cycles) acknowledged plug/removal cycles in \(String(format: "%.2f", elapsed)) s "
            + "(\(String(format: "%.1f", elapsed * 1000 / Double(cycles))) ms per cycle)")
        // Each cycle got back exactly what the previous one of its kind gave back.
        #expect(seen.mapValues(\.count) == ["timer": 1, "dma-console": 1, "ram": 1], "\(seen)")
        #expect(try vm.api.resources() == initial)
        #expect(try vm.api.devices() == initialDevices)
        #expect(try vm.api.memory() == initialMemory)
        #expect(vm.guest.generation == 3 * cycles)
        #expect(try vm.guest.quit() == 0)
        #expect(vm.guest.stdoutText == vm.guest.transcript + "bye\n")
    }

    // MARK: 4. Surprise removal and refusals

    @Test func withoutNotificationsRemovalIsASurpriseAndRefusalsChangeNothing() throws {
        let vm = try SpinVM()
        let api = vm.api
        let initial = try api.resources()
        let initialDevices = try api.devices()
        let initialMemory = try api.memory()

        // A device: 204, and everything it held is free at once.
        let timer = try api.request("PUT", "/devices/s1", body: #"{"kind": "timer"}"#)
        #expect(timer.status == 200)
        #expect(try api.resources() != initial)
        #expect(try api.request("DELETE", "/devices/s1").status == 204)
        #expect(try api.resources() == initial)
        #expect(try api.devices() == initialDevices)
        #expect(try api.request("GET", "/devices/s1").status == 404)
        #expect(try api.request("DELETE", "/devices/s1").status == 404)

        // RAM: the same.
        let ramReply = try api.request("PUT", "/memory/r1", body: #"{"size": "64M"}"#)
        #expect(ramReply.status == 200)
        let ram = try ramReply.decode(MemoryRegionInfo.self)
        #expect(ram.size == 64 << 20 && ram.state == "attached")
        #expect(try api.request("GET", "/memory/r1").decode(MemoryRegionInfo.self) == ram)
        #expect(try api.request("DELETE", "/memory/r1").status == 204)
        #expect(try api.resources() == initial)
        #expect(try api.memory() == initialMemory)
        #expect(try api.request("GET", "/memory/r1").status == 404)

        // Refusals, each leaving everything as it was: 409 for what is part of every
        // machine and for an id in use, 400 for a bad size, 404 for what does not exist.
        let plugged = try api.request("PUT", "/devices/s2", body: #"{"kind": "dma-console"}"#).decode(DeviceInfo.self)
        let pluggedRAM = try api.request("PUT", "/memory/r2", body: #"{"size": "2M"}"#).decode(MemoryRegionInfo.self)
        let before = try api.resources()
        let devicesBefore = try api.devices()
        let memoryBefore = try api.memory()
        let refusals: [(String, String, String?, Int, String?)] = [
            ("DELETE", "/memory/ram0", nil, 409, "boot RAM"),
            ("DELETE", "/devices/hotplug-controller", nil, 409, "cannot be removed"),
            ("DELETE", "/devices/com1", nil, 409, "cannot be removed"),
            ("DELETE", "/devices/exit-port", nil, 409, "cannot be removed"),
            ("PUT", "/memory/x", #"{"size": "3M"}"#, 400, "2 MiB"),
            ("PUT", "/memory/x", #"{"size": "0"}"#, 400, nil),
            ("PUT", "/memory/x", #"{"size": 2097152}"#, 400, nil),
            ("PUT", "/memory/r2", #"{"size": "2M"}"#, 409, "in use"),
            ("PUT", "/memory/ram0", #"{"size": "2M"}"#, 409, "in use"),
            ("PUT", "/devices/s2", #"{"kind": "timer"}"#, 409, "in use"),
            ("PUT", "/devices/timer0", #"{"kind": "timer"}"#, 409, "in use"),
            ("PUT", "/devices/hotplug-controller", #"{"kind": "timer"}"#, 409, "in use"),
            ("GET", "/memory/nope", nil, 404, nil),
            ("DELETE", "/memory/nope", nil, 404, nil),
            ("DELETE", "/devices/nope", nil, 404, nil),
            // Devices and RAM regions are separate collections.
            ("DELETE", "/memory/s2", nil, 404, nil),
            ("DELETE", "/devices/r2", nil, 404, nil),
            ("GET", "/memory/Bad!", nil, 400, nil),
        ]
        for (method, path, body, status, words) in refusals {
            let reply = try? api.request(method, path, bytes: body.map { Array($0.utf8) })
            #expect(reply?.status == status, "\(method) \(path) \(body ?? ""): \(reply?.text ?? "no reply")")
            if let words {
                #expect(reply?.faultMentions(words) == true, "\(method) \(path): \(reply?.text ?? "")")
            }
        }
        #expect(try api.resources() == before)
        #expect(try api.devices() == devicesBefore)
        #expect(try api.memory() == memoryBefore)
        #expect(try api.request("GET", "/devices/s2").decode(DeviceInfo.self) == plugged)
        #expect(try api.request("GET", "/memory/r2").decode(MemoryRegionInfo.self) == pluggedRAM)

        #expect(try api.request("DELETE", "/devices/s2").status == 204)
        #expect(try api.request("DELETE", "/memory/r2").status == 204)
        #expect(try api.resources() == initial)
        #expect(try api.request("GET", "/vm").decode(VMInfo.self).state == .running)
        try vm.stop()
    }

    // MARK: 5. Many surprise cycles through the socket

    @Test func fiveHundredSurprisePlugAndRemovalCyclesFollowTheLowestFirstModel() throws {
        let cycles = 500
        let vm = try SpinVM()
        let api = vm.api
        let initial = try api.resources()
        let initialDevices = try api.devices()
        let initialMemory = try api.memory()
        var model = try HotplugModel(initial)
        var random = SplitMix64(seed: 0x4850_4C47)
        let sizes: [UInt64] = [2 << 20, 4 << 20, 6 << 20, 64 << 20, 256 << 20, 1 << 30]
        let start = Date()
        var removals = 0

        func removeOne() throws {
            let ids = model.live.keys.sorted()
            let id = ids[Int(random.next() % UInt64(ids.count))]
            let isRAM = model.live[id]!.isRAM
            let reply = try api.request("DELETE", (isRAM ? "/memory/" : "/devices/") + id)
            try #require(reply.status == 204, "DELETE \(id): \(reply.status) \(reply.text)")
            model.remove(id)
            removals += 1
        }

        for cycle in 0..<cycles {
            let id = "p\(cycle)"
            let choice = random.next() % 3
            if choice == 2 {
                let size = sizes[Int(random.next() % UInt64(sizes.count))]
                let reply = try api.request("PUT", "/memory/\(id)", body: "{\"size\": \"\(size >> 20)M\"}")
                try #require(reply.status == 200, "cycle \(cycle): \(reply.status) \(reply.text)")
                let region = try reply.decode(MemoryRegionInfo.self)
                let expected = model.plugRAM(id: id, size: size)
                try #require(region == expected, "cycle \(cycle): RAM of \(size) bytes")
            } else {
                let kind = choice == 0 ? "timer" : "dma-console"
                let reply = try api.request("PUT", "/devices/\(id)", body: "{\"kind\": \"\(kind)\"}")
                try #require(reply.status == 200, "cycle \(cycle): \(reply.status) \(reply.text)")
                let device = try reply.decode(DeviceInfo.self)
                let expected = model.plugDevice(id: id, kind: kind)
                try #require(device == expected, "cycle \(cycle): \(kind)")
            }
            // Keep 0 to 4 plugged, removed in random order, so holes open and get refilled.
            if model.live.count > 4 || random.next() % 2 == 0 { try removeOne() }
            if cycle % 100 == 99 {
                #expect(try api.devices() == expectedDevices(initialDevices, plugged: model.devices), "after cycle \(cycle)")
                #expect(try api.memory() == initialMemory + model.regions, "after cycle \(cycle)")
            }
        }
        while !model.live.isEmpty { try removeOne() }
        let elapsed = Date().timeIntervalSince(start)
        print("hot-plug: \(cycles) surprise plug/removal cycles over HTTP in \(String(format: "%.2f", elapsed)) s; "
            + "\(model.gapsFilled) RAM regions placed in gaps")
        #expect(removals == cycles)
        #expect(model.gapsFilled >= 5, "the sequence tests first-match placement: \(model.gapsFilled) regions in gaps")
        #expect(try api.resources() == initial)
        #expect(try api.devices() == initialDevices)
        #expect(try api.memory() == initialMemory)
        #expect(try api.request("GET", "/vm").decode(VMInfo.self).state == .running)
        try vm.stop()
    }

    // MARK: 6. Changes while paused

    @Test func changesWhilePausedReachTheGuestTogetherAfterResume() throws {
        let vm = try HotplugVM()
        let initial = try vm.api.resources()
        let timer = try vm.api.request("PUT", "/devices/t1", body: #"{"kind": "timer"}"#).decode(DeviceInfo.self)
        try vm.guest.expectPlugged(timer)

        #expect(try vm.api.request("PATCH", "/vm", body: #"{"state": "paused"}"#).status == 204)
        #expect(try vm.api.request("DELETE", "/devices/t1").status == 202)
        let console = try vm.api.request("PUT", "/devices/c1", body: #"{"kind": "dma-console"}"#).decode(DeviceInfo.self)
        let ram = try vm.api.request("PUT", "/memory/m1", body: #"{"size": "4M"}"#).decode(MemoryRegionInfo.self)
        #expect(try vm.api.request("DELETE", "/memory/m1").status == 202)
        // Nobody ejects while the vCPU is held: both stay "removing", and the guest has
        // printed nothing.
        #expect(try vm.api.request("GET", "/devices/t1").decode(DeviceInfo.self).state == "removing")
        #expect(try vm.api.request("GET", "/memory/m1").decode(MemoryRegionInfo.self).state == "removing")
        usleep(200_000)
        #expect(try vm.api.request("GET", "/devices/t1").decode(DeviceInfo.self).state == "removing")
        #expect(vm.guest.stdoutText == vm.guest.transcript)

        // After resume the guest takes one copy with all four changes, in table order: RAM
        // (new and already removing), the timer being removed, the new DMA console.
        #expect(try vm.api.request("PATCH", "/vm", body: #"{"state": "running"}"#).status == 204)
        let hex = HotplugGuestConsole.hex
        let mark = vm.guest.transcript.utf8.count
        try vm.guest.expect(moreMayFollow: true, [
            "added ram #\(ram.slot): base \(hex(ram.base)) size \(hex(ram.size)) slot \(ram.slot)",
            "ok ram #\(ram.slot): pattern at \(hex(ram.base)) and \(hex(ram.base + ram.size - 8))",
            "removing ram #\(ram.slot)", "eject ram #\(ram.slot)",
            "removing timer #1", "eject timer #1",
            "added dma-console #1: base \(hex(console.window.start)) gsi \(console.gsi ?? 0)",
            "hello through dma-console #1", "ok dma-console #1: wrote 29 bytes",
            "hotplug: generation 5 done",
        ])
        // The two completions may come in one copy or two, right after.
        try vm.guest.waitForLines(["removed ram #\(ram.slot)", "removed timer #1"], after: mark)
        #expect(try vm.api.devices().map(\.id).filter { $0 == "t1" || $0 == "c1" } == ["c1"])
        #expect(try vm.api.memory().map(\.id) == ["ram0"])
        #expect(try vm.api.request("DELETE", "/devices/c1").status == 202)
        try vm.guest.waitForLines(["removed dma-console #1"], after: mark)
        #expect(try vm.api.resources() == initial)
        #expect(try vm.guest.quit() == 0)
        let end = "removed dma-console #1\nhotplug: generation 9 done\nbye\n"
        #expect(vm.guest.stdoutText.hasSuffix(end), "\(vm.guest.stdoutText)")
    }

    // MARK: 7. The whole hot-plug window is guest RAM

    @Test func ramAtTheTopOfTheHotplugWindowAboveFiveGiBOfBootRAMWorks() throws {
        let vm = try HotplugVM(arguments: ["--memory", "5G"])
        let initial = try vm.api.resources()
        // Boot RAM ends at 6 GiB (3 GiB below the gap, 2 GiB from 4 GiB): the window is the
        // 16 GiB from there.
        #expect(initial.hotplugRAM.range == WindowInfo(start: 6 << 30, end: (22 << 30) - 1))
        let low = try vm.api.request("PUT", "/memory/low", body: #"{"size": "16382M"}"#)
        #expect(low.status == 200)
        let lowRegion = try low.decode(MemoryRegionInfo.self)
        #expect(lowRegion.base == 6 << 30 && lowRegion.slot == 2)
        try vm.guest.expectPlugged(lowRegion)
        let top = try vm.api.request("PUT", "/memory/top", body: #"{"size": "2M"}"#)
        #expect(top.status == 200)
        let topRegion = try top.decode(MemoryRegionInfo.self)
        #expect(topRegion.base + topRegion.size == 22 << 30, "the last 2 MiB of the window")
        // The guest writes and reads back the window's last 8 bytes.
        try vm.guest.expectPlugged(topRegion)

        let full = try vm.api.resources()
        let refused = try vm.api.request("PUT", "/memory/more", body: #"{"size": "2M"}"#)
        #expect(refused.status == 409)
        #expect(refused.faultMentions("no free 2 MiB range left in the 16 GiB hot-plug window"), "\(refused.text)")
        #expect(try vm.api.resources() == full)

        #expect(try vm.api.request("DELETE", "/memory/low").status == 202)
        try vm.guest.expectRemoved(kind: "ram", instance: lowRegion.slot)
        #expect(try vm.api.request("DELETE", "/memory/top").status == 202)
        try vm.guest.expectRemoved(kind: "ram", instance: topRegion.slot)
        #expect(try vm.api.resources() == initial)
        #expect(try vm.guest.quit() == 0)
        #expect(vm.guest.stdoutText == vm.guest.transcript + "bye\n")
    }

    // MARK: 8. A full boot-information table

    @Test func aFullBootInformationTableIs409AndChangesNothing() throws {
        let vm = try SpinVM()
        let api = vm.api
        let initial = try api.resources()
        var plugged: [MemoryRegionInfo] = []
        var refusal: TestHTTPReply?
        while plugged.count < 300 {
            let reply = try api.request("PUT", "/memory/r\(plugged.count)", body: #"{"size": "2M"}"#)
            guard reply.status == 200 else {
                refusal = reply
                break
            }
            plugged.append(try reply.decode(MemoryRegionInfo.self))
        }
        // 255 entries fit in 8 KiB; the default machine's table has 9 (RAM, exit port, COM1,
        // IOAPIC, local APIC, timer0, dma-console0, the controller, one CPU).
        #expect(plugged.count == 255 - 9)
        #expect(plugged.map(\.slot) == Array(1...UInt32(plugged.count)))
        #expect(plugged.map(\.base) == plugged.indices.map { initial.hotplugRAM.range.start + UInt64($0) * (2 << 20) })
        #expect(refusal?.status == 409)
        let full = "the boot-information table would need 256 entries but holds 255"
        #expect(refusal?.faultMentions(full) == true, "\(refusal?.text ?? "")")
        let fullTable = try api.resources()
        let device = try api.request("PUT", "/devices/one-more", body: #"{"kind": "timer"}"#)
        #expect(device.status == 409, "a device needs an entry too")
        #expect(try api.resources() == fullTable)
        #expect(try api.memory().count == plugged.count + 1)

        // Room again after a removal: the freed slot and range, lowest first. (Removing all
        // 246 would take seconds in a debug build; the surprise-cycle test covers the rest.)
        let removed = plugged[100]
        #expect(try api.request("DELETE", "/memory/\(removed.id)").status == 204)
        #expect(try api.resources() != fullTable)
        let refill = try api.request("PUT", "/memory/refill", body: #"{"size": "2M"}"#)
        #expect(refill.status == 200)
        var expected = removed
        expected.id = "refill"
        #expect(try refill.decode(MemoryRegionInfo.self) == expected)
        #expect(try api.request("PUT", "/memory/too-many", body: #"{"size": "2M"}"#).status == 409)
        try vm.stop()
    }

    // MARK: 9. Concurrent clients

    @Test func concurrentPlugsAndRemovalsFromManyClientsAreEachAppliedOnce() throws {
        let vm = try HotplugVM()
        let initial = try vm.api.resources()
        let initialDevices = try vm.api.devices()
        let initialMemory = try vm.api.memory()
        let freeGSIs = initial.gsis.free.flatMap { Array($0.first...$0.last) }
        // As many devices as there are free GSIs, half timers, half DMA consoles, and 8 RAM
        // regions: every request sent before any answer is read.
        let devices = (0..<freeGSIs.count).map { index in (id: "d\(index)", kind: index % 2 == 0 ? "timer" : "dma-console") }
        let regions = (0..<8).map { "m\($0)" }
        for round in 0..<2 {
            let mark = vm.guest.mark()
            let sentDevices = try devices.map { try vm.api.send("PUT", "/devices/\($0.id)", body: "{\"kind\": \"\($0.kind)\"}") }
            let sentRegions = try regions.map { try vm.api.send("PUT", "/memory/\($0)", body: #"{"size": "4M"}"#) }
            let pluggedDevices = try sentDevices.map { try $0.reply() }
            let pluggedRegions = try sentRegions.map { try $0.reply() }
            #expect(pluggedDevices.map(\.status) == devices.map { _ in 200 }, "round \(round)")
            #expect(pluggedRegions.map(\.status) == regions.map { _ in 200 }, "round \(round)")
            let infos = try pluggedDevices.map { try $0.decode(DeviceInfo.self) }
            let ranges = try pluggedRegions.map { try $0.decode(MemoryRegionInfo.self) }
            #expect(infos.map(\.id) == devices.map(\.id) && infos.map(\.kind) == devices.map(\.kind))
            #expect(infos.compactMap(\.gsi).sorted() == freeGSIs, "every free GSI once")
            let firstWindow = try #require(initial.mmio.free.first?.start)
            let lowestWindows = Set(infos.indices.map { firstWindow + UInt64($0) * 0x1000 })
            #expect(Set(infos.map(\.window.start)) == lowestWindows, "the lowest windows")
            let sortedRanges = ranges.sorted { $0.base < $1.base }
            #expect(sortedRanges.first?.base == initial.hotplugRAM.range.start)
            #expect(zip(sortedRanges, sortedRanges.dropFirst()).allSatisfy { $0.base + $0.size == $1.base }, "packed, no overlap")
            #expect(try vm.api.devices() == expectedDevices(initialDevices, plugged: infos))
            #expect(try vm.api.memory() == initialMemory + sortedRanges)

            // The guest used every one of them.
            try vm.guest.waitForLines(infos.map(HotplugGuestConsole.okLine) + ranges.map(HotplugGuestConsole.okLine), after: mark)

            let removalMark = vm.guest.mark()
            let sentRemovals = try devices.map { try vm.api.send("DELETE", "/devices/\($0.id)") }
                + regions.map { try vm.api.send("DELETE", "/memory/\($0)") }
            let removals = try sentRemovals.map { try $0.reply() }
            #expect(removals.map(\.status) == removals.map { _ in 202 }, "round \(round)")
            let removed = infos.map { "removed \($0.kind) #\($0.instance)" } + ranges.map { "removed ram #\($0.slot)" }
            try vm.guest.waitForLines(removed, after: removalMark)
            #expect(try vm.api.resources() == initial, "round \(round)")
            #expect(try vm.api.devices() == initialDevices)
            #expect(try vm.api.memory() == initialMemory)
        }
        // Every plug, removal request and completed removal was one table change.
        let changes = 2 * 3 * (devices.count + regions.count)
        #expect(try vm.guest.quit() == 0)
        let end = "hotplug: generation \(changes) done\nbye\n"
        #expect(vm.guest.stdoutText.hasSuffix(end), "\(vm.guest.stdoutText.suffix(300))")
    }
}

/// `GET /devices` of the machine that listed `initial` once `plugged` are plugged in: the
/// port devices, then every pluggable device by kind (timers first) and instance, then the
/// hot-plug controller.
private func expectedDevices(_ initial: [DeviceInfo], plugged: [DeviceInfo]) -> [DeviceInfo] {
    let order = ["timer", "dma-console"]
    let mmio = (initial.filter { $0.space == "mmio" && $0.id != "hotplug-controller" } + plugged).sorted {
        (order.firstIndex(of: $0.kind) ?? 9, $0.instance) < (order.firstIndex(of: $1.kind) ?? 9, $1.instance)
    }
    return initial.filter { $0.space == "port" } + mmio + initial.filter { $0.id == "hotplug-controller" }
}

// MARK: - The machines under test

/// `minivmm guest/hotplug.bin --api-socket …` with its stdin on a socket the test writes to.
private final class HotplugVM {
    let api: HotplugAPI
    let guest: HotplugGuestConsole

    /// Starts the hot-plug guest and waits for its `ready` line (NOTIFY is set from then on).
    init(timeout: Int = 60, arguments: [String] = []) throws {
        api = try HotplugAPI()
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw POSIXError(.EIO)
        }
        defer { close(pair[0]) }
        let child: MinivmmChild
        do {
            child = try MinivmmChild(
                [MinivmmProcess.guest("hotplug.bin"), "--api-socket", api.socket, "--timeout", "\(timeout)"] + arguments,
                stdin: pair[0])
        } catch {
            close(pair[1])
            throw error
        }
        guest = HotplugGuestConsole(child: child, input: pair[1])
        try guest.expect(["minivmm hotplug guest", "hotplug: ready, generation 0"])
        try api.waitForSocket(child)
    }
}

/// `minivmm guest/tests/spin.bin --api-socket …`: a guest that never enables notifications.
private final class SpinVM {
    let api: HotplugAPI
    let child: MinivmmChild

    init() throws {
        api = try HotplugAPI()
        child = try MinivmmChild([MinivmmProcess.guest("tests/spin.bin"), "--api-socket", api.socket, "--timeout", "60"])
        try api.waitForSocket(child)
    }

    /// SIGTERM: exit status 143, the socket removed.
    func stop() throws {
        child.send(SIGTERM)
        #expect(child.wait(limit: 20) == 143)
        #expect(!FileManager.default.fileExists(atPath: api.socket))
    }
}

/// Why a hot-plug test stopped early (already recorded as an issue).
private struct HotplugTestFailure: Error, CustomStringConvertible {
    let description: String
}

extension MinivmmChild {
    /// Whether the child has ended (a zombie not yet reaped counts), read from /proc so the
    /// status stays for ``wait(limit:)``.
    fileprivate var hasEnded: Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return true }
        let state = stat[stat.index(after: close)...].dropFirst().first
        return state == "Z" || state == "X"
    }
}

/// The hot-plug guest's console: the exact stdout expected so far, and stdin.
private final class HotplugGuestConsole {
    let child: MinivmmChild
    /// The test's end of the socket that is minivmm's stdin; -1 once closed.
    private var input: Int32
    /// Everything stdout must hold so far.
    private(set) var transcript = ""
    /// The generation of the guest's last copy of the table.
    private(set) var generation = 0

    init(child: MinivmmChild, input: Int32) {
        self.child = child
        self.input = input
    }

    deinit {
        if input >= 0 { close(input) }
    }

    var stdoutText: String { String(decoding: child.stdout, as: UTF8.self) }

    /// Appends `lines` to the transcript and waits until stdout is exactly the transcript
    /// (or, with `moreMayFollow`, begins with it: for output the guest may continue at once).
    func expect(
        moreMayFollow: Bool = false, _ lines: [String], limit: TimeInterval = 15,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        transcript += lines.map { $0 + "\n" }.joined()
        let wanted = transcript.utf8.count
        let deadline = Date().addingTimeInterval(limit)
        var text = stdoutText
        while text.utf8.count < wanted && !child.hasEnded && Date() < deadline {
            usleep(500)
            text = stdoutText
        }
        guard text != transcript && !(moreMayFollow && text.hasPrefix(transcript)) else { return }
        let ended = child.hasEnded ? "minivmm ended (\(child.wait(limit: 5))): \(child.stderr)" : "minivmm still runs"
        Issue.record(
            "the guest's stdout is not the expected transcript; \(ended)\n--- expected ---\n\(transcript)--- got ---\n\(text)",
            sourceLocation: sourceLocation)
        throw HotplugTestFailure(description: "unexpected guest output")
    }

    /// What the guest prints when `device` is plugged in (alone, after the last change).
    func expectPlugged(_ device: DeviceInfo, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let base = Self.hex(device.window.start)
        let gsi = device.gsi.map { "\($0)" } ?? "none"
        let n = device.instance
        generation += 1
        switch device.kind {
        case "timer":
            try expect([
                "added timer #\(n): base \(base) gsi \(gsi)", Self.okLine(device), "hotplug: generation \(generation) done",
            ], sourceLocation: sourceLocation)
        default:
            try expect([
                "added dma-console #\(n): base \(base) gsi \(gsi)", "hello through dma-console #\(n)", Self.okLine(device),
                "hotplug: generation \(generation) done",
            ], sourceLocation: sourceLocation)
        }
    }

    /// The line with which the guest reports that plugged `device` works.
    static func okLine(_ device: DeviceInfo) -> String {
        switch device.kind {
        case "timer": "ok timer #\(device.instance): interrupt from gsi \(device.gsi.map { "\($0)" } ?? "none")"
        default: "ok dma-console #\(device.instance): wrote \("hello through dma-console #\(device.instance)\n".utf8.count) bytes"
        }
    }

    /// The line with which the guest reports that plugged RAM `region` works.
    static func okLine(_ region: MemoryRegionInfo) -> String {
        "ok ram #\(region.slot): pattern at \(hex(region.base)) and \(hex(region.base + region.size - 8))"
    }

    /// What the guest prints when RAM `region` is plugged in.
    func expectPlugged(_ region: MemoryRegionInfo, sourceLocation: SourceLocation = #_sourceLocation) throws {
        generation += 1
        try expect([
            "added ram #\(region.slot): base \(Self.hex(region.base)) size \(Self.hex(region.size)) slot \(region.slot)",
            Self.okLine(region), "hotplug: generation \(generation) done",
        ], sourceLocation: sourceLocation)
    }

    /// What the guest prints for a removal request of the entry `kind #instance`: the
    /// request (flagged REMOVING, the guest ejects it), then the completed removal.
    func expectRemoved(kind: String, instance: UInt32, sourceLocation: SourceLocation = #_sourceLocation) throws {
        generation += 2
        try expect([
            "removing \(kind) #\(instance)", "eject \(kind) #\(instance)", "hotplug: generation \(generation - 1) done",
            "removed \(kind) #\(instance)", "hotplug: generation \(generation) done",
        ], sourceLocation: sourceLocation)
    }

    /// How many bytes stdout holds now: ``waitForLines(_:after:limit:sourceLocation:)`` looks
    /// only at what comes after.
    func mark() -> Int { child.stdout.count }

    /// Waits until every one of `lines` is a whole line of stdout past `mark` (in any order;
    /// for changes the guest may see batched). The transcript is not checked any more
    /// afterwards.
    func waitForLines(
        _ lines: [String], after mark: Int = 0, limit: TimeInterval = 20, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let deadline = Date().addingTimeInterval(limit)
        var missing = Set(lines)
        while true {
            let text = String(decoding: child.stdout.dropFirst(mark), as: UTF8.self)
            missing.subtract(text.split(separator: "\n").map(String.init))
            if missing.isEmpty { return }
            if child.hasEnded || Date() > deadline {
                let ended = child.hasEnded ? "minivmm ended (\(child.wait(limit: 5))): \(child.stderr)" : "minivmm still runs"
                Issue.record(
                    "the guest never printed \(missing.sorted()); \(ended)\nstdout:\n\(text)", sourceLocation: sourceLocation)
                throw HotplugTestFailure(description: "missing guest output")
            }
            usleep(500)
        }
    }

    /// Types `q`: the guest prints `bye` and exits; returns minivmm's exit status.
    func quit() throws -> Int32 {
        let sent = "q".withCString { send(input, $0, 1, Int32(MSG_NOSIGNAL)) }
        #expect(sent == 1, "writing q to minivmm's stdin")
        close(input)
        input = -1
        return child.wait(limit: 20)
    }

    static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
}

// MARK: - HTTP over the API socket

/// One response as the test's client read it.
private struct TestHTTPReply {
    var status: Int
    var body: Data

    var text: String { String(decoding: body, as: UTF8.self) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try JSONDecoder().decode(T.self, from: body) }

    var faultMessage: String? {
        (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["fault_message"] as? String
    }

    /// Whether the `fault_message` says `words` (ignoring case: a sentence may start with them).
    func faultMentions(_ words: String) -> Bool {
        faultMessage?.lowercased().contains(words.lowercased()) == true
    }
}

/// The control API over a socket in a fresh private directory, one connection per request
/// (`Connection: close`): fast enough for hundreds of requests a test, unlike a curl process
/// for each.
private final class HotplugAPI {
    let socket: String
    private let directory: String

    init() throws {
        directory = "/tmp/minivmm-kvm-hotplug-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        socket = directory + "/api.sock"
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Waits until minivmm has created the socket (or has ended).
    func waitForSocket(_ child: MinivmmChild, limit: TimeInterval = 15) throws {
        let deadline = Date().addingTimeInterval(limit)
        while !FileManager.default.fileExists(atPath: socket) {
            if child.hasEnded || Date() > deadline {
                Issue.record("no API socket at \(socket); stderr: \(child.stderr)")
                throw HotplugTestFailure(description: "no API socket")
            }
            usleep(5000)
        }
    }

    func resources() throws -> ResourcesInfo { try get("/resources") }
    func devices() throws -> [DeviceInfo] { try get("/devices") }
    func memory() throws -> [MemoryRegionInfo] { try get("/memory") }

    private func get<T: Decodable>(_ path: String) throws -> T {
        let reply = try request("GET", path)
        guard reply.status == 200 else { throw HotplugTestFailure(description: "GET \(path): \(reply.status) \(reply.text)") }
        return try reply.decode(T.self)
    }

    func request(_ method: String, _ path: String, body: String) throws -> TestHTTPReply {
        try request(method, path, bytes: Array(body.utf8))
    }

    /// Sends one request and reads the response until the server closes the connection.
    func request(_ method: String, _ path: String, bytes: [UInt8]? = nil) throws -> TestHTTPReply {
        try send(method, path, bytes: bytes).reply()
    }

    /// Sends one request on a connection of its own; ``SentRequest/reply()`` reads the
    /// answer. Several sent before any is read are served concurrently.
    func send(_ method: String, _ path: String, body: String) throws -> SentRequest {
        try send(method, path, bytes: Array(body.utf8))
    }

    func send(_ method: String, _ path: String, bytes: [UInt8]? = nil) throws -> SentRequest {
        let descriptor = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw HotplugTestFailure(description: "\(method) \(path): no socket (errno \(errno))") }
        let request = SentRequest(descriptor: descriptor, what: "\(method) \(path)")
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in socket.utf8.prefix(buffer.count - 1).enumerated() { buffer[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            throw HotplugTestFailure(description: "\(method) \(path): cannot connect to \(socket) (errno \(errno))")
        }
        var limit = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var head = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        if let bytes { head += "Content-Type: application/json\r\nContent-Length: \(bytes.count)\r\n" }
        let message = Array((head + "\r\n").utf8) + (bytes ?? [])
        var sent = 0
        while sent < message.count {
            let count = message[sent...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw HotplugTestFailure(description: "\(method) \(path): send failed (errno \(errno))") }
            sent += count
        }
        return request
    }
}

/// A request sent on its own connection, whose response has not been read yet.
private final class SentRequest {
    private let descriptor: Int32
    private let what: String

    init(descriptor: Int32, what: String) {
        self.descriptor = descriptor
        self.what = what
    }

    deinit {
        close(descriptor)
    }

    /// Reads the response until the server closes the connection (at most 20 s).
    func reply() throws -> TestHTTPReply {
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count == 0 { break }
            guard count > 0 else { throw HotplugTestFailure(description: "\(what): no complete response (errno \(errno))") }
            received.append(contentsOf: buffer[..<count])
        }
        guard let split = received.range(of: Data("\r\n\r\n".utf8)) else {
            throw HotplugTestFailure(description: "\(what): no HTTP head in \(received.count) bytes")
        }
        let statusLine = String(decoding: received[..<split.lowerBound], as: UTF8.self).split(separator: " ", maxSplits: 2)
        guard statusLine.count > 1, let status = Int(statusLine[1]) else {
            throw HotplugTestFailure(description: "\(what): bad status line")
        }
        return TestHTTPReply(status: status, body: Data(received[split.upperBound...]))
    }
}

// MARK: - The allocation model of the surprise cycles

/// Deterministic pseudo-random numbers, so a failing sequence can be replayed.
private struct SplitMix64 {
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

/// What minivmm must hand out, by the documented policy: for a device the lowest free
/// instance number of its kind, 4 KiB window (first match) and GSI; for RAM the lowest free
/// memory slot and the lowest 2 MiB-aligned free range of the hot-plug window.
private struct HotplugModel {
    enum Item {
        case device(DeviceInfo)
        case ram(MemoryRegionInfo)

        var isRAM: Bool { if case .ram = self { true } else { false } }
    }

    /// Plugged and not yet removed, by id.
    private(set) var live: [String: Item] = [:]
    /// How many RAM regions went into a gap below another region (first match, not the end).
    private(set) var gapsFilled = 0
    private let freeGSIs: [UInt32]
    private let firstWindow: UInt64
    private let freeSlots: [UInt32]
    private let hotplugStart: UInt64
    private let hotplugEnd: UInt64

    init(_ initial: ResourcesInfo) throws {
        freeGSIs = initial.gsis.free.flatMap { Array($0.first...$0.last) }
        firstWindow = try #require(initial.mmio.free.first?.start)
        freeSlots = initial.memorySlots.free.flatMap { Array($0.first...min($0.last, $0.first + 1000)) }
        hotplugStart = initial.hotplugRAM.range.start
        hotplugEnd = initial.hotplugRAM.range.end
        #expect(initial.hotplugRAM.allocations.isEmpty && initial.hotplugRAM.free.count == 1)
    }

    /// Plugged devices.
    var devices: [DeviceInfo] {
        live.values.compactMap { if case .device(let device) = $0 { device } else { nil } }
    }

    /// Hot-plugged regions, ascending by base (as `GET /memory` lists them).
    var regions: [MemoryRegionInfo] {
        live.values.compactMap { if case .ram(let region) = $0 { region } else { nil } }.sorted { $0.base < $1.base }
    }

    mutating func plugDevice(id: String, kind: String) -> DeviceInfo? {
        let devices = self.devices
        guard let gsi = freeGSIs.first(where: { gsi in !devices.contains { $0.gsi == gsi } }) else { return nil }
        let windows = Set(devices.map(\.window.start))
        var window = firstWindow
        while windows.contains(window) { window += 0x1000 }
        let instances = Set(devices.filter { $0.kind == kind }.map(\.instance))
        var instance: UInt32 = 1
        while instances.contains(instance) { instance += 1 }
        let device = DeviceInfo(
            id: id, kind: kind, instance: instance, space: "mmio", window: WindowInfo(start: window, end: window + 0xFFF),
            gsi: gsi, state: "attached")
        live[id] = .device(device)
        return device
    }

    mutating func plugRAM(id: String, size: UInt64) -> MemoryRegionInfo {
        let regions = self.regions
        let slots = Set(regions.map(\.slot))
        let slot = freeSlots.first { !slots.contains($0) }!
        var base = hotplugStart
        for region in regions where region.base < base + size {
            base = max(base, region.base + region.size)
        }
        precondition(base + size - 1 <= hotplugEnd, "the model ran out of hot-plug space")
        if let highest = regions.last, base < highest.base { gapsFilled += 1 }
        let region = MemoryRegionInfo(id: id, slot: slot, base: base, size: size, state: "attached")
        live[id] = .ram(region)
        return region
    }

    mutating func remove(_ id: String) {
        live[id] = nil
    }
}
