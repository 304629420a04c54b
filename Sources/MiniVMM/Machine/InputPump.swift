import Dispatch
import Glibc

/// Feeds a file descriptor (minivmm's stdin) to COM1 on a background thread, so a guest
/// can read what the user types or what a script pipes in.
///
/// The reader stops at end of file or on a read error. It pauses while more than
/// ``backlogLimit`` bytes wait for the guest, so a huge pipe cannot fill host memory.
final class InputPump: Sendable {
    /// How many unread bytes the UART may hold before the pump waits.
    static let backlogLimit = 1 << 20
    private let fileDescriptor: Int32
    private let serial: Serial16550

    init(fileDescriptor: Int32 = STDIN_FILENO, serial: Serial16550) {
        self.fileDescriptor = fileDescriptor
        self.serial = serial
    }

    /// Starts the reader thread.
    func start() {
        let thread = DispatchQueue(label: "minivmm.stdin")
        thread.async { [self] in pump() }
    }

    private func pump() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            while serial.pendingInputCount > Self.backlogLimit {
                usleep(1000)
            }
            let count = buffer.withUnsafeMutableBytes { read(fileDescriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return }
            serial.receive(buffer[0..<count])
        }
    }
}
