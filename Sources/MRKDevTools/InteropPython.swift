import Foundation

/// The Python interpreter with the official AWS Encryption SDK and boto3 that the interoperability
/// tests and `bench-crypto` run: `MRKPROXY_PYTHON`, else `.venv/bin/python` in the repository
/// (which `scripts/test` creates).
///
/// A plain `swift test` on a machine without it skips the interoperability tests, saying so;
/// `scripts/test` (and so CI) sets `MRKPROXY_REQUIRE_INTEROP=1`, and then they run and fail if
/// Python is missing.
public enum InteropPython {
    /// Why the interoperability tests are skipped, for the test report.
    public static let skipReason = "needs Python with the AWS Encryption SDK and boto3: run scripts/test, which prepares .venv (or set MRKPROXY_PYTHON)"

    /// The interpreter, when one is there.
    public static func path(repository: URL) -> String? {
        let candidate = ProcessInfo.processInfo.environment["MRKPROXY_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
            ?? repository.appendingPathComponent(".venv/bin/python").path
        return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : nil
    }

    /// Whether the interoperability tests run: Python is there, or the run requires them.
    public static func enabled(repository: URL) -> Bool {
        path(repository: repository) != nil || ProcessInfo.processInfo.environment["MRKPROXY_REQUIRE_INTEROP"] == "1"
    }

    /// The interpreter, or an error saying how to provide one.
    public static func require(repository: URL) throws -> String {
        guard let path = path(repository: repository) else {
            throw InteropUnavailable(description: "no Python interpreter with the AWS Encryption SDK: \(skipReason)")
        }
        return path
    }

    public struct InteropUnavailable: Error, CustomStringConvertible {
        public let description: String
    }
}
