import KVM
import Logging
import Synchronization
import SystemPackage
import Testing
import VMAllocator

@testable import MiniVMM

// The run loop through its `VcpuRunning` seam: a fake vCPU replays scripted exits (with the
// data of port and MMIO accesses in buffers the test owns) and the tests check what reaches
// the buses and how the loop ends, without KVM.

/// Memory for the data of scripted exits, freed when the script is done.
private final class ExitData {
    private var allocations: [UnsafeMutableRawBufferPointer] = []

    deinit {
        for allocation in allocations { allocation.deallocate() }
    }

    /// A buffer holding `bytes` (at least one byte of storage is allocated).
    func buffer(_ bytes: [UInt8]) -> UnsafeMutableRawBufferPointer {
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        allocations.append(storage)
        let buffer = UnsafeMutableRawBufferPointer(rebasing: storage[0..<bytes.count])
        buffer.copyBytes(from: bytes)
        return buffer
    }

    /// The low `size` bytes of `value`, little-endian.
    static func littleEndian(_ value: UInt64, size: Int) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }

    /// `OUT` of `value` (`size` bytes) to `port`.
    func out(_ port: UInt16, size: Int = 1, _ value: UInt64) -> VcpuExit {
        .io(PortIO(direction: .output, port: port, size: size, count: 1,
                   data: buffer(Self.littleEndian(value, size: size))))
    }

    /// `IN` of `size` bytes from `port`; the access is returned so the test can read what
    /// the loop stored (the buffer starts as `0x5A` bytes).
    func `in`(_ port: UInt16, size: Int = 1, count: Int = 1) -> PortIO {
        PortIO(direction: .input, port: port, size: size, count: count,
               data: buffer([UInt8](repeating: 0x5A, count: size * count)))
    }

    /// `REP OUTS` of `elements` (each `size` bytes) to `port`.
    func outs(_ port: UInt16, size: Int, _ elements: [UInt64]) -> VcpuExit {
        .io(PortIO(direction: .output, port: port, size: size, count: elements.count,
                   data: buffer(elements.flatMap { Self.littleEndian($0, size: size) })))
    }

    /// An MMIO write of `value` (`length` bytes) at `address`.
    func mmioWrite(_ address: UInt64, length: Int, _ value: UInt64) -> VcpuExit {
        .mmio(MMIOAccess(address: address, length: length, isWrite: true,
                         data: buffer(Self.littleEndian(value, size: length))))
    }

    /// An MMIO read of `length` bytes at `address` (the buffer starts as `0x5A` bytes).
    func mmioRead(_ address: UInt64, length: Int) -> MMIOAccess {
        MMIOAccess(address: address, length: length, isWrite: false,
                   data: buffer([UInt8](repeating: 0x5A, count: length)))
    }
}

/// A vCPU that returns scripted exits (or throws scripted `KVM_RUN` failures) in order.
private final class ScriptedVcpu: VcpuRunning {
    enum Step {
        case exit(VcpuExit)
        case fail(KVMError)
    }

    let id: UInt32
    private var steps: [Step]
    /// Called from `clearKick()`, after it is counted: lets a test act between the loop's
    /// clearing of the kick and its look at the stop latch.
    var onClearKick: () -> Void = {}
    private(set) var runCalls = 0
    private(set) var clearKickCalls = 0
    /// `run` and `clearKick` calls in order.
    private(set) var calls: [String] = []

    init(id: UInt32 = 0, _ steps: [Step]) {
        self.id = id
        self.steps = steps
    }

    /// Steps the loop has not asked for.
    var remainingSteps: Int { steps.count }

    func run() throws(KVMError) -> VcpuExit {
        runCalls += 1
        calls.append("run")
        guard !steps.isEmpty else {
            Issue.record("the run loop asked for more exits than the script has")
            return .unknown(reason: 0xDEAD)
        }
        switch steps.removeFirst() {
        case .exit(let exit): return exit
        case .fail(let error): throw error
        }
    }

