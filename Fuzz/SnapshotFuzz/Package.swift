// swift-tools-version: 6.1

// The libFuzzer target for snapshot.json decoding, built and run by
// scripts/fuzz-snapshot.sh. A package of its own because the fuzzer is no product of
// minivmm, yet needs MiniVMM's `package` declarations, which only targets of the same
// package see: so MiniVMM and the targets it needs are compiled here once more, from
// symlinks to the main package's sources (Sources/VMAllocator, CKVM, KVM, MiniVMM).
//
// Keep the four targets below as ../../Package.swift declares them: a dependency added to
// MiniVMM there must be added here too (the fuzz build fails until it is).

import PackageDescription

let package = Package(
    name: "SnapshotFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
    ],
    targets: [
        .target(
            name: "VMAllocator",
            exclude: ["DESIGN.md"],
            // As in the main package's debug builds: every mutation checks its invariants.
            swiftSettings: [.define("VMALLOCATOR_CHECKS")]
        ),
        .systemLibrary(name: "CKVM", path: "Sources/CKVM"),
        .target(
            name: "KVM",
            dependencies: [
                "CKVM",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "MiniVMM",
            dependencies: [
                "VMAllocator",
                "KVM",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["DESIGN.md"]
        ),
        // No main: libFuzzer's runs LLVMFuzzerTestOneInput (the fuzzer sanitizer links it).
        .executableTarget(name: "SnapshotFuzz", dependencies: ["MiniVMM"]),
    ]
)
