/// Everything besides the image that the guest finds in RAM at entry: the GDT, the
/// identity-map page tables and the boot-information table (docs/guest-abi.md).
package enum BootImage {
    /// Why the boot structures could not be placed: a bug, since the plan sized them.
    package enum LoadError: Error, Hashable, Sendable, CustomStringConvertible {
        /// The page tables could not be built for the layout.
        case pageTables(IdentityPageTables.BuildError)
        /// A structure does not fit in its reserved area or in RAM.
        case doesNotFit(String, address: UInt64, bytes: Int)

        /// One line for stderr.
        package var description: String {
            switch self {
            case .pageTables(let error): "cannot build page tables: \(error)"
            case .doesNotFit(let name, let address, let bytes):
                "\(name) (\(bytes) bytes) does not fit in guest RAM at 0x\(String(address, radix: 16))"
            }
        }
    }

    /// The pieces and where each goes, in guest-physical addresses.
    ///
    /// - Complexity: O(n) in the size of the page tables.
    package static func pieces(for plan: MachinePlan) throws(LoadError) -> [(name: String, address: UInt64, bytes: [UInt8])] {
        let tables: IdentityPageTables
        do { tables = try BootState.pageTables(for: plan.layout) } catch { throw .pageTables(error) }
        let table = plan.bootInformation()
        guard UInt64(table.count) <= GuestMemoryLayout.bootInfoCapacity else {
            throw .doesNotFit("boot-information table", address: GuestMemoryLayout.bootInfoAddress, bytes: table.count)
        }
        return [
            ("GDT", GuestMemoryLayout.gdtAddress, GlobalDescriptorTable.bytes),
            ("boot-information table", GuestMemoryLayout.bootInfoAddress, table),
            ("page tables", GuestMemoryLayout.pageTablesAddress, tables.bytes),
        ]
    }
}
