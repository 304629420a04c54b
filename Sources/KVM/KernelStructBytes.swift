import CKVM

// Saved state travels as the raw bytes of the kernel's structures, so that a snapshot keeps
// every field KVM reports, including ones this module does not name. These helpers are the
// only places where those bytes meet a pointer: each checks the length first, so a blob of
// the wrong size is an error, never an out-of-bounds read or write by Swift or the kernel.

/// The bytes of `value`, a kernel structure (a C struct: plain bytes, no references), in
/// memory order.
///
/// - Complexity: O(n) in the size of `T`.
func kernelBytes<T>(of value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
}

/// `bytes` copied over `zero`, a zero-initialised kernel structure (a C struct), or nil
/// unless there are exactly `MemoryLayout<T>.size` bytes. (Imported C structs containing
/// unions are not `BitwiseCopyable`, hence the value to copy into instead of a load.)
///
/// - Complexity: O(n) in the size of `T`.
func decodeKernelStruct<T>(_ bytes: [UInt8], into zero: T) -> T? {
    guard bytes.count == MemoryLayout<T>.size else { return nil }
    var value = zero
    withUnsafeMutableBytes(of: &value) { destination in
        bytes.withUnsafeBytes { destination.copyMemory(from: $0) }
    }
    return value
}

/// Issues `request` on `fileDescriptor` with a pointer to `buffer`'s storage and throws
/// the errno as a ``KVMError/failed(operation:errno:)`` named `operation`.
///
/// The caller guarantees `buffer.count` is at least what the kernel reads or writes for
/// `request`; every call site sizes it from the structure's `MemoryLayout` or from a size
/// KVM reported. An empty buffer would hand the kernel a null pointer, so it is refused.
///
/// - Complexity: O(1) besides the ioctl.
func ioctl(
    _ fileDescriptor: Int32, _ request: UInt, _ operation: String, buffer: inout [UInt8]
) throws(KVMError) {
    guard !buffer.isEmpty else { throw .failed(operation: operation, errno: .invalidArgument) }
    let result = buffer.withUnsafeMutableBytes {
        ckvm_ioctl_pointer(fileDescriptor, request, $0.baseAddress)
    }
    guard result == 0 else { throw lastError(operation) }
}

/// A zero-filled buffer of `size` bytes filled by the "get" ioctl `request`.
///
/// - Complexity: O(n) in `size`.
func getKernelBytes(
    _ fileDescriptor: Int32, _ request: UInt, _ operation: String, size: Int
) throws(KVMError) -> [UInt8] {
    var buffer = [UInt8](repeating: 0, count: size)
    try ioctl(fileDescriptor, request, operation, buffer: &buffer)
    return buffer
}

/// The error for a saved blob whose length does not match what the kernel expects: it is
/// raised before any ioctl, so nothing has been restored when it is thrown.
func blobSizeError(_ name: String, actual: Int, expected: Int) -> KVMError {
    .failed(operation: "validate \(name) (\(actual) bytes, expected \(expected))", errno: .invalidArgument)
}
