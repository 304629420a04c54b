import Glibc
import Synchronization
import SystemPackage

/// Console output on a file descriptor (minivmm's stdout or stderr), unbuffered so that
/// interactive guests see their bytes at once, and never a reason for minivmm to hang, spin
/// or die.
///
/// - A descriptor that may block (pipe, FIFO, socket, terminal) is polled for `POLLOUT`
///   together with the stop latch before each write of at most `PIPE_BUF` bytes, which a
///   writable pipe accepts without blocking; so a reader that never reads holds minivmm only
///   until the latch fires. Regular files and other devices are written directly (decided
///   once, by fstat, at init), which keeps the per-byte cost of COM1 output at one write(2).
/// - `EAGAIN` (an `O_NONBLOCK` descriptor) waits in poll for `POLLOUT` or the latch; it
///   never retries in a loop.
/// - Once the latch has fired, bytes that would have to wait are dropped.
/// - `EPIPE`, `EBADF`, `ENOSPC`, `EFBIG` (with `SIGXFSZ` ignored) and any other error mark
///   the descriptor broken: its bytes are dropped from then on, cheaply, and the guest keeps
///   running.
///
/// One lock is held around each whole write, so writes from different threads (vCPUs,
/// loggers) never interleave.
package final class ConsoleWriter: ConsoleOutput, Sendable {
    /// The descriptor written to; not closed by the writer.
    let descriptor: FileDescriptor
    private let stop: StopLatch
    /// Whether to poll before writing (pipes, FIFOs, sockets, terminals).
    private let pollsFirst: Bool
    /// Whether the descriptor failed for good; also the lock that serialises writes.
    private let broken: Mutex<Bool>

    /// The largest write a pipe performs atomically, and accepts without blocking when poll
    /// reports it writable.
    static let chunkSize = Int(PIPE_BUF)

    /// A writer on `descriptor` that gives up waiting once `stop` is requested.
    package init(descriptor: FileDescriptor, stop: StopLatch) {
        self.descriptor = descriptor
        self.stop = stop
        if let kind = try? HostCall.fileKind(of: descriptor) {
            // Even with O_NONBLOCK set now: the flag belongs to the open file description,
            // which other processes share and may change at any time.
            pollsFirst = kind.mayBlock
            broken = Mutex(false)
        } else {
            // fstat failing means the descriptor is closed (EBADF): nothing can be written.
            pollsFirst = false
            broken = Mutex(true)
        }
    }

    /// A writer on minivmm's stdout.
    package static func standardOutput(stop: StopLatch) -> ConsoleWriter {
        ConsoleWriter(descriptor: .standardOutput, stop: stop)
    }

    /// A writer on minivmm's stderr.
    package static func standardError(stop: StopLatch) -> ConsoleWriter {
        ConsoleWriter(descriptor: .standardError, stop: stop)
    }

    /// Writes `text` to stdout or stderr as best it can, for the one message that comes
    /// before a stop latch exists (when creating it failed). Errors are ignored.
    package static func writeWithoutLatch(_ text: String, toStandardError: Bool) {
        let descriptor: FileDescriptor = toStandardError ? .standardError : .standardOutput
        _ = try? HostCall.retrying("write") { try descriptor.writeAll(text.utf8) }
    }

    /// Whether writes are being dropped because the descriptor failed.
    var isBroken: Bool { broken.withLock { $0 } }

    /// Writes all of `bytes`, or drops what cannot be written (see the type's description).
    /// - Complexity: O(n) in `bytes.count`; one write(2) per call on a file or device.
    package func write(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        broken.withLock { broken in
            guard !broken else { return }
            var rest = bytes
            while !rest.isEmpty {
                var chunk = rest
                if pollsFirst {
                    guard waitUntilWritable() else { return }
                    chunk = UnsafeRawBufferPointer(rebasing: rest.prefix(Self.chunkSize))
                }
                do throws(HostError) {
                    let written = try HostCall.retrying("write") {
                        try descriptor.write(chunk, retryOnInterrupt: false)
                    }
                    rest = UnsafeRawBufferPointer(rebasing: rest[(rest.startIndex + written)...])
                } catch where error.errno == .wouldBlock {
                    guard waitUntilWritable() else { return }
                } catch {
                    broken = true
                    return
                }
            }
        }
    }

    /// Waits until the descriptor is writable (or reports an error, which the next write
    /// returns) or the stop latch fires; returns `false` when the bytes should be dropped.
    private func waitUntilWritable() -> Bool {
        guard let (target, _) = try? HostCall.wait(for: .writable, on: descriptor, orReadable: stop.pollDescriptor) else {
            return false
        }
        // Writable wins over a fired latch: bytes that need no waiting are never dropped.
        return !target.isDisjoint(with: [.writable, .error, .hangUp, .invalid])
    }
}
