import MiniVMM
import Testing

private struct TimerHarness {
    let line = RecordingInterruptLine()
    let device: TimerDevice

    init() {
        device = TimerDevice(interrupt: line)
    }

    func read(_ offset: UInt64) -> UInt64 { device.read(offset: offset, width: 4) }
    func write(_ offset: UInt64, _ value: UInt32) { device.write(offset: offset, width: 4, value: UInt64(value)) }

    /// Waits until the device itself reports itself disarmed (no expiry pending).
    func waitUntilDisarmed(timeout: Duration = .seconds(2)) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while device.isArmed && clock.now < deadline { try? await Task.sleep(for: .milliseconds(1)) }
        return !device.isArmed
    }
}

@Suite("TimerDevice")
struct TimerDeviceTests {
    @Test("registers after reset")
    func resetState() {
        let timer = TimerHarness()
        #expect(timer.read(0x00) == 0x524D_4954)
        #expect(timer.read(0x04) == 0)
        #expect(timer.read(0x08) == 0)
        #expect(timer.read(0x0C) == 0)
    }

    @Test("only aligned 32-bit accesses to listed registers count")
    func accessRules() {
        let timer = TimerHarness()
        #expect(timer.device.read(offset: 0, width: 2) == 0xFFFF)
        #expect(timer.device.read(offset: 2, width: 4) == 0xFFFF_FFFF)
        #expect(timer.device.read(offset: 0, width: 8) == .max)
        #expect(timer.read(0x10) == 0xFFFF_FFFF)
        #expect(timer.read(0xFFC) == 0xFFFF_FFFF)
        timer.device.write(offset: 4, width: 2, value: 1_000_000)
        timer.device.write(offset: 6, width: 4, value: 1_000_000)
        #expect(timer.read(0x04) == 0)
        #expect(!timer.device.isArmed)
        timer.write(0x00, 5)
        #expect(timer.read(0x00) == 0x524D_4954, "MAGIC is read-only")
    }

    @Test("arming fires once after the delay: FIRED, COUNT, one pulse, ARMED cleared")
    func fires() async {
        let timer = TimerHarness()
        timer.write(0x04, 2_000)
        #expect(timer.read(0x04) == 2_000)
        #expect(await timer.line.waitForTriggers(1))
        #expect(await timer.waitUntilDisarmed())
        #expect(timer.read(0x08) == 0x1)
        #expect(timer.read(0x0C) == 1)
        try? await Task.sleep(for: .milliseconds(10))
        #expect(timer.line.triggerCount == 1, "one-shot")
        #expect(timer.line.levels.isEmpty, "edge interrupts only")
    }

    @Test("writing 1 to FIRED acknowledges it; ARMED is read-only")
    func acknowledge() async {
        let timer = TimerHarness()
        timer.write(0x04, 100)
        #expect(await timer.line.waitForTriggers(1))
        #expect(await timer.waitUntilDisarmed())
        timer.write(0x08, 0x2)
        #expect(timer.read(0x08) == 0x1, "writing ARMED does nothing")
        timer.write(0x08, 0x1)
        #expect(timer.read(0x08) == 0)
        #expect(timer.read(0x0C) == 1, "acknowledging leaves COUNT")
    }

    @Test("re-arming replaces the pending expiry; the stale one never fires")
    func rearmCancelsStale() async {
        let timer = TimerHarness()
        timer.write(0x04, 100_000)
        timer.write(0x04, 1_000)
        #expect(await timer.line.waitForTriggers(1))
        try? await Task.sleep(for: .milliseconds(150))
        #expect(timer.line.triggerCount == 1)
        #expect(timer.read(0x0C) == 1)
        #expect(timer.read(0x04) == 1_000)
    }

    @Test("ARMED shows while an expiry is pending; writing 0 disarms")
    func disarm() async {
        let timer = TimerHarness()
        timer.write(0x04, 10_000_000)
        #expect(timer.read(0x08) == 0x2)
        timer.write(0x04, 0)
        #expect(timer.read(0x08) == 0)
        #expect(timer.read(0x04) == 0)
        timer.write(0x04, 5_000)
        timer.write(0x04, 0)
        try? await Task.sleep(for: .milliseconds(20))
        #expect(timer.line.triggerCount == 0)
        #expect(timer.read(0x0C) == 0)
    }

    @Test("firing repeatedly counts every expiry")
    func counts() async {
        let timer = TimerHarness()
        for round in 1...3 {
            timer.write(0x04, 200)
            #expect(await timer.line.waitForTriggers(round))
            #expect(await timer.waitUntilDisarmed())
            timer.write(0x08, 1)
        }
        #expect(timer.read(0x0C) == 3)
    }

    @Test("shutdown cancels the pending expiry and ignores later arming")
    func shutdown() async {
        let timer = TimerHarness()
        timer.write(0x04, 5_000)
        timer.device.shutdown()
        #expect(!timer.device.isArmed)
        timer.write(0x04, 100)
        #expect(!timer.device.isArmed)
        try? await Task.sleep(for: .milliseconds(20))
        #expect(timer.line.triggerCount == 0)
    }

    @Test("a discarded device with a pending expiry is released and never fires")
    func releasedWhilePending() async {
        let line = RecordingInterruptLine()
        weak var weakDevice: TimerDevice?
        do {
            let device = TimerDevice(interrupt: line)
            device.write(offset: 4, width: 4, value: 3_000)
            weakDevice = device
        }
        #expect(weakDevice == nil)
        try? await Task.sleep(for: .milliseconds(15))
        #expect(line.triggerCount == 0)
    }
}
