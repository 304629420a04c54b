/// Systematic single-point corruptions of a JSON snapshot: delete each key or element,
/// replace each number by nearby and extreme values and by other JSON types, and reorder,
/// duplicate or empty each array.
enum SnapshotMutations {
    static func all(of snapshot: JSONValue) -> [JSONValue] {
        snapshot.allPaths().flatMap { mutations(of: snapshot, at: $0) }
    }

    static func mutations(of value: JSONValue, at path: [JSONValue.Step]) -> [JSONValue] {
        let slice = path[...]
        guard let target = value[path: slice] else { return [] }
        var out: [JSONValue] = []
        func with(_ replacement: JSONValue?) {
            var copy = value
            copy[path: slice] = replacement
            out.append(copy)
        }
        if !path.isEmpty { with(nil) }  // delete the key or element
        switch target {
        case .unsigned(let u):
            let candidates: [UInt64] = [0, 1, 2, u &- 1, u &+ 1, u / 2, u &* 2,
                                        UInt64(UInt32.max) - 1, UInt64(UInt32.max), UInt64(UInt32.max) + 1,
                                        .max - 1, .max]
            for v in Set(candidates) where v != u { with(.unsigned(v)) }
            with(.signed(-1))
            with(.string(String(u)))
            with(.double(Double(u) + 0.5))
            with(.bool(true))
            with(.null)
        case .array(let items):
            if items.count > 1 {
                with(.array(items.reversed()))
                with(.array([items[items.count - 1]] + items.dropLast()))
            }
            if let first = items.first {
                with(.array(items + [first]))
                with(.array([first] + items))
            }
            with(.array([]))
            with(.object([:]))
        case .object:
            with(.array([]))
        default:
            with(.unsigned(0))
        }
        return out
    }
}
