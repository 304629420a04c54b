import Benchmark
import CHeapUsage
import VMAllocator

// Issue 2's targets are per operation and per live allocation, so besides the
// framework's totals each benchmark reports two derived custom metrics. Time per op is
// the thread's CPU time (not wall time), so other jobs on the shared 2-core machine
// that take the core away do not count; the C++ floor (floor/floor.cpp) measures the same.
private let timePerOperation = BenchmarkMetric.custom("Time per op (ps)", useScalingFactor: false)
private let heapPerLiveAllocation = BenchmarkMetric.custom("Heap per live alloc (B)", useScalingFactor: false)

private let sizes = [1_000, 10_000, 100_000, 1_000_000]

private func configuration(n: Int) -> Benchmark.Configuration {
    // Fewer samples at large N keep the whole suite within a few minutes on 2 cores.
    let samples = switch n {
    case ..<10_000: 40
    case ..<100_000: 15
    case ..<1_000_000: 10
    default: 5
    }
    return .init(
        metrics: [.wallClock, .mallocCountTotal, .memoryLeakedBytes, timePerOperation, heapPerLiveAllocation],
        // Unscaled units keep every digit of the derived metrics in the tables and exports.
        units: [timePerOperation: .count, heapPerLiveAllocation: .count],
        warmupIterations: 1,
        scalingFactor: .one,
        maxDuration: .seconds(60),
        maxIterations: samples
    )
}

/// Bytes of heap in use according to glibc, including mmap-backed blocks. The framework's
/// own malloc counters only run between start/stopMeasurement, so they miss the setup
/// phase (W1 before W2 and W3) whose memory the allocator still holds at the end.
private func liveHeapBytes() -> Int {
    Int(heap_bytes_in_use())
}

/// Runs `setup`, then measures `body` alone, then reports per-op time and the heap
/// held since just before `setup` divided by the live allocations left afterwards.
private func measure<State>(
    _ benchmark: Benchmark,
    operations: Int,
    liveAllocations: Int,
    setup: () throws -> State,
    body: (inout State) throws -> Void
) throws {
    let heapBefore = liveHeapBytes()
    var state = try setup()
    benchmark.startMeasurement()
    let start = thread_cpu_nanoseconds()
    try body(&state)
    let elapsed = thread_cpu_nanoseconds() - start
    benchmark.stopMeasurement()
    let heapHeld = liveHeapBytes() - heapBefore
    blackHole(state)
    benchmark.measurement(timePerOperation, Int(elapsed) * 1000 / operations)
    benchmark.measurement(heapPerLiveAllocation, heapHeld / liveAllocations)
}

let benchmarks: @Sendable () -> Void = {
    for policy in [AllocPolicy.firstMatch, .lastMatch] {
        for n in sizes {
            Benchmark("W1 \(policy) N=\(n)", configuration: configuration(n: n)) { benchmark in
                try measure(benchmark, operations: n, liveAllocations: n) {
                    try Workload.makeAddressAllocator()
                } body: { allocator in
                    try Workload.w1(&allocator, n: n, policy: policy)
                }
            }
            Benchmark("W2 \(policy) N=\(n)", configuration: configuration(n: n)) { benchmark in
                try measure(benchmark, operations: (n + 1) / 2, liveAllocations: n / 2) {
                    var allocator = try Workload.makeAddressAllocator()
                    try Workload.w1(&allocator, n: n, policy: policy)
                    return allocator
                } body: { allocator in
                    try Workload.w2(&allocator, n: n, policy: policy)
                }
            }
            Benchmark("W3 \(policy) N=\(n)", configuration: configuration(n: n)) { benchmark in
                try measure(benchmark, operations: n / 2, liveAllocations: n / 2 + n / 2) {
                    var allocator = try Workload.makeAddressAllocator()
                    try Workload.w1(&allocator, n: n, policy: policy)
                    try Workload.w2(&allocator, n: n, policy: policy)
                    return allocator
                } body: { allocator in
                    try Workload.w3(&allocator, n: n, policy: policy)
                }
            }
        }
    }
    // W4's three phases apart, for the comparison with the counter-plus-free-list floor
    // (issue 11): I1 allocateID with nothing freed, I2 freeID (ascending), I3 allocateID
    // of the released IDs.
    for n in sizes {
        Benchmark("I1 allocateID N=\(n)", configuration: configuration(n: n)) { benchmark in
            try measure(benchmark, operations: n, liveAllocations: n) {
                try IdAllocator(rangeBase: 0, rangeEnd: .max)
            } body: { allocator in
                try Workload.allocateIDs(&allocator, n: n, phase: "I1")
            }
        }
        Benchmark("I2 freeID N=\(n)", configuration: configuration(n: n)) { benchmark in
            try measure(benchmark, operations: n, liveAllocations: 1) {
                var allocator = try IdAllocator(rangeBase: 0, rangeEnd: .max)
                try Workload.allocateIDs(&allocator, n: n, phase: "I2 setup")
                return allocator
            } body: { allocator in
                try Workload.freeIDs(&allocator, n: n)
            }
        }
        Benchmark("I3 reallocate N=\(n)", configuration: configuration(n: n)) { benchmark in
            try measure(benchmark, operations: n, liveAllocations: n) {
                var allocator = try IdAllocator(rangeBase: 0, rangeEnd: .max)
                try Workload.allocateIDs(&allocator, n: n, phase: "I3 setup")
                try Workload.freeIDs(&allocator, n: n)
                return allocator
            } body: { allocator in
                try Workload.allocateIDs(&allocator, n: n, phase: "I3")
            }
        }
    }
    for n in sizes {
        Benchmark("W4 IdAllocator N=\(n)", configuration: configuration(n: n)) { benchmark in
            try measure(benchmark, operations: 3 * n, liveAllocations: n) {
                try IdAllocator(rangeBase: 0, rangeEnd: .max)
            } body: { allocator in
                try Workload.w4(&allocator, n: n)
            }
        }
    }
}
