/// What the control API may ask of a running machine; ``Machine`` provides it through its
/// controller, tests through a fake. Every method is safe from any thread and never sees a
/// half-applied change.
package protocol VMControl: AnyObject, Sendable {
    /// `GET /vm`.
    func vmInfo() -> VMInfo
    /// `GET /resources`.
    func resourcesInfo() -> ResourcesInfo
    /// `GET /devices` (also what `GET /devices/{id}` looks in).
    func devices() -> [DeviceInfo]
    /// `PATCH /vm`: pause (every vCPU out of `KVM_RUN` and held, device timers frozen with
    /// their remaining time) or resume. Setting the state it already has changes nothing.
    func setState(_ state: VMRunState) throws(ControlError)
    /// `PUT /devices/{id}`: plugs in a device of `kind` named `id` while the guest runs
    /// (the vCPUs are paused for the change), all or nothing.
    func plugDevice(id: String, kind: DeviceKind) throws(ControlError) -> DeviceInfo
    /// `DELETE /devices/{id}`: removes the device. If the guest enabled hot-plug
    /// notifications, it is marked removing and freed when the guest ejects it
    /// (``Unplugged/removing(_:)``); otherwise it goes at once and everything it held is
    /// free (``Unplugged/removed``). COM1, the exit port and the hot-plug controller cannot
    /// be removed.
    func unplugDevice(id: String) throws(ControlError) -> Unplugged<DeviceInfo>
    /// `GET /memory` (also what `GET /memory/{id}` looks in): every RAM region.
    func memoryRegions() -> [MemoryRegionInfo]
    /// `PUT /memory/{id}`: plugs in `size` bytes of RAM named `id` while the guest runs,
    /// all or nothing.
    func plugMemory(id: String, size: UInt64) throws(ControlError) -> MemoryRegionInfo
    /// `DELETE /memory/{id}`: removes hot-plugged RAM, two-phase like a device. Boot RAM
    /// cannot be removed.
    func unplugMemory(id: String) throws(ControlError) -> Unplugged<MemoryRegionInfo>
    /// `PUT /snapshot/create`: writes a snapshot of the paused VM to the directory `path`,
    /// which must not exist; the VM stays paused. A diff holds only the RAM pages written
    /// since the previous snapshot of this VM, which it names as its parent.
    func createSnapshot(path: String, kind: SnapshotKind) throws(ControlError)
}

/// What a removal did.
package enum Unplugged<Info: Hashable & Sendable>: Hashable, Sendable {
    /// Gone at once, every resource free (204).
    case removed
    /// Marked removing; the guest was told and frees it by ejecting it (202, with its state).
    case removing(Info)
}

/// Device and memory-region ids of the control API: 1 to 32 characters of `[a-z0-9_-]`.
package enum DeviceID {
    /// Whether `id` is a valid device id.
    package static func isValid(_ id: String) -> Bool {
        (1...32).contains(id.utf8.count)
            && id.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F || $0 == 0x2D }
    }
}

/// Why a control request was refused; the API maps each case to its HTTP status.
package enum ControlError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The request is malformed or a value is bad (400).
    case invalid(String)
    /// No such device or region (404).
    case notFound(String)
    /// The id is in use, resources are exhausted, or the VM is in the wrong state (409).
    case conflict(String)
    /// minivmm failed (500).
    case internalFailure(String)

    /// The sentence for `fault_message`: what to change.
    package var description: String {
        switch self {
        case .invalid(let text), .notFound(let text), .conflict(let text), .internalFailure(let text): text
        }
    }
}
