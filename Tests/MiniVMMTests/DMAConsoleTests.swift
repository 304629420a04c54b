import MiniVMM
import Synchronization
import Testing

/// A reader that accepts every request and records it, to prove the device itself refuses
/// requests that must never reach guest memory.
private final class PermissiveMemory: GuestMemoryReader {
    private let requests = Mutex<[(UInt64, Int)]>([])
    var requestCount: Int { requests.withLock { $0.count } }

    func withBytes(at address: UInt64, count: Int, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        requests.withLock { $0.append((address, count)) }
        [UInt8](repeating: 0x2A, count: count).withUnsafeBytes(body)
        return true
    }
}

private struct Console {
    static let lowSize = 0x1_0000
    static let highBase: UInt64 = 0x1_0000_0000
    static let highSize = 0x1000

    let memory: any GuestMemoryReader
    let output = RecordingConsoleOutput()
    let line = RecordingInterruptLine()
    let device: DMAConsole

    init(memory: any GuestMemoryReader = InMemoryGuestMemory(regions: [
        .init(base: 0, bytes: (0..<Console.lowSize).map { UInt8(truncatingIfNeeded: $0 &* 31) }),
        .init(base: Console.highBase, bytes: (0..<Console.highSize).map { UInt8(truncatingIfNeeded: $0 ^ 0x5A) }),
    ])) {
        self.memory = memory
        device = DMAConsole(memory: memory, output: output, interrupt: line)
    }

    func read(_ offset: UInt64) -> UInt64 { device.read(offset: offset, width: 4) }
    func write(_ offset: UInt64, _ value: UInt32) { device.write(offset: offset, width: 4, value: UInt64(value)) }

    /// Programs a request and rings the doorbell; returns STATUS.
    @discardableResult
    func request(address: UInt64, length: UInt32) -> UInt64 {
        write(0x08, UInt32(truncatingIfNeeded: address))
        write(0x0C, UInt32(truncatingIfNeeded: address >> 32))
        write(0x10, length)
        write(0x14, 1)
        return read(0x04)
    }

    static func lowByte(_ address: Int) -> UInt8 { UInt8(truncatingIfNeeded: address &* 31) }
}

