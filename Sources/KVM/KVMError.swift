import CKVM
import SystemPackage

/// Why a KVM operation failed.
///
/// The opening failures are separate cases so a monitor can tell the user what to fix;
/// every other failure is ``failed(operation:errno:)``, naming the operation (usually the
/// ioctl) and carrying the errno the kernel returned.
public enum KVMError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The device path does not exist (ENOENT): KVM is not available on this host.
    case deviceNotFound(path: String)
    /// The device exists but may not be opened read-write (EACCES or EPERM).
    case permissionDenied(path: String)
    /// The path opened, but it is not a KVM device (KVM_GET_API_VERSION failed, e.g. ENOTTY).
    case notKVMDevice(path: String)
    /// Opening the device failed for another reason (e.g. ENXIO: the kvm module is not loaded).
    case deviceUnavailable(path: String, errno: Errno)
    /// The device speaks a KVM API version other than the stable version 12.
    case unsupportedAPIVersion(path: String, found: Int32)
    /// The host's KVM lacks a capability the caller requires.
    case missingCapability(KVMCapability)
    /// A system call or ioctl failed; `operation` names it (e.g. `"KVM_CREATE_VM"`).
    case failed(operation: String, errno: Errno)

    /// The errno behind this error, where there is one.
    public var errno: Errno? {
        switch self {
        case .deviceNotFound: .noSuchFileOrDirectory
        case .permissionDenied: .permissionDenied
        case .notKVMDevice, .unsupportedAPIVersion, .missingCapability: nil
        case .deviceUnavailable(_, let errno), .failed(_, let errno): errno
        }
    }

    /// The operation that failed.
    public var operation: String {
        switch self {
        case .deviceNotFound, .permissionDenied, .deviceUnavailable: "open"
        case .notKVMDevice, .unsupportedAPIVersion: "KVM_GET_API_VERSION"
        case .missingCapability: "KVM_CHECK_EXTENSION"
        case .failed(let operation, _): operation
        }
    }

    /// Whether this error means KVM itself is unusable on this host (as opposed to a
    /// failure while using a working KVM): a monitor reports these as an environment problem.
    public var meansKVMUnusable: Bool {
        switch self {
        case .deviceNotFound, .permissionDenied, .notKVMDevice, .deviceUnavailable,
            .unsupportedAPIVersion, .missingCapability:
            true
        case .failed:
            false
        }
    }

    /// A one-line explanation that says what to fix.
    public var description: String {
        switch self {
        case .deviceNotFound(let path):
            "\(path) does not exist: KVM is not available (enable virtualisation and load the kvm module)"
        case .permissionDenied(let path):
            "permission denied opening \(path): make the device readable and writable "
                + "for this user (e.g. add the user to the kvm group)"
        case .notKVMDevice(let path):
            "\(path) is not a KVM device (KVM_GET_API_VERSION failed)"
        case .deviceUnavailable(let path, let errno):
            "cannot open \(path): \(errno) (is the kvm module loaded?)"
        case .unsupportedAPIVersion(let path, let found):
            "\(path) speaks KVM API version \(found), but version \(Kvm.requiredAPIVersion) is required"
        case .missingCapability(let capability):
            "KVM lacks the required capability \(capability)"
        case .failed(let operation, let errno):
            "\(operation) failed: \(errno)"
        }
    }
}

/// Reads the calling thread's errno and wraps it in a ``KVMError/failed(operation:errno:)``.
@inline(__always)
func lastError(_ operation: String) -> KVMError {
    .failed(operation: operation, errno: Errno(rawValue: ckvm_errno()))
}

/// Issues the ioctl `request` on `fileDescriptor` with a pointer to `argument`, and throws
/// the errno as a ``KVMError/failed(operation:errno:)`` named `operation` if it fails.
@inline(__always)
func ioctl<Argument>(
    _ fileDescriptor: Int32, _ request: UInt, _ operation: String, _ argument: inout Argument
) throws(KVMError) {
    let result = withUnsafeMutablePointer(to: &argument) {
        ckvm_ioctl_pointer(fileDescriptor, request, $0)
    }
    guard result == 0 else { throw lastError(operation) }
}
