// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Kiln",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "KilnRedis", targets: ["KilnRedis"]),
        .library(name: "Kiln", targets: ["Kiln"]),
        .library(name: "KilnWorker", targets: ["KilnWorker"]),
        .executable(name: "kiln", targets: ["kiln"]),
        .executable(name: "kiln-example-worker", targets: ["ExampleWorker"]),
        .executable(name: "kiln-chaos", targets: ["KilnChaos"]),
        .executable(name: "kiln-bench", targets: ["KilnBench"]),
        .executable(name: "kiln-peer", targets: ["KilnPeer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.24.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.1.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .target(
            name: "KilnRedis",
            dependencies: ["CHiredis"]
        ),
        .target(
            name: "Kiln",
            dependencies: [
                "KilnRedis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        .target(
            name: "KilnWorker",
            dependencies: [
                "Kiln",
                "KilnRedis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        .executableTarget(
            name: "kiln",
            dependencies: [
                "Kiln",
                "KilnWorker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .executableTarget(
            name: "ExampleWorker",
            dependencies: ["Kiln", "KilnWorker"],
            path: "Examples/ExampleWorker"
        ),
        .executableTarget(
            name: "KilnChaos",
            dependencies: [
                "Kiln", "KilnWorker", "KilnRedis",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "KilnBench",
            dependencies: [
                "Kiln", "KilnWorker", "KilnRedis",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The peer benchmark harness's adapter (../shared/peers/ADAPTER.md); see Sources/KilnPeer/README.md.
        .executableTarget(
            name: "KilnPeer",
            dependencies: [
                "Kiln", "KilnWorker", "KilnRedis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"]
        ),
        // Fuzz targets (docs/testing.md): `make fuzz` builds this with -D KILN_LIBFUZZER and
        // -sanitize=fuzzer,address; a plain build gives a standalone seeded mutation runner.
        .executableTarget(
            name: "KilnFuzz",
            dependencies: ["Kiln", "KilnRedis", "KilnWorker", "KilnFuzzDriver"]
        ),
        .systemLibrary(name: "KilnFuzzDriver"),
        .testTarget(
            name: "KilnTests",
            dependencies: [
                "Kiln", "KilnWorker", "KilnRedis",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ]
)
