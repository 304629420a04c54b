#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The JSON coding of a snapshot directory's files, and the translation of coding errors
/// into ``SnapshotError/invalid(file:fieldPath:reason:)`` with the path to the offending
/// value.
enum SnapshotJSON {
    /// `value` as sorted, pretty-printed JSON: stable across runs, so two snapshots of the
    /// same state differ only where their values do, and readable with a pager.
    /// - Throws: ``SnapshotError/invalid(file:fieldPath:reason:)`` naming `file` if a value
    ///   cannot be encoded.
    /// - Complexity: O(n) in the encoded size.
    static func encode(_ value: some Encodable, file: String) throws(SnapshotError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value))
        } catch let error as EncodingError {
            switch error {
            case .invalidValue(_, let context):
                throw .invalid(file: file, fieldPath: fieldPath(context.codingPath), reason: context.debugDescription)
            @unknown default:
                throw .invalid(file: file, fieldPath: "", reason: String(describing: error))
            }
        } catch {
            throw .invalid(file: file, fieldPath: "", reason: String(describing: error))
        }
    }

    /// Decodes `type` from `data`, the content of `file`.
    /// - Throws: ``SnapshotError/invalid(file:fieldPath:reason:)`` naming `file` and the
    ///   path of the first value the decoder refused, for any malformed input.
    /// - Complexity: O(n) in `data.count` plus whatever `type`'s decoder validates.
    static func decode<T: Decodable>(_ type: T.Type, from data: Data, file: String) throws(SnapshotError) -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let error as DecodingError {
            throw invalid(file: file, error)
        } catch {
            // Decoders inside the model throw only DecodingError; keep the type total anyway.
            throw .invalid(file: file, fieldPath: "", reason: String(describing: error))
        }
    }

    /// The ``SnapshotError`` for `error`, raised while decoding `file`.
    static func invalid(file: String, _ error: DecodingError) -> SnapshotError {
        switch error {
        case .keyNotFound(let key, let context):
            return .invalid(file: file, fieldPath: fieldPath(context.codingPath + [key]), reason: "missing")
        case .valueNotFound(let type, let context):
            return .invalid(file: file, fieldPath: fieldPath(context.codingPath), reason: "null, expected \(type)")
        case .typeMismatch(_, let context):
            return .invalid(file: file, fieldPath: fieldPath(context.codingPath), reason: context.debugDescription)
        case .dataCorrupted(let context):
            // Malformed JSON comes with an empty path and the parser's position in the
            // underlying error; model decoders give their reason in the description.
            var reason = context.debugDescription
            if let underlying = context.underlyingError { reason += " (\(underlying))" }
            return .invalid(file: file, fieldPath: fieldPath(context.codingPath), reason: reason)
        @unknown default:
            return .invalid(file: file, fieldPath: "", reason: String(describing: error))
        }
    }

    /// `codingPath` as a JSON path: keys joined by dots, array positions in brackets
    /// (`machine.devices[0].window`).
    /// - Complexity: O(n) in the path's length.
    static func fieldPath(_ codingPath: [any CodingKey]) -> String {
        var path = ""
        for key in codingPath {
            // Array positions are the decoder's "Index N" keys; a dictionary key that looks
            // like a number ("5") has an intValue too, but stays a key.
            if let index = key.intValue, key.stringValue == "Index \(index)" {
                path += "[\(index)]"
            } else {
                path += path.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return path
    }
}
