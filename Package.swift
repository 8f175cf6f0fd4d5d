// swift-tools-version:6.1
import PackageDescription

/// The shipped handler plugins written in C: each is its own `.so`, built by the
/// normal `swift build`, and named `libswyplugin-NAME.so` so the host can find
/// the shipped set next to its own executable.
let cPlugins = ["echo", "sha256", "sleep", "fail", "crash"]
/// The shipped dispatch strategies, each a C plugin `.so` loaded by the host
/// (not by workers): sources in `Plugins/strategies/NAME`, built as
/// `libswystrategy-NAME.so` next to the `switchyard` executable.
let cStrategies = ["round_robin", "least_loaded", "key_affinity", "two_choices"]

let strictC: [CSetting] = [.unsafeFlags(["-Wall", "-Wextra", "-Werror"])]
// The scheduler and codec are generic and called per task from the host:
// let the host specialize and inline them (measured: see the issue notes).
let crossModule: [SwiftSetting] = [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]
// The per-task path (codec, scheduler, dispatcher) in release builds skips the
// run-time exclusivity checks: swift_beginAccess and its AccessSet were 3.9% of
// the host's samples under `switchyard bench -c 1024 -k 16`. Debug builds, which
// run the tests, keep them, so an overlapping access still fails there.
let uncheckedExclusivity: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))
]

