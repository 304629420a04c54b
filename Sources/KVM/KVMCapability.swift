import CKVM

/// A KVM capability (an extension) that `KVM_CHECK_EXTENSION` can query.
public struct KVMCapability: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The `KVM_CAP_*` number.
    public let rawValue: Int32

    /// Creates a capability from its `KVM_CAP_*` number.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// `KVM_CAP_IRQCHIP`: an in-kernel interrupt controller.
    public static let irqchip = Self(rawValue: KVM_CAP_IRQCHIP)
    /// `KVM_CAP_HLT`: HLT exits to user space.
    public static let hlt = Self(rawValue: KVM_CAP_HLT)
    /// `KVM_CAP_USER_MEMORY`: `KVM_SET_USER_MEMORY_REGION`.
    public static let userMemory = Self(rawValue: KVM_CAP_USER_MEMORY)
    /// `KVM_CAP_SET_TSS_ADDR`.
    public static let setTSSAddress = Self(rawValue: KVM_CAP_SET_TSS_ADDR)
    /// `KVM_CAP_SET_IDENTITY_MAP_ADDR`.
    public static let setIdentityMapAddress = Self(rawValue: KVM_CAP_SET_IDENTITY_MAP_ADDR)
    /// `KVM_CAP_NR_MEMSLOTS`: the check returns the number of memory slots per VM.
    public static let memorySlots = Self(rawValue: KVM_CAP_NR_MEMSLOTS)
    /// `KVM_CAP_NR_VCPUS`: the recommended maximum number of vCPUs.
    public static let vcpus = Self(rawValue: KVM_CAP_NR_VCPUS)
    /// `KVM_CAP_MAX_VCPUS`: the most vCPUs a VM may have.
    public static let maxVcpus = Self(rawValue: KVM_CAP_MAX_VCPUS)
    /// `KVM_CAP_PIT2`: the in-kernel 8254 PIT.
    public static let pit2 = Self(rawValue: KVM_CAP_PIT2)
    /// `KVM_CAP_IRQFD`: interrupts raised through an eventfd.
    public static let irqfd = Self(rawValue: KVM_CAP_IRQFD)
    /// `KVM_CAP_IOEVENTFD`.
    public static let ioeventfd = Self(rawValue: KVM_CAP_IOEVENTFD)
    /// `KVM_CAP_EXT_CPUID`: `KVM_GET_SUPPORTED_CPUID` and `KVM_SET_CPUID2`.
    public static let extendedCPUID = Self(rawValue: KVM_CAP_EXT_CPUID)
    /// `KVM_CAP_IMMEDIATE_EXIT`: `kvm_run.immediate_exit`, which makes kicks race-free.
    public static let immediateExit = Self(rawValue: KVM_CAP_IMMEDIATE_EXIT)
    /// `KVM_CAP_INTERNAL_ERROR_DATA`: internal-error exits carry extra words.
    public static let internalErrorData = Self(rawValue: KVM_CAP_INTERNAL_ERROR_DATA)

    /// The capabilities minivmm-style monitors need: user memory, an in-kernel irqchip
    /// and PIT, TSS and identity-map placement, irqfd, CPUID and immediate exit.
    public static let monitorEssentials: [KVMCapability] = [
        .userMemory, .irqchip, .pit2, .setTSSAddress, .setIdentityMapAddress, .irqfd,
        .extendedCPUID, .immediateExit,
    ]

    private static let names: [Int32: String] = [
        KVM_CAP_IRQCHIP: "KVM_CAP_IRQCHIP",
        KVM_CAP_HLT: "KVM_CAP_HLT",
        KVM_CAP_USER_MEMORY: "KVM_CAP_USER_MEMORY",
        KVM_CAP_SET_TSS_ADDR: "KVM_CAP_SET_TSS_ADDR",
        KVM_CAP_SET_IDENTITY_MAP_ADDR: "KVM_CAP_SET_IDENTITY_MAP_ADDR",
        KVM_CAP_NR_MEMSLOTS: "KVM_CAP_NR_MEMSLOTS",
        KVM_CAP_NR_VCPUS: "KVM_CAP_NR_VCPUS",
        KVM_CAP_MAX_VCPUS: "KVM_CAP_MAX_VCPUS",
        KVM_CAP_PIT2: "KVM_CAP_PIT2",
        KVM_CAP_IRQFD: "KVM_CAP_IRQFD",
        KVM_CAP_IOEVENTFD: "KVM_CAP_IOEVENTFD",
        KVM_CAP_EXT_CPUID: "KVM_CAP_EXT_CPUID",
        KVM_CAP_IMMEDIATE_EXIT: "KVM_CAP_IMMEDIATE_EXIT",
        KVM_CAP_INTERNAL_ERROR_DATA: "KVM_CAP_INTERNAL_ERROR_DATA",
    ]

    /// The `KVM_CAP_*` name, or the number for capabilities this type does not name.
    public var description: String {
        Self.names[rawValue] ?? "KVM capability \(rawValue)"
    }
}