    func clearKick() {
        clearKickCalls += 1
        calls.append("clearKick")
        onClearKick()
    }

    func stateDescription() -> String { "rip=0x100042 rsp=0x7fff0 (scripted)" }
}

/// A device that records every access and answers reads with `0xA5A5...` plus the offset.
private final class RecordingBusDevice: BusDevice {
    struct Access: Equatable {
        var offset: UInt64
        var width: Int
        var value: UInt64?
    }

    private let accesses = Mutex<[Access]>([])

    func read(offset: UInt64, width: Int) -> UInt64 {
        accesses.withLock { $0.append(Access(offset: offset, width: width, value: nil)) }
        return 0xA5A5_A5A5_A5A5_0000 | offset
    }

    func write(offset: UInt64, width: Int, value: UInt64) {
        accesses.withLock { $0.append(Access(offset: offset, width: width, value: value)) }
    }

    var recorded: [Access] { accesses.withLock { $0 } }
}

private func range(_ start: UInt64, _ end: UInt64) -> RangeInclusive {
    // Test literals are valid ranges.
    try! RangeInclusive(start: start, end: end)
}

/// The buses, exit port and stop latch of a machine, with a run loop per scripted vCPU.
private struct LoopHarness {
    let ports = DeviceBus(spaceName: "port") { _ in }
    let mmio = DeviceBus(spaceName: "MMIO") { _ in }
    let exitPort = ExitPort()
    let stop: StopLatch
    let log = RecordingLogHandler.Store()

    init() throws {
        stop = try StopLatch()
        try ports.attach(exitPort, to: range(0xF4, 0xF7))
    }

    func run(_ vcpu: ScriptedVcpu) -> MachineEnd {
        let store = log
        let logger = Logger(label: "minivmm") { _ in RecordingLogHandler(store: store) }
        return RunLoop(vcpu: vcpu, ports: ports, mmio: mmio, exitPort: exitPort, stop: stop, logger: logger).run()
    }
}

/// The crash exits, with what the loop says about each on stderr.
enum CrashExit: CaseIterable, Sendable, CustomStringConvertible {
    case shutdown, hlt, internalError, failEntry, systemEvent, unknown

    fileprivate var exit: VcpuExit {
        switch self {
        case .shutdown: .shutdown
        case .hlt: .hlt
        case .internalError: .internalError(suberror: 1, data: [0x10, 0xFF])
        case .failEntry: .failEntry(hardwareReason: 0x21, cpu: 3)
        case .systemEvent: .systemEvent(type: 1, data: [])
        case .unknown: .unknown(reason: 99)
        }
    }

    var reason: String {
        switch self {
        case .shutdown: "guest shut down (triple fault)"
        case .hlt: "guest halted with no way to wake up (KVM_EXIT_HLT)"
        case .internalError: "KVM internal error: emulation failure [0x10 0xff]"
        case .failEntry: "VM entry failed on cpu 3: hardware reason 0x21"
        case .systemEvent: "guest raised system event 1 (shutdown or reset)"
        case .unknown: "unexpected KVM exit reason 99"
        }
    }

    var description: String { "\(exit)" }
}

@Suite("Run loop: scripted exits through the VcpuRunning seam")
struct RunLoopTests {
    @Test("an exit-port write of 0...63 ends the run with the guest's status", arguments: [1, 2, 4])
    func guestStatuses(width: Int) throws {
        for value in UInt64(0)...63 {
            let machine = try LoopHarness()
            let data = ExitData()
            let vcpu = ScriptedVcpu([.exit(data.out(0x80, 0x11)), .exit(data.out(0xF4, size: width, value))])
            let end = machine.run(vcpu)
            #expect(end == .guestExited(UInt8(value)))
            #expect(ExitStatus(end).code == Int32(value))
            #expect(vcpu.remainingSteps == 0)
            #expect(machine.log.lines.isEmpty)
        }
    }

