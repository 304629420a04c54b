#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The coding of `snapshot.json`: ``SnapshotState`` as JSON, read header first.
///
/// Reading checks, in this order, each only once the one before passed: the header's
/// `format`, then its `format_version`, then the whole header, then the whole file. So a
/// file of another format or of a later version is reported as such however the rest of
/// it looks, even if a later version changed every other field, header included.
package enum SnapshotStateFile {
    /// `state` as the bytes of `snapshot.json`.
    /// - Throws: ``SnapshotError/invalid(file:fieldPath:reason:)`` if a value cannot be
    ///   encoded.
    /// - Complexity: O(n) in the encoded size.
    package static func encode(_ state: SnapshotState) throws(SnapshotError) -> [UInt8] {
        try SnapshotJSON.encode(state, file: SnapshotFileNames.state)
    }

    /// Decodes the content of `snapshot.json`; never traps, whatever the bytes.
    /// - Throws: ``SnapshotError/wrongFormat(_:)``, ``SnapshotError/unknownVersion(_:)``,
    ///   or ``SnapshotError/invalid(file:fieldPath:reason:)`` naming the first field the
    ///   model refused.
    /// - Complexity: O(n) in `data.count` for each of the four passes, plus the model's
    ///   validation (O(n) in the allocators' sizes).
    package static func decode(_ data: Data) throws(SnapshotError) -> SnapshotState {
        let file = SnapshotFileNames.state
        let format = try SnapshotJSON.decode(FormatProbe.self, from: data, file: file).header.format
        guard format == SnapshotHeader.formatName else { throw .wrongFormat(format) }
        let version = try SnapshotJSON.decode(VersionProbe.self, from: data, file: file).header.formatVersion
        guard version == SnapshotHeader.currentVersion else { throw .unknownVersion(version) }
        _ = try SnapshotJSON.decode(SnapshotHeaderOnly.self, from: data, file: file)
        return try SnapshotJSON.decode(SnapshotState.self, from: data, file: file)
    }

    /// Just `header.format`: the one field every version has in the same place.
    private struct FormatProbe: Decodable {
        struct Header: Decodable {
            var format: String
        }

        var header: Header
    }

    /// Just `header.format_version`, the other one.
    private struct VersionProbe: Decodable {
        struct Header: Decodable {
            var formatVersion: Int

            enum CodingKeys: String, CodingKey {
                case formatVersion = "format_version"
            }
        }

        var header: Header
    }
}
