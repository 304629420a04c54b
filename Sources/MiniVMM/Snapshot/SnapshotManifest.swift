import Crypto

/// `manifest.json`: the name, size and SHA-256 of every other file of a snapshot directory.
///
/// Written last, so a directory with a manifest had every file complete when the manifest
/// was written; read first, so nothing of the state file is decoded before its digest
/// matched. Format (`files` ascending by name):
/// ```json
/// {"files": [{"name": "memory-0.bin", "sha256": "<64 lowercase hex digits>", "size": 134217728},
///            {"name": "snapshot.json", "sha256": "...", "size": 5210}]}
/// ```
/// Decoding accepts only names a snapshot directory can hold (``SnapshotFileNames``), each
/// once, and well-formed digests.
package struct SnapshotManifest: Codable, Hashable, Sendable {
    /// One file.
    package struct Entry: Codable, Hashable, Sendable {
        /// Its name in the snapshot directory.
        package var name: String
        /// Its size in bytes.
        package var size: UInt64
        /// Its SHA-256, 64 lowercase hex digits.
        package var sha256: String

        /// An entry for `name` with `size` bytes and `digest`.
        package init(name: String, size: UInt64, digest: SHA256.Digest) {
            self.name = name
            self.size = size
            self.sha256 = Self.hex(digest)
        }

        /// The entry of a file `name` that holds `contents`.
        /// - Complexity: O(n) in `contents.count`.
        package init(name: String, contents: [UInt8]) {
            self.init(name: name, size: UInt64(contents.count), digest: SHA256.hash(data: contents))
        }

        /// Decodes an entry, refusing a name no snapshot file can have and a malformed digest.
        /// - Complexity: O(n) in the name's length.
        package init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decode(String.self, forKey: .name)
            size = try container.decode(UInt64.self, forKey: .size)
            sha256 = try container.decode(String.self, forKey: .sha256)
            if name != SnapshotFileNames.state, let problem = SnapshotFileNames.problem(withMemoryFileName: name) {
                throw DecodingError.dataCorruptedError(forKey: .name, in: container, debugDescription: problem)
            }
            guard sha256.utf8.count == 64, sha256.utf8.allSatisfy(Self.isLowercaseHexDigit) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .sha256, in: container, debugDescription: "not 64 lowercase hex digits")
            }
        }

        /// `digest` as lowercase hex, the form the manifest stores.
        /// - Complexity: O(32).
        package static func hex(_ digest: SHA256.Digest) -> String {
            let digits = Array("0123456789abcdef".utf8)
            var text: [UInt8] = []
            text.reserveCapacity(2 * SHA256.byteCount)
            for byte in digest {
                text.append(digits[Int(byte >> 4)])
                text.append(digits[Int(byte & 0xF)])
            }
            return String(decoding: text, as: UTF8.self)
        }

        private static func isLowercaseHexDigit(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
        }
    }

    /// Every file but the manifest, ascending by name.
    package var files: [Entry]

    /// A manifest of `files`, sorted by name.
    /// - Complexity: O(n log n).
    package init(files: [Entry]) {
        self.files = files.sorted { $0.name < $1.name }
    }

    enum CodingKeys: String, CodingKey { case files }

    /// Decodes a manifest, refusing one that lists a file twice.
    /// - Complexity: O(n) in the number of entries (and their names' lengths).
    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        files = try container.decode([Entry].self, forKey: .files)
        var seen: Set<String> = []
        for entry in files where !seen.insert(entry.name).inserted {
            throw DecodingError.dataCorruptedError(
                forKey: .files, in: container, debugDescription: "\(SnapshotError.quoted(entry.name)) is listed twice")
        }
    }

    /// The entry for `name`, if the manifest lists it.
    /// - Complexity: O(n).
    package func entry(named name: String) -> Entry? {
        files.first { $0.name == name }
    }
}