    @Test("an exit-port value above 63 is a guest fault (76), logged with the value",
          arguments: [(UInt64(64), 1), (200, 1), (0xFFFF, 2), (0xFFFF_FFFF, 4)])
    func exitValueTooLarge(value: UInt64, width: Int) throws {
        let machine = try LoopHarness()
        let data = ExitData()
        let vcpu = ScriptedVcpu([.exit(data.out(0xF4, size: width, value))])
        let end = machine.run(vcpu)
        #expect(end == .guestFault(.exitValueTooLarge(value)))
        #expect(ExitStatus(end).code == 76)
        #expect(machine.log.lines == ["error: guest wrote \(value), an exit value above 63, to port 0xF4"])
    }

    @Test("writes that are not exit requests leave the loop running")
    func notExitRequests() throws {
        let machine = try LoopHarness()
        let data = ExitData()
        let vcpu = ScriptedVcpu([
            .exit(data.out(0xF5, 3)),  // not the exit register
            .exit(.io(data.in(0xF4, size: 4))),  // a read
            .exit(data.out(0xF4, size: 2, 9)),
        ])
        #expect(machine.run(vcpu) == .guestExited(9))
        #expect(vcpu.runCalls == 3)
    }

    @Test("string output to the exit port: the first element wins")
    func stringOutputToTheExitPort() throws {
        let machine = try LoopHarness()
        let data = ExitData()
        let vcpu = ScriptedVcpu([.exit(data.outs(0xF4, size: 1, [5, 9, 70]))])
        #expect(machine.run(vcpu) == .guestExited(5))
    }

    @Test("every crash exit is a guest fault (76) naming the vCPU, logged with the registers",
          arguments: CrashExit.allCases)
    func crashes(kind: CrashExit) throws {
        let machine = try LoopHarness()
        let data = ExitData()
        let vcpu = ScriptedVcpu(id: 5, [.exit(data.out(0x80, 1)), .exit(kind.exit), .exit(data.out(0xF4, 0))])
        let end = machine.run(vcpu)
        #expect(end == .guestFault(.crashed(vcpu: 5)))
        #expect(ExitStatus(end).code == 76)
        #expect(vcpu.remainingSteps == 1, "nothing runs after a crash")
        #expect(machine.log.lines == ["error: vCPU 5: \(kind.reason); registers:\nrip=0x100042 rsp=0x7fff0 (scripted)"])
    }

    @Test("a failing KVM_RUN ends the run as a machine failure (71) naming the vCPU")
    func runFailure() throws {
        let machine = try LoopHarness()
        let error = KVMError.failed(operation: "KVM_RUN", errno: .badAddress)
        let vcpu = ScriptedVcpu(id: 2, [.fail(error)])
        let end = machine.run(vcpu)
        #expect(end == .failed(.machine(MachineError(.runVcpu(2), .kvm(error)))))
        #expect(ExitStatus(end).code == 71)
        if case .failed(let failure) = end {
            #expect(failure.description == "run vCPU 2: KVM_RUN failed: \(Errno.badAddress)")
        }
        #expect(machine.log.lines.isEmpty, "the runner reports failures, not the loop")
    }

    @Test("EAGAIN from KVM_RUN (an AP leaving wait-for-SIPI) is retried")
    func eagainIsRetried() throws {
        let machine = try LoopHarness()
        let data = ExitData()
        let again = KVMError.failed(operation: "KVM_RUN", errno: .resourceTemporarilyUnavailable)
        let vcpu = ScriptedVcpu(id: 1, [.fail(again), .fail(again), .exit(data.out(0xF4, 7))])
        let end = machine.run(vcpu)
        #expect(end == .guestExited(7))
        #expect(vcpu.runCalls == 3)
        #expect(vcpu.clearKickCalls == 0)
    }

    static let stopReasons: [(StopLatch.Reason, Int32)] = [
        (.timeout, 124), (.signal(2), 130), (.signal(15), 143), (.signal(1), 129),
    ]

