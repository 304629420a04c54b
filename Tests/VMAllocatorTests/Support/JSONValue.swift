import Foundation

/// A generic JSON tree, so tests can take an allocator's snapshot apart and corrupt it
/// without depending on more of the format than they must. Numbers keep full UInt64
/// precision (JSONSerialization would round large ones through Double).
indirect enum JSONValue: Codable, Equatable, CustomStringConvertible {
    case object([String: JSONValue])
    case array([JSONValue])
    case unsigned(UInt64)
    case signed(Int64)
    case double(Double)
    case string(String)
    case bool(Bool)
    case null

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        if let keyed = try? decoder.container(keyedBy: Key.self) {
            var members: [String: JSONValue] = [:]
            for key in keyed.allKeys { members[key.stringValue] = try keyed.decode(JSONValue.self, forKey: key) }
            self = .object(members)
        } else if var list = try? decoder.unkeyedContainer() {
            var items: [JSONValue] = []
            while !list.isAtEnd { items.append(try list.decode(JSONValue.self)) }
            self = .array(items)
        } else {
            let single = try decoder.singleValueContainer()
            if single.decodeNil() {
                self = .null
            } else if let b = try? single.decode(Bool.self) {
                self = .bool(b)
            } else if let u = try? single.decode(UInt64.self) {
                self = .unsigned(u)
            } else if let i = try? single.decode(Int64.self) {
                self = .signed(i)
            } else if let d = try? single.decode(Double.self) {
                self = .double(d)
            } else {
                self = .string(try single.decode(String.self))
            }
        }
    }

    func encode(to encoder: any Encoder) throws {
        switch self {
        case .object(let members):
            var keyed = encoder.container(keyedBy: Key.self)
            for (k, v) in members { try keyed.encode(v, forKey: Key(stringValue: k)) }
        case .array(let items):
            var list = encoder.unkeyedContainer()
            for v in items { try list.encode(v) }
        case .unsigned(let u): var c = encoder.singleValueContainer(); try c.encode(u)
        case .signed(let i): var c = encoder.singleValueContainer(); try c.encode(i)
        case .double(let d): var c = encoder.singleValueContainer(); try c.encode(d)
        case .string(let s): var c = encoder.singleValueContainer(); try c.encode(s)
        case .bool(let b): var c = encoder.singleValueContainer(); try c.encode(b)
        case .null: var c = encoder.singleValueContainer(); try c.encodeNil()
        }
    }

    var description: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "<unencodable>"
    }

    static func of<T: Encodable>(_ value: T) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: JSONEncoder().encode(self))
    }

    subscript(key: String) -> JSONValue? {
        get { if case .object(let m) = self { m[key] } else { nil } }
        set {
            guard case .object(var m) = self else { return }
            m[key] = newValue
            self = .object(m)
        }
    }

    var items: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    var uint: UInt64? { if case .unsigned(let u) = self { u } else { nil } }

    /// Every path to a leaf or container, for systematic mutation.
    enum Step: Hashable, CustomStringConvertible {
        case key(String), index(Int)
        var description: String {
            switch self {
            case .key(let k): ".\(k)"
            case .index(let i): "[\(i)]"
            }
        }
    }

    func allPaths(prefix: [Step] = []) -> [[Step]] {
        var paths = [prefix]
        switch self {
        case .object(let m):
            for k in m.keys.sorted() { paths += m[k]!.allPaths(prefix: prefix + [.key(k)]) }
        case .array(let a):
            for (i, v) in a.enumerated() { paths += v.allPaths(prefix: prefix + [.index(i)]) }
        default: break
        }
        return paths
    }

    subscript(path path: ArraySlice<Step>) -> JSONValue? {
        get {
            guard let first = path.first else { return self }
            switch (self, first) {
            case (.object(let m), .key(let k)): return m[k]?[path: path.dropFirst()]
            case (.array(let a), .index(let i)) where a.indices.contains(i): return a[i][path: path.dropFirst()]
            default: return nil
            }
        }
        set {
            guard let first = path.first else {
                self = newValue ?? .null
                return
            }
            switch (self, first) {
            case (.object(var m), .key(let k)):
                if path.count == 1 {
                    m[k] = newValue
                } else {
                    var child = m[k] ?? .null
                    child[path: path.dropFirst()] = newValue
                    m[k] = child
                }
                self = .object(m)
            case (.array(var a), .index(let i)) where a.indices.contains(i):
                if path.count == 1, newValue == nil {
                    a.remove(at: i)
                } else {
                    a[i][path: path.dropFirst()] = newValue
                }
                self = .array(a)
            default:
                break
            }
        }
    }
}
