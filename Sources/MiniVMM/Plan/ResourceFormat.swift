/// Text formatting shared by resource messages, the `--describe` map and the logs' timings. Foundation-free so
/// the output is identical on every platform.
package enum ResourceFormat {
    /// `value` in lower-case hexadecimal with `0x`, zero-padded to `digits` digits.
    package static func hex(_ value: UInt64, digits: Int = 0) -> String {
        let text = String(value, radix: 16)
        let padding = max(0, digits - text.count)
        return "0x" + String(repeating: "0", count: padding) + text
    }

    /// `start-end` in hexadecimal, both padded to the same width.
    package static func hexRange(_ start: UInt64, _ end: UInt64, digits: Int = 0) -> String {
        hex(start, digits: digits) + "-" + hex(end, digits: digits)
    }

    /// A byte count in the largest binary unit that divides it exactly ("4 KiB", "3 GiB",
    /// "1536 MiB", "17 bytes").
    package static func size(_ bytes: UInt64) -> String {
        let units: [(shift: UInt64, name: String)] = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")]
        for unit in units where bytes >= 1 << unit.shift && bytes % (1 << unit.shift) == 0 {
            return "\(bytes >> unit.shift) \(unit.name)"
        }
        return bytes == 1 ? "1 byte" : "\(bytes) bytes"
    }

    /// `duration` in milliseconds with one decimal, e.g. "5.7".
    package static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let tenths = seconds * 10_000 + attoseconds / 100_000_000_000_000
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// Lays out `rows` as left-aligned columns separated by two spaces, each line indented
    /// by two spaces and without trailing blanks.
    ///
    /// - Complexity: O(total characters).
    package static func table(_ rows: [[String]]) -> [String] {
        let columns = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        return rows.map { row in
            var line = " "
            for (index, cell) in row.enumerated() {
                line += " " + cell
                if index < row.count - 1 {
                    line += String(repeating: " ", count: widths[index] - cell.count + 1)
                }
            }
            return line
        }
    }
}
