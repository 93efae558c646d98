// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Kiln",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "KilnRedis", targets: ["KilnRedis"]),
        .library(name: "Kiln", targets: ["Kiln"]),
        .library(name: "KilnWorker", targets: ["KilnWorker"]),
        // For users' tests: a throwaway Redis, a worker in-process, waiting for a job (docs/testing.md).
        .library(name: "KilnTestSupport", targets: ["KilnTestSupport"]),
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
        // 3.12.3 or later; 4.x too, which async-http-client's graph already resolves to.
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
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
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        // Test helpers, never a dependency of Kiln, KilnWorker or KilnRedis. Besides the tests,
        // `kiln demo`, kiln-chaos and kiln-bench use it for their throwaway Redis and child processes.
        .target(
            name: "KilnTestSupport",
            dependencies: [
                "Kiln", "KilnWorker", "KilnRedis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "kiln",
            dependencies: [
                "Kiln",
                "KilnWorker",
                "KilnTestSupport",  // `kiln demo`: LocalRedisServer, SpawnedProcess
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .executableTarget(
            name: "ExampleWorker",
            dependencies: ["Kiln", "KilnWorker", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),],
            path: "Examples/ExampleWorker"
        ),
        .executableTarget(
            name: "KilnChaos",
            dependencies: [
                "Kiln", "KilnWorker", "KilnRedis",
                "KilnTestSupport",  // LocalRedisServer, SpawnedProcess
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "KilnBench",
            dependencies: [
                "Kiln", "KilnWorker", "KilnRedis",
                "KilnTestSupport",  // LocalRedisServer, SpawnedProcess
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
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["README.md"]
        ),
        // Fuzz targets (docs/testing.md): `make fuzz` builds this with -D KILN_LIBFUZZER and
        // -sanitize=fuzzer,address; a plain build gives a standalone seeded mutation runner. Its entry
        // points (EnvelopeFuzzing, RESPFuzzing) reach internals through `package` access; the tests
        // import it for the fuzz regression tests.
        .executableTarget(
            name: "KilnFuzz",
            dependencies: ["Kiln", "KilnRedis", "KilnWorker", "CHiredis", "KilnFuzzDriver"]
        ),
        .systemLibrary(name: "KilnFuzzDriver"),
        .testTarget(
            name: "KilnTests",
            dependencies: [
                "Kiln", "KilnWorker", "KilnRedis", "KilnTestSupport", "KilnFuzz",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ]
)