    @Test("a stop requested before an interrupted KVM_RUN ends the run with the stop's status",
          arguments: stopReasons)
    func stopBeforeInterrupt(reason: StopLatch.Reason, code: Int32) throws {
        let machine = try LoopHarness()
        let data = ExitData()
        machine.stop.request(reason)
        let vcpu = ScriptedVcpu([.exit(data.out(0x80, 1)), .exit(.interrupted), .exit(data.out(0xF4, 0))])
        let end = machine.run(vcpu)
        #expect(end == .stopped(reason))
        #expect(ExitStatus(end).code == code)
        #expect(vcpu.calls == ["run", "run", "clearKick"])
        #expect(vcpu.remainingSteps == 1)
    }

    @Test("an interrupted KVM_RUN with no stop requested (a spurious EINTR) clears the kick and goes on")
    func spuriousInterrupt() throws {
        let machine = try LoopHarness()
        let data = ExitData()
        let vcpu = ScriptedVcpu([.exit(.interrupted), .exit(.interrupted), .exit(data.out(0xF4, 3))])
        let end = machine.run(vcpu)
        #expect(end == .guestExited(3))
        #expect(vcpu.calls == ["run", "clearKick", "run", "clearKick", "run"])
    }

    @Test("a stop requested between clearing the kick and looking at the latch is not lost (124)")
    func stopRacingTheKick() throws {
        let machine = try LoopHarness()
        let data = ExitData()
        // The watchdog fires just after the loop cleared the kick: the loop must still see it
        // (a loop that looks at the latch before clearing the kick runs the guest on and
        // ends with the guest's status 0 here).
        let vcpu = ScriptedVcpu([.exit(.interrupted), .exit(data.out(0xF4, 0))])
        let stop = machine.stop
        vcpu.onClearKick = { stop.request(.timeout) }
        let end = machine.run(vcpu)
        #expect(end == .stopped(.timeout))
        #expect(ExitStatus(end).code == 124)
        #expect(vcpu.calls == ["run", "clearKick"])
        #expect(vcpu.remainingSteps == 1)
    }

    @Test("a stop requested while the guest does port I/O ends the run at the next interrupted KVM_RUN")
    func stopDuringPortIO() throws {
        let machine = try LoopHarness()
        let data = ExitData()
        let vcpu = ScriptedVcpu([
            .exit(data.out(0x80, 1)), .exit(data.out(0x80, 2)), .exit(.interrupted), .exit(data.out(0xF4, 0)),
        ])
        let stop = machine.stop
        final class Stopper: BusDevice {
            let stop: StopLatch
            init(stop: StopLatch) { self.stop = stop }
            func read(offset: UInt64, width: Int) -> UInt64 { 0 }
            func write(offset: UInt64, width: Int, value: UInt64) { if value == 2 { stop.request(.signal(15)) } }
        }
        try machine.ports.attach(Stopper(stop: stop), to: range(0x80, 0x80))
        let end = machine.run(vcpu)
        #expect(end == .stopped(.signal(15)))
        #expect(ExitStatus(end).code == 143)
        #expect(vcpu.remainingSteps == 1)
    }

