import Foundation
import Glibc
import SystemPackage
import Testing

@testable import MiniVMM

@Suite("Host: stdin pump")
struct HostInputPumpTests {
    private func makeSerial() -> Serial16550 {
        Serial16550(output: RecordingConsoleOutput(), interrupt: RecordingInterruptLine())
    }

    /// Reads what the guest would, polling LSR, until `count` bytes arrived or time is up.
    private func guestReads(_ serial: Serial16550, count: Int, timeout: Duration = .seconds(5)) -> [UInt8] {
        var bytes: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        while bytes.count < count && ContinuousClock.now < deadline {
            if serial.read(offset: 5, width: 1) & 1 != 0 {
                bytes.append(UInt8(serial.read(offset: 0, width: 1)))
            } else {
                usleep(200)
            }
        }
        return bytes
    }

    init() {
        signal(SIGPIPE, SIG_IGN)
    }

    @Test func pumpsAPipeUntilEndOfFile() throws {
        let (readEnd, writeEnd) = try HostTestSupport.pipe()
        defer { try? readEnd.close() }
        let serial = makeSerial()
        let pump = try InputPump(input: readEnd, serial: serial)
        let message = Array("hello, guest\n".utf8)
        _ = try message.withUnsafeBytes { try writeEnd.write($0) }
        try writeEnd.close()
        #expect(guestReads(serial, count: message.count) == message)
        pump.stop()
    }

    @Test func nonBlockingStdinFedLaterIsNotEndOfFile() throws {
        let (readEnd, writeEnd) = try HostTestSupport.pipe()
        defer {
            try? readEnd.close()
            try? writeEnd.close()
        }
        HostTestSupport.setNonBlocking(readEnd)
        let serial = makeSerial()
        let pump = try InputPump(input: readEnd, serial: serial)
        defer { pump.stop() }
        Thread.sleep(forTimeInterval: 0.3)
        _ = try Array("late\n".utf8).withUnsafeBytes { try writeEnd.write($0) }
        #expect(guestReads(serial, count: 5) == Array("late\n".utf8))
        _ = try Array("more".utf8).withUnsafeBytes { try writeEnd.write($0) }
        #expect(guestReads(serial, count: 4) == Array("more".utf8))
    }

    @Test func stopWakesAndJoinsAPumpWaitingForInput() throws {
        let (readEnd, writeEnd) = try HostTestSupport.pipe()
        defer {
            try? readEnd.close()
            try? writeEnd.close()
        }
        let pump = try InputPump(input: readEnd, serial: makeSerial())
        Thread.sleep(forTimeInterval: 0.1)
        let elapsed = HostTestSupport.seconds { pump.stop() }
        #expect(elapsed < 2)
        pump.stop()  // Idempotent.
    }

    @Test func stopAfterEndOfFileReturns() throws {
        let null = try FileDescriptor.open("/dev/null", .readOnly)
        defer { try? null.close() }
        let pump = try InputPump(input: null, serial: makeSerial())
        Thread.sleep(forTimeInterval: 0.05)
        pump.stop()
    }

    @Test func backpressureWaitsForTheGuestWithoutLosingBytes() throws {
        let (readEnd, writeEnd) = try HostTestSupport.pipe()
        defer { try? readEnd.close() }
        let serial = makeSerial()
        let limit = 64
        let pump = try InputPump(input: readEnd, serial: serial, backlogLimit: limit)
        defer { pump.stop() }
        let message = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        Thread.detachNewThread {
            _ = try? message.withUnsafeBytes { try writeEnd.writeAll($0) }
            try? writeEnd.close()
        }
        // The guest is slow to start: the pump must stop near the limit.
        Thread.sleep(forTimeInterval: 0.3)
        #expect(serial.pendingInputCount < limit + InputPump.readSize)
        #expect(guestReads(serial, count: message.count, timeout: .seconds(20)) == message)
    }
}
