#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Crypto
import SystemPackage

/// One call of ``SnapshotDirectory/read(from:verifyMemory:)``: the checks, in their order.
struct SnapshotReader {
    /// The snapshot directory.
    let path: String

    /// A reader of the snapshot directory at `path`.
    init(path: String) {
        // `dir/` and `dir` are the same directory; an empty path stays empty (not found).
        self.path = path.isEmpty ? path : FilePath(path).string
    }

    /// Runs every check; see ``SnapshotDirectory/read(from:verifyMemory:)``.
    func read(verifyMemory: Bool) throws(SnapshotError) -> LoadedSnapshot {
        try checkDirectory()
        let manifest = try readManifest()
        let state = try SnapshotStateFile.decode(try readStateFile(manifest))
        let memory = try memoryFiles(of: state, manifest)
        for file in memory {
            try checkMemoryFile(file, manifest, verify: verifyMemory)
        }
        return LoadedSnapshot(state: state, memory: memory)
    }

    /// The directory exists and is one.
    private func checkDirectory() throws(SnapshotError) {
        let descriptor: FileDescriptor
        do {
            descriptor = try SnapshotFileIO.openForReading(path)
        } catch where error.errno == .noSuchFileOrDirectory {
            throw .notFound(file: path)
        } catch {
            throw .unreadable(file: path, error)
        }
        defer { try? descriptor.close() }
        let kind: FileKind
        do { kind = try HostCall.fileKind(of: descriptor) } catch { throw .unreadable(file: path, error) }
        guard kind.isDirectory else { throw .invalid(file: path, fieldPath: "", reason: "not a directory") }
    }

    /// `manifest.json`, decoded.
    private func readManifest() throws(SnapshotError) -> SnapshotManifest {
        let name = SnapshotFileNames.manifest
        let bytes = try readSmallFile(name, expectedSize: nil, limit: SnapshotDirectory.maximumManifestSize)
        return try SnapshotJSON.decode(SnapshotManifest.self, from: Data(bytes), file: name)
    }

    /// `snapshot.json`'s bytes, once their size and SHA-256 matched the manifest.
    private func readStateFile(_ manifest: SnapshotManifest) throws(SnapshotError) -> Data {
        let name = SnapshotFileNames.state
        guard let entry = manifest.entry(named: name) else {
            throw .manifestMismatch(file: name, what: "not listed")
        }
        guard entry.size <= UInt64(SnapshotDirectory.maximumStateFileSize) else {
            throw .invalid(
                file: SnapshotFileNames.manifest, fieldPath: "files",
                reason: "\(name) of \(entry.size) bytes, more than the \(SnapshotDirectory.maximumStateFileSize) a state file can have")
        }
        let bytes = try readSmallFile(name, expectedSize: entry.size, limit: Int(entry.size))
        let digest = SnapshotManifest.Entry(name: name, contents: bytes).sha256
        guard digest == entry.sha256 else {
            throw .manifestMismatch(file: name, what: "SHA-256 is \(digest), the manifest says \(entry.sha256)")
        }
        return Data(bytes)
    }

    /// The file `name` of the directory, a regular file of `expectedSize` bytes if given,
    /// of at most `limit` bytes.
    /// - Complexity: O(n) in the file's size.
    private func readSmallFile(_ name: String, expectedSize: UInt64?, limit: Int) throws(SnapshotError) -> [UInt8] {
        let descriptor = try open(name)
        defer { try? descriptor.close() }
        let size = try regularFileSize(name, descriptor)
        if let expectedSize, size != expectedSize {
            throw .manifestMismatch(file: name, what: "holds \(size) bytes, the manifest says \(expectedSize)")
        }
        guard size <= UInt64(limit) else {
            throw .invalid(file: name, fieldPath: "", reason: "larger than \(limit) bytes")
        }
        let bytes: [UInt8]
        // One byte more than fstat said: a file that changed under the reader shows.
        do { bytes = try SnapshotFileIO.read(descriptor, limit: Int(size) + 1) } catch { throw .unreadable(file: name, error) }
        guard bytes.count == Int(size) else {
            throw .invalid(file: name, fieldPath: "", reason: "changed size while being read")
        }
        return bytes
    }

