import Crypto
import Glibc
import SystemPackage

/// The file system calls a snapshot directory needs, through the host layer's one
/// `EINTR` policy (``HostCall/retrying(_:_:)``); every failure is a ``HostError`` that the
/// caller attaches to the file it concerns.
///
/// Files and directories are created owner-only (0600, 0700): memory files are guest RAM,
/// with whatever secrets the guest held.
enum SnapshotFileIO {
    /// How much one read(2) or write(2) moves: large enough that syscalls do not show next
    /// to SHA-256 (~1 GB/s), small enough that a chunk is still in cache when it is hashed
    /// after being read, or written after being hashed.
    static let chunkSize = 1 << 20

    /// Whether anything (a file, directory or dangling symlink) is at `path`.
    static func exists(_ path: String) throws(HostError) -> Bool {
        var status = stat()
        do {
            _ = try HostCall.retrying("lstat") { () throws(Errno) in try HostCall.check(lstat(path, &status)) }
            return true
        } catch where error.errno == .noSuchFileOrDirectory {
            return false
        }
    }

    /// Creates the directory `path` (0700); fails with `EEXIST` if anything is there.
    static func makeDirectory(_ path: String) throws(HostError) {
        _ = try HostCall.retrying("mkdir") { () throws(Errno) in try HostCall.check(mkdir(path, 0o700)) }
    }

    /// Creates the file `path` (0600) for writing; fails with `EEXIST` if anything is there,
    /// so nothing that was not created here is ever written to.
    static func createFile(_ path: String) throws(HostError) -> FileDescriptor {
        try HostCall.retrying("open") {
            try FileDescriptor.open(
                path, .writeOnly, options: [.create, .exclusiveCreate, .closeOnExec],
                permissions: [.ownerReadWrite], retryOnInterrupt: false)
        }
    }

    /// Opens `path` for reading, without waiting: `O_NONBLOCK` keeps a FIFO planted in
    /// place of a file from holding the caller until a writer comes (it is then refused as
    /// not a regular file).
    static func openForReading(_ path: String) throws(HostError) -> FileDescriptor {
        try HostCall.retrying("open") {
            try FileDescriptor.open(path, .readOnly, options: [.closeOnExec, .nonBlocking], retryOnInterrupt: false)
        }
    }

    /// Writes all of `bytes` to `descriptor` in chunks of ``chunkSize``, feeding each chunk
    /// to `hash` as it goes, so the bytes are read once and never copied.
    /// - Complexity: O(n) in `bytes.count`.
    static func write(_ bytes: UnsafeRawBufferPointer, to descriptor: FileDescriptor, hashing hash: inout SHA256)
        throws(HostError)
    {
        var offset = 0
        while offset < bytes.count {
            let chunk = UnsafeRawBufferPointer(rebasing: bytes[offset..<min(offset + chunkSize, bytes.count)])
            hash.update(bufferPointer: chunk)
            var written = 0
            while written < chunk.count {
                let rest = UnsafeRawBufferPointer(rebasing: chunk[written...])
                let count = try HostCall.retrying("write") { try descriptor.write(rest, retryOnInterrupt: false) }
                // write(2) of a regular file returns 0 only when it cannot go on; do not spin.
                if count == 0 { throw HostError("write", .noSpace) }
                written += count
            }
            offset += chunk.count
        }
    }

    /// Reads `descriptor` to its end, but never more than `limit` bytes: one more than the
    /// caller expects, so a file that grew since fstat shows as too long.
    /// - Complexity: O(n) in the bytes read.
    static func read(_ descriptor: FileDescriptor, limit: Int) throws(HostError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: limit)
        var count = 0
        while count < limit {
            // withUnsafeMutableBytes only rethrows untyped errors: carry the typed one out.
            let read = try bytes.withUnsafeMutableBytes { buffer in
                let rest = UnsafeMutableRawBufferPointer(rebasing: buffer[count...])
                return Result { () throws(HostError) in
                    try HostCall.retrying("read") { try descriptor.read(into: rest, retryOnInterrupt: false) }
                }
            }.get()
            if read == 0 { break }
            count += read
        }
        bytes.removeLast(limit - count)
        return bytes
    }

    /// The SHA-256 and size of everything `descriptor` holds from its current offset, read
    /// in chunks of ``chunkSize`` (memory files are GiBs: never held whole).
    /// - Complexity: O(n) in the file's size.
    static func digest(of descriptor: FileDescriptor) throws(HostError) -> (digest: SHA256.Digest, size: UInt64) {
        var hash = SHA256()
        var size: UInt64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = try HostCall.retrying("read") { try descriptor.read(into: buffer, retryOnInterrupt: false) }
            if count == 0 { break }
            hash.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[..<count]))
            size += UInt64(count)
        }
        return (hash.finalize(), size)
    }

    /// Flushes `descriptor`'s data and metadata to the disk (fsync(2)).
    static func sync(_ descriptor: FileDescriptor) throws(HostError) {
        _ = try HostCall.retrying("fsync") { () throws(Errno) in try HostCall.check(fsync(descriptor.rawValue)) }
    }

    /// Flushes the directory `path` (its entries: which files exist under which names).
    static func syncDirectory(_ path: String) throws(HostError) {
        let descriptor = try HostCall.retrying("open") {
            try FileDescriptor.open(path, .readOnly, options: [.directory, .closeOnExec], retryOnInterrupt: false)
        }
        defer { try? descriptor.close() }
        try sync(descriptor)
    }

    /// Closes `descriptor`; an error here can be a delayed write error, so it counts.
    static func close(_ descriptor: FileDescriptor) throws(HostError) {
        // close(2) is never retried, even on EINTR: the descriptor is gone either way.
        do { try descriptor.close() } catch { throw HostError("close", (error as? Errno) ?? .ioError) }
    }

    /// Renames `source` to `destination` (rename(2): atomic; replaces only a file or an
    /// empty directory, fails with `ENOTEMPTY`/`EEXIST` for a directory with entries).
    static func rename(_ source: String, to destination: String) throws(HostError) {
        _ = try HostCall.retrying("rename") { () throws(Errno) in
            try HostCall.check(Glibc.rename(source, destination))
        }
    }

    /// Removes the file `path`.
    static func removeFile(_ path: String) throws(HostError) {
        _ = try HostCall.retrying("unlink") { () throws(Errno) in try HostCall.check(unlink(path)) }
    }

    /// Removes the empty directory `path`.
    static func removeDirectory(_ path: String) throws(HostError) {
        _ = try HostCall.retrying("rmdir") { () throws(Errno) in try HostCall.check(rmdir(path)) }
    }
}
