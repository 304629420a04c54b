import CKVM
import Glibc
import SystemPackage

/// An eventfd(2) counter, used to raise guest interrupts through
/// ``VirtualMachine/registerIRQFD(_:gsi:)`` (each ``signal()`` is one edge).
///
/// The descriptor is immutable and eventfd reads and writes are atomic in the kernel, so
/// an `EventFD` may be shared between threads.
public final class EventFD: Sendable {
    /// The eventfd descriptor, owned by this object.
    public let fileDescriptor: Int32

    /// Creates an eventfd with counter 0 (close-on-exec; non-blocking if `nonBlocking`).
    public init(nonBlocking: Bool = false) throws(KVMError) {
        let flags = EFD_CLOEXEC | (nonBlocking ? EFD_NONBLOCK : 0)
        let descriptor = eventfd(0, Int32(flags))
        guard descriptor >= 0 else { throw lastError("eventfd") }
        fileDescriptor = descriptor
    }

    deinit {
        close(fileDescriptor)
    }

    /// Adds 1 to the counter, waking a reader (or, when registered as an irqfd, injecting
    /// the interrupt).
    public func signal() throws(KVMError) {
        try add(1)
    }

    /// Adds `value` to the counter.
    public func add(_ value: UInt64) throws(KVMError) {
        var value = value
        while true {
            let written = write(fileDescriptor, &value, MemoryLayout<UInt64>.size)
            if written == MemoryLayout<UInt64>.size { return }
            let errno = Errno(rawValue: ckvm_errno())
            if written < 0 && errno == .interrupted { continue }
            throw .failed(operation: "eventfd write", errno: written < 0 ? errno : .ioError)
        }
    }

    /// Reads and resets the counter. Blocks while it is 0, unless the eventfd is
    /// non-blocking, in which case it returns 0.
    public func read() throws(KVMError) -> UInt64 {
        var value: UInt64 = 0
        while true {
            let count = Glibc.read(fileDescriptor, &value, MemoryLayout<UInt64>.size)
            if count == MemoryLayout<UInt64>.size { return value }
            let errno = Errno(rawValue: ckvm_errno())
            if count < 0 && errno == .interrupted { continue }
            if count < 0 && errno == .wouldBlock { return 0 }
            throw .failed(operation: "eventfd read", errno: count < 0 ? errno : .ioError)
        }
    }
}
