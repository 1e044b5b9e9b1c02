import MRKLocalKMS
import MRKCluster
import MRKPostgres
import MRKKMS
import MRKCrypto
import MRKSQL
import MRKProxy
import Foundation

/// Runs an `awses-decrypt` test-vector manifest (versions 2–4) whose master keys are raw AES keys
/// from its keys manifest. Vectors needing other keys (AWS KMS, RSA) are skipped.
public struct ESDKManifestRunner: Sendable {
    /// What a test expects and what happened.
    public struct TestResult: Sendable {
        /// What the manifest expects.
        public enum Expectation: Sendable, Equatable {
            case plaintext
            case error(description: String)
        }

        /// What decrypting produced.
        public enum Outcome: Sendable, Equatable {
            /// Decrypted; `matches` tells whether the plaintext equals the expected one (always false when an error was expected).
            case decrypted(matches: Bool)
            /// Decryption failed with this (safe) error description.
            case rejected(reason: String)
            /// Not run, and why.
            case skipped(reason: String)
        }

        /// Test name (manifest key).
        public let name: String
        public let expectation: Expectation
        public let outcome: Outcome

        /// Whether the result agrees with the manifest.
        public var passed: Bool {
            switch (expectation, outcome) {
            case (.plaintext, .decrypted(let matches)): matches
            case (.error, .rejected): true
            default: false
            }
        }

        /// Whether the test was skipped.
        public var skipped: Bool { if case .skipped = outcome { true } else { false } }
    }

    /// All results of a run.
    public struct Report: Sendable {
        /// Per-test results, sorted by name.
        public let results: [TestResult]
        public var passedCount: Int { results.filter { !$0.skipped && $0.passed }.count }
        public var failedCount: Int { results.filter { !$0.skipped && !$0.passed }.count }
        public var skippedCount: Int { results.filter(\.skipped).count }
        /// Whether no test failed.
        public var succeeded: Bool { failedCount == 0 }
        /// `N passed, M failed` plus `, K skipped` when some were skipped.
        public var summaryLine: String {
            "\(passedCount) passed, \(failedCount) failed" + (skippedCount > 0 ? ", \(skippedCount) skipped" : "")
        }
    }

    /// The client used to decrypt. Default: policy `.requireEncryptAllowDecrypt`, since vector
    /// sets cover the legacy non-committing suites.
    public let client: ESDKClient

    public init(client: ESDKClient = ESDKClient(configuration: .init(commitmentPolicy: .requireEncryptAllowDecrypt))) {
        self.client = client
    }

    /// Runs every test of the manifest at `manifestPath`.
    /// - Throws: `CryptoError` `.malformed`/`.unsupported` when the manifest or keys file cannot be
    ///   read or has an unsupported type/version. Per-test problems become failed or skipped results.
    public func run(manifestPath: String) async throws -> Report {
        let manifestURL = URL(fileURLWithPath: manifestPath)
        let base = manifestURL.deletingLastPathComponent()
        let manifest = try Self.json(at: manifestURL)
        guard let info = manifest["manifest"] as? [String: Any], info["type"] as? String == "awses-decrypt" else {
            throw CryptoError(.malformed, "not an awses-decrypt manifest")
        }
        guard let version = info["version"] as? Int, (2...4).contains(version) else {
            throw CryptoError(.unsupported, "awses-decrypt manifest version must be 2, 3 or 4")
        }
        guard let keysURI = manifest["keys"] as? String, let tests = manifest["tests"] as? [String: Any] else {
            throw CryptoError(.malformed, "manifest without keys or tests")
        }
        let keys = try Self.json(at: Self.resolve(keysURI, base: base))["keys"] as? [String: Any] ?? [:]
        var results = [TestResult]()
        for name in tests.keys.sorted() {
            guard let test = tests[name] as? [String: Any] else {
                results.append(TestResult(name: name, expectation: .plaintext, outcome: .skipped(reason: "malformed test entry")))
                continue
            }
            results.append(await runTest(name: name, test: test, keys: keys, base: base))
        }
        return Report(results: results)
    }

