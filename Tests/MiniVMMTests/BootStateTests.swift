import Foundation
import KVM
import Testing

@testable import MiniVMM

@Suite("Boot state and image loading")
struct BootStateTests {
    @Test func entryRegistersFollowTheABI() {
        let registers = BootState.generalRegisters()
        #expect(registers.rip == 0x10_0000)
        #expect(registers.rsp == 0x8_0000 && registers.rsp % 16 == 0)
        #expect(registers.rdi == 0x2000)
        #expect(registers.rflags == 0x2)
        #expect(registers.rax == 0 && registers.rsi == 0 && registers.r15 == 0)
    }

    @Test func specialRegistersEnterLongModeWithFlatSegments() {
        var sregs = SpecialRegisters()
        BootState.apply(to: &sregs)
        #expect(sregs.cr0 == 0x8001_0033)
        #expect(sregs.cr4 == 0x620)
        #expect(sregs.efer == 0x500)
        #expect(sregs.cr3 == 0x10000)
        #expect(sregs.gdt.base == 0x1000 && sregs.gdt.limit == 23)
        #expect(sregs.idt.limit == 0)
        #expect(sregs.cs.selector == 0x08 && sregs.cs.l == 1 && sregs.cs.db == 0 && sregs.cs.type == 0xB)
        #expect(sregs.cs.present == 1 && sregs.cs.s == 1 && sregs.cs.g == 1 && sregs.cs.dpl == 0)
        for segment in [sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss] {
            #expect(segment.selector == 0x10 && segment.type == 0x3 && segment.db == 1 && segment.l == 0)
            #expect(segment.limit == 0xFFFF_FFFF && segment.base == 0 && segment.unusable == 0)
        }
    }

    private func temporaryFile(_ bytes: [UInt8]) throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("minivmm-image-\(UUID().uuidString)").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func loadsAnImageThatFits() throws {
        let path = try temporaryFile([0xF4, 1, 2, 3])
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try GuestImage.load(path: path, maximumSize: 4) == [0xF4, 1, 2, 3])
    }

    @Test func refusesEmptyAndOversizedImages() throws {
        let empty = try temporaryFile([])
        let big = try temporaryFile([UInt8](repeating: 0x90, count: 5))
        defer {
            try? FileManager.default.removeItem(atPath: empty)
            try? FileManager.default.removeItem(atPath: big)
        }
        #expect(throws: MinivmmError.self) { try GuestImage.load(path: empty, maximumSize: 4) }
        do {
            _ = try GuestImage.load(path: empty, maximumSize: 4)
        } catch {
            #expect(error.status == .invalidImage && error.message.contains("empty"))
        }
        do {
            _ = try GuestImage.load(path: big, maximumSize: 4)
            Issue.record("an oversized image loaded")
        } catch {
            #expect(error.status == .invalidImage && error.message.contains("larger"))
        }
    }

    @Test func missingAndDirectoryImagesAreNotFound() {
        for path in ["/nonexistent/minivmm/image.bin", NSTemporaryDirectory()] {
            do {
                _ = try GuestImage.load(path: path, maximumSize: 1 << 20)
                Issue.record("\(path) loaded")
            } catch {
                #expect(error.status == .imageNotFound, "\(path): \(error.message)")
            }
        }
    }
}
