// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "MRKProxy",
    platforms: [.macOS(.v15)],
    products: [
        // What an app links: configuration, SQL interception, the encrypted connection, the
        // keystore, the crypto formats and the AWS KMS client. No development tooling.
        .library(name: "MRKProxy", targets: ["MRKProxy"]),
        .executable(name: "mrkproxy", targets: ["mrkproxy"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // `swift package generate-documentation --target MRKProxy` (build-time plugin only).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // C libraries, each imported by exactly one Swift module.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"]), .brew(["libpq"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]
        ),

        // MARK: The library an app links

        // Envelope formats (compact column values, AWS Encryption SDK messages) over libcrypto.
        .target(name: "MRKCrypto", dependencies: ["COpenSSL"]),
        // The libpq binding: connections, parameters, results, streaming, COPY, pipelines.
        .target(
            name: "MRKPostgres",
            dependencies: ["CLibPQ", .product(name: "Logging", package: "swift-log")]
        ),
        // KMS protocol, MRK identity rules, SigV4, credentials, the AWS KMS client.
        .target(
            name: "MRKKMS",
            dependencies: ["MRKCrypto", .product(name: "Logging", package: "swift-log")]
        ),
        // SQL tokenizer, parser and the interceptor's analysis and rewrites. Pure Swift.
        .target(name: "MRKSQL"),
        // Configuration, the encrypted connection and pool, the keystore, value codecs.
        .target(
            name: "MRKProxy",
            dependencies: [
                "MRKCrypto", "MRKKMS", "MRKPostgres", "MRKSQL",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),

        // MARK: The wire-protocol proxy (`mrkproxy serve`), a client of the library

        // The protocol's parsers and writers: client messages, SCRAM-SHA-256, COPY data. Total
        // (fuzzed), and free of the server's I/O.
        .target(
            name: "MRKWireProtocol",
            dependencies: ["MRKProxy", "MRKSQL", "MRKCrypto", .product(name: "NIOCore", package: "swift-nio")]
        ),
        // PostgreSQL protocol 3.0 server (SwiftNIO), sessions over the library's encrypted
        // connections, metrics.
        .target(
            name: "MRKWire",
            dependencies: [
                "MRKWireProtocol", "MRKProxy", "MRKSQL", "MRKCrypto", "MRKPostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),

        // MARK: Operations on real data (`mrkproxy migrate`, `reencrypt`, `keystore status`)

        .target(
            name: "MRKOperations",
            dependencies: ["MRKProxy", "MRKSQL", "MRKCrypto", "MRKPostgres", .product(name: "Logging", package: "swift-log")]
        ),

        // MARK: Development tools (the CLI and the tests only)

        // Throwaway PostgreSQL primary + streaming replica from the installed binaries.
        .target(
            name: "MRKCluster",
            dependencies: ["MRKPostgres", .product(name: "Logging", package: "swift-log")]
        ),
        // The embedded multi-Region KMS and its AWS KMS JSON API server.
        .target(
            name: "MRKLocalKMS",
            dependencies: [
                "MRKCrypto", "MRKKMS", .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The local stack (cluster + KMS), the demo, the benchmarks, the ESDK vector runner.
        .target(
            name: "MRKDevTools",
            dependencies: [
                "MRKProxy", "MRKSQL", "MRKCrypto", "MRKKMS", "MRKPostgres", "MRKCluster", "MRKLocalKMS", "MRKWire", "MRKOperations",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The fuzzing harnesses (one per surface that reads untrusted bytes) and their driver.
        .target(
            name: "MRKFuzzing",
            dependencies: [
                "MRKProxy", "MRKSQL", "MRKCrypto", "MRKKMS", "MRKLocalKMS", "MRKPostgres", "MRKWireProtocol",
                .product(name: "Logging", package: "swift-log"), .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(name: "mrkproxy-fuzz", dependencies: ["MRKFuzzing"]),
        .executableTarget(
            name: "mrkproxy",
            dependencies: [
                "MRKProxy", "MRKDevTools", "MRKSQL", "MRKCrypto", "MRKKMS", "MRKLocalKMS", "MRKPostgres", "MRKCluster", "MRKWire", "MRKOperations",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // MARK: Tests

        // The vectors under Vectors/ are read from the source tree (AWS test suites, see their NOTICE).
        .testTarget(name: "MRKCryptoTests", dependencies: ["MRKCrypto", "MRKDevTools"], exclude: ["Vectors"]),
        .testTarget(
            name: "MRKKMSTests",
            dependencies: [
                "MRKKMS", "MRKCrypto", "MRKLocalKMS", "MRKDevTools",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            exclude: ["Vectors"]
        ),
        .testTarget(name: "MRKSQLTests", dependencies: ["MRKSQL"]),
        .testTarget(name: "MRKFuzzingTests", dependencies: ["MRKFuzzing"]),
        // The wire proxy's protocol pieces, without servers.
        .testTarget(
            name: "MRKWireTests",
            dependencies: ["MRKWire", "MRKWireProtocol", "MRKProxy", "MRKSQL", "MRKCrypto", .product(name: "NIOCore", package: "swift-nio")]
        ),
        // Unit tests of the library: configuration, values, key cache — no database.
        .testTarget(
            name: "MRKProxyTests",
            dependencies: ["MRKProxy", "MRKSQL", "MRKCrypto", "MRKPostgres", .product(name: "Yams", package: "Yams")]
        ),
        // Against real servers: a PostgreSQL primary + streaming replica started from the installed
        // binaries, the local KMS over HTTP, the CLI.
        .testTarget(
            name: "MRKIntegrationTests",
            dependencies: [
                "MRKProxy", "MRKSQL", "MRKCrypto", "MRKKMS", "MRKPostgres", "MRKCluster", "MRKLocalKMS", "MRKDevTools", "MRKWire", "MRKWireProtocol", "MRKOperations",
                .product(name: "Logging", package: "swift-log"), .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
