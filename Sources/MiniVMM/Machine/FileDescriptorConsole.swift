import Glibc

/// Console output written straight to a file descriptor with write(2), unbuffered, so
/// interactive guests see their bytes at once (minivmm's stdout by default).
///
/// A closed or broken descriptor (EPIPE, EBADF, ...) drops the bytes: the guest keeps
/// running and its exit status still counts.
public struct FileDescriptorConsole: ConsoleOutput {
    /// The descriptor written to.
    public let fileDescriptor: Int32

    /// A console on `fileDescriptor` (standard output unless told otherwise).
    public init(fileDescriptor: Int32 = STDOUT_FILENO) {
        self.fileDescriptor = fileDescriptor
    }

    /// Writes all of `bytes`, retrying partial writes and EINTR.
    /// - Complexity: O(n) in `bytes.count`.
    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard var next = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let written = Glibc.write(fileDescriptor, next, remaining)
            if written < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return
            }
            remaining -= written
            next += written
        }
    }
}
