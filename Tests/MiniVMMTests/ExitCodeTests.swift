import KVM
import Testing

@testable import MiniVMM

@Suite("Exit statuses")
struct ExitCodeTests {
    @Test func everyStatusHasItsDocumentedNumber() {
        let expected: [(MinivmmExitStatus, Int32)] = [
            (.guest(0), 0), (.guest(42), 42), (.guest(63), 63), (.usage, 64), (.invalidImage, 65),
            (.imageNotFound, 66), (.kvmUnavailable, 69), (.internalError, 70), (.hostFailure, 71),
            (.guestCrashed, 76), (.timeout, 124),
        ]
        for (status, code) in expected {
            #expect(status.code == code, "\(status)")
        }
    }

    static let exitPortCases: [(UInt64, MinivmmExitStatus)] = [
        (0, .guest(0)), (42, .guest(42)), (63, .guest(63)), (64, .guestCrashed),
        (200, .guestCrashed), (0xFFFF_FFFF, .guestCrashed),
    ]

    @Test("exit-port values", arguments: exitPortCases)
    func exitPortValues(value: UInt64, status: MinivmmExitStatus) {
        #expect(MinivmmExitStatus.fromExitPort(value) == status)
    }

    @Test func guestStatusNeverEscapesItsRange() {
        #expect(MinivmmExitStatus.guest(200).code == 63)
    }

    @Test func kvmErrorsMapToUnusableOrHostFailure() {
        let unusable: [KVMError] = [
            .deviceNotFound(path: "/dev/kvm"), .permissionDenied(path: "/dev/kvm"), .notKVMDevice(path: "/dev/null"),
            .deviceUnavailable(path: "/dev/kvm", errno: .noSuchAddressOrDevice),
            .unsupportedAPIVersion(path: "/dev/kvm", found: 11), .missingCapability(.irqchip),
        ]
        for error in unusable {
            let mapped = ErrorMapping.map(error, step: "open")
            #expect(mapped.status == .kvmUnavailable)
            #expect(mapped.message.contains(error.description))
        }
        let permission = ErrorMapping.map(.permissionDenied(path: "/dev/kvm"), step: "open")
        #expect(permission.message.contains("kvm group"))
        let host = ErrorMapping.map(.failed(operation: "mmap", errno: .noMemory), step: "guest memory")
        #expect(host.status == .hostFailure)
        #expect(host.message.contains("mmap"))
    }

    @Test func resourceErrorsMapToTheCommandLineOrInternal() {
        #expect(ErrorMapping.map(.tooManyDevices(requested: 30, available: 19)).status == .usage)
        #expect(ErrorMapping.map(.invalidMemorySize(1, .tooSmall)).status == .usage)
        #expect(ErrorMapping.map(.invalidDeviceCount(kind: "timers", count: -1)).status == .usage)
        #expect(ErrorMapping.map(.outOfMMIOSpace(owner: "timer0")).status == .usage)
        #expect(ErrorMapping.map(.outOfMemorySlots(needed: 2, available: 1)).status == .kvmUnavailable)
        #expect(ErrorMapping.map(.reservedRangeTaken(owner: "ioapic", start: 0, end: 1)).status == .internalError)
    }
}
