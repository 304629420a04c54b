/// A snapshot and the parents it needs: a diff names its parent, down to one full snapshot.
/// Every snapshot of the chain is read and checked (``SnapshotDirectory/read(from:verifyMemory:)``)
/// before anything is restored, and all must describe the same RAM regions.
package struct SnapshotChain: Sendable {
    /// The most parents a chain may have (a loop in the parent names ends there too).
    package static let maximumLength = 64

    /// The snapshot to restore, as given.
    package let path: String
    /// Its contents: the machine's state.
    package let newest: LoadedSnapshot
    /// The full snapshot's memory file of each slot.
    package let baseFiles: [UInt32: String]
    /// The diffs, oldest first: each slot's memory file and the pages it holds.
    package let overlays: [[UInt32: (path: String, pages: [PageRun])]]

    /// Reads `newest` and every parent it needs.
    ///
    /// - Throws: ``SnapshotError``: a snapshot of the chain is missing or invalid, a diff's
    ///   parent is not given, the chain is longer than ``maximumLength``, or its snapshots'
    ///   RAM regions differ.
    /// - Complexity: O(c) reads for a chain of c snapshots.
    package init(newest path: String, verifyMemory: Bool) throws(SnapshotError) {
        var chain: [(path: String, snapshot: LoadedSnapshot)] = []
        var next: String? = path
        while let current = next {
            guard chain.count < Self.maximumLength else {
                throw .invalid(
                    file: current + "/" + SnapshotFileNames.state, fieldPath: "header.parent",
                    reason: "the chain of diffs is longer than \(Self.maximumLength) snapshots (or loops)")
            }
            let snapshot = try SnapshotDirectory.read(from: current, verifyMemory: verifyMemory)
            let header = snapshot.state.header
            switch header.type {
            case .full:
                next = nil
            case .diff:
                guard let parent = header.parent, !parent.isEmpty else {
                    throw .invalid(file: current + "/" + SnapshotFileNames.state, fieldPath: "header.parent", reason: "a diff names its parent")
                }
                next = parent
            }
            chain.append((current, snapshot))
        }
        let regions = chain[0].snapshot.state.machine.memory.map { [$0.slot: $0.range] }
        for (current, snapshot) in chain.dropFirst() where snapshot.state.machine.memory.map({ [$0.slot: $0.range] }) != regions {
            throw .invalid(
                file: current + "/" + SnapshotFileNames.state, fieldPath: "machine.memory",
                reason: "its RAM regions differ from those of the diff taken after it")
        }
        let base = chain[chain.count - 1].snapshot
        self.path = path
        newest = chain[0].snapshot
        baseFiles = Dictionary(uniqueKeysWithValues: base.memory.map { ($0.record.slot, $0.path) })
        overlays = chain.dropLast().reversed().map { _, snapshot in
            Dictionary(uniqueKeysWithValues: snapshot.memory.map { ($0.record.slot, ($0.path, $0.record.pages ?? [])) })
        }
    }
}