@Suite("DMAConsole")
struct DMAConsoleTests {
    @Test("registers after reset, and read-back of the RW registers")
    func registers() {
        let console = Console()
        #expect(console.read(0x00) == 0x414D_4443)
        for offset: UInt64 in [0x04, 0x08, 0x0C, 0x10, 0x18, 0x1C] { #expect(console.read(offset) == 0) }
        console.write(0x08, 0xDEAD_BEEF)
        console.write(0x0C, 0x1234)
        console.write(0x10, 77)
        console.write(0x18, 0xFF)
        #expect(console.read(0x08) == 0xDEAD_BEEF)
        #expect(console.read(0x0C) == 0x1234)
        #expect(console.read(0x10) == 77)
        #expect(console.read(0x18) == 1, "CTRL keeps only bit 0")
        #expect(console.read(0x14) == 0xFFFF_FFFF, "DOORBELL is write-only")
        #expect(console.read(0x20) == 0xFFFF_FFFF)
        #expect(console.device.read(offset: 0, width: 1) == 0xFF)
        #expect(console.device.read(offset: 0x0A, width: 4) == 0xFFFF_FFFF)
        console.device.write(offset: 0x10, width: 8, value: 5)
        #expect(console.read(0x10) == 77, "a 64-bit write is ignored")
        #expect(console.output.bytes.isEmpty)
    }

    @Test("a good request copies the bytes and counts them")
    func copies() {
        let console = Console()
        #expect(console.request(address: 0x100, length: 16) == 0)
        #expect(console.output.bytes == (0x100..<0x110).map(Console.lowByte))
        #expect(console.read(0x1C) == 16)
        #expect(console.request(address: Console.highBase + 8, length: 4) == 0)
        #expect(console.output.bytes.suffix(4) == [8, 9, 10, 11].map { UInt8($0 ^ 0x5A) })
        #expect(console.read(0x1C) == 20)
    }

    @Test("the last bytes of a region are reachable")
    func lastBytes() {
        let console = Console()
        #expect(console.request(address: UInt64(Console.lowSize - 1), length: 1) == 0)
        #expect(console.output.bytes == [Console.lowByte(Console.lowSize - 1)])
        #expect(console.request(address: Console.highBase + UInt64(Console.highSize - 16), length: 16) == 0)
        #expect(console.output.bytes.count == 17)
    }

    @Test(
        "bad requests set STATUS 1 and write nothing",
        arguments: [
            (UInt64(Console.lowSize - 8), UInt32(16)),  // crosses the end of low RAM
            (UInt64(Console.lowSize), UInt32(1)),  // first byte past low RAM
            (Console.highBase - 1, UInt32(2)),  // starts in the hole before high RAM
            (Console.highBase + UInt64(Console.highSize) - 1, UInt32(2)),  // crosses the end of RAM
            (UInt64(0xFEE0_0000), UInt32(4)),  // the local APIC page
            (UInt64.max, UInt32(1)),  // the last address of the address space
            (UInt64.max - 3, UInt32(16)),  // wraps around
            (UInt64(0), (1 << 20) + 1),  // longer than 1 MiB
            (UInt64(0), UInt32.max),
        ] as [(UInt64, UInt32)])
    func badRequests(address: UInt64, length: UInt32) {
        let console = Console()
        #expect(console.request(address: 0, length: 1) == 0)
        #expect(console.request(address: address, length: length) == 1)
        #expect(console.output.bytes.count == 1)
        #expect(console.read(0x1C) == 1, "WRITTEN counts only copied bytes")
        #expect(console.request(address: 2, length: 1) == 0, "the next good request succeeds")
    }

    @Test("the device refuses wrapping and oversized requests before asking the reader")
    func guardsBeforeReader() {
        let memory = PermissiveMemory()
        let console = Console(memory: memory)
        #expect(console.request(address: UInt64.max - 3, length: 16) == 1)
        #expect(console.request(address: 0, length: (1 << 20) + 1) == 1)
        #expect(console.request(address: 0, length: 0) == 0)
        #expect(memory.requestCount == 0)
        #expect(console.request(address: UInt64.max, length: 1) == 0, "the very last byte does not wrap")
        #expect(memory.requestCount == 1)
    }

    @Test("exactly 1 MiB is accepted")
    func maximumLength() {
        let memory = InMemoryGuestMemory(base: 0, size: 2 << 20)
        let console = Console(memory: memory)
        #expect(console.request(address: 0x1000, length: 1 << 20) == 0)
        #expect(console.output.bytes.count == 1 << 20)
        #expect(console.output.writeCount == 1, "one write call for the whole request")
    }

    @Test("length 0 succeeds and writes nothing")
    func emptyRequest() {
        let console = Console()
        #expect(console.request(address: UInt64.max, length: 0) == 0)
        #expect(console.output.writeCount == 0)
    }

    @Test("doorbell values other than 1 are ignored")
    func otherDoorbellValues() {
        let console = Console()
        console.write(0x10, 4)
        for value: UInt32 in [0, 2, 0xFFFF_FFFF] { console.write(0x14, value) }
        #expect(console.output.bytes.isEmpty)
        #expect(console.line.events.isEmpty)
    }

    @Test("CTRL bit 0 pulses the interrupt on every completion, good or bad")
    func completionInterrupt() {
        let console = Console()
        console.request(address: 0, length: 1)
        #expect(console.line.triggerCount == 0)
        console.write(0x18, 1)
        console.request(address: 0, length: 1)
        console.request(address: UInt64.max, length: 2)
        #expect(console.line.events == [.trigger, .trigger])
    }
}

@Suite("DMAConsole against a bounds model")
struct DMAConsoleModelTests {
    @Test("random requests near the region edges succeed exactly when the model says (seeded)")
    func randomRequests() {
        let seed: UInt64 = 0xD3A_C0DE
        print("DMAConsoleModelTests.randomRequests seed: \(seed)")
        var random = SeededRandom(seed: seed)
        let console = Console()
        let regions: [(base: UInt64, size: UInt64)] = [(0, UInt64(Console.lowSize)), (Console.highBase, UInt64(Console.highSize))]
        let edges: [UInt64] = [0, UInt64(Console.lowSize), Console.highBase, Console.highBase + UInt64(Console.highSize), .max]
        var expectedBytes = 0
        for _ in 0..<5_000 {
            let edge = edges.randomElement(using: &random)!
            let address = edge &+ UInt64.random(in: 0...64, using: &random) &- 32
            let length: UInt32 = switch UInt8.random(in: 0...9, using: &random) {
            case 0: 0
            case 1: (1 << 20) + UInt32.random(in: 0...2, using: &random) - 1
            case 2: UInt32.random(in: 0...UInt32.max, using: &random)
            default: UInt32.random(in: 1...64, using: &random)
            }
            let inside = regions.contains { region in
                address >= region.base && address - region.base <= region.size
                    && UInt64(length) <= region.size - (address - region.base)
            }
            let shouldSucceed = length == 0 || (length <= 1 << 20 && inside)
            let status = console.request(address: address, length: length)
            #expect(status == (shouldSucceed ? 0 : 1), "address \(address) length \(length)")
            if shouldSucceed { expectedBytes += Int(length) }
        }
        #expect(console.output.bytes.count == expectedBytes)
        #expect(console.read(0x1C) == UInt64(expectedBytes))
    }
}
