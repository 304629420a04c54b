import KVM

extension Machine {
    static func loadBootStructures(
        into memory: GuestMemory, layout: GuestMemoryLayout, bootInformation: [UInt8]
    ) throws(MinivmmError) {
        let tables: IdentityPageTables
        do {
            tables = try BootState.pageTables(for: layout)
        } catch {
            throw MinivmmError(.internalError, "cannot build page tables: \(error)")
        }
        guard UInt64(bootInformation.count) <= GuestMemoryLayout.bootInfoCapacity else {
            throw MinivmmError(.internalError, "boot-information table too large (\(bootInformation.count) bytes)")
        }
        let pieces: [(String, UInt64, [UInt8])] = [
            ("GDT", GuestMemoryLayout.gdtAddress, GlobalDescriptorTable.bytes),
            ("boot information", GuestMemoryLayout.bootInfoAddress, bootInformation),
            ("page tables", GuestMemoryLayout.pageTablesAddress, tables.bytes),
        ]
        for (name, address, bytes) in pieces where !memory.write(bytes, at: address) {
            throw MinivmmError(.internalError, "\(name) does not fit in guest RAM at 0x\(String(address, radix: 16))")
        }
    }
}