    /// The memory file of each of `state`'s RAM regions, checked against the manifest.
    /// - Complexity: O(r · f) for r regions and f manifest entries (a handful each).
    private func memoryFiles(of state: SnapshotState, _ manifest: SnapshotManifest) throws(SnapshotError) -> [LoadedSnapshot.Memory] {
        let stateFile = SnapshotFileNames.state
        var memory: [LoadedSnapshot.Memory] = []
        var recordIndex: [String: Int] = [:]
        for (index, record) in state.machine.memory.enumerated() {
            let field = "machine.memory[\(index)].file"
            if let problem = SnapshotFileNames.problem(withMemoryFileName: record.file) {
                throw .invalid(file: stateFile, fieldPath: field, reason: problem)
            }
            if let other = recordIndex.updateValue(index, forKey: record.file) {
                throw .invalid(file: stateFile, fieldPath: field, reason: "also the file of machine.memory[\(other)]")
            }
            guard let size = Self.fileSize(of: record) else {
                throw .invalid(file: stateFile, fieldPath: "machine.memory[\(index)].pages", reason: "more pages than 64-bit sizes hold")
            }
            guard let entry = manifest.entry(named: record.file) else {
                throw .manifestMismatch(file: record.file, what: "not listed")
            }
            guard entry.size == size else {
                throw .manifestMismatch(
                    file: record.file, what: "the manifest says \(entry.size) bytes, machine.memory[\(index)] holds \(size)")
            }
            memory.append(LoadedSnapshot.Memory(record: record, path: path + "/" + record.file, size: entry.size))
        }
        for entry in manifest.files where entry.name != stateFile && recordIndex[entry.name] == nil {
            throw .manifestMismatch(file: entry.name, what: "listed, but no record in machine.memory names it")
        }
        return memory
    }

    /// ``MemoryRecord/fileSize`` (the whole region, or a diff's pages), or `nil` if it does
    /// not fit 64 bits: the record comes from the file, so summing its pages must not trap
    /// (the pages themselves are checked later, by ``SnapshotCheck``).
    /// - Complexity: O(p) in the number of page runs.
    static func fileSize(of record: MemoryRecord) -> UInt64? {
        guard let pages = record.pages else { return record.range.count }
        var count: UInt64 = 0
        for run in pages {
            let (sum, overflow) = count.addingReportingOverflow(run.count)
            if overflow { return nil }
            count = sum
        }
        let (size, overflow) = count.multipliedReportingOverflow(by: PageRun.pageSize)
        return overflow ? nil : size
    }

    /// The memory file exists with its region's size and, if `verify`, the manifest's digest.
    /// - Complexity: O(1), or O(n) in the file's size if `verify`.
    private func checkMemoryFile(_ file: LoadedSnapshot.Memory, _ manifest: SnapshotManifest, verify: Bool) throws(SnapshotError) {
        let name = file.record.file
        let descriptor = try open(name)
        defer { try? descriptor.close() }
        let size = try regularFileSize(name, descriptor)
        guard size == file.size else { throw .memorySize(file: name, expected: file.size, actual: size) }
        guard verify, let entry = manifest.entry(named: name) else { return }
        let actual: (digest: SHA256.Digest, size: UInt64)
        do { actual = try SnapshotFileIO.digest(of: descriptor) } catch { throw .unreadable(file: name, error) }
        guard actual.size == size else { throw .memorySize(file: name, expected: file.size, actual: actual.size) }
        let digest = SnapshotManifest.Entry.hex(actual.digest)
        guard digest == entry.sha256 else {
            throw .manifestMismatch(file: name, what: "SHA-256 is \(digest), the manifest says \(entry.sha256)")
        }
    }

    /// Opens the directory's file `name` for reading.
    private func open(_ name: String) throws(SnapshotError) -> FileDescriptor {
        do {
            return try SnapshotFileIO.openForReading(path + "/" + name)
        } catch where error.errno == .noSuchFileOrDirectory {
            throw .notFound(file: name)
        } catch {
            throw .unreadable(file: name, error)
        }
    }

    /// The size of `descriptor`, the directory's file `name`, which must be a regular file.
    private func regularFileSize(_ name: String, _ descriptor: FileDescriptor) throws(SnapshotError) -> UInt64 {
        let kind: FileKind
        do { kind = try HostCall.fileKind(of: descriptor) } catch { throw .unreadable(file: name, error) }
        guard kind.isRegular else { throw .invalid(file: name, fieldPath: "", reason: "not a regular file") }
        return UInt64(clamping: kind.size)
    }
}
