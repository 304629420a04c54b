import Synchronization
import SystemPackage
import Testing

@testable import MiniVMM

/// The stop latch (first request wins, observers, poll descriptor) and the watchdog that requests it.
@Suite("Host: stop latch and watchdog")
struct HostStopLatchTests {
    private func isReadable(_ latch: StopLatch) throws -> Bool {
        let events = try HostCall.poll([(latch.pollDescriptor, .readable)], timeout: .zero)
        return events[0].contains(.readable)
    }

    @Test func firstRequestWinsAndObserversRunOnce() throws {
        let latch = try StopLatch()
        let calls = Mutex(0)
        latch.addObserver { calls.withLock { $0 += 1 } }
        #expect(latch.reason == nil)
        #expect(try !isReadable(latch))
        latch.request(.signal(2))
        latch.request(.timeout)
        latch.request(.signal(15))
        #expect(latch.reason == .signal(2))
        #expect(calls.withLock { $0 } == 1)
        #expect(try isReadable(latch))
        // Still readable: nobody consumes it.
        #expect(try isReadable(latch))
    }

    @Test func anObserverAddedAfterTheRequestRunsAtOnce() throws {
        let latch = try StopLatch()
        latch.request(.finished)
        let calls = Mutex(0)
        latch.addObserver { calls.withLock { $0 += 1 } }
        #expect(calls.withLock { $0 } == 1)
    }

    @Test func aRequestFromAnotherThreadWakesAPoll() throws {
        let latch = try StopLatch()
        HostTestSupport.request(.timeout, on: latch, after: .milliseconds(100))
        let elapsed = try HostTestSupport.seconds {
            let events = try HostCall.poll([(latch.pollDescriptor, .readable)], timeout: .seconds(10))
            #expect(events[0].contains(.readable))
        }
        #expect(elapsed < 5)
        #expect(latch.reason == .timeout)
    }

    @Test func concurrentRequestsAgreeOnOneReason() async throws {
        let latch = try StopLatch()
        let calls = Mutex(0)
        for _ in 0..<8 { latch.addObserver { calls.withLock { $0 += 1 } } }
        await withTaskGroup(of: Void.self) { group in
            for number in Int32(1)...16 {
                group.addTask { latch.request(.signal(number)) }
            }
        }
        #expect(calls.withLock { $0 } == 8)
        #expect(latch.reason != nil)
    }

    @Test func watchdogRequestsATimeout() throws {
        let latch = try StopLatch()
        let watchdog = Watchdog(timeout: .milliseconds(50), latch: latch)
        #expect(watchdog.timeout == .milliseconds(50))
        #expect(HostTestSupport.eventually { latch.reason == .timeout })
    }

    @Test func aCancelledWatchdogNeverFires() throws {
        let latch = try StopLatch()
        let watchdog = Watchdog(timeout: .milliseconds(50), latch: latch)
        watchdog.cancel()
        #expect(!HostTestSupport.eventually(timeout: .milliseconds(300)) { latch.reason != nil })
    }

    @Test func stopReasonsMapToTheirExitStatuses() {
        #expect(ExitStatus(.stopped(.timeout)).code == 124)
        #expect(ExitStatus(.stopped(.signal(2))).code == 130)
        #expect(ExitStatus(.stopped(.signal(15))).code == 143)
        #expect(ExitStatus(.stopped(.signal(1))).code == 129)
        #expect(ExitStatus(.stopped(.signal(2))).description == "stopped by SIGINT")
    }
}
