// swift-tools-version: 6.1

import PackageDescription

let package = Package(
    name: "swift-vm-allocator",
    platforms: [.macOS(.v15)],
    products: [
        // The allocator library: no dependencies, not even Foundation.
        .library(name: "VMAllocator", targets: ["VMAllocator"]),
        // A thin safe wrapper over the KVM ioctls (Linux only).
        .library(name: "KVM", targets: ["KVM"]),
        // The tiny KVM monitor that proves the allocators by booting a guest.
        .executable(name: "minivmm", targets: ["minivmm"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.0"),
        // The control API's HTTP/1.1 server (NIOCore, NIOPosix, NIOHTTP1 only).
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        // SHA-256 of every file in a snapshot's manifest.
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        // Tests only: parsing docs/api.yaml to check the routes against it.
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
        // `swift package generate-documentation --target VMAllocator` (DocC); a plugin only.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        .target(
            name: "VMAllocator",
            exclude: ["DESIGN.md"],
            // Debug builds (tests, fuzzer) check every mutation's invariants; release
            // builds (benchmarks, users) compile the checks away.
            swiftSettings: [.define("VMALLOCATOR_CHECKS", .when(configuration: .debug))]
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
        .executableTarget(
            name: "minivmm",
            dependencies: [
                "MiniVMM",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The reference models shared by VMAllocatorTests and the fuzzer (scripts/fuzz.sh);
        // test support only, never a product.
        .target(name: "AllocatorModels", path: "Tests/AllocatorModels"),
        .testTarget(
            name: "VMAllocatorTests",
            dependencies: [
                "VMAllocator",
                "AllocatorModels",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "MiniVMMTests",
            dependencies: ["MiniVMM", "minivmm", .product(name: "Yams", package: "Yams")]
        ),
        .testTarget(
            name: "KVMIntegrationTests",
            dependencies: ["KVM", "MiniVMM", "minivmm"]
        ),
    ]
)
