import Glibc
import Synchronization
import Testing
import VMAllocator

@testable import MiniVMM

/// A device that records every access and answers reads with `0xA5A5...` plus the offset.
private final class RecordingDevice: BusDevice {
    struct Access: Equatable {
        var offset: UInt64
        var width: Int
        var value: UInt64?
    }

    let accesses = Mutex<[Access]>([])

    func read(offset: UInt64, width: Int) -> UInt64 {
        accesses.withLock { $0.append(Access(offset: offset, width: width, value: nil)) }
        return 0xA5A5_A5A5_A5A5_0000 | offset
    }

    func write(offset: UInt64, width: Int, value: UInt64) {
        accesses.withLock { $0.append(Access(offset: offset, width: width, value: value)) }
    }

    var recorded: [Access] { accesses.withLock { $0 } }
}

/// Collects unclaimed-access reports.
private final class Reports: Sendable {
    private let recorded = Mutex<[DeviceBus.UnclaimedAccess]>([])

    func append(_ access: DeviceBus.UnclaimedAccess) { recorded.withLock { $0.append(access) } }
    var accesses: [DeviceBus.UnclaimedAccess] { recorded.withLock { $0 } }
}

@Suite("Device bus dispatch")
struct BusTests {
    @Test("a vCPU's cache never answers from before an attach or detach")
    func cacheFollowsAttachAndDetach() throws {
        let bus = DeviceBus(spaceName: "MMIO") { _ in }
        let window = try RangeInclusive(start: 0x1000, end: 0x1FFF)
        var cache = DeviceBus.Cache()
        #expect(bus.read(0x1004, width: 4, cache: &cache) == 0xFFFF_FFFF, "unclaimed, now cached as such")
        let device = RecordingDevice()
        try bus.attach(device, to: window)
        #expect(bus.read(0x1004, width: 4, cache: &cache) == 0xA5A5_0004, "the attach invalidated the cache")
        bus.write(0x1008, width: 4, value: 9, cache: &cache)
        #expect(device.recorded.last == .init(offset: 8, width: 4, value: 9))
        try bus.detach(window)
        #expect(bus.read(0x1004, width: 4, cache: &cache) == 0xFFFF_FFFF, "the detach invalidated the cached window")
        let count = device.recorded.count
        bus.write(0x1008, width: 4, value: 1, cache: &cache)
        #expect(device.recorded.count == count, "a detached device gets no more accesses")
    }

    /// A port space with windows 0x3F8-0x3FF (device), 0xF4-0xF7 (device) and 0x40-0x43
    /// (no device: like the in-kernel PIT, whose range only the resource manager holds).
    private func makeBus() throws -> (DeviceBus, RecordingDevice, RecordingDevice, Reports, [RangeInclusive]) {
        let serial = try RangeInclusive(start: 0x3F8, end: 0x3FF)
        let exit = try RangeInclusive(start: 0xF4, end: 0xF7)
        let pit = try RangeInclusive(start: 0x40, end: 0x43)
        let reports = Reports()
        let bus = DeviceBus(spaceName: "port") { reports.append($0) }
        let first = RecordingDevice()
        let second = RecordingDevice()
        try bus.attach(first, to: serial)
        try bus.attach(second, to: exit)
        return (bus, first, second, reports, [serial, exit, pit])
    }

