import Glibc

/// Reads a flat guest image from disk with the checks the exit statuses distinguish.
public enum GuestImage {
    /// Reads the image at `path`, which must hold 1 to `maximumSize` bytes.
    ///
    /// - Throws: ``MinivmmError`` with ``MinivmmExitStatus/imageNotFound`` when the file is
    ///   missing, unreadable or a directory, and ``MinivmmExitStatus/invalidImage`` when it is
    ///   empty or larger than `maximumSize`.
    /// - Complexity: O(n) in the image size.
    public static func load(path: String, maximumSize: UInt64) throws(MinivmmError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            let code = errno
            let reason = code == ENOENT ? "no such file" : String(cString: strerror(code))
            throw MinivmmError(.imageNotFound, "cannot open guest image '\(path)': \(reason)")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw MinivmmError(.imageNotFound, "cannot read guest image '\(path)': \(String(cString: strerror(errno)))")
        }
        if status.st_mode & S_IFMT == S_IFDIR {
            throw MinivmmError(.imageNotFound, "guest image '\(path)' is a directory")
        }
        if status.st_mode & S_IFMT == S_IFREG, UInt64(status.st_size) > maximumSize {
            throw tooLarge(path, maximumSize)
        }
        // Read one byte more than allowed so an over-long non-regular file is caught too.
        let limit = Int(min(maximumSize, UInt64(Int.max - 1))) + 1
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while bytes.count < limit {
            let wanted = min(chunk.count, limit - bytes.count)
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, wanted) }
            if count < 0 {
                if errno == EINTR { continue }
                let reason = errno == EISDIR ? "it is a directory" : String(cString: strerror(errno))
                throw MinivmmError(.imageNotFound, "cannot read guest image '\(path)': \(reason)")
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        guard !bytes.isEmpty else { throw MinivmmError(.invalidImage, "guest image '\(path)' is empty") }
        guard UInt64(bytes.count) <= maximumSize else { throw tooLarge(path, maximumSize) }
        return bytes
    }

    private static func tooLarge(_ path: String, _ maximumSize: UInt64) -> MinivmmError {
        MinivmmError(.invalidImage, "guest image '\(path)' is larger than the \(maximumSize) bytes of RAM above 1 MiB (use a larger --memory)")
    }
}
