import Glibc
import KVM
import SystemPackage

/// A host system call that failed: which operation and the `errno` it left.
///
/// The host layer throws only this type, so callers above it (image loading, the machine)
/// decide what a failure means for the user; nothing here knows about exit statuses.
package struct HostError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The call that failed, e.g. `"open"`, `"poll"` or `"eventfd"`.
    package var operation: String
    /// What the kernel reported.
    package var errno: Errno

    /// A failure of `operation` with `errno`.
    package init(_ operation: String, _ errno: Errno) {
        self.operation = operation
        self.errno = errno
    }

    /// `operation: strerror text`, e.g. `poll: Bad file descriptor`.
    package var description: String { "\(operation): \(errno)" }
}

/// The events poll(2) waits for or reports on one descriptor.
struct PollEvents: OptionSet, Hashable, Sendable {
    /// The `events`/`revents` bits.
    var rawValue: Int16

    /// Creates a set from poll(2) bits.
    init(rawValue: Int16) { self.rawValue = rawValue }

    /// `POLLIN`: data to read, or end of file.
    static let readable = PollEvents(rawValue: Int16(POLLIN))
    /// `POLLOUT`: a write would not block.
    static let writable = PollEvents(rawValue: Int16(POLLOUT))
    /// `POLLHUP`: the peer went away (a FIFO's last writer closed, a pipe's reader closed).
    static let hangUp = PollEvents(rawValue: Int16(POLLHUP))
    /// `POLLERR`: an error is pending on the descriptor.
    static let error = PollEvents(rawValue: Int16(POLLERR))
    /// `POLLNVAL`: the descriptor is not open.
    static let invalid = PollEvents(rawValue: Int16(POLLNVAL))

    /// Any condition that makes the next read or write return at once (data, end of file or
    /// an error), whichever was asked for.
    static let anyCondition: PollEvents = [.hangUp, .error, .invalid]
}

/// The host layer's system calls: every call that may fail with `EINTR` goes through
/// ``retrying(_:_:)``, the single place that retries it, and every failure becomes a
/// ``HostError``.
enum HostCall {
    /// `path` made absolute against the working directory (getcwd(3)); unchanged if it
    /// already is, or if the working directory cannot be read.
    static func absolutePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let directory = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return directory.hasSuffix("/") ? directory + path : directory + "/" + path
    }

    /// Runs `body` again while it fails with `EINTR`; any other `Errno` becomes a
    /// ``HostError`` for `operation`.
    ///
    /// `body` is a SystemPackage call made with `retryOnInterrupt: false`, or a raw call
    /// checked with ``check(_:)``, so that this is the only retry loop.
    static func retrying<T>(_ operation: String, _ body: () throws -> T) throws(HostError) -> T {
        while true {
            do {
                return try body()
            } catch let errno as Errno {
                if errno == .interrupted { continue }
                throw HostError(operation, errno)
            } catch {
                // SystemPackage throws nothing but Errno; keep the type total anyway.
                throw HostError(operation, .ioError)
            }
        }
    }

    /// Turns a C call's `-1` result into a thrown `Errno` (for use inside ``retrying(_:_:)``).
    @inline(__always)
    static func check<T: BinaryInteger>(_ result: T) throws(Errno) -> T {
        if result == -1 { throw Errno(rawValue: Glibc.errno) }
        return result
    }

    /// Waits until one of `entries` reports an event or `timeout` passes (`nil`: no limit);
    /// returns the reported events in the same order (empty for the ones without any).
    ///
    /// An `EINTR` restarts the wait with the full timeout; callers use a timeout only as a
    /// safety net, never for exact timing.
    static func poll(
        _ entries: [(descriptor: FileDescriptor, events: PollEvents)], timeout: Duration? = nil
    ) throws(HostError) -> [PollEvents] {
        let milliseconds = timeout.map { duration -> Int32 in
            let (seconds, attoseconds) = duration.components
            let total = seconds * 1000 + attoseconds / 1_000_000_000_000_000
            return Int32(clamping: max(total, 0))
        } ?? -1
        var descriptors = entries.map { pollfd(fd: $0.descriptor.rawValue, events: $0.events.rawValue, revents: 0) }
        _ = try retrying("poll") { () throws(Errno) in
            try check(descriptors.withUnsafeMutableBufferPointer {
                Glibc.poll($0.baseAddress, nfds_t($0.count), milliseconds)
            })
        }
        return descriptors.map { PollEvents(rawValue: $0.revents) }
    }

    /// Waits until `descriptor` reports one of `events` (or an error or hang-up) or `wake`
    /// becomes readable; returns the events of each.
    ///
    /// The two-descriptor wait every blocking host operation uses: the operation itself and
    /// a stop request (``StopLatch/pollDescriptor``) or a private wake-up eventfd.
    static func wait(
        for events: PollEvents, on descriptor: FileDescriptor, orReadable wake: FileDescriptor
    ) throws(HostError) -> (target: PollEvents, wake: PollEvents) {
        let reported = try poll([(descriptor, events), (wake, .readable)])
        return (reported[0], reported[1])
    }

    /// What kind of file `descriptor` is, from fstat(2).
    static func fileKind(of descriptor: FileDescriptor) throws(HostError) -> FileKind {
        var status = stat()
        _ = try retrying("fstat") { () throws(Errno) in try check(fstat(descriptor.rawValue, &status)) }
        return FileKind(mode: status.st_mode, size: Int64(status.st_size), isTerminal: isatty(descriptor.rawValue) == 1)
    }
}

/// The type of an open file, as far as blocking behaviour is concerned.
struct FileKind: Hashable, Sendable {
    /// The `st_mode` file-type bits.
    var type: mode_t
    /// The size in bytes (meaningful for regular files only).
    var size: Int64
    /// Whether the file is a terminal.
    var isTerminal: Bool

    /// Describes a file from its `st_mode`, `st_size` and whether it is a terminal.
    init(mode: mode_t, size: Int64, isTerminal: Bool) {
        type = mode & S_IFMT
        self.size = size
        self.isTerminal = isTerminal
    }

    /// A regular file.
    var isRegular: Bool { type == S_IFREG }
    /// A directory.
    var isDirectory: Bool { type == S_IFDIR }
    /// A pipe or FIFO.
    var isFIFO: Bool { type == S_IFIFO }

    /// Whether a read or write may wait for another party: pipes, FIFOs, sockets and
    /// terminals. Regular files, block devices and other character devices (`/dev/null`)
    /// complete at once.
    var mayBlock: Bool { type == S_IFIFO || type == S_IFSOCK || isTerminal }
}

/// A wake-up descriptor for poll: an eventfd that ``signal()`` makes readable until
/// ``drain()`` resets it. Reuses `KVM.EventFD` (non-blocking, close-on-exec), which owns and
/// closes the descriptor.
final class WakeEvent: Sendable {
    private let event: EventFD

    /// Creates an unsignalled event.
    /// - Throws: ``HostError`` when eventfd(2) fails.
    init() throws(HostError) {
        do {
            event = try EventFD(nonBlocking: true)
        } catch {
            throw HostError(error.operation, error.errno ?? .ioError)
        }
    }

    /// The descriptor to poll for `POLLIN`; never read it directly.
    var descriptor: FileDescriptor { FileDescriptor(rawValue: event.fileDescriptor) }

    /// Makes ``descriptor`` readable. A counter that is full is readable already, so a
    /// failure needs no handling.
    func signal() {
        try? event.signal()
    }

    /// Makes ``descriptor`` unreadable again (until the next ``signal()``).
    func drain() {
        _ = try? event.read()
    }
}
