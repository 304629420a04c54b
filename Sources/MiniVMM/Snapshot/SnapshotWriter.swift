import Crypto
import SystemPackage

/// One call of ``SnapshotDirectory/write(state:memory:to:)``: the paths it works on and
/// the files it has created so far, which are exactly what it removes on failure.
struct SnapshotWriter {
    /// The final directory.
    let path: String
    /// Its parent, synced after the rename.
    let parent: String
    /// The directory written, `path.partial`.
    let partial: String
    /// The files created in ``partial`` so far.
    private var created: [String] = []

    /// A writer for the snapshot directory `path`.
    /// - Throws: ``SnapshotError/invalid(file:fieldPath:reason:)`` for a path that names no
    ///   directory.
    init(path: String) throws(SnapshotError) {
        (self.path, parent) = try SnapshotDirectory.normalized(path)
        partial = self.path + SnapshotFileNames.partialSuffix
    }

    /// Checks that `memory` matches `state`'s memory records one to one (names, and sizes:
    /// ``MemoryRecord/fileSize``, the region or a diff's pages),
    /// and encodes `state`: everything that can fail without touching the disk.
    /// - Complexity: O(r log r) in the number of regions, plus O(s) in the state's encoded
    ///   size.
    static func checkedStateFile(_ state: SnapshotState, memory: [MemoryFile]) throws(SnapshotError) -> [UInt8] {
        let file = SnapshotFileNames.state
        var buffers: [String: MemoryFile] = [:]
        for buffer in memory {
            if let problem = SnapshotFileNames.problem(withMemoryFileName: buffer.name) {
                throw .invalid(file: buffer.name, fieldPath: "", reason: "memory buffer's name \(problem)")
            }
            guard buffers.updateValue(buffer, forKey: buffer.name) == nil else {
                throw .invalid(file: buffer.name, fieldPath: "", reason: "two memory buffers have this name")
            }
        }
        var recordIndex: [String: Int] = [:]
        for (index, record) in state.machine.memory.enumerated() {
            let field = "machine.memory[\(index)].file"
            if let problem = SnapshotFileNames.problem(withMemoryFileName: record.file) {
                throw .invalid(file: file, fieldPath: field, reason: problem)
            }
            if let other = recordIndex.updateValue(index, forKey: record.file) {
                throw .invalid(file: file, fieldPath: field, reason: "also the file of machine.memory[\(other)]")
            }
            guard let buffer = buffers[record.file] else {
                throw .invalid(file: file, fieldPath: field, reason: "no memory buffer named \(SnapshotError.quoted(record.file))")
            }
            guard UInt64(buffer.bytes.count) == record.fileSize else {
                throw .memorySize(file: record.file, expected: record.fileSize, actual: UInt64(buffer.bytes.count))
            }
        }
        for buffer in memory where recordIndex[buffer.name] == nil {
            throw .invalid(file: buffer.name, fieldPath: "", reason: "no record in machine.memory names this memory buffer")
        }
        return try SnapshotStateFile.encode(state)
    }

    /// Writes the directory: see ``SnapshotDirectory/write(state:memory:to:)``.
    mutating func write(memory: [MemoryFile], stateFile: [UInt8]) throws(SnapshotError) {
        if try exists(path) { throw .exists(path: path) }
        do {
            try SnapshotFileIO.makeDirectory(partial)
        } catch where error.errno == .fileExists {
            throw .partialExists(path: path)
        } catch {
            throw .unwritable(file: partial, error)
        }
        do {
            try writeFiles(memory: memory, stateFile: stateFile)
        } catch {
            removePartial()
            throw error
        }
        do {
            try SnapshotFileIO.syncDirectory(parent)
        } catch {
            // The rename may not survive a crash: take the snapshot back rather than report a
            // failure while it stands. Renaming back keeps every moment crash-safe; if even
            // that fails, the complete snapshot stays where it is.
            if (try? SnapshotFileIO.rename(path, to: partial)) != nil { removePartial() }
            throw .unwritable(file: parent, error)
        }
    }

    /// Everything between creating the partial directory and syncing the parent: the files,
    /// the partial directory's sync and the rename.
    private mutating func writeFiles(memory: [MemoryFile], stateFile: [UInt8]) throws(SnapshotError) {
        var entries: [SnapshotManifest.Entry] = []
        for buffer in memory {
            entries.append(try writeFile(buffer.name, buffer.bytes))
        }
        entries.append(try writeFile(SnapshotFileNames.state, contents: stateFile))
        let manifest = try SnapshotJSON.encode(SnapshotManifest(files: entries), file: SnapshotFileNames.manifest)
        _ = try writeFile(SnapshotFileNames.manifest, contents: manifest)
        do { try SnapshotFileIO.syncDirectory(partial) } catch { throw .unwritable(file: partial, error) }
        // Checked again just before the rename: it would silently replace an empty
        // directory created since the first check (rename(2) refuses only non-empty ones).
        if try exists(path) { throw .exists(path: path) }
        do {
            try SnapshotFileIO.rename(partial, to: path)
        } catch where [.fileExists, .directoryNotEmpty, .notDirectory, .isDirectory].contains(error.errno) {
            throw .exists(path: path)
        } catch {
            throw .unwritable(file: path, error)
        }
    }

    /// Creates `name` in the partial directory, writes `bytes` to it while hashing them,
    /// syncs and closes it; returns its manifest entry.
    /// - Complexity: O(n) in `bytes.count`.
    private mutating func writeFile(_ name: String, _ bytes: UnsafeRawBufferPointer) throws(SnapshotError) -> SnapshotManifest.Entry {
        let filePath = partial + "/" + name
        let descriptor: FileDescriptor
        do { descriptor = try SnapshotFileIO.createFile(filePath) } catch { throw .unwritable(file: name, error) }
        created.append(name)
        var hash = SHA256()
        do {
            try SnapshotFileIO.write(bytes, to: descriptor, hashing: &hash)
            try SnapshotFileIO.sync(descriptor)
        } catch {
            try? descriptor.close()
            throw .unwritable(file: name, error)
        }
        do { try SnapshotFileIO.close(descriptor) } catch { throw .unwritable(file: name, error) }
        return SnapshotManifest.Entry(name: name, size: UInt64(bytes.count), digest: hash.finalize())
    }

    /// ``writeFile(_:_:)`` for bytes in an array.
    private mutating func writeFile(_ name: String, contents: [UInt8]) throws(SnapshotError) -> SnapshotManifest.Entry {
        // withUnsafeBytes only rethrows untyped errors: carry the typed one out in a Result.
        try contents.withUnsafeBytes { bytes in
            Result { () throws(SnapshotError) in try writeFile(name, bytes) }
        }.get()
    }

    /// Removes the files this call created and the partial directory, as far as possible:
    /// only what it created, so a directory that something else wrote into stays.
    private func removePartial() {
        for name in created.reversed() {
            try? SnapshotFileIO.removeFile(partial + "/" + name)
        }
        try? SnapshotFileIO.removeDirectory(partial)
    }

    /// Whether anything is at `path`; a failure to tell counts as a failure to write there.
    private func exists(_ path: String) throws(SnapshotError) -> Bool {
        do { return try SnapshotFileIO.exists(path) } catch { throw .unwritable(file: path, error) }
    }
}
