/// Why a snapshot directory could not be written or read.
///
/// Every case names the file it is about: `file` is a name inside the snapshot directory
/// (`manifest.json`, `snapshot.json`, `memory-0.bin`) or, for the directory itself and its
/// parent, the path as given. The ``description`` is one line, for an API response body or
/// stderr; the control API answers ``exists(path:)`` and ``partialExists(path:)`` with 409,
/// `minivmm --restore` every read failure with exit 65. Knows nothing of either.
package enum SnapshotError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The snapshot's directory already exists; nothing was written.
    case exists(path: String)
    /// `path.partial` exists: the directory of an unfinished write, this process's or
    /// another's, or left by a crash. It is never removed automatically (see
    /// ``SnapshotDirectory/write(state:memory:to:)``); nothing was written.
    case partialExists(path: String)
    /// The file (or the snapshot directory itself) does not exist.
    case notFound(file: String)
    /// The file exists but could not be opened or read.
    case unreadable(file: String, HostError)
    /// The file or directory could not be created, written, synced, renamed or removed.
    case unwritable(file: String, HostError)
    /// The file disagrees with `manifest.json` (its size or SHA-256, or whether it is
    /// listed at all); `what` says how.
    case manifestMismatch(file: String, what: String)
    /// `header.format_version` is not one this minivmm reads.
    case unknownVersion(Int)
    /// `header.format` names another format than ``SnapshotHeader/formatName``.
    case wrongFormat(String)
    /// The file's content is not what the format allows: `fieldPath` is the JSON path to
    /// the offending value (`machine.devices[0].window`; empty for the whole file).
    case invalid(file: String, fieldPath: String, reason: String)
    /// A memory file (or, when writing, a memory buffer) does not hold exactly the bytes
    /// its record needs: its RAM region's, or in a diff its pages'.
    case memorySize(file: String, expected: UInt64, actual: UInt64)

    /// The one-line message. Names and paths come from the files too, so they are flattened
    /// like the reasons.
    /// - Complexity: O(n) in the length of the names, paths and reasons.
    package var description: String {
        switch self {
        case .exists(let path):
            "snapshot directory \(Self.quoted(path)) already exists"
        case .partialExists(let path):
            "\(Self.quoted(path + SnapshotFileNames.partialSuffix)) exists (an unfinished snapshot, or one a crash left); remove it first"
        case .notFound(let file):
            "\(Self.oneLine(file)): not found"
        case .unreadable(let file, let error):
            "\(Self.oneLine(file)): cannot read: \(error)"
        case .unwritable(let file, let error):
            "\(Self.oneLine(file)): cannot write: \(error)"
        case .manifestMismatch(let file, let what):
            "\(Self.oneLine(file)): does not match manifest.json: \(Self.oneLine(what))"
        case .unknownVersion(let version):
            "snapshot format version \(version); this minivmm reads \(SnapshotHeader.currentVersion)"
        case .wrongFormat(let name):
            "snapshot.json: header.format: \(Self.quoted(name)) is not \(Self.quoted(SnapshotHeader.formatName))"
        case .invalid(let file, let fieldPath, let reason):
            fieldPath.isEmpty
                ? "\(Self.oneLine(file)): \(Self.oneLine(reason))"
                : "\(Self.oneLine(file)): \(Self.oneLine(fieldPath)): \(Self.oneLine(reason))"
        case .memorySize(let file, let expected, let actual):
            "\(Self.oneLine(file)): holds \(actual) bytes instead of \(expected)"
        }
    }

    /// `text` on one line, at most 200 characters, control characters as spaces: reasons
    /// can quote decoder messages or file content, which may hold newlines, terminal escape
    /// sequences or be arbitrarily long.
    /// - Complexity: O(n) in `text`'s length.
    static func oneLine(_ text: String) -> String {
        let flat = String(text.map { character in
            character.unicodeScalars.contains { $0.properties.generalCategory == .control } ? " " : character
        })
        return flat.count <= 200 ? flat : String(flat.prefix(199)) + "…"
    }

    /// `text` in single quotes, on one line and bounded (it comes from the file).
    /// - Complexity: O(n) in `text`'s length.
    static func quoted(_ text: String) -> String {
        "'\(oneLine(text))'"
    }
}
