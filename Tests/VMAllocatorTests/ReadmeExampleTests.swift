import Testing
import VMAllocator

// The device manager from README.md ("Using VMAllocator"), kept in step with it so the
// example there is known to compile and to behave as the text says.
private struct DeviceManager {
    var ids = try! IdAllocator(rangeBase: 1, rangeEnd: 255)
    var mmio = try! AddressAllocator(base: 0xD000_0000, size: 0x1000_0000)
    var devices: [UInt32: RangeInclusive] = [:]

    mutating func add() throws(AllocatorError) -> (id: UInt32, window: RangeInclusive) {
        let snapshot = self
        do {
            let id = try ids.allocateID()
            let window = try mmio.allocate(size: 0x1000, alignment: 0x1000, policy: .firstMatch)
            devices[id] = window
            return (id, window)
        } catch {
            self = snapshot
            throw error
        }
    }

    mutating func remove(_ id: UInt32) throws(AllocatorError) {
        guard let window = devices[id] else { throw .neverAllocated(id) }
        try mmio.free(window)
        try ids.freeID(id)
        devices[id] = nil
    }
}

@Suite("README example")
struct ReadmeExampleTests {
    @Test func devicesGetIdsAndPagesAndGiveThemBack() throws {
        var manager = DeviceManager()
        let first = try manager.add()
        let second = try manager.add()
        #expect(first.id == 1 && second.id == 2)
        #expect(first.window == (try RangeInclusive(start: 0xD000_0000, end: 0xD000_0FFF)))
        #expect(second.window.start == 0xD000_1000)

        try manager.remove(first.id)
        #expect(manager.mmio.allocations == [second.window])
        let again = try manager.add()
        #expect(again.id == 1, "the lowest released ID is reused")
        #expect(again.window == first.window, "the freed page is reused first")
        #expect(throws: AllocatorError.neverAllocated(7)) { try manager.remove(7) }
    }

    @Test func aFailedHotPlugRollsBack() throws {
        var manager = DeviceManager()
        manager.mmio = try AddressAllocator(base: 0xD000_0000, size: 0x1000)
        _ = try manager.add()
        let before = manager
        #expect(throws: AllocatorError.resourceNotAvailable) { try manager.add() }
        #expect(manager.ids == before.ids, "the ID taken before the MMIO failure was rolled back")
        #expect(manager.mmio == before.mmio)
    }
}
