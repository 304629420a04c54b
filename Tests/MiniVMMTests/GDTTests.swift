import Testing

@testable import MiniVMM

@Suite("GDT and segment descriptors")
struct GDTTests {
    @Test func flatDescriptorsHaveTheWellKnownEncodings() {
        #expect(GlobalDescriptorTable.code.encoded == 0x00AF_9B00_0000_FFFF)
        #expect(GlobalDescriptorTable.data.encoded == 0x00CF_9300_0000_FFFF)
        #expect(GlobalDescriptorTable.entries == [0, 0x00AF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF])
    }

    @Test func tableBytesAndLimit() {
        let bytes = GlobalDescriptorTable.bytes
        #expect(bytes.count == 24)
        #expect(bytes[0..<8].allSatisfy { $0 == 0 })
        #expect(Array(bytes[8..<16]) == [0xFF, 0xFF, 0, 0, 0, 0x9B, 0xAF, 0x00])
        #expect(Array(bytes[16..<24]) == [0xFF, 0xFF, 0, 0, 0, 0x93, 0xCF, 0x00])
        #expect(GlobalDescriptorTable.limit == 23)
    }

    @Test func selectorsNameTheirDescriptors() {
        #expect(GlobalDescriptorTable.descriptor(for: 0x08) == GlobalDescriptorTable.code)
        #expect(GlobalDescriptorTable.descriptor(for: 0x10) == GlobalDescriptorTable.data)
        #expect(GlobalDescriptorTable.descriptor(for: 0x18) == nil)
    }

    @Test func codeSegmentIsLongModeAndDataIsFlat() {
        let code = GlobalDescriptorTable.code
        #expect(code.isPresent && code.isCodeOrData && code.isLongMode && !code.isDefaultBig)
        #expect(code.type == 0xB && code.privilegeLevel == 0 && code.granularity)
        let data = GlobalDescriptorTable.data
        #expect(data.isPresent && data.isCodeOrData && !data.isLongMode && data.isDefaultBig)
        #expect(data.type == 0x3 && data.byteLimit == 0xFFFF_FFFF)
    }

    @Test func encodingRoundTripsEveryField() {
        let descriptor = SegmentDescriptor(base: 0x1234_5678, limit: 0xA_BCDE, access: 0xF2, flags: 0x5)
        let decoded = SegmentDescriptor(encoded: descriptor.encoded)
        #expect(decoded == descriptor)
        #expect(decoded.base == 0x1234_5678 && decoded.limit == 0xA_BCDE)
        #expect(decoded.privilegeLevel == 3 && decoded.isAvailable && !decoded.granularity)
        #expect(decoded.byteLimit == 0xA_BCDE)
        // Out-of-range fields are truncated rather than corrupting their neighbours.
        let truncated = SegmentDescriptor(base: 0, limit: 0xFFFF_FFFF, access: 0, flags: 0xFF)
        #expect(truncated.limit == 0xF_FFFF && truncated.flags == 0xF)
    }
}
