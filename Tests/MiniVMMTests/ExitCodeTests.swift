import KVM
import SystemPackage
import Testing

@testable import MiniVMM

/// A machine error at `step` caused by `error`.
private func kvm(_ error: KVMError, step: MachineError.Step = .openKVM(path: "/dev/kvm")) -> MachineEnd {
    .failed(.machine(MachineError(step, .kvm(error))))
}

@Suite("Exit statuses")
struct ExitCodeTests {
    @Test func everyStatusHasItsDocumentedNumber() {
        let expected: [(ExitStatus, Int32)] = [
            (ExitStatus(.guestExited(0)), 0), (ExitStatus(.guestExited(42)), 42), (ExitStatus(.guestExited(63)), 63),
            (.usage, 64), (.invalidImage, 65), (.imageNotFound, 66), (.kvmUnavailable, 69), (.internalError, 70),
            (.hostFailure, 71), (.guestCrashed, 76), (.timeout, 124),
        ]
        for (status, code) in expected {
            #expect(status.code == code, "\(status)")
        }
    }

    /// Every way a run ends, with the status README.md's "Exit status" table gives it
    /// (128 + n for a stop by signal n).
    static let documented: [(MachineEnd, Int32)] = [
        // 0-63: the guest's own status.
        (.guestExited(0), 0), (.guestExited(1), 1), (.guestExited(42), 42), (.guestExited(63), 63),
        // 64: bad command line.
        (.failed(.configuration(.invalidMemory(text: "1M", .tooSmall))), 64),
        (.failed(.configuration(.invalidMemory(text: "12X", .badSuffix))), 64),
        (.failed(.configuration(.emptyImagePath)), 64),
        (.failed(.configuration(.imageWithRestore)), 64),
        (.failed(.configuration(.missingImage)), 64),
        (.failed(.configuration(.restoreOnlyOption("--paused"))), 64),
        // 65: a snapshot that cannot be restored.
        (.failed(.snapshot(.unknownVersion(7))), 65),
        (.failed(.snapshot(.notFound(file: "manifest.json"))), 65),
        (.failed(.configuration(.emptyKVMDevicePath)), 64),
        (.failed(.configuration(.negativeDeviceCount(.timer, -1))), 64),
        (.failed(.configuration(.invalidTimeout(0))), 64),
        (.failed(.configuration(.invalidCPUCount(0))), 64),
        (.failed(.configuration(.invalidLogLevel("loud"))), 64),
        (.failed(.configuration(.tooManyDevices(requested: 30, available: 19))), 64),
        (.failed(.plan(.tooManyCPUs(requested: 65, available: 64))), 64),
        (.failed(.plan(.resources(.noFreeGSI(owner: .device(.timer, instance: 19), available: 19)))), 64),
        (.failed(.plan(.resources(.outOfMMIOSpace(kind: .dmaConsole)))), 64),
        (.failed(.plan(.resources(.noFreeInstance(kind: .timer)))), 64),
        (.failed(.plan(.resources(.noFreeVcpuID(available: 64)))), 64),
        // 65: invalid guest image.
        (.failed(.image(.empty(path: "x"))), 65),
        (.failed(.image(.tooLarge(path: "x", maximum: 4))), 65),
        // 66: image not found, unreadable or a directory.
        (.failed(.image(.notFound(path: "x"))), 66),
        (.failed(.image(.unreadable(path: "x", opening: true, errno: .permissionDenied))), 66),
        (.failed(.image(.directory(path: "x"))), 66),
        // 69: KVM unusable, too few memory slots.
        (kvm(.deviceNotFound(path: "/dev/kvm")), 69),
        (kvm(.missingCapability(.irqchip)), 69),
        (.failed(.plan(.tooFewMemorySlots(needed: 2, available: 1))), 69),
        (.failed(.plan(.resources(.noFreeMemorySlot(owner: .ram(1), available: 1)))), 69),
        // 70: internal error.
        (.failed(.plan(.resources(.reservedRangeTaken(owner: .fixed(.ioapic), start: 0, end: 1)))), 70),
        (.failed(.plan(.resources(.notAttached(.device(.timer, instance: 0))))), 70),
        (.failed(.image(.stopped(path: "x"))), 70),
        (.failed(.machine(MachineError(.attachDevice(.device(.timer, instance: 0)), .inconsistent("overlap")))), 70),
        (.stopped(.finished), 70),
        // 71: host OS failure.
        (kvm(.failed(operation: "mmap", errno: .noMemory), step: .mapMemory), 71),
        (kvm(.failed(operation: "KVM_RUN", errno: .badAddress), step: .runVcpu(0)), 71),
        (.failed(.machine(MachineError(.startHostIO, .host(HostError("eventfd", .tooManyOpenFiles))))), 71),
        // 76: the guest crashed or broke the ABI.
        (.guestFault(.exitValueTooLarge(64)), 76),
        (.guestFault(.exitValueTooLarge(.max)), 76),
        (.guestFault(.crashed(vcpu: 0)), 76),
        (.guestFault(.crashed(vcpu: 7)), 76),
        // 124: --timeout.
        (.stopped(.timeout), 124),
        // 128 + n: stopped by signal n.
        (.stopped(.signal(1)), 129), (.stopped(.signal(2)), 130), (.stopped(.signal(15)), 143),
    ]

