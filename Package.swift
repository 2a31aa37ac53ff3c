// swift-tools-version:6.2
import PackageDescription

/// Our own code builds with warnings as errors; dependencies keep their warnings.
let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

let package = Package(
    name: "jury",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "jury", targets: ["jury"]),
        .library(name: "JuryCore", targets: ["JuryCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        // libpq, through pkg-config; Debian's libpq-dev provides it.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // Everything Jury does: the Postgres layer, the queue, the judges, the reducer.
        .target(
            name: "JuryCore",
            dependencies: [
                "CLibPQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),
        // The mock judge server: OpenAI Chat Completions over real HTTP, for demos, tests and benchmarks.
        .target(
            name: "JuryMockJudge",
            dependencies: [
                "JuryCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        // The command line: parses arguments and calls the libraries, nothing more.
        .executableTarget(
            name: "jury",
            dependencies: [
                "JuryCore",
                "JuryMockJudge",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "JuryTests",
            dependencies: [
                "JuryCore",
                "JuryMockJudge",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
    ]
)
