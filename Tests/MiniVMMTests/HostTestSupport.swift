import Foundation
import Glibc
import SystemPackage
import Testing

@testable import MiniVMM

/// Pipes, FIFOs and timing helpers for the host-layer tests (no KVM needed).
enum HostTestSupport {
    /// A pipe as `(read end, write end)`, both close-on-exec.
    static func pipe() throws -> (read: FileDescriptor, write: FileDescriptor) {
        var descriptors: [Int32] = [0, 0]
        guard Glibc.pipe(&descriptors) == 0 else { throw Errno(rawValue: errno) }
        for descriptor in descriptors { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        return (FileDescriptor(rawValue: descriptors[0]), FileDescriptor(rawValue: descriptors[1]))
    }

    /// Sets `O_NONBLOCK` on `descriptor`'s open file description.
    static func setNonBlocking(_ descriptor: FileDescriptor) {
        let flags = fcntl(descriptor.rawValue, F_GETFL)
        _ = fcntl(descriptor.rawValue, F_SETFL, flags | O_NONBLOCK)
    }

    /// Fills a non-blocking pipe's write end until it refuses more; returns the byte count.
    static func fill(_ descriptor: FileDescriptor) -> Int {
        let block = [UInt8](repeating: 0x2E, count: 4096)
        var total = 0
        while true {
            let written = block.withUnsafeBytes { Glibc.write(descriptor.rawValue, $0.baseAddress, $0.count) }
            if written <= 0 { return total }
            total += written
        }
    }

    /// A fresh temporary directory, removed by the caller.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("minivmm-host-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Creates a FIFO at `url`.
    static func makeFIFO(at url: URL) throws {
        guard mkfifo(url.path, 0o600) == 0 else { throw Errno(rawValue: errno) }
    }

    /// Requests `reason` on `latch` from another thread after `delay`.
    static func request(_ reason: StopLatch.Reason, on latch: StopLatch, after delay: Duration) {
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)
            latch.request(reason)
        }
    }

    /// Reads everything from `descriptor` until end of file.
    static func readAll(_ descriptor: FileDescriptor) -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor.rawValue, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return result }
            result += buffer[0..<count]
        }
    }

    /// Seconds `body` took.
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        let (seconds, attoseconds) = (ContinuousClock.now - start).components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// CPU time (user + system) this process has used, in seconds.
    static func processCPUTime() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// Polls `condition` every millisecond until it holds or `timeout` passes.
    static func eventually(timeout: Duration = .seconds(5), _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            usleep(1000)
        }
        return condition()
    }
}