    @Test("port reads and writes reach the bus devices with their offsets and widths; reads fill the data")
    func portIOReachesTheDevices() throws {
        let machine = try LoopHarness()
        let device = RecordingBusDevice()
        try machine.ports.attach(device, to: range(0x3F8, 0x3FF))
        let data = ExitData()
        let readByte = data.in(0x3FD)
        let readDword = data.in(0x3F8, size: 4)
        let readString = data.in(0x3FA, size: 2, count: 2)
        let unclaimed = data.in(0x2F0, size: 2)
        let vcpu = ScriptedVcpu([
            .exit(data.out(0x3F8, 0x41)),
            .exit(data.out(0x3F9, size: 2, 0x1234)),
            .exit(.io(readByte)),
            .exit(.io(readDword)),
            .exit(data.outs(0x3F8, size: 1, [0x78, 0x79, 0x7A])),
            .exit(.io(readString)),
            .exit(.io(unclaimed)),
            .exit(data.out(0xF4, 0)),
        ])
        #expect(machine.run(vcpu) == .guestExited(0))
        #expect(device.recorded == [
            .init(offset: 0, width: 1, value: 0x41),
            .init(offset: 1, width: 2, value: 0x1234),
            .init(offset: 5, width: 1, value: nil),
            .init(offset: 0, width: 4, value: nil),
            .init(offset: 0, width: 1, value: 0x78),
            .init(offset: 0, width: 1, value: 0x79),
            .init(offset: 0, width: 1, value: 0x7A),
            .init(offset: 2, width: 2, value: nil),
            .init(offset: 2, width: 2, value: nil),
        ])
        #expect(Array(readByte.data) == [0x05])
        #expect(Array(readDword.data) == [0x00, 0x00, 0xA5, 0xA5])
        #expect(Array(readString.data) == [0x02, 0x00, 0x02, 0x00])
        #expect(Array(unclaimed.data) == [0xFF, 0xFF], "unclaimed ports read as all ones")
    }

    @Test("MMIO writes reach the device; MMIO reads fill the data, all ones where nothing answers")
    func mmioReachesTheDevices() throws {
        let machine = try LoopHarness()
        let device = RecordingBusDevice()
        let line = RecordingInterruptLine()
        let timer = TimerDevice(interrupt: line)
        defer { timer.shutdown() }
        try machine.mmio.attach(device, to: range(0xC000_0000, 0xC000_0FFF))
        try machine.mmio.attach(timer, to: range(0xC000_1000, 0xC000_1FFF))
        let data = ExitData()
        let readDword = data.mmioRead(0xC000_0008, length: 4)
        let readQword = data.mmioRead(0xC000_0FF8, length: 8)
        let readByte = data.mmioRead(0xC000_0003, length: 1)
        let magic = data.mmioRead(0xC000_1000 + TimerDevice.Register.magic, length: 4)
        let unclaimed = data.mmioRead(0xD000_0000, length: 4)
        let vcpu = ScriptedVcpu([
            .exit(data.mmioWrite(0xC000_0010, length: 4, 0xDEAD_BEEF)),
            .exit(data.mmioWrite(0xC000_0020, length: 8, 0x0102_0304_0506_0708)),
            .exit(.mmio(readDword)),
            .exit(.mmio(readQword)),
            .exit(.mmio(readByte)),
            .exit(.mmio(magic)),
            .exit(.mmio(unclaimed)),
            .exit(data.out(0xF4, 0)),
        ])
        #expect(machine.run(vcpu) == .guestExited(0))
        #expect(device.recorded == [
            .init(offset: 0x10, width: 4, value: 0xDEAD_BEEF),
            .init(offset: 0x20, width: 8, value: 0x0102_0304_0506_0708),
            .init(offset: 8, width: 4, value: nil),
            .init(offset: 0xFF8, width: 8, value: nil),
            .init(offset: 3, width: 1, value: nil),
        ])
        #expect(Array(readDword.data) == [0x08, 0x00, 0xA5, 0xA5])
        #expect(Array(readQword.data) == [0xF8, 0x0F, 0xA5, 0xA5, 0xA5, 0xA5, 0xA5, 0xA5])
        #expect(Array(readByte.data) == [0x03])
        #expect(Array(magic.data) == Array("TIMR".utf8))
        #expect(Array(unclaimed.data) == [0xFF, 0xFF, 0xFF, 0xFF])
    }

    @Test("two vCPUs share the exit port: the first request wins, the other loop ends with it at its next port exit")
    func twoVcpus() throws {
        let machine = try LoopHarness()
        let data = ExitData()
        let first = ScriptedVcpu(id: 0, [.exit(data.out(0xF4, 12))])
        let second = ScriptedVcpu(id: 1, [.exit(data.out(0xF4, 40)), .exit(.shutdown)])
        #expect(machine.run(first) == .guestExited(12))
        // The first request wins: the second vCPU sees the same status.
        #expect(machine.run(second) == .guestExited(12))
        #expect(second.remainingSteps == 1)
    }
}
