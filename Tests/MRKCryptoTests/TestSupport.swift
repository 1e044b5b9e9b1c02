import Foundation

/// Paths derived from this file's location: `<repo>/Tests/MRKCryptoTests/TestSupport.swift`.
enum TestPaths {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// `<repo>/../shared/testdata/esdk` (the same layout locally and on CI).
    static let esdkVectors = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/testdata/esdk")
}
