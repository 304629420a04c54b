// libFuzzer entry point for snapshot.json decoding (scripts/fuzz-snapshot.sh). Each input
// is the content of a state file, decoded as `SnapshotDirectory.read` decodes it once the
// manifest's digest matched: header first (format, version), then the whole file. Any trap
// is a crash; so is any result that breaks the rules below.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MiniVMM

/// Decodes `data` as `snapshot.json` and as `manifest.json` and checks what came out.
@_cdecl("LLVMFuzzerTestOneInput")
public func snapshotFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Data(bytes: $0, count: size) } ?? Data()
    checkStateFile(bytes)
    checkManifest(bytes)
    return 0
}

/// An accepted state file has this minivmm's format and version and survives a round trip
/// (encode, decode) unchanged; a refused one is refused with a decoding error of
/// `snapshot.json` whose message is one line.
func checkStateFile(_ bytes: Data) {
    let state: SnapshotState
    do {
        state = try SnapshotStateFile.decode(bytes)
    } catch {
        switch error {
        case .wrongFormat, .unknownVersion: break
        case .invalid(let file, _, _) where file == SnapshotFileNames.state: break
        default: fail("decoding refused with a case it never throws: \(error)")
        }
        let message = error.description
        if message.isEmpty || message.contains(where: { $0.isNewline }) || message.count > 1000 {
            fail("not one line: \(message.debugDescription)")
        }
        return
    }
    guard state.header.format == SnapshotHeader.formatName, state.header.formatVersion == SnapshotHeader.currentVersion else {
        fail("accepted header \(state.header)")
    }
    let again: SnapshotState
    do {
        again = try SnapshotStateFile.decode(Data(SnapshotStateFile.encode(state)))
    } catch {
        fail("an accepted state does not survive a round trip: \(error)")
    }
    if again != state { fail("a round trip changed the state") }
}

/// An accepted manifest names only files a snapshot directory can hold, each once.
func checkManifest(_ bytes: Data) {
    guard let manifest = try? JSONDecoder().decode(SnapshotManifest.self, from: bytes) else { return }
    let names = manifest.files.map(\.name)
    if Set(names).count != names.count { fail("a manifest lists a file twice: \(names)") }
    for name in names where name != SnapshotFileNames.state {
        if let problem = SnapshotFileNames.problem(withMemoryFileName: name) { fail("accepted file name \(problem)") }
    }
}

/// Stops the fuzzer with a message libFuzzer shows next to the crashing input.
func fail(_ message: String) -> Never {
    fatalError("snapshot fuzz discrepancy: \(message)")
}
