import Glibc
import Logging

/// minivmm's one style for stderr, as a swift-log handler:
///
///     minivmm: error: cannot open guest image 'x.bin': no such file
///     minivmm: warning: unclaimed port read at 0x2f0 (1 bytes): ...
///
/// One line per message, no timestamp. At `--log-level debug` or lower, each line also
/// carries the time, the source module and the metadata:
///
///     minivmm: 2026-12-04T15:03:01.123456Z debug [MiniVMM]: opened /dev/kvm: ...
///
/// A multi-line message (the crash register dump) keeps its first line after the prefix and
/// indents the following ones by two spaces. Lines go through a ``ConsoleWriter`` on stderr,
/// so a blocked stderr cannot hold minivmm past its stop latch.
package struct StandardErrorLogHandler: LogHandler {
    /// Where the lines go.
    private let writer: ConsoleWriter

    /// Messages below this level are not logged.
    package var logLevel: Logger.Level
    /// Metadata added to every message of this handler.
    package var metadata: Logger.Metadata = [:]
    /// Adds contextual metadata to every message.
    package var metadataProvider: Logger.MetadataProvider?

    /// A handler writing to `writer` (stderr) at `logLevel` and above.
    package init(writer: ConsoleWriter, logLevel: Logger.Level) {
        self.writer = writer
        self.logLevel = logLevel
    }

    /// One metadata value.
    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Formats `event` and writes it in one write.
    package func log(event: LogEvent) {
        let text: String
        if logLevel <= .debug {
            var merged = metadata
            if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
            if let own = event.metadata { merged.merge(own) { _, new in new } }
            let details = merged.isEmpty
                ? ""
                : " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            text = Self.format(
                "\(event.message)",
                prefix: "minivmm: \(Self.timestamp()) \(event.level.rawValue) [\(event.source)]\(details): ")
        } else {
            text = Self.line(event.level, "\(event.message)")
        }
        Array(text.utf8).withUnsafeBytes { writer.write($0) }
    }

    /// The plain line for a `level` message, newline included: `minivmm: LEVEL: message`,
    /// with continuation lines indented. Also used for command-line errors.
    package static func line(_ level: Logger.Level, _ message: String) -> String {
        format(message, prefix: "minivmm: \(level.rawValue): ")
    }

    /// `prefix` plus `message`, every line after the first indented by two spaces, ending
    /// in exactly one newline.
    static func format(_ message: String, prefix: String) -> String {
        var lines = message.split(separator: "\n", omittingEmptySubsequences: false)
        while lines.count > 1, lines.last?.isEmpty == true { lines.removeLast() }
        var text = prefix + (lines.first.map(String.init) ?? "")
        for line in lines.dropFirst() {
            text += "\n  " + line
        }
        return text + "\n"
    }

    /// The current UTC time with microseconds, ISO 8601.
    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let micros = String(now.tv_nsec / 1000)
        let fraction = String(repeating: "0", count: max(0, 6 - micros.count)) + micros
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(fraction)Z"
    }
}