var package = Package(
    name: "Switchyard",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "switchyard", targets: ["SwitchyardCLI"]),
        .library(name: "SwitchyardCore", targets: ["SwitchyardCore"]),
        .library(name: "SwitchyardHost", targets: ["SwitchyardHost"]),
        .library(name: "SwitchyardClient", targets: ["SwitchyardClient"]),
        .library(name: "SwitchyardPluginSDK", targets: ["SwitchyardPluginSDK"]),
        .library(name: "swyplugin-wordcount", type: .dynamic, targets: ["PluginWordcount"]),
    ],
    // `--store postgres://` (several hosts sharing one queue) needs postgres-nio and swift-crypto,
    // about a third of a clean build. On by default; an embedder that keeps its tasks in SQLite or in
    // memory can leave it out (`traits: []` on the dependency, or `swift build --disable-default-traits`),
    // and so do the CI builds that never use it (.ci/sanitize, bench/peers/run).
    traits: [
        .trait(name: "PostgreSQL", description: "The PostgreSQL shared queue: serve --store postgres://, switchyard migrate."),
        .default(enabledTraits: ["PostgreSQL"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // The C ABI: one header in sdk/include, shared by the host and every plugin.
        .target(name: "SwitchyardABI", path: "sdk", sources: ["src"], publicHeadersPath: "include", cSettings: strictC),
        // System calls Swift cannot make directly (posix_spawn with closefrom).
        // (and SHA-256 of plugin files, through libcrypto, which the sha256 plugin uses too).
        .target(
            name: "CSwitchyardSystem", path: "Sources/CSwitchyardSystem", cSettings: strictC,
            linkerSettings: [.linkedLibrary("crypto")]),
        // libffi (Debian's libffi-dev), for C functions bound as handlers without glue.
        .systemLibrary(name: "CLibFFI", path: "Sources/CLibFFI"),
        // SHA-256 and a constant-time comparison through libcrypto, for the handshake's token checks.
        .target(
            name: "CSwitchyardDigest", path: "Sources/CSwitchyardDigest", cSettings: strictC,
            linkerSettings: [.linkedLibrary("crypto")]),
        // Wire codec, task model, scheduling and handshake state machines: no sockets, no processes.
        .target(
            name: "SwitchyardCore",
            dependencies: [
                "CSwitchyardDigest",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            swiftSettings: crossModule + uncheckedExclusivity
        ),
        // The embeddable host runtime: server, worker pool, plugin loading.
        .target(
            name: "SwitchyardHost",
            dependencies: [
                "SwitchyardCore", "SwitchyardABI", "CSwitchyardSystem", "CLibFFI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["PostgreSQL"])),
            ],
            swiftSettings: uncheckedExclusivity
        ),
        // The client library: depends on the codec, never on the host.
        .target(
            name: "SwitchyardClient",
            dependencies: [
                "SwitchyardCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // Write handler plugins in Swift without touching raw pointers.
        .target(name: "SwitchyardPluginSDK", dependencies: ["SwitchyardABI"]),
        .executableTarget(
            name: "SwitchyardCLI",
            dependencies: [
                "SwitchyardHost", "SwitchyardClient", "SwitchyardCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/switchyard"
        ),
        // The shipped Swift plugin.
        .target(name: "PluginWordcount", dependencies: ["SwitchyardPluginSDK"], path: "Plugins/wordcount"),
        // Embedding example: builds in CI so it cannot rot.
        .executableTarget(
            name: "EmbedExample",
            dependencies: [
                "SwitchyardHost", "SwitchyardClient", "SwitchyardCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "examples/embed"
        ),
        .testTarget(
            name: "SwitchyardCoreTests",
            dependencies: [
                "SwitchyardCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SwitchyardStoreTests",
            dependencies: ["SwitchyardHost", "SwitchyardCore", .product(name: "NIOCore", package: "swift-nio")]
        ),
        // The shipped strategy .so files, loaded through the ABI (needs them built: `swift build`).
        .testTarget(
            name: "SwitchyardStrategyTests",
            dependencies: [
                "SwitchyardHost", "SwitchyardABI", "SwitchyardCore", "SwitchyardClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Host parts that need the OS but no server: the inotify watcher, and the reload burst
        // rule on a controllable clock.
        .testTarget(
            name: "SwitchyardHostTests",
            dependencies: [
                "SwitchyardHost", "SwitchyardCore", .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        // Bindings without processes: the signature parser, JSON arguments, and calls into real libm.
        .testTarget(
            name: "SwitchyardBindingTests",
            dependencies: ["SwitchyardHost", "SwitchyardCore", .product(name: "NIOCore", package: "swift-nio")]
        ),
        // ns per call of a bound function: JSON in, ffi_call, JSON out vs a direct call (a benchmark, not a test).
        .executableTarget(
            name: "FFIBench",
            dependencies: ["SwitchyardHost", "SwitchyardCore", .product(name: "NIOCore", package: "swift-nio")],
            path: "bench/ffi"
        ),
        // Median ns per `pick` through the ABI for each shipped strategy (a benchmark, not a test).
        // What a hot reload costs the tasks flowing through it (bench/reload/run; a benchmark, not a test).
        .executableTarget(
            name: "ReloadBench",
            dependencies: [
                "SwitchyardClient", "SwitchyardCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "bench/reload", exclude: ["run"]
        ),
        .executableTarget(
            name: "StrategyBench", dependencies: ["SwitchyardHost", "SwitchyardABI"], path: "bench/strategy"
        ),
        // The libFuzzer target for the frame decoder and the message decoders (fuzz/run builds it
        // with -sanitize=fuzzer); a normal build makes a tool that writes the seed corpus and
        // checks saved inputs.
        .executableTarget(
            name: "SwitchyardFuzz",
            dependencies: ["SwitchyardCore", .product(name: "NIOCore", package: "swift-nio")],
            path: "fuzz/target"
        ),
        // The seed corpus and every input the fuzzer ever failed on, through the same checks.
        .testTarget(
            name: "SwitchyardFuzzTests",
            dependencies: ["SwitchyardFuzz", "SwitchyardCore", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "SwitchyardIntegrationTests",
            dependencies: [
                "SwitchyardClient", "SwitchyardCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

for name in cPlugins {
    let target = "Plugin_\(name)"
    package.targets.append(
        .target(
            name: target, dependencies: ["SwitchyardABI"], path: "Plugins/\(name)",
            publicHeadersPath: "include",
            cSettings: strictC,
            linkerSettings: name == "sha256" ? [.linkedLibrary("crypto")] : []
        )
    )
    package.products.append(.library(name: "swyplugin-\(name)", type: .dynamic, targets: [target]))
}

for name in cStrategies {
    let target = "Strategy_\(name)"
    package.targets.append(
        .target(
            name: target, dependencies: ["SwitchyardABI"], path: "Plugins/strategies/\(name)",
            publicHeadersPath: "include",
            cSettings: strictC
        )
    )
    package.products.append(.library(name: "swystrategy-\(name)", type: .dynamic, targets: [target]))
}
