import SystemPackage

/// A snapshot on disk: a directory holding `snapshot.json` (``SnapshotState``), one
/// `memory-<slot>.bin` per RAM region (raw bytes) and `manifest.json`
/// (``SnapshotManifest``: every other file's size and SHA-256).
///
/// Writing is atomic under the final name: everything goes into `<path>.partial`, each file
/// synced, the manifest last, and only then is the directory renamed to `<path>`; so a crash
/// at any moment leaves either no directory at `<path>` or a complete one. Reading
/// validates everything it can before the caller creates anything (see
/// ``read(from:verifyMemory:)``).
package enum SnapshotDirectory {
    /// The largest `snapshot.json` a reader accepts: the manifest gives the size, and a
    /// crafted manifest must not make the reader allocate gigabytes. A real state file is
    /// some hundred KiB (64 vCPUs of register blocks, the allocators, every device).
    package static let maximumStateFileSize = 64 << 20
    /// The largest `manifest.json` a reader accepts (a real one is a few hundred bytes).
    package static let maximumManifestSize = 1 << 20

    /// Writes `state` and the RAM regions' bytes `memory` as a new snapshot directory at
    /// `path`.
    ///
    /// `memory` must hold exactly one buffer for each of `state.machine.memory`'s records,
    /// named by the record's `file` and of its ``MemoryRecord/fileSize`` (the region, or in
    /// a diff the pages it lists, packed); that is checked before
    /// anything is created. The buffers are written in place, in chunks, and hashed as they
    /// are written: never copied.
    ///
    /// Steps: refuse an existing `path`; create `path.partial` (mkdir, so it also refuses an
    /// existing one); write and fsync each memory file, then `snapshot.json`, then
    /// `manifest.json`; fsync the directory; rename it to `path`; fsync the parent. If the
    /// last fsync fails, the directory is renamed back and removed, so that an error always
    /// means no snapshot.
    ///
    /// An existing `path.partial` is refused (``SnapshotError/partialExists(path:)``), never
    /// removed: it may be another writer's directory in progress (two requests for the same
    /// path: the exclusive mkdir is what lets only one of them proceed), and removing a
    /// directory tree minivmm did not create in this call would risk a user's files. A crash
    /// leaves one behind; its name says what it is, and removing it is up to the user.
    ///
    /// - Throws: ``SnapshotError/exists(path:)`` or ``SnapshotError/partialExists(path:)``
    ///   (nothing written); ``SnapshotError/invalid(file:fieldPath:reason:)`` or
    ///   ``SnapshotError/memorySize(file:expected:actual:)`` when `memory` does not match the
    ///   records (nothing written); ``SnapshotError/unwritable(file:_:)`` for a failed system
    ///   call, after removing what this call created (on a best-effort basis: what cannot be
    ///   removed stays under `path.partial`, never under `path`).
    /// - Complexity: O(n) in the total memory size: each byte is hashed once and written
    ///   once.
    package static func write(state: SnapshotState, memory: [MemoryFile], to path: String) throws(SnapshotError) {
        let stateFile = try SnapshotWriter.checkedStateFile(state, memory: memory)
        var writer = try SnapshotWriter(path: path)
        try writer.write(memory: memory, stateFile: stateFile)
    }

    /// Reads and validates the snapshot directory at `path`, opening nothing it does not
    /// need and leaving nothing open.
    ///
    /// Checks, in this order, each only after the ones before passed:
    /// 1. the directory exists, and `manifest.json` exists and decodes;
    /// 2. `snapshot.json`'s size, then its SHA-256, match the manifest;
    /// 3. the header alone: `format`, then `format_version`, then the whole header;
    /// 4. the whole state file against the model (the allocators decode only when valid);
    /// 5. every memory record names a distinct file that the manifest lists with the
    ///    record's size (its range's, or in a diff its pages'), and the manifest lists
    ///    nothing else;
    /// 6. every memory file exists and has that size;
    /// 7. with `verifyMemory`, every memory file's SHA-256 matches the manifest (reads
    ///    every byte: seconds per GiB; without it, restore time does not grow with RAM).
    ///
    /// Never traps, whatever the files hold.
    ///
    /// - Throws: a ``SnapshotError`` whose description names the file and, for content
    ///   errors, the field.
    /// - Complexity: O(s) in the state file's size, plus O(m) in the total memory size
    ///   with `verifyMemory` (O(r) in the number of regions without).
    package static func read(from path: String, verifyMemory: Bool) throws(SnapshotError) -> LoadedSnapshot {
        try SnapshotReader(path: path).read(verifyMemory: verifyMemory)
    }

    /// `path` without redundant or trailing separators (`dir/` and `dir` are the same
    /// snapshot), and its parent directory.
    /// - Throws: ``SnapshotError/invalid(file:fieldPath:reason:)`` for a path that names no
    ///   directory (empty, `/`, or ending in `.` or `..`).
    static func normalized(_ path: String) throws(SnapshotError) -> (path: String, parent: String) {
        let filePath = FilePath(path)
        guard let last = filePath.lastComponent, last.kind == .regular else {
            throw .invalid(file: path, fieldPath: "", reason: "names no directory to snapshot to")
        }
        let parent = filePath.removingLastComponent()
        return (filePath.string, parent.isEmpty ? "." : parent.string)
    }
}
