import Foundation
import Testing
import MRKDevTools
@testable import MRKCrypto

/// Interop with the official AWS Encryption SDK for Python, both directions. Skipped by a plain
/// `swift test` without the Python SDK; `scripts/test` requires them (see `InteropPython`).
@Suite(.serialized, .enabled(if: InteropPython.enabled(repository: TestPaths.repoRoot), Comment(rawValue: InteropPython.skipReason)))
struct ESDKInteropTests {
    static let key = SecureRandom.bytes(count: 32)
    static let namespace = "mrkproxy-interop"
    static let name = "wrapping-key-1"

    struct Case {
        let suite: UInt16
        let plaintext: [UInt8]
        let frameLength: Int
        let context: [String: String]
    }

    static let cases: [Case] = {
        var cases = [Case]()
        let contexts: [[String: String]] = [[:], ["table": "public.users", "column": "email", "ключ": "значение ✓"]]
        for suite: UInt16 in [0x0478, 0x0578] {
            for context in contexts {
                cases.append(Case(suite: suite, plaintext: [], frameLength: 4096, context: context))
                cases.append(Case(suite: suite, plaintext: Array("hello interop".utf8), frameLength: 4096, context: context))
                cases.append(Case(suite: suite, plaintext: SecureRandom.bytes(count: 1024), frameLength: 256, context: context))  // exact multiple
                cases.append(Case(suite: suite, plaintext: SecureRandom.bytes(count: 10_000), frameLength: 512, context: context))  // 20 frames
            }
        }
        return cases
    }()

    let keyring = try! RawAESKeyring(keyNamespace: namespace, keyName: name, wrappingKey: SecretBytes(key))

    @Test func pythonEncryptsSwiftDecrypts() async throws {
        let ops: [[String: Any]] = Self.cases.map {
            ["op": "encrypt", "plaintext": Data($0.plaintext).base64EncodedString(), "context": $0.context,
             "suite": Int($0.suite), "frame_length": $0.frameLength]
        }
        let results = try PythonESDK.run(key: Self.key, namespace: Self.namespace, name: Self.name, ops: ops)
        let client = ESDKClient()  // default policy: require encrypt, require decrypt
        for (testCase, result) in zip(Self.cases, results) {
            let label = "suite \(hex16(testCase.suite)), \(testCase.plaintext.count) bytes, frame \(testCase.frameLength), context \(testCase.context.count)"
            guard let encoded = result["ciphertext"] as? String, let message = Data(base64Encoded: encoded) else {
                Issue.record("Python failed to encrypt (\(label)): \(result["error"] ?? "?")")
                continue
            }
            let decrypted = try await client.decrypt(Array(message), keyring: keyring)
            #expect(decrypted.plaintext == testCase.plaintext, "\(label)")
            #expect(decrypted.algorithmSuite.id == testCase.suite, "\(label)")
            var context = decrypted.encryptionContext
            #expect((context.removeValue(forKey: "aws-crypto-public-key") != nil) == (testCase.suite == 0x0578), "\(label)")
            #expect(context == testCase.context, "\(label)")
        }
    }

    @Test func swiftEncryptsPythonDecrypts() async throws {
        var ops = [[String: Any]]()
        for testCase in Self.cases {
            let client = ESDKClient(configuration: .init(algorithmSuite: AlgorithmSuite.suite(id: testCase.suite)!,
                                                         frameLength: UInt32(testCase.frameLength)))
            let message = try await client.encrypt(testCase.plaintext, keyring: keyring, encryptionContext: testCase.context)
            ops.append(["op": "decrypt", "ciphertext": Data(message).base64EncodedString()])
        }
        let results = try PythonESDK.run(key: Self.key, namespace: Self.namespace, name: Self.name, ops: ops)
        for (testCase, result) in zip(Self.cases, results) {
            let label = "suite \(hex16(testCase.suite)), \(testCase.plaintext.count) bytes, frame \(testCase.frameLength), context \(testCase.context.count)"
            guard let encoded = result["plaintext"] as? String, let plaintext = Data(base64Encoded: encoded) else {
                Issue.record("Python failed to decrypt Swift's message (\(label)): \(result["error"] ?? "?")")
                continue
            }
            #expect(Array(plaintext) == testCase.plaintext, "\(label)")
            #expect(result["suite"] as? Int == Int(testCase.suite), "\(label)")
            var context = result["context"] as? [String: String] ?? [:]
            #expect((context.removeValue(forKey: "aws-crypto-public-key") != nil) == (testCase.suite == 0x0578), "\(label)")
            #expect(context == testCase.context, "\(label)")
        }
    }

    @Test func pythonRejectsTamperedSwiftMessages() async throws {
        let client = ESDKClient(configuration: .init(algorithmSuite: .aes256GCMHKDFSHA512CommitKey))
        var message = try await client.encrypt(Array("tamper".utf8), keyring: keyring, encryptionContext: ["a": "b"])
        message[message.count - 20] ^= 0x01
        let results = try PythonESDK.run(key: Self.key, namespace: Self.namespace, name: Self.name,
                                         ops: [["op": "decrypt", "ciphertext": Data(message).base64EncodedString()]])
        #expect(results[0]["error"] != nil)
    }
}