    @Test func dispatchesToTheWindowWithTheOffset() throws {
        let (bus, serial, exit, reports, _) = try makeBus()
        bus.write(0x3F8, width: 1, value: 0x41)
        bus.write(0x3FD, width: 2, value: 0x1_2345)
        #expect(bus.read(0x3FF, width: 1) == 0x07)
        bus.write(0xF4, width: 4, value: 42)
        bus.write(0x3F9, width: 1, value: 7)
        #expect(serial.recorded == [
            .init(offset: 0, width: 1, value: 0x41),
            .init(offset: 5, width: 2, value: 0x2345),  // masked to the access width
            .init(offset: 7, width: 1, value: nil),
            .init(offset: 1, width: 1, value: 7),
        ])
        #expect(exit.recorded == [.init(offset: 0, width: 4, value: 42)])
        #expect(reports.accesses.isEmpty)
    }

    @Test("unclaimed reads return all ones for their width", arguments: [(1, UInt64(0xFF)), (2, 0xFFFF), (4, 0xFFFF_FFFF), (8, UInt64.max)])
    func unclaimedReads(width: Int, expected: UInt64) throws {
        let (bus, _, _, _, _) = try makeBus()
        #expect(bus.read(0x80, width: width) == expected)  // outside every window
        #expect(bus.read(0x41, width: width) == expected)  // a window with no device
    }

    @Test func eachUnclaimedAddressIsReportedOnce() throws {
        let (bus, serial, _, reports, _) = try makeBus()
        for _ in 0..<3 {
            _ = bus.read(0x80, width: 1)
            bus.write(0x80, width: 1, value: 1)
            bus.write(0x42, width: 2, value: 1)
        }
        bus.write(0x81, width: 4, value: 1)
        #expect(reports.accesses == [
            .init(address: 0x80, width: 1, kind: .read),
            .init(address: 0x42, width: 2, kind: .write),
            .init(address: 0x81, width: 4, kind: .write),
        ])
        #expect(serial.recorded.isEmpty)
    }

    @Test func stringAccessesReachTheDeviceElementByElement() throws {
        let (bus, serial, _, reports, _) = try makeBus()
        // Two 16-bit elements and a trailing partial one, which is ignored.
        let data: [UInt8] = [0x34, 0x12, 0x78, 0x56, 0x9A]
        data.withUnsafeBytes { bus.writeString(0x3FA, width: 2, data: $0) }
        var buffer = [UInt8](repeating: 0, count: 4)
        buffer.withUnsafeMutableBytes { bus.readString(0x3F9, width: 2, into: $0) }
        #expect(serial.recorded == [
            .init(offset: 2, width: 2, value: 0x1234),
            .init(offset: 2, width: 2, value: 0x5678),
            .init(offset: 1, width: 2, value: nil),
            .init(offset: 1, width: 2, value: nil),
        ])
        #expect(buffer == [0x01, 0x00, 0x01, 0x00], "each element is the low bytes of a read")
        #expect(reports.accesses.isEmpty)
    }

    @Test func unclaimedStringAccessesReadAllOnesAndAreReportedOnce() throws {
        let (bus, _, _, reports, _) = try makeBus()
        var buffer = [UInt8](repeating: 0, count: 6)
        buffer.withUnsafeMutableBytes { bus.readString(0x2F0, width: 1, into: $0) }
        #expect(buffer == [UInt8](repeating: 0xFF, count: 6))
        buffer = [UInt8](repeating: 0, count: 6)
        buffer.withUnsafeMutableBytes { bus.readString(0x2F0, width: 2, into: $0) }
        #expect(buffer == [UInt8](repeating: 0xFF, count: 6))
        [UInt8](repeating: 1, count: 8).withUnsafeBytes { bus.writeString(0x42, width: 4, data: $0) }
        #expect(reports.accesses == [
            .init(address: 0x2F0, width: 1, kind: .read),
            .init(address: 0x42, width: 4, kind: .write),
        ])
    }

    @Test func reportsStopAtTheLimitWithOneMarkedLast() throws {
        let reports = Reports()
        let bus = DeviceBus(spaceName: "port", reportLimit: 3) { reports.append($0) }
        for port in UInt64(0x100)..<0x110 {
            #expect(bus.read(port, width: 1) == 0xFF)
        }
        #expect(reports.accesses.map(\.address) == [0x100, 0x101, 0x102])
        #expect(reports.accesses.map(\.isLastReport) == [false, false, true])
    }

    @Test func attachRefusesAWindowThatOverlapsAnAttachedOne() throws {
        let (bus, serial, _, _, windows) = try makeBus()
        let device = RecordingDevice()
        #expect(throws: DeviceBus.AttachError.windowTaken(windows[0])) { try bus.attach(device, to: windows[0]) }
        for (start, end) in [(0x3F8, 0x3FB), (0x3F0, 0x3F8), (0x3FF, 0x400), (0x3FA, 0x3FA), (0xF0, 0x3FF)] as [(UInt64, UInt64)] {
            let overlapping = try RangeInclusive(start: start, end: end)
            #expect(throws: DeviceBus.AttachError.windowTaken(overlapping)) { try bus.attach(device, to: overlapping) }
        }
        #expect(bus.windows == [windows[1], windows[0]], "a refused attach changes nothing")
        bus.write(0x3FA, width: 1, value: 1)
        #expect(serial.recorded == [.init(offset: 2, width: 1, value: 1)])
        // Windows next to attached ones are free; the bus keeps them in order.
        let below = try RangeInclusive(start: 0x3F0, end: 0x3F7)
        let above = try RangeInclusive(start: 0x400, end: 0x400)
        try bus.attach(RecordingDevice(), to: below)
        try bus.attach(RecordingDevice(), to: above)
        #expect(bus.windows == [windows[1], below, windows[0], above])
        // The PIT window has no device: attaching there works, also after the window was
        // seen unclaimed.
        #expect(bus.read(0x43, width: 1) == 0xFF)
        try bus.attach(device, to: windows[2])
        _ = bus.read(0x43, width: 1)
        #expect(device.recorded == [.init(offset: 3, width: 1, value: nil)])
    }

    @Test func detachReturnsTheDeviceAndLeavesItsWindowUnclaimed() throws {
        let (bus, serial, exit, reports, windows) = try makeBus()
        bus.write(0x3F8, width: 1, value: 1)  // caches the serial window
        let detached = try bus.detach(windows[0])
        #expect(detached === serial)
        #expect(bus.windows == [windows[1]])
        #expect(bus.read(0x3F8, width: 1) == 0xFF, "no stale cached window")
        bus.write(0x3FF, width: 1, value: 2)
        #expect(serial.recorded == [.init(offset: 0, width: 1, value: 1)])
        #expect(reports.accesses.map(\.address) == [0x3F8, 0x3FF])
        // Only an exactly attached window can be detached; a failed detach changes nothing.
        #expect(throws: DeviceBus.AttachError.notAttached(windows[0])) { try bus.detach(windows[0]) }
        let partial = try RangeInclusive(start: 0xF4, end: 0xF5)
        #expect(throws: DeviceBus.AttachError.notAttached(partial)) { try bus.detach(partial) }
        bus.write(0xF4, width: 1, value: 3)
        #expect(exit.recorded == [.init(offset: 0, width: 1, value: 3)])
        // The window can take a device again.
        let replacement = RecordingDevice()
        try bus.attach(replacement, to: windows[0])
        bus.write(0x3F9, width: 1, value: 4)
        #expect(replacement.recorded == [.init(offset: 1, width: 1, value: 4)])
    }

    @Test func concurrentDispatchAttachAndDetachAreSafe() async throws {
        let bus = DeviceBus(spaceName: "MMIO") { _ in }
        let fixed = RecordingDevice()
        let fixedWindow = try RangeInclusive(start: 0xC000_0000, end: 0xC000_0FFF)
        try bus.attach(fixed, to: fixedWindow)
        let movingWindow = try RangeInclusive(start: 0xC000_1000, end: 0xC000_1FFF)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    for index in 0..<2_000 {
                        #expect(bus.read(0xC000_0000 + UInt64(index % 16) * 4, width: 4) & 0xFFFF_0000 == 0xA5A5_0000)
                        _ = bus.read(0xC000_1008, width: 4)
                    }
                }
            }
            group.addTask {
                for _ in 0..<500 {
                    try? bus.attach(RecordingDevice(), to: movingWindow)
                    _ = try? bus.detach(movingWindow)
                }
            }
        }
        #expect(fixed.recorded.count == 6_000)
        #expect(bus.windows == [fixedWindow])
    }

    @Test func mmioWindowsDispatchAcrossTheGap() throws {
        var space = try AddressAllocator(base: 0xC000_0000, size: 0x4000_0000)
        let timer = try space.allocate(size: 0x1000, alignment: 0x1000)
        let console = try space.allocate(size: 0x1000, alignment: 0x1000)
        let reports = Reports()
        let bus = DeviceBus(spaceName: "MMIO") { reports.append($0) }
        let timerDevice = RecordingDevice()
        let consoleDevice = RecordingDevice()
        try bus.attach(timerDevice, to: timer)
        try bus.attach(consoleDevice, to: console)
        #expect(bus.read(0xC000_0008, width: 4) == 0xA5A5_0008)
        bus.write(0xC000_1014, width: 4, value: 1)
        #expect(bus.read(0xC000_2000, width: 4) == 0xFFFF_FFFF)
        #expect(timerDevice.recorded == [.init(offset: 8, width: 4, value: nil)])
        #expect(consoleDevice.recorded == [.init(offset: 0x14, width: 4, value: 1)])
        #expect(reports.accesses == [.init(address: 0xC000_2000, width: 4, kind: .read)])
    }

    @Test func exitPortRecordsTheFirstRequest() {
        let port = ExitPort()
        #expect(port.requestedValue == nil)
        #expect(port.read(offset: 0, width: 1) == 0xFF)
        port.write(offset: 1, width: 1, value: 3)  // not the exit register
        port.write(offset: 0, width: 8, value: 3)  // not an OUT width
        #expect(port.requestedValue == nil)
        port.write(offset: 0, width: 2, value: 63)
        port.write(offset: 0, width: 1, value: 5)
        #expect(port.requestedValue == 63)
        // The run loop turns values above 63 into a guest fault (status 76): RunLoopTests.
        let high = ExitPort()
        high.write(offset: 0, width: 4, value: 0xFFFF_FFFF)
        #expect(high.requestedValue == 0xFFFF_FFFF)
    }
}
