/// One RAM region's bytes for ``SnapshotDirectory/write(state:memory:to:)``: the memory
/// file `name` (the ``MemoryRecord/file`` of its record) and the region's host mapping.
///
/// Borrowed, not copied: guest RAM can be GiBs, so the buffer is read in place while it is
/// written, and must stay mapped and unchanged (the VM paused) until the write returns.
package struct MemoryFile {
    /// The file's name in the snapshot directory, e.g. `memory-0.bin`.
    package var name: String
    /// The region's bytes.
    package var bytes: UnsafeRawBufferPointer

    /// The file `name` with the content `bytes`.
    package init(name: String, bytes: UnsafeRawBufferPointer) {
        self.name = name
        self.bytes = bytes
    }
}
