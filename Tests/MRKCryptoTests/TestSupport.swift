import Foundation

/// Paths derived from this file's location: `<repo>/Tests/MRKCryptoTests/TestSupport.swift`.
enum TestPaths {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// The AWS Encryption SDK test vectors, kept in the repository (see their NOTICE).
    static let esdkVectors = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Vectors/esdk")
}
