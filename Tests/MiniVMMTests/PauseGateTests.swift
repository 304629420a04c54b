import Foundation
import KVM
import Logging
@testable import MiniVMM
import Synchronization
import Testing

/// A vCPU whose "guest" counts steps until it is kicked; `run()` then returns `.interrupted`
/// until the kick is cleared, like `KVM_RUN` with `immediate_exit`.
private final class CountingVcpu: VcpuRunning, @unchecked Sendable {
    let id: UInt32
    private let kicked = Atomic<Bool>(false)
    let steps = Atomic<Int>(0)

    init(id: UInt32) { self.id = id }

    func kick() { kicked.store(true, ordering: .sequentiallyConsistent) }

    func run() throws(KVMError) -> VcpuExit {
        while !kicked.load(ordering: .sequentiallyConsistent) {
            steps.add(1, ordering: .relaxed)
            usleep(200)
        }
        return .interrupted
    }

    func clearKick() { kicked.store(false, ordering: .sequentiallyConsistent) }
    func stateDescription() -> String { "" }
}

@Suite("PauseGate: every vCPU out of KVM_RUN and held, then released")
struct PauseGateTests {
    @Test("pause parks all vCPUs (no guest progress), resume lets them run, a stop ends them")
    func pauseResumeStop() throws {
        let stop = try StopLatch()
        let gate = PauseGate(vcpus: 3)
        let vcpus = (0..<3).map { CountingVcpu(id: UInt32($0)) }
        for vcpu in vcpus {
            gate.addKick { vcpu.kick() }
            stop.addObserver { vcpu.kick() }
        }
        stop.addObserver { gate.release() }
        let bus = DeviceBus(spaceName: "test") { _ in }
        let ends = Mutex<[MachineEnd]>([])
        let group = DispatchGroup()
        for vcpu in vcpus {
            let loop = RunLoop(
                vcpu: vcpu, ports: bus, mmio: bus, exitPort: ExitPort(), stop: stop, pause: gate,
                logger: Logger(label: "test"))
            nonisolated(unsafe) let unsafeLoop = loop
            group.enter()
            Thread.detachNewThread {
                let end = unsafeLoop.run()
                ends.withLock { $0.append(end) }
                group.leave()
            }
        }
        usleep(20_000)
        gate.pause()
        #expect(gate.isPaused)
        let frozen = vcpus.map { $0.steps.load(ordering: .relaxed) }
        usleep(50_000)
        #expect(vcpus.map { $0.steps.load(ordering: .relaxed) } == frozen, "no vCPU runs while paused")
        gate.resume()
        usleep(50_000)
        #expect(zip(vcpus, frozen).allSatisfy { $0.steps.load(ordering: .relaxed) > $1 }, "all run again")
        gate.pause()
        stop.request(.timeout)
        #expect(group.wait(timeout: .now() + 10) == .success, "a stop releases parked vCPUs")
        #expect(ends.withLock { $0 } == Array(repeating: .stopped(.timeout), count: 3))
        gate.pause()  // every vCPU has ended: returns at once
    }
}
