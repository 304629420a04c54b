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
private final class Reports {
    var accesses: [DeviceBus.UnclaimedAccess] = []
}

@Suite("Device bus dispatch")
struct BusTests {
    /// A port space with windows 0x3F8-0x3FF (device), 0xF4-0xF7 (device) and 0x40-0x43
    /// (allocated, no device: like the in-kernel PIT).
    private func makeBus() throws -> (DeviceBus, RecordingDevice, RecordingDevice, Reports, [RangeInclusive]) {
        var space = try AddressAllocator(base: 0, size: 0x1_0000)
        let serial = try space.allocate(size: 8, alignment: 1, policy: .exactMatch(0x3F8))
        let exit = try space.allocate(size: 4, alignment: 1, policy: .exactMatch(0xF4))
        let pit = try space.allocate(size: 4, alignment: 1, policy: .exactMatch(0x40))
        let reports = Reports()
        let bus = DeviceBus(spaceName: "port", windows: space) { reports.accesses.append($0) }
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
        let space = try AddressAllocator(base: 0, size: 0x1_0000)
        let reports = Reports()
        let bus = DeviceBus(spaceName: "port", windows: space, reportLimit: 3) { reports.accesses.append($0) }
        for port in UInt64(0x100)..<0x110 {
            #expect(bus.read(port, width: 1) == 0xFF)
        }
        #expect(reports.accesses.map(\.address) == [0x100, 0x101, 0x102])
        #expect(reports.accesses.map(\.isLastReport) == [false, false, true])
    }

    @Test func attachRequiresExactlyOneFreeAllocatedWindow() throws {
        let (bus, _, _, _, windows) = try makeBus()
        let device = RecordingDevice()
        #expect(throws: DeviceBus.AttachError.windowTaken(windows[0])) { try bus.attach(device, to: windows[0]) }
        let partial = try RangeInclusive(start: 0x3F8, end: 0x3FB)
        #expect(throws: DeviceBus.AttachError.notAnAllocatedWindow(partial)) { try bus.attach(device, to: partial) }
        let unallocated = try RangeInclusive(start: 0x2F8, end: 0x2FF)
        #expect(throws: DeviceBus.AttachError.notAnAllocatedWindow(unallocated)) { try bus.attach(device, to: unallocated) }
        // The PIT window is allocated and free of devices: attaching there works, also
        // after the window was seen unclaimed.
        #expect(bus.read(0x43, width: 1) == 0xFF)
        try bus.attach(device, to: windows[2])
        _ = bus.read(0x43, width: 1)
        #expect(device.recorded == [.init(offset: 3, width: 1, value: nil)])
    }

    @Test func mmioWindowsDispatchAcrossTheGap() throws {
        var space = try AddressAllocator(base: 0xC000_0000, size: 0x4000_0000)
        let timer = try space.allocate(size: 0x1000, alignment: 0x1000)
        let console = try space.allocate(size: 0x1000, alignment: 0x1000)
        let reports = Reports()
        let bus = DeviceBus(spaceName: "MMIO", windows: space) { reports.accesses.append($0) }
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
        #expect(port.requestedStatus == nil)
        #expect(port.read(offset: 0, width: 1) == 0xFF)
        port.write(offset: 1, width: 1, value: 3)  // not the exit register
        port.write(offset: 0, width: 8, value: 3)  // not an OUT width
        #expect(port.requestedStatus == nil)
        port.write(offset: 0, width: 2, value: 63)
        port.write(offset: 0, width: 1, value: 5)
        #expect(port.requestedStatus == .guest(63))
        let high = ExitPort()
        high.write(offset: 0, width: 4, value: 0xFFFF_FFFF)
        #expect(high.requestedStatus == .guestCrashed)
    }
}
