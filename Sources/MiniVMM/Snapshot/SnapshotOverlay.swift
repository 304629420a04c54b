import SystemPackage

/// Lays diff snapshots' pages over RAM mapped from a full snapshot: each diff's memory file
/// holds its pages packed in the order its record lists them.
enum SnapshotOverlay {
    /// Copies every page of every diff in `overlays` (oldest first) into `memory`, so the
    /// newest diff wins.
    ///
    /// - Throws: ``SnapshotError`` naming the file that cannot be read or does not fit.
    /// - Complexity: O(p) in the number of pages the diffs hold.
    static func apply(_ overlays: [[UInt32: (path: String, pages: [PageRun])]], to memory: GuestMemory) throws(SnapshotError) {
        for diff in overlays {
            for (slot, file) in diff.sorted(by: { $0.key < $1.key }) {
                guard let mapped = memory.mapping(slot: slot) else {
                    throw .invalid(file: file.path, fieldPath: "machine.memory", reason: "slot \(slot) is not in the full snapshot")
                }
                try apply(file, to: mapped)
            }
        }
    }

    private static func apply(_ file: (path: String, pages: [PageRun]), to mapped: GuestMemory.Mapped) throws(SnapshotError) {
        let descriptor: FileDescriptor
        do {
            descriptor = try HostCall.retrying("open") { try FileDescriptor.open(file.path, .readOnly, options: .closeOnExec, retryOnInterrupt: false) }
        } catch {
            throw .unreadable(file: file.path, error)
        }
        defer { try? descriptor.close() }
        var offset: Int64 = 0
        for run in file.pages {
            let start = run.first * PageRun.pageSize
            let length = run.count * PageRun.pageSize
            guard start <= mapped.region.size, length <= mapped.region.size - start else {
                throw .invalid(file: file.path, fieldPath: "machine.memory.pages", reason: "a page lies outside its region")
            }
            let destination = UnsafeMutableRawBufferPointer(
                start: mapped.mapping.baseAddress + Int(start), count: Int(length))
            var done = 0
            while done < destination.count {
                let chunk = UnsafeMutableRawBufferPointer(rebasing: destination[done...])
                let read: Int
                do {
                    read = try HostCall.retrying("pread") {
                        try descriptor.read(fromAbsoluteOffset: offset + Int64(done), into: chunk, retryOnInterrupt: false)
                    }
                } catch {
                    throw .unreadable(file: file.path, error)
                }
                guard read > 0 else { throw .memorySize(file: file.path, expected: UInt64(offset) + length, actual: UInt64(offset) + UInt64(done)) }
                done += read
            }
            offset += Int64(length)
        }
    }
}
