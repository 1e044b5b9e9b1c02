// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "MRKProxy",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "MRKProxy", targets: ["MRKProxy"]),
        .executable(name: "mrkproxy", targets: ["mrkproxy"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
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

        // Envelope formats (compact column values, AWS Encryption SDK messages) over libcrypto.
        .target(name: "MRKCrypto", dependencies: ["COpenSSL"]),
        // The libpq binding: connections, parameters, results, streaming, COPY, pipelines.
        .target(
            name: "MRKPostgres",
            dependencies: ["CLibPQ", .product(name: "Logging", package: "swift-log")]
        ),
        // Throwaway PostgreSQL primary + streaming replica from the installed binaries.
        .target(
            name: "MRKCluster",
            dependencies: ["MRKPostgres", .product(name: "Logging", package: "swift-log")]
        ),
        // KMS protocol, MRK identity rules, the embedded local KMS, the AWS KMS client.
        .target(
            name: "MRKKMS",
            dependencies: [
                "MRKCrypto", .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // What an app links: configuration, SQL interception, the encrypted connection.
        .target(
            name: "MRKProxy",
            dependencies: [
                "MRKCrypto", "MRKKMS", "MRKPostgres", "MRKCluster",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(
            name: "mrkproxy",
            dependencies: [
                "MRKProxy", "MRKCrypto", "MRKKMS", "MRKPostgres", "MRKCluster",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        .testTarget(name: "MRKCryptoTests", dependencies: ["MRKCrypto"]),
        .testTarget(
            name: "MRKKMSTests",
            dependencies: [
                "MRKKMS", "MRKCrypto",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "MRKPostgresTests",
            dependencies: ["MRKPostgres", "MRKCluster", .product(name: "Yams", package: "Yams")]
        ),
        .testTarget(
            name: "MRKProxyTests",
            dependencies: ["MRKProxy", "MRKCrypto", "MRKKMS", "MRKPostgres", "MRKCluster"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
