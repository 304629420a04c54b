import Foundation
import Glibc
import Synchronization
import SystemPackage
import Testing

@testable import MiniVMM

@Suite("Host: console writer")
struct HostConsoleWriterTests {
    init() {
        // As in minivmm: a write to a pipe without a reader is EPIPE, not a death.
        signal(SIGPIPE, SIG_IGN)
    }

    @Test func writesEverythingThroughAPipe() throws {
        let latch = try StopLatch()
        let (readEnd, writeEnd) = try HostTestSupport.pipe()
        let writer = ConsoleWriter(descriptor: writeEnd, stop: latch)
        let message = Array("hello\u{0}\n\u{FF}".utf8) + [UInt8](repeating: 0x41, count: 100_000)
        let received = Mutex<[UInt8]>([])
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            received.withLock { $0 = HostTestSupport.readAll(readEnd) }
            done.signal()
        }
        message.withUnsafeBytes { writer.write($0) }
        try writeEnd.close()
        done.wait()
        try readEnd.close()
        #expect(received.withLock { $0 } == message)
        #expect(!writer.isBroken)
    }

    @Test func aClosedReaderOrDescriptorDropsTheBytes() throws {
        let latch = try StopLatch()
        let (readEnd, writeEnd) = try HostTestSupport.pipe()
        try readEnd.close()
        defer { try? writeEnd.close() }
        let writer = ConsoleWriter(descriptor: writeEnd, stop: latch)
        let message = Array("dropped".utf8)
        message.withUnsafeBytes { writer.write($0) }
        #expect(writer.isBroken)
        message.withUnsafeBytes { writer.write($0) }
        let closed = ConsoleWriter(descriptor: FileDescriptor(rawValue: -1), stop: latch)
        #expect(closed.isBroken)
        message.withUnsafeBytes { closed.write($0) }
    }

    @Test func aFullFileSystemOrSizeLimitIsNotFatal() throws {
        let latch = try StopLatch()
        let full = try FileDescriptor.open("/dev/full", .writeOnly)
        defer { try? full.close() }
        let writer = ConsoleWriter(descriptor: full, stop: latch)
        Array("no space".utf8).withUnsafeBytes { writer.write($0) }
        #expect(writer.isBroken)
    }

    @Test func devNullNeverWaits() throws {
        let latch = try StopLatch()
        let null = try FileDescriptor.open("/dev/null", .writeOnly)
        defer { try? null.close() }
        let writer = ConsoleWriter(descriptor: null, stop: latch)
        let elapsed = HostTestSupport.seconds {
            var byte: UInt8 = 0x41
            for _ in 0..<10_000 { withUnsafeBytes(of: &byte) { writer.write($0) } }
        }
        #expect(elapsed < 5)
        #expect(!writer.isBroken)
    }

    @Test func aBlockingPipeNobodyReadsHoldsOnlyUntilTheLatch() throws {
        let latch = try StopLatch()
        let (readEnd, writeEnd) = try HostTestSupport.pipe()
        defer {
            try? readEnd.close()
            try? writeEnd.close()
        }
        let writer = ConsoleWriter(descriptor: writeEnd, stop: latch)
        HostTestSupport.request(.timeout, on: latch, after: .milliseconds(200))
        let elapsed = HostTestSupport.seconds {
            let big = [UInt8](repeating: 0x42, count: 1 << 20)
            big.withUnsafeBytes { writer.write($0) }
        }
        #expect(elapsed < 5)
        #expect(latch.reason == .timeout)
        // After the latch, a write that would wait returns at once.
        let after = HostTestSupport.seconds { Array("late".utf8).withUnsafeBytes { writer.write($0) } }
        #expect(after < 1)
    }

    @Test func aFIFOWhoseReaderNeverReadsHoldsOnlyUntilTheLatch() throws {
        let directory = try HostTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("out")
        try HostTestSupport.makeFIFO(at: path)
        let readEnd = try FileDescriptor.open(path.path, .readOnly, options: .nonBlocking)
        let writeEnd = try FileDescriptor.open(path.path, .writeOnly)
        defer {
            try? readEnd.close()
            try? writeEnd.close()
        }
        let latch = try StopLatch()
        let writer = ConsoleWriter(descriptor: writeEnd, stop: latch)
        HostTestSupport.request(.signal(SIGINT), on: latch, after: .milliseconds(200))
        let elapsed = HostTestSupport.seconds {
            var byte: UInt8 = 0x43
            // One byte at a time, like COM1: the pipe fills after 64 KiB.
            for _ in 0..<100_000 { withUnsafeBytes(of: &byte) { writer.write($0) } }
        }
        #expect(elapsed < 5)
    }

    @Test func nonBlockingFullPipeWaitsWithoutSpinning() throws {
        let latch = try StopLatch()
        let (readEnd, writeEnd) = try HostTestSupport.pipe()
        defer {
            try? readEnd.close()
            try? writeEnd.close()
        }
        HostTestSupport.setNonBlocking(writeEnd)
        let capacity = HostTestSupport.fill(writeEnd)
        #expect(capacity > 0)
        let writer = ConsoleWriter(descriptor: writeEnd, stop: latch)
        HostTestSupport.request(.timeout, on: latch, after: .milliseconds(500))
        let cpuBefore = HostTestSupport.processCPUTime()
        let elapsed = HostTestSupport.seconds {
            Array("waits in poll".utf8).withUnsafeBytes { writer.write($0) }
        }
        let cpu = HostTestSupport.processCPUTime() - cpuBefore
        #expect(elapsed >= 0.4 && elapsed < 5)
        // A spin would burn about the whole half second (other tests run meanwhile, so
        // leave room for them).
        #expect(cpu < elapsed * 0.9 + 0.2, "CPU \(cpu) s in \(elapsed) s")
        #expect(!writer.isBroken)
    }

    @Test func nonBlockingPipeDeliversEverythingOnceTheReaderCatchesUp() throws {
        let latch = try StopLatch()
        let (readEnd, writeEnd) = try HostTestSupport.pipe()
        HostTestSupport.setNonBlocking(writeEnd)
        let writer = ConsoleWriter(descriptor: writeEnd, stop: latch)
        let message = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let received = Mutex<[UInt8]>([])
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 0.2)
            received.withLock { $0 = HostTestSupport.readAll(readEnd) }
            done.signal()
        }
        message.withUnsafeBytes { writer.write($0) }
        try writeEnd.close()
        done.wait()
        try readEnd.close()
        #expect(received.withLock { $0 } == message)
    }

    @Test func wholeWritesFromSeveralThreadsDoNotInterleave() async throws {
        let latch = try StopLatch()
        let (readEnd, writeEnd) = try HostTestSupport.pipe()
        let writer = ConsoleWriter(descriptor: writeEnd, stop: latch)
        let received = Mutex<[UInt8]>([])
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            received.withLock { $0 = HostTestSupport.readAll(readEnd) }
            done.signal()
        }
        let blockSize = 20_000  // Larger than PIPE_BUF: several write(2) calls each.
        await withTaskGroup(of: Void.self) { group in
            for letter in UInt8(0x61)...0x68 {
                group.addTask {
                    let block = [UInt8](repeating: letter, count: blockSize)
                    for _ in 0..<4 { block.withUnsafeBytes { writer.write($0) } }
                }
            }
        }
        try writeEnd.close()
        done.wait()
        try readEnd.close()
        let bytes = received.withLock { $0 }
        #expect(bytes.count == 8 * 4 * blockSize)
        for start in stride(from: 0, to: bytes.count, by: blockSize) {
            let block = bytes[start..<start + blockSize]
            #expect(block.allSatisfy { $0 == block.first }, "block at \(start) is mixed")
        }
    }
}
