/// The names of the files in a snapshot directory, and which names a memory file may have.
package enum SnapshotFileNames {
    /// The state file, ``SnapshotState`` as JSON.
    package static let state = "snapshot.json"
    /// Every other file's size and SHA-256 (``SnapshotManifest``), written last.
    package static let manifest = "manifest.json"
    /// What is appended to the final path for the directory being written.
    package static let partialSuffix = ".partial"

    /// The conventional name of the memory file of KVM memory slot `slot`: `memory-<slot>.bin`.
    package static func memory(slot: UInt32) -> String {
        "memory-\(slot).bin"
    }

    /// Why `name` cannot be a memory file's name, or `nil` if it can: it must be a plain
    /// name in the snapshot directory (no `/`, not `.` or `..`, no NUL) and not one of the
    /// two fixed files. Names come from the state file and the manifest, so this is what
    /// keeps a crafted file from reading or writing outside the directory.
    /// - Complexity: O(n) in the name's length.
    package static func problem(withMemoryFileName name: String) -> String? {
        if name.isEmpty { return "is empty" }
        if name == "." || name == ".." || name.utf8.contains(UInt8(ascii: "/")) || name.utf8.contains(0) {
            return "\(SnapshotError.quoted(name)) is not a plain file name"
        }
        if name == state || name == manifest { return "\(SnapshotError.quoted(name)) is reserved" }
        return nil
    }
}
