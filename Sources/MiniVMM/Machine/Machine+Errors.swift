import KVM

extension Machine {
    /// Runs `body`, mapping a ``ResourceError`` to its exit status.
    static func resource<T>(_ body: () throws(ResourceError) -> T) throws(MinivmmError) -> T {
        do {
            return try body()
        } catch {
            throw ErrorMapping.map(error)
        }
    }

    /// Runs `body`, mapping a ``KVMError`` to its exit status.
    static func kvm<T>(_ step: String, _ body: () throws(KVMError) -> T) throws(MinivmmError) -> T {
        do {
            return try body()
        } catch {
            throw ErrorMapping.map(error, step: step)
        }
    }
}
