import CKVM
import Glibc
import SystemPackage

/// Anonymous, private, zero-filled host memory for guest RAM, mapped with MAP_NORESERVE
/// so a large guest costs nothing until the guest touches its pages. Unmapped in deinit.
///
/// The mapping must outlive every KVM memory slot that points into it. It is `Sendable`
/// because its address and size never change; the bytes themselves are shared with the
/// guest and the caller synchronises access to them.
public final class GuestMemoryMapping: @unchecked Sendable {
    /// The host address of the first byte.
    public let baseAddress: UnsafeMutableRawPointer
    /// The size in bytes (a multiple of the page size).
    public let size: Int

    /// Maps `size` bytes (rounded up to whole pages).
    ///
    /// - Throws: ``KVMError/failed(operation:errno:)`` with operation `"mmap"`, or
    ///   `EINVAL` for a size of 0 or one that overflows when rounded up.
    public init(size: Int) throws(KVMError) {
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard size > 0, size <= Int.max - pageSize else {
            throw .failed(operation: "mmap", errno: .invalidArgument)
        }
        let rounded = (size + pageSize - 1) / pageSize * pageSize
        let address = mmap(nil, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let address, address != MAP_FAILED else { throw lastError("mmap") }
        baseAddress = address
        self.size = rounded
    }

    /// Maps the first `size` bytes of the file open at `descriptor` copy-on-write
    /// (`MAP_PRIVATE`): the guest sees the file's bytes, pages are read in only when
    /// touched, and writes stay in this process. The descriptor may be closed afterwards.
    ///
    /// - Throws: ``KVMError/failed(operation:errno:)`` with operation `"mmap"`, or
    ///   `EINVAL` for a size of 0 or one that is not a whole number of pages.
    public init(copyOnWriteOf descriptor: Int32, size: Int) throws(KVMError) {
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard size > 0, size % pageSize == 0 else { throw .failed(operation: "mmap", errno: .invalidArgument) }
        let address = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, descriptor, 0)
        guard let address, address != MAP_FAILED else { throw lastError("mmap") }
        baseAddress = address
        self.size = size
    }

    deinit {
        munmap(baseAddress, size)
    }

    /// The whole mapping as a buffer.
    public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: baseAddress, count: size)
    }
}
