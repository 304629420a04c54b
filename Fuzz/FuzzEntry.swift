// libFuzzer entry point for VMAllocator. Built by scripts/fuzz.sh into the same module as
// Sources/VMAllocator, so the internal `checkInvariants()` is reachable.

/// The first byte picks what the rest of the input drives.
@_cdecl("LLVMFuzzerTestOneInput")
public func vmAllocatorFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    var input = FuzzInput(UnsafeBufferPointer(start: data, count: size))
    switch input.byte() % 4 {
    case 0:
        var program = FuzzAddressProgram(input)
        program.run()
    case 1:
        var program = FuzzIdProgram(input)
        program.run()
    case 2: fuzzCheckAddressSnapshot(input.remainingBytes())
    default: fuzzCheckIdSnapshot(input.remainingBytes())
    }
    return 0
}

/// Stops the fuzzer with a message libFuzzer shows next to the crashing input.
func fuzzFail(_ message: @autoclosure () -> String) -> Never {
    fatalError("VMAllocator fuzz discrepancy: \(message())")
}

/// `value`, or a fuzz failure saying what was missing.
func fuzzUnwrap<T>(_ value: T?, _ what: @autoclosure () -> String) -> T {
    guard let value else { fuzzFail(what()) }
    return value
}

extension Result {
    var isFailure: Bool {
        if case .failure = self { return true }
        return false
    }
}