    @Test("every way a run ends maps to its documented status", arguments: documented)
    func documentedStatuses(end: MachineEnd, code: Int32) {
        #expect(ExitStatus(end).code == code)
    }

    @Test func everyFailureLayerIsCovered() {
        // One case of each MinivmmFailure layer and each MachineEnd case is in `documented`.
        var layers: Set<String> = []
        var ends: Set<String> = []
        for (end, _) in Self.documented {
            switch end {
            case .guestExited: ends.insert("guestExited")
            case .guestFault(.exitValueTooLarge): ends.insert("exitValueTooLarge")
            case .guestFault(.crashed): ends.insert("crashed")
            case .stopped(.timeout): ends.insert("timeout")
            case .stopped(.signal): ends.insert("signal")
            case .stopped(.finished): ends.insert("finished")
            case .failed(let failure):
                switch failure {
                case .configuration: layers.insert("configuration")
                case .plan: layers.insert("plan")
                case .image: layers.insert("image")
                case .snapshot: layers.insert("snapshot")
                case .machine(let error):
                    switch error.cause {
                    case .kvm: layers.insert("machine.kvm")
                    case .host: layers.insert("machine.host")
                    case .inconsistent: layers.insert("machine.inconsistent")
                    }
                }
            }
        }
        #expect(ends == ["guestExited", "exitValueTooLarge", "crashed", "timeout", "signal", "finished"])
        #expect(layers == ["configuration", "plan", "image", "snapshot", "machine.kvm", "machine.host", "machine.inconsistent"])
    }

    @Test func guestStatusNeverEscapesItsRange() {
        #expect(ExitStatus(.guestExited(200)).code == 63)
        #expect(ExitStatus(.guestExited(64)).code == 63)
    }

    @Test func descriptionsNameTheStatus() {
        #expect(ExitStatus(.guestExited(5)).description == "guest status 5")
        #expect(ExitStatus.usage.description == "bad command line")
        #expect(ExitStatus.timeout.description == "timeout")
        #expect(ExitStatus(.stopped(.signal(15))).description == "stopped by SIGTERM")
        #expect(ExitStatus(.stopped(.signal(10))).description == "stopped by signal 10")
    }

    @Test func kvmErrorsMapToUnusableOrHostFailure() {
        let unusable: [KVMError] = [
            .deviceNotFound(path: "/dev/kvm"), .permissionDenied(path: "/dev/kvm"), .notKVMDevice(path: "/dev/null"),
            .deviceUnavailable(path: "/dev/kvm", errno: .noSuchAddressOrDevice),
            .unsupportedAPIVersion(path: "/dev/kvm", found: 11), .missingCapability(.irqchip),
        ]
        for error in unusable {
            let end = kvm(error)
            #expect(ExitStatus(end) == .kvmUnavailable)
            guard case .failed(let failure) = end else { continue }
            #expect(failure.description.contains(error.description))
        }
        let permission = MinivmmFailure.machine(MachineError(.openKVM(path: "/dev/kvm"), .kvm(.permissionDenied(path: "/dev/kvm"))))
        #expect(permission.description.contains("kvm group"))
        let host = MinivmmFailure.machine(MachineError(.mapMemory, .kvm(.failed(operation: "mmap", errno: .noMemory))))
        #expect(ExitStatus(.failed(host)) == .hostFailure)
        #expect(host.description.contains("mmap"))
        #expect(host.description == "guest memory: mmap failed: \(Errno.noMemory)")
    }

    @Test func resourceErrorsMapToTheCommandLineOrInternal() {
        #expect(ExitStatus(.failed(.configuration(.tooManyDevices(requested: 30, available: 19)))) == .usage)
        #expect(ExitStatus(.failed(.configuration(.invalidMemory(text: "1048576", .tooSmall)))) == .usage)
        #expect(ExitStatus(.failed(.configuration(.negativeDeviceCount(.timer, -1)))) == .usage)
        #expect(ExitStatus(.failed(.plan(.resources(.outOfMMIOSpace(kind: .timer))))) == .usage)
        #expect(ExitStatus(.failed(.plan(.tooFewMemorySlots(needed: 2, available: 1)))) == .kvmUnavailable)
        #expect(ExitStatus(.failed(.plan(.resources(.reservedRangeTaken(owner: .fixed(.ioapic), start: 0, end: 1)))))
            == .internalError)
    }
}
