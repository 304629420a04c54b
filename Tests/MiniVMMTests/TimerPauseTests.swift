import MiniVMM
import Testing

/// A paused machine freezes its timers: an armed timer keeps its remaining time and fires
/// that much after the machine resumes, once.
@Suite("TimerDevice while the machine is paused")
struct TimerPauseTests {
    private func status(_ device: TimerDevice) -> UInt64 { device.read(offset: TimerDevice.Register.status, width: 4) }
    private func count(_ device: TimerDevice) -> UInt64 { device.read(offset: TimerDevice.Register.count, width: 4) }

    @Test("an armed timer does not fire while suspended, stays ARMED, and fires once after resume")
    func frozenThenFires() async throws {
        let line = RecordingInterruptLine()
        let device = TimerDevice(interrupt: line)
        // Suspended right after arming (no sleep in between, so a loaded machine cannot let
        // it expire first), then held for longer than its whole delay.
        let armed = ContinuousClock.now
        device.write(offset: TimerDevice.Register.delayMicroseconds, width: 4, value: 600_000)
        device.suspend()
        let frozenAfter = ContinuousClock.now - armed
        try await Task.sleep(for: .milliseconds(900))
        #expect(count(device) == 0, "no expiry while suspended")
        #expect(status(device) & UInt64(TimerDevice.Status.armed) != 0, "still armed, frozen")
        let resumed = ContinuousClock.now
        device.resume()
        #expect(await line.waitForTriggers(1, timeout: .seconds(5)))
        let waited = ContinuousClock.now - resumed
        #expect(waited >= .milliseconds(600) - frozenAfter - .milliseconds(5),
                "fired after the time it had left, not at once (\(waited))")
        #expect(count(device) == 1)
        #expect(status(device) & UInt64(TimerDevice.Status.armed) == 0)
        try await Task.sleep(for: .milliseconds(150))
        #expect(count(device) == 1, "fired exactly once")
    }

    @Test("arming while suspended waits for resume; suspend without a timer does nothing")
    func armWhileSuspended() async throws {
        let line = RecordingInterruptLine()
        let device = TimerDevice(interrupt: line)
        device.suspend()
        device.write(offset: TimerDevice.Register.delayMicroseconds, width: 4, value: 1_000)
        try await Task.sleep(for: .milliseconds(60))
        #expect(count(device) == 0)
        device.resume()
        #expect(await line.waitForTriggers(1, timeout: .seconds(2)))
        #expect(count(device) == 1)
        device.suspend()
        device.resume()
        try await Task.sleep(for: .milliseconds(30))
        #expect(count(device) == 1)
    }
}
