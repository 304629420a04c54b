import Glibc
import SystemPackage

/// Why a guest image could not be loaded. Knows nothing of exit statuses: the machine maps
/// these to them.
package enum ImageError: Error, Hashable, Sendable, CustomStringConvertible {
    /// No file at the path.
    case notFound(path: String)
    /// The file could not be opened (`opening`) or read, for `errno`.
    case unreadable(path: String, opening: Bool, errno: Errno)
    /// The path names a directory.
    case directory(path: String)
    /// The file holds no bytes.
    case empty(path: String)
    /// The file holds more than `maximum` bytes, the RAM above 1 MiB.
    case tooLarge(path: String, maximum: Int)
    /// A stop was requested (timeout or signal) while waiting for or reading the image.
    case stopped(path: String)

    /// The one-line message for stderr.
    package var description: String {
        switch self {
        case .notFound(let path):
            "cannot open guest image '\(path)': no such file"
        case .unreadable(let path, let opening, let errno):
            "cannot \(opening ? "open" : "read") guest image '\(path)': \(errno)"
        case .directory(let path):
            "guest image '\(path)' is a directory"
        case .empty(let path):
            "guest image '\(path)' is empty"
        case .tooLarge(let path, let maximum):
            "guest image '\(path)' is larger than the \(maximum) bytes of RAM above 1 MiB (use a larger --memory)"
        case .stopped(let path):
            "stopped while loading guest image '\(path)'"
        }
    }
}

/// Loads a flat guest image straight into guest RAM, in chunks: the image is never held a
/// second time in a host buffer.
enum GuestImage {
    /// How much one read(2) asks for.
    static let chunkSize = 1 << 20

    /// Reads the image at `path` into `destination` (low RAM from 0x100000; its count is the
    /// largest image allowed) and returns its size in bytes.
    ///
    /// Any file that can be read works: a regular file, a FIFO or pipe
    /// (`minivmm <(cat guest.bin)`), a device. The file is opened with `O_NONBLOCK` so that
    /// opening a FIFO never waits for a writer; reads from a FIFO or other descriptor that may
    /// block wait in poll together with `stop`, so a FIFO nobody writes to holds minivmm only
    /// until `--timeout` or a signal. A FIFO reaches end of file once a writer has opened and
    /// closed it (poll reports `POLLHUP` only after a writer came and went). Reading stops
    /// after `destination.count + 1` bytes, so an endless source (`/dev/zero`) fails fast.
    ///
    /// `destination` must be fresh private anonymous memory (guest RAM: zero until written):
    /// whole pages a read filled with zeros are given back to the kernel (`MADV_DONTNEED`),
    /// which reads them back as zeros. That keeps a mostly-zero image, or `/dev/zero` read
    /// up to the limit, from faulting in gigabytes of host memory (3 GiB of `/dev/zero`:
    /// 1.4 s and 2 MiB resident instead of 8 s and 3 GiB).
    ///
    /// - Throws: ``ImageError``.
    /// - Complexity: O(n) in the image size, in chunks of ``chunkSize`` bytes.
    static func load(path: String, into destination: UnsafeMutableRawBufferPointer, stop: StopLatch) throws(ImageError) -> Int {
        let descriptor: FileDescriptor
        do {
            descriptor = try HostCall.retrying("open") {
                try FileDescriptor.open(path, .readOnly, options: [.closeOnExec, .nonBlocking], retryOnInterrupt: false)
            }
        } catch {
            if error.errno == .noSuchFileOrDirectory { throw .notFound(path: path) }
            throw .unreadable(path: path, opening: true, errno: error.errno)
        }
        defer { try? descriptor.close() }
        let kind: FileKind
        do {
            kind = try HostCall.fileKind(of: descriptor)
        } catch {
            throw .unreadable(path: path, opening: false, errno: error.errno)
        }
        if kind.isDirectory { throw .directory(path: path) }
        let maximum = destination.count
        if kind.isRegular, kind.size > Int64(maximum) { throw .tooLarge(path: path, maximum: maximum) }

        var loaded = 0
        // One byte past the maximum tells a source that is too long from one that fits.
        var extra: UInt8 = 0
        while true {
            if stop.isRequested { throw .stopped(path: path) }
            let count = try withUnsafeMutableBytes(of: &extra) { (overflow) throws(ImageError) -> Int in
                let target = loaded < maximum
                    ? UnsafeMutableRawBufferPointer(rebasing: destination[loaded..<min(loaded + chunkSize, maximum)])
                    : overflow
                return try read(descriptor, into: target, waits: !kind.isRegular, stop: stop, path: path)
            }
            if count == 0 { break }
            if loaded == maximum { throw .tooLarge(path: path, maximum: maximum) }
            releaseIfZero(UnsafeMutableRawBufferPointer(rebasing: destination[loaded..<loaded + count]))
            loaded += count
        }
        guard loaded > 0 else { throw .empty(path: path) }
        return loaded
    }

    /// Gives the whole pages of `bytes` back to the kernel if `bytes` are all zero.
    private static func releaseIfZero(_ bytes: UnsafeMutableRawBufferPointer) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard let base = bytes.baseAddress else { return }
        let start = (Int(bitPattern: base) + page - 1) / page * page
        let end = (Int(bitPattern: base) + bytes.count) / page * page
        guard end > start else { return }
        // All bytes zero: the first is zero and every byte equals its successor (one memcmp).
        guard bytes[0] == 0, memcmp(base, base + 1, bytes.count - 1) == 0 else { return }
        _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED)
    }

    /// One read into `target`: returns the byte count (0 at end of file). When `waits`, it
    /// first waits in poll for data, end of file or `stop`.
    private static func read(
        _ descriptor: FileDescriptor, into target: UnsafeMutableRawBufferPointer, waits: Bool, stop: StopLatch, path: String
    ) throws(ImageError) -> Int {
        while true {
            if waits {
                let events: (target: PollEvents, wake: PollEvents)
                do {
                    events = try HostCall.wait(for: .readable, on: descriptor, orReadable: stop.pollDescriptor)
                } catch {
                    throw .unreadable(path: path, opening: false, errno: error.errno)
                }
                if events.target.isEmpty { throw .stopped(path: path) }
            }
            do {
                return try HostCall.retrying("read") { try descriptor.read(into: target, retryOnInterrupt: false) }
            } catch where error.errno == .wouldBlock {
                // A FIFO whose writer has not written yet: wait again (never the end of file).
                if !waits { throw .unreadable(path: path, opening: false, errno: error.errno) }
            } catch where error.errno == .isDirectory {
                throw .directory(path: path)
            } catch {
                throw .unreadable(path: path, opening: false, errno: error.errno)
            }
        }
    }
}
