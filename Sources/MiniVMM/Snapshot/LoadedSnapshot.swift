/// A snapshot directory that passed ``SnapshotDirectory/read(from:verifyMemory:)``: its
/// decoded state and where each RAM region's bytes are. Nothing is mapped or opened yet.
package struct LoadedSnapshot: Hashable, Sendable {
    /// One RAM region's memory file.
    package struct Memory: Hashable, Sendable {
        /// The region's record in ``LoadedSnapshot/state``.
        package var record: MemoryRecord
        /// The memory file's path: the snapshot directory's path joined with
        /// ``MemoryRecord/file``.
        package var path: String
        /// Its size in bytes: the manifest's, the file's and the record's (its range's, or in
        /// a diff its pages'), which are equal.
        package var size: UInt64
    }

    /// The decoded `snapshot.json`.
    package var state: SnapshotState
    /// The memory files, in the order of `state.machine.memory`.
    package var memory: [Memory]
}
