// swift-tools-version:6.2
import PackageDescription

/// Our own code builds with warnings as errors; dependencies keep their warnings. Every file
/// imports what it uses, and an import is internal unless marked `public`: a layer's
/// dependencies do not leak into the layers above it.
let strict: [SwiftSetting] = [
    .treatAllWarnings(as: .error),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// What the database and end-to-end tests use: every layer, and the shared test support.
let testDependencies: [Target.Dependency] = [
    "JuryTestSupport", "JuryDomain", "JuryPostgres", "JurySchema", "JuryStore", "JuryJudges", "JuryRuntime", "JuryMockJudge",
    "JuryBench",
    .product(name: "AsyncHTTPClient", package: "async-http-client"),
    .product(name: "Logging", package: "swift-log"),
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOHTTP1", package: "swift-nio"),
    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
]

let package = Package(
    name: "jury",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "jury", targets: ["jury"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        // libpq, through pkg-config; Debian's libpq-dev provides it. Only JuryPostgres imports it.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // A PostgreSQL client over libpq: connections on their own queues, parameterised queries,
        // COPY, LISTEN, errors that never echo bound values. Knows nothing of Jury.
        .target(
            name: "JuryPostgres",
            dependencies: [
                "CLibPQ",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // What Jury is, without I/O: run configs, taxonomy, consensus, the call policy, claim
        // planning, prompts, the judge protocol, and the queue's states and records.
        .target(
            name: "JuryDomain",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            swiftSettings: strict
        ),
        // The schema's SQL (Schema/), embedded at build time by the EmbedSchema plugin, which
        // runs the embed-schema tool.
        .target(name: "JurySchema", path: "Schema", swiftSettings: strict, plugins: ["EmbedSchema"]),
        .plugin(name: "EmbedSchema", capability: .buildTool(), dependencies: ["embed-schema"]),
        .executableTarget(name: "embed-schema", swiftSettings: strict),
        // Every SQL statement Jury runs, one typed method each; the migrations.
        .target(
            name: "JuryStore",
            dependencies: [
                "JuryDomain",
                "JuryPostgres",
                "JurySchema",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The judge providers, over HTTP.
        .target(
            name: "JuryJudges",
            dependencies: [
                "JuryDomain",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The processes' work: worker, reducer, enqueuer, exporter, operations. Reports its
        // metrics through swift-metrics, whichever backend the process bootstrapped.
        .target(
            name: "JuryRuntime",
            dependencies: [
                "JuryDomain",
                "JuryStore",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // A process's HTTP endpoint for operators: /metrics in the Prometheus text format,
        // /healthz and /readyz for probes.
        .target(
            name: "JuryTelemetry",
            dependencies: [
                "JuryRuntime",
                "JuryStore",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // `jury serve`: the review and monitoring web app, its pages made and escaped in Swift.
        .target(
            name: "JuryWeb",
            dependencies: [
                "JuryDomain",
                "JuryStore",
                "JuryRuntime",
                "JuryTelemetry",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The mock judge server: OpenAI Chat Completions over real HTTP, for demos, tests and benchmarks.
        .target(
            name: "JuryMockJudge",
            dependencies: [
                "JuryDomain",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        // `jury bench`: Jury's throughput against pgbench on the same database; with --scale,
        // ten million jobs end to end, the views and the web app's pages timed at the end.
        .target(
            name: "JuryBench",
            dependencies: [
                "JuryDomain",
                "JuryStore",
                "JuryRuntime",
                "JuryWeb",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // SIGTERM and SIGINT caught into a pipe, so that none is lost (see its header).
        .target(name: "CStopSignals"),
        // The command line: parses arguments and calls the libraries, nothing more.
        .executableTarget(
            name: "jury",
            dependencies: [
                "CStopSignals",
                "JuryDomain",
                "JuryPostgres",
                "JuryStore",
                "JuryJudges",
                "JuryRuntime",
                "JuryTelemetry",
                "JuryWeb",
                "JuryMockJudge",
                "JuryBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // What the test targets share: a throwaway PostgreSQL with a fresh database per test (as a
        // trait), mock judges over real HTTP, helpers to run workers and processes.
        .target(
            name: "JuryTestSupport",
            dependencies: [
                "JuryDomain",
                "JuryPostgres",
                "JuryStore",
                "JuryJudges",
                "JuryRuntime",
                "JuryMockJudge",
                "JuryBench",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/Support",
            swiftSettings: strict
        ),
        // The domain alone: no database, no network; seconds. (The support target lends it helpers only.)
        .testTarget(
            name: "JuryDomainTests",
            dependencies: ["JuryDomain", "JuryTestSupport"],
            swiftSettings: strict
        ),
        // The Postgres layer, the store and the runtime, on a real PostgreSQL and real HTTP.
        .testTarget(name: "JuryStoreTests", dependencies: testDependencies, swiftSettings: strict),
        // The jury binary end to end: processes killed, servers restarted, the command line.
        .testTarget(name: "JuryEndToEndTests", dependencies: testDependencies, swiftSettings: strict),
    ]
)
