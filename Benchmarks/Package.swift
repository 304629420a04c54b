// swift-tools-version: 6.1

import PackageDescription

// Benchmarks live in their own package so the library itself never depends on
// ordo-one/benchmark (or its malloc interposer).
let package = Package(
    name: "VMAllocatorBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // `name:` keeps the product reference independent of the folder the repository is
        // cloned into (a path dependency is otherwise named after its folder).
        .package(name: "swift-vm-allocator", path: ".."),
        // Only the malloc interposer: the default "RuntimeInterposer" trait would
        // pull in swift-runtime-interposer, which is not available here.
        .package(
            url: "https://github.com/ordo-one/benchmark.git",
            exact: "1.38.1",
            traits: ["MallocInterposer"]
        ),
    ],
    targets: [
        .executableTarget(
            name: "AllocatorBenchmarks",
            dependencies: [
                .product(name: "VMAllocator", package: "swift-vm-allocator"),
                .product(name: "Benchmark", package: "benchmark"),
                "CHeapUsage",
            ],
            path: "Benchmarks/AllocatorBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
        .target(name: "CHeapUsage", path: "Benchmarks/CHeapUsage"),
    ]
)