    private func runTest(name: String, test: [String: Any], keys: [String: Any], base: URL) async -> TestResult {
        let result = test["result"] as? [String: Any] ?? [:]
        var expectation = TestResult.Expectation.plaintext
        var expectedPlaintext: [UInt8]?
        if let output = result["output"] as? [String: Any], let uri = output["plaintext"] as? String {
            do {
                expectedPlaintext = try Array(Data(contentsOf: Self.resolve(uri, base: base)))
            } catch {
                return TestResult(name: name, expectation: .plaintext, outcome: .skipped(reason: "expected plaintext unreadable"))
            }
        } else if let error = result["error"] as? [String: Any] {
            expectation = .error(description: error["error-description"] as? String ?? "")
        } else {
            return TestResult(name: name, expectation: .plaintext, outcome: .skipped(reason: "test without a result"))
        }
        let keyring: any Keyring
        switch Self.keyring(for: test["master-keys"] as? [[String: Any]] ?? [], keys: keys) {
        case .success(let k): keyring = k
        case .failure(let reason): return TestResult(name: name, expectation: expectation, outcome: .skipped(reason: reason.text))
        }
        guard let ciphertextURI = test["ciphertext"] as? String,
              let ciphertext = try? Array(Data(contentsOf: Self.resolve(ciphertextURI, base: base))) else {
            return TestResult(name: name, expectation: expectation, outcome: .skipped(reason: "ciphertext unreadable"))
        }
        let reproduced = test["encryption-context"] as? [String: String] ?? [:]
        let unsignedOnly = (test["decryption-method"] as? String) == "streaming-unsigned-only"
        do {
            let parsed = try client.parse(ciphertext)
            if unsignedOnly, parsed.algorithmSuite.isSigned {
                throw CryptoError(.policyViolation, "signed message with decryption method streaming-unsigned-only")
            }
            let materials = try await client.decryptionMaterials(for: parsed, keyring: keyring, encryptionContext: reproduced)
            let decrypted = try client.decrypt(parsed, materials: materials)
            return TestResult(name: name, expectation: expectation, outcome: .decrypted(matches: decrypted.plaintext == expectedPlaintext))
        } catch let error as CryptoError {
            return TestResult(name: name, expectation: expectation, outcome: .rejected(reason: error.description))
        } catch {
            return TestResult(name: name, expectation: expectation, outcome: .rejected(reason: "\(type(of: error))"))
        }
    }

    private struct SkipReason: Error { let text: String }

    /// A keyring for the test's master keys, or why the test is skipped.
    private static func keyring(for masterKeys: [[String: Any]], keys: [String: Any]) -> Result<any Keyring, SkipReason> {
        guard !masterKeys.isEmpty else { return .failure(SkipReason(text: "no master keys")) }
        var keyrings = [any Keyring]()
        for masterKey in masterKeys {
            let type = masterKey["type"] as? String ?? "?"
            guard type == "raw", masterKey["encryption-algorithm"] as? String == "aes" else {
                let algorithm = masterKey["encryption-algorithm"] as? String
                return .failure(SkipReason(text: "master key type \(type)\(algorithm.map { " (\($0))" } ?? "") is not a raw AES key"))
            }
            guard let keyName = masterKey["key"] as? String, let providerID = masterKey["provider-id"] as? String,
                  let key = keys[keyName] as? [String: Any], key["type"] as? String == "symmetric",
                  key["encoding"] as? String == "base64", let material = key["material"] as? String,
                  let bytes = Data(base64Encoded: material) else {
                return .failure(SkipReason(text: "raw AES key missing or not base64 in the keys manifest"))
            }
            let secret = SecretBytes(bytes)
            guard let keyring = try? RawAESKeyring(keyNamespace: providerID, keyName: key["key-id"] as? String ?? keyName,
                                                   wrappingKey: secret) else {
                return .failure(SkipReason(text: "unusable raw AES key"))
            }
            keyrings.append(keyring)
        }
        if keyrings.count == 1 { return .success(keyrings[0]) }
        guard let multi = try? MultiKeyring(generator: nil, children: keyrings) else { return .failure(SkipReason(text: "no keyring")) }
        return .success(multi)
    }

    private static func json(at url: URL) throws -> [String: Any] {
        guard let data = try? Data(contentsOf: url) else { throw CryptoError(.malformed, "cannot read \(url.path)") }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CryptoError(.malformed, "\(url.lastPathComponent) is not a JSON object")
        }
        return object
    }

    /// Resolves a `file://relative/path` URI against the manifest's folder.
    private static func resolve(_ uri: String, base: URL) throws -> URL {
        guard uri.hasPrefix("file://") else { throw CryptoError(.unsupported, "only file:// URIs are supported") }
        let path = String(uri.dropFirst("file://".count))
        return path.hasPrefix("/") ? URL(fileURLWithPath: path) : base.appendingPathComponent(path)
    }
}
