/// One 8-byte x86 segment descriptor, with the fields KVM's `kvm_segment` needs.
///
/// The encoding splits base and limit across the descriptor: limit 15:0 in bits 0–15,
/// base 23:0 in bits 16–39, the access byte in bits 40–47, limit 19:16 in bits 48–51,
/// the flags (AVL, L, D/B, G) in bits 52–55 and base 31:24 in bits 56–63.
package struct SegmentDescriptor: Hashable, Sendable {
    /// The segment base.
    package var base: UInt32
    /// The 20-bit limit, in units of 4 KiB when ``granularity`` is set.
    package var limit: UInt32
    /// The access byte: present, DPL, S and the 4-bit type.
    package var access: UInt8
    /// The 4-bit flags nibble: G (8), D/B (4), L (2), AVL (1).
    package var flags: UInt8

    /// Creates a descriptor from its fields; `limit` is truncated to 20 bits and `flags` to 4.
    package init(base: UInt32, limit: UInt32, access: UInt8, flags: UInt8) {
        self.base = base
        self.limit = limit & 0xF_FFFF
        self.access = access
        self.flags = flags & 0xF
    }

    /// Decodes an encoded descriptor.
    package init(encoded raw: UInt64) {
        let base = UInt32((raw >> 16) & 0xFF_FFFF) | UInt32((raw >> 56) & 0xFF) << 24
        let limit = UInt32(raw & 0xFFFF) | UInt32((raw >> 48) & 0xF) << 16
        self.init(base: base, limit: limit, access: UInt8((raw >> 40) & 0xFF), flags: UInt8((raw >> 52) & 0xF))
    }

    /// The 8-byte encoding as it sits in a descriptor table.
    package var encoded: UInt64 {
        UInt64(limit & 0xFFFF)
            | UInt64(base & 0xFF_FFFF) << 16
            | UInt64(access) << 40
            | UInt64((limit >> 16) & 0xF) << 48
            | UInt64(flags) << 52
            | UInt64(base >> 24) << 56
    }

    /// Segment type (access bits 0–3).
    package var type: UInt8 { access & 0xF }
    /// Code or data segment rather than a system segment (access bit 4).
    package var isCodeOrData: Bool { access & 0x10 != 0 }
    /// Descriptor privilege level (access bits 5–6).
    package var privilegeLevel: UInt8 { (access >> 5) & 3 }
    /// Present (access bit 7).
    package var isPresent: Bool { access & 0x80 != 0 }
    /// Available for software (flag AVL).
    package var isAvailable: Bool { flags & 1 != 0 }
    /// 64-bit code segment (flag L).
    package var isLongMode: Bool { flags & 2 != 0 }
    /// Default operand size 32 bits (flag D/B).
    package var isDefaultBig: Bool { flags & 4 != 0 }
    /// Limit counts 4 KiB units (flag G).
    package var granularity: Bool { flags & 8 != 0 }

    /// The limit in bytes as the CPU applies it (scaled when ``granularity`` is set).
    package var byteLimit: UInt32 { granularity ? (limit << 12) | 0xFFF : limit }
}
