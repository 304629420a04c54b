import Foundation

// Snapshot decoding is checked differentially: the same bytes are decoded into a plain
// mirror of the documented JSON format, validated here by the documented rules, and the
// real decoder must accept exactly the valid ones and reproduce exactly their contents.

private struct AddressSnapshotMirror: Decodable {
    let base: UInt64
    let end: UInt64
    let allocations: [[UInt64]]

    /// The live ranges if the snapshot obeys the rules on `AddressAllocator`, else nil.
    var validAllocations: [RangeInclusive]? {
        guard base <= end, !(base == 0 && end == .max) else { return nil }
        var ranges: [RangeInclusive] = []
        for pair in allocations {
            guard pair.count == 2, pair[0] <= pair[1], base <= pair[0], pair[1] <= end else { return nil }
            if let previous = ranges.last, pair[0] <= previous.end { return nil }
            guard let range = try? RangeInclusive(start: pair[0], end: pair[1]) else { return nil }
            ranges.append(range)
        }
        return ranges
    }
}

private struct IdSnapshotMirror: Decodable, Equatable {
    let rangeBase: UInt32
    let rangeEnd: UInt32
    let runs: [[UInt32]]

    /// Whether the snapshot obeys the rules on `IdAllocator`.
    var isValid: Bool {
        guard rangeBase <= rangeEnd else { return false }
        var previous: (end: UInt32, state: UInt32)?
        for run in runs {
            guard run.count == 3, run[0] <= run[1], rangeBase <= run[0], run[1] <= rangeEnd, run[2] <= 1 else {
                return false
            }
            if let previous {
                guard previous.end < run[0] else { return false }
                guard previous.end + 1 < run[0] || previous.state != run[2] else { return false }
            }
            previous = (run[1], run[2])
        }
        return true
    }
}

/// Decodes `bytes` as an `AddressAllocator`; crashes on any disagreement with the mirror.
/// Returns the allocator and a matching model when the bytes were a valid snapshot.
@discardableResult
func fuzzCheckAddressSnapshot(_ bytes: [UInt8]) -> (allocator: AddressAllocator, model: FuzzAddressModel)? {
    let data = Data(bytes)
    let mirror = try? JSONDecoder().decode(AddressSnapshotMirror.self, from: data)
    let valid = mirror?.validAllocations
    let decoded: AddressAllocator
    do {
        decoded = try JSONDecoder().decode(AddressAllocator.self, from: data)
    } catch is DecodingError {
        if valid != nil { fuzzFail("valid address snapshot rejected: \(String(decoding: bytes, as: UTF8.self))") }
        return nil
    } catch {
        fuzzFail("address snapshot decoding threw a non-DecodingError \(error)")
    }
    guard let mirror, let valid else {
        fuzzFail("invalid address snapshot accepted: \(String(decoding: bytes, as: UTF8.self))")
    }
    if let problem = decoded.checkInvariants() {
        fuzzFail("decoded address snapshot breaks an invariant: \(problem)")
    }
    let model = FuzzAddressModel(base: mirror.base, end: mirror.end, live: valid)
    fuzzCompare(decoded, model, "decoding a snapshot")
    guard let again = try? JSONDecoder().decode(AddressAllocator.self, from: JSONEncoder().encode(decoded)),
        again == decoded
    else {
        fuzzFail("decoded address snapshot does not round-trip")
    }
    return (decoded, model)
}

/// Decodes `bytes` as an `IdAllocator`; crashes on any disagreement with the mirror.
/// Returns the allocator and a matching model when the bytes were a valid snapshot of a
/// range small enough for the set-based model.
@discardableResult
func fuzzCheckIdSnapshot(_ bytes: [UInt8]) -> (allocator: IdAllocator, model: FuzzIdModel)? {
    let data = Data(bytes)
    let mirror = try? JSONDecoder().decode(IdSnapshotMirror.self, from: data)
    let isValid = mirror?.isValid ?? false
    let decoded: IdAllocator
    do {
        decoded = try JSONDecoder().decode(IdAllocator.self, from: data)
    } catch is DecodingError {
        if isValid { fuzzFail("valid ID snapshot rejected: \(String(decoding: bytes, as: UTF8.self))") }
        return nil
    } catch {
        fuzzFail("ID snapshot decoding threw a non-DecodingError \(error)")
    }
    guard let mirror, isValid else {
        fuzzFail("invalid ID snapshot accepted: \(String(decoding: bytes, as: UTF8.self))")
    }
    if let problem = decoded.checkInvariants() {
        fuzzFail("decoded ID snapshot breaks an invariant: \(problem)")
    }
    guard let reencoded = try? JSONEncoder().encode(decoded),
        let echo = try? JSONDecoder().decode(IdSnapshotMirror.self, from: reencoded), echo == mirror
    else {
        fuzzFail("decoded ID snapshot does not re-encode to its input")
    }
    // Probe the public API at every run's edges.
    for run in mirror.runs {
        let (start, end, released) = (run[0], run[1], run[2] == 1)
        guard !decoded.isAllocated(start), !decoded.isAllocated(end) else {
            fuzzFail("ID run [\(start), \(end)] reads as allocated")
        }
        var probe = decoded
        let expected: AllocatorError = released ? .alreadyReleased(start) : .neverAllocated(start)
        do {
            try probe.freeID(start)
            fuzzFail("freeID(\(start)) of a free ID succeeded")
        } catch {
            guard error == expected else { fuzzFail("freeID(\(start)) threw \(error), expected \(expected)") }
        }
    }
    guard mirror.rangeEnd - mirror.rangeBase < 4_096 else { return nil }
    let model = FuzzIdModel(mirror)
    for id in mirror.rangeBase...mirror.rangeEnd where decoded.isAllocated(id) != model.isAllocated(id) {
        fuzzFail("decoded ID snapshot: isAllocated(\(id)) = \(decoded.isAllocated(id))")
    }
    return (decoded, model)
}

extension FuzzIdModel {
    /// The model of a valid snapshot: IDs in no run are live, runs with state 1 released.
    fileprivate init(_ mirror: IdSnapshotMirror) {
        var free: Set<UInt32> = []
        var released: Set<UInt32> = []
        for run in mirror.runs {
            for id in run[0]...run[1] {
                free.insert(id)
                if run[2] == 1 { released.insert(id) }
            }
        }
        let live = Set((mirror.rangeBase...mirror.rangeEnd).filter { !free.contains($0) })
        self.init(rangeBase: mirror.rangeBase, rangeEnd: mirror.rangeEnd, live: live, released: released)
    }
}
