import Foundation
import Glibc
import SystemPackage
import Testing

@testable import MiniVMM

/// Loading an image straight into (anonymous, guest-RAM-like) memory: files, FIFOs, endless sources, errors.
@Suite("Host: guest image loading")
struct HostGuestImageTests {
    /// `count` bytes of zero-filled anonymous memory, like guest RAM.
    private final class Destination {
        let buffer: UnsafeMutableRawBufferPointer
        init(_ count: Int) {
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let mapped = (count + page - 1) / page * page
            let address = mmap(nil, max(mapped, page), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)!
            buffer = UnsafeMutableRawBufferPointer(start: address, count: count)
            self.mapped = max(mapped, page)
        }
        private let mapped: Int
        deinit { munmap(buffer.baseAddress, mapped) }
    }

    private func file(_ bytes: [UInt8], in directory: URL, name: String = "image.bin") throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    private func load(_ path: String, maximum: Int, stop: StopLatch? = nil) throws(ImageError) -> [UInt8] {
        let destination = Destination(maximum)
        let latch = stop ?? (try! StopLatch())
        let count = try GuestImage.load(path: path, into: destination.buffer, stop: latch)
        return Array(destination.buffer[0..<count])
    }

    @Test func loadsAnImageThatFitsExactly() throws {
        let directory = try HostTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = try file([0xF4, 1, 2, 3], in: directory)
        #expect(try load(path, maximum: 4) == [0xF4, 1, 2, 3])
        let large = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let largePath = try file(large, in: directory, name: "large.bin")
        #expect(try load(largePath, maximum: 4 << 20) == large)
    }

    @Test func zeroPagesReadBackAsZeros() throws {
        let directory = try HostTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var bytes = [UInt8](repeating: 0, count: 3 << 20)
        bytes[0] = 1
        bytes[bytes.count - 1] = 2
        let path = try file(bytes, in: directory)
        #expect(try load(path, maximum: 4 << 20) == bytes)
    }

    @Test func errorsAndTheirMessages() throws {
        let directory = try HostTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let empty = try file([], in: directory, name: "empty.bin")
        let big = try file([UInt8](repeating: 0x90, count: 5), in: directory, name: "big.bin")
        let missing = directory.appendingPathComponent("missing.bin").path
        #expect(throws: ImageError.empty(path: empty)) { try load(empty, maximum: 4) }
        #expect(throws: ImageError.tooLarge(path: big, maximum: 4)) { try load(big, maximum: 4) }
        #expect(throws: ImageError.notFound(path: missing)) { try load(missing, maximum: 4) }
        #expect(throws: ImageError.directory(path: directory.path)) { try load(directory.path, maximum: 4) }
        #expect(ImageError.notFound(path: "x.bin").description == "cannot open guest image 'x.bin': no such file")
        #expect(ImageError.empty(path: "x.bin").description == "guest image 'x.bin' is empty")
        #expect(ImageError.directory(path: "d").description == "guest image 'd' is a directory")
        #expect(ImageError.tooLarge(path: "x", maximum: 4).description
            == "guest image 'x' is larger than the 4 bytes of RAM above 1 MiB (use a larger --memory)")
        #expect(ImageError.unreadable(path: "x", opening: true, errno: .permissionDenied).description
            == "cannot open guest image 'x': Permission denied")
    }

    @Test func errorsMapToTheImageStatuses() {
        #expect(ExitStatus(.failed(.image(ImageError.notFound(path: "x")))) == .imageNotFound)
        #expect(ExitStatus(.failed(.image(ImageError.directory(path: "x")))) == .imageNotFound)
        #expect(ExitStatus(.failed(.image(ImageError.unreadable(path: "x", opening: false, errno: .ioError)))) == .imageNotFound)
        #expect(ExitStatus(.failed(.image(ImageError.empty(path: "x")))) == .invalidImage)
        #expect(ExitStatus(.failed(.image(ImageError.tooLarge(path: "x", maximum: 1)))) == .invalidImage)
    }

    @Test func anEndlessSourceStopsOneBytePastTheMaximum() throws {
        let elapsed = HostTestSupport.seconds {
            #expect(throws: ImageError.tooLarge(path: "/dev/zero", maximum: 8 << 20)) { try load("/dev/zero", maximum: 8 << 20) }
        }
        #expect(elapsed < 10)
    }

    @Test func aFIFOWithAWriterLoads() throws {
        let directory = try HostTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("image.fifo")
        try HostTestSupport.makeFIFO(at: path)
        let image = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 % 253) }
        Thread.detachNewThread {
            // The writer comes late and writes in pieces.
            Thread.sleep(forTimeInterval: 0.2)
            guard let writer = try? FileDescriptor.open(path.path, .writeOnly) else { return }
            for start in stride(from: 0, to: image.count, by: 50_000) {
                _ = try? image[start..<start + 50_000].withUnsafeBytes { try writer.writeAll($0) }
                Thread.sleep(forTimeInterval: 0.02)
            }
            try? writer.close()
        }
        #expect(try load(path.path, maximum: 1 << 20) == image)
    }

    @Test func aFIFOWithoutAWriterEndsAtTheLatch() throws {
        let directory = try HostTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("image.fifo")
        try HostTestSupport.makeFIFO(at: path)
        let latch = try StopLatch()
        HostTestSupport.request(.timeout, on: latch, after: .milliseconds(200))
        let elapsed = HostTestSupport.seconds {
            #expect(throws: ImageError.stopped(path: path.path)) { try load(path.path, maximum: 1 << 20, stop: latch) }
        }
        #expect(elapsed < 5)
    }

    @Test func aFIFOWhoseWriterClosesWithoutWritingIsEmpty() throws {
        let directory = try HostTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("image.fifo")
        try HostTestSupport.makeFIFO(at: path)
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 0.2)
            if let writer = try? FileDescriptor.open(path.path, .writeOnly) { try? writer.close() }
        }
        #expect(throws: ImageError.empty(path: path.path)) { try load(path.path, maximum: 1 << 20) }
    }
}
