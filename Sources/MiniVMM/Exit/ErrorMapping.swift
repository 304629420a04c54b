import KVM

/// Maps the typed errors of the lower layers to ``MinivmmError``s with their exit status.
public enum ErrorMapping {
    /// A resource-layout failure: the user asked for something the machine cannot hold
    /// (64), or an internal inconsistency (70).
    public static func map(_ error: ResourceError) -> MinivmmError {
        switch error {
        case .reservedRangeTaken: MinivmmError(.internalError, error.description)
        case .outOfMemorySlots: MinivmmError(.kvmUnavailable, error.description)
        default: MinivmmError(.usage, error.description)
        }
    }

    /// A KVM failure during `step`: KVM itself unusable (69), otherwise the host refused
    /// an operation (71).
    public static func map(_ error: KVMError, step: String) -> MinivmmError {
        if error.meansKVMUnusable {
            return MinivmmError(.kvmUnavailable, "KVM unusable: \(error.description)")
        }
        return MinivmmError(.hostFailure, "\(step): \(error.description)")
    }
}
