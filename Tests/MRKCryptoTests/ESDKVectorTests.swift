import Foundation
import Testing
@testable import MRKDevTools
@testable import MRKLocalKMS
@testable import MRKCrypto

@Suite struct ESDKVectorTests {
    func run(_ set: String) async throws -> ESDKManifestRunner.Report {
        let path = TestPaths.esdkVectors.appendingPathComponent(set).appendingPathComponent("manifest.json").path
        try #require(FileManager.default.fileExists(atPath: path), "missing test vectors at \(path)")
        return try await ESDKManifestRunner().run(manifestPath: path)
    }

    @Test func validNet400VectorsAllDecrypt() async throws {
        let report = try await run("valid-Net-4.0.0")
        #expect(report.results.count == 5)
        for result in report.results {
            #expect(result.outcome == .decrypted(matches: true), "\(result.name): \(result.outcome)")
        }
        #expect(report.summaryLine == "5 passed, 0 failed")
    }

    /// These messages were written by a buggy .NET release; their manifest still lists the
    /// plaintext, but a correct implementation must refuse every one of them.
    @Test func invalidNet400VectorsAreAllRejected() async throws {
        let report = try await run("invalid-Net-4.0.0")
        #expect(report.results.count == 28)
        for result in report.results {
            guard case .rejected = result.outcome else {
                Issue.record("\(result.name) was not rejected: \(result.outcome)")
                continue
            }
        }
        #expect(report.skippedCount == 0)
    }
}

@Suite struct ESDKManifestRunnerTests {
    /// A synthetic v2 manifest: one good raw-AES vector, one vector expected to fail (and failing),
    /// one expected to fail that decrypts (a runner failure), and KMS/RSA vectors that are skipped.
    @Test func countsPassedFailedAndSkipped() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mrkproxy-manifest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = SecureRandom.bytes(count: 32)
        let keyring = try RawAESKeyring(keyNamespace: "ns", keyName: "k256", wrappingKey: SecretBytes(key))
        let good = try await ESDKClient().encrypt(Array("plain".utf8), keyring: keyring, encryptionContext: ["a": "b"])
        try Data(good).write(to: dir.appendingPathComponent("good"))
        try Data(good.dropLast(3)).write(to: dir.appendingPathComponent("bad"))
        try Data("plain".utf8).write(to: dir.appendingPathComponent("plain"))
        let keys = """
            {"manifest": {"type": "keys", "version": 3}, "keys": {
              "k256": {"type": "symmetric", "algorithm": "aes", "bits": 256, "encoding": "base64", "key-id": "k256",
                       "material": "\(Data(key).base64EncodedString())", "encrypt": true, "decrypt": true},
              "kms": {"type": "aws-kms", "key-id": "arn:aws:kms:us-west-2:111122223333:key/mrk-1", "encrypt": true, "decrypt": true}}}
            """
        let raw = #"[{"type": "raw", "key": "k256", "provider-id": "ns", "encryption-algorithm": "aes"}]"#
        let manifest = """
            {"manifest": {"type": "awses-decrypt", "version": 2}, "keys": "file://keys.json", "tests": {
              "good": {"ciphertext": "file://good", "master-keys": \(raw), "result": {"output": {"plaintext": "file://plain"}}},
              "bad-expected": {"ciphertext": "file://bad", "master-keys": \(raw), "result": {"error": {"error-description": "truncated"}}},
              "good-but-error-expected": {"ciphertext": "file://good", "master-keys": \(raw), "result": {"error": {"error-description": "x"}}},
              "kms": {"ciphertext": "file://good", "master-keys": [{"type": "aws-kms", "key": "kms"}], "result": {"output": {"plaintext": "file://plain"}}},
              "rsa": {"ciphertext": "file://good", "master-keys": [{"type": "raw", "key": "k256", "provider-id": "ns", "encryption-algorithm": "rsa", "padding-algorithm": "oaep-mgf1"}],
                      "result": {"output": {"plaintext": "file://plain"}}}}}
            """
        try Data(keys.utf8).write(to: dir.appendingPathComponent("keys.json"))
        try Data(manifest.utf8).write(to: dir.appendingPathComponent("manifest.json"))
        let report = try await ESDKManifestRunner().run(manifestPath: dir.appendingPathComponent("manifest.json").path)
        #expect(report.summaryLine == "2 passed, 1 failed, 2 skipped")
        #expect(!report.succeeded)
        let failed = report.results.filter { !$0.skipped && !$0.passed }.map(\.name)
        #expect(failed == ["good-but-error-expected"])
        #expect(Set(report.results.filter(\.skipped).map(\.name)) == ["kms", "rsa"])
    }

    @Test func rejectsOtherManifestKinds() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mrkproxy-manifest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("manifest.json")
        try Data(#"{"manifest": {"type": "awses-decrypt", "version": 1}, "keys": "file://keys.json", "tests": {}}"#.utf8).write(to: path)
        await #expect(throws: CryptoError.self) { try await ESDKManifestRunner().run(manifestPath: path.path) }
        try Data(#"{"manifest": {"type": "awses-encrypt", "version": 3}}"#.utf8).write(to: path)
        await #expect(throws: CryptoError.self) { try await ESDKManifestRunner().run(manifestPath: path.path) }
    }
}
