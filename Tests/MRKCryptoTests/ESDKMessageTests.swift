import Foundation
import Testing
@testable import MRKCrypto

@Suite struct ESDKMessageTests {
    static let wrappingKey = SecretBytes(randomCount: 32)
    let keyring = try! RawAESKeyring(keyNamespace: "mrkproxy-tests", keyName: "key-1", wrappingKey: ESDKMessageTests.wrappingKey)

    func client(_ suite: AlgorithmSuite, frameLength: UInt32 = 1024,
                policy: CommitmentPolicy = .requireEncryptRequireDecrypt) -> ESDKClient {
        ESDKClient(configuration: .init(commitmentPolicy: policy, algorithmSuite: suite, frameLength: frameLength))
    }

    static let committing: [AlgorithmSuite] = [.aes256GCMHKDFSHA512CommitKey, .aes256GCMHKDFSHA512CommitKeyECDSAP384]

    @Test(arguments: committing, [0, 1, 1023, 1024, 1025, 5000])
    func roundTrip(suite: AlgorithmSuite, size: Int) async throws {
        let c = client(suite)
        let plaintext = SecureRandom.bytes(count: size)
        let context = ["table": "public.users", "column": "email", "ключ": "значение"]
        let message = try await c.encrypt(plaintext, keyring: keyring, encryptionContext: context)
        #expect(message[0] == 2)
        #expect(Array(message[1...2]) == [UInt8(suite.id >> 8), UInt8(suite.id & 0xFF)])
        let decrypted = try await c.decrypt(message, keyring: keyring)
        #expect(decrypted.plaintext == plaintext)
        #expect(decrypted.algorithmSuite == suite)
        var expected = context
        if suite.isSigned { expected["aws-crypto-public-key"] = decrypted.encryptionContext["aws-crypto-public-key"] }
        #expect(decrypted.encryptionContext == expected)
    }

    @Test func requiredEncryptionContextKeysAreAuthenticatedButNotStored() async throws {
        let c = client(.aes256GCMHKDFSHA512CommitKey)
        let message = try await c.encrypt(Array("row".utf8), keyring: keyring,
                                          encryptionContext: ["tenant": "acme", "purpose": "test"],
                                          requiredEncryptionContextKeys: ["tenant"])
        #expect(!message.contains(subsequence: Array("acme".utf8)))
        #expect(message.contains(subsequence: Array("purpose".utf8)))
        let ok = try await c.decrypt(message, keyring: keyring, encryptionContext: ["tenant": "acme"])
        #expect(ok.plaintext == Array("row".utf8))
        await #expect(throws: CryptoError.self) { try await c.decrypt(message, keyring: keyring) }
        await #expect(throws: CryptoError.self) { try await c.decrypt(message, keyring: keyring, encryptionContext: ["tenant": "evil"]) }
        let mismatch = await #expect(throws: CryptoError.self) {
            try await c.decrypt(message, keyring: keyring, encryptionContext: ["tenant": "acme", "purpose": "other"])
        }
        #expect(mismatch?.code == .encryptionContextMismatch)
    }

    func sampleMessage(_ suite: AlgorithmSuite) async throws -> [UInt8] {
        try await client(suite, frameLength: 8).encrypt(SecureRandom.bytes(count: 12), keyring: keyring, encryptionContext: ["k": "v"])
    }

    @Test(arguments: committing)
    func everySingleBitFlipIsRejected(suite: AlgorithmSuite) async throws {
        let c = client(suite)
        let message = try await sampleMessage(suite)
        _ = try await c.decrypt(message, keyring: keyring)
        for byte in message.indices {
            for bit in 0..<8 {
                var tampered = message
                tampered[byte] ^= UInt8(1 << bit)
                await #expect(throws: CryptoError.self, "flip of bit \(bit) in byte \(byte)") {
                    try await c.decrypt(tampered, keyring: keyring)
                }
            }
        }
    }

    @Test(arguments: committing)
    func everyTruncationAndExtensionIsRejected(suite: AlgorithmSuite) async throws {
        let c = client(suite)
        let message = try await sampleMessage(suite)
        for length in 0..<message.count {
            await #expect(throws: CryptoError.self, "truncated to \(length)") {
                try await c.decrypt(Array(message[0..<length]), keyring: keyring)
            }
        }
        for extra in [[UInt8(0)], [0, 0], SecureRandom.bytes(count: 40)] {
            await #expect(throws: CryptoError.self) { try await c.decrypt(message + extra, keyring: keyring) }
        }
    }

    @Test func commitKeyTamperingIsACommitmentMismatch() async throws {
        let suite = AlgorithmSuite.aes256GCMHKDFSHA512CommitKey
        let c = client(suite)
        var message = try await c.encrypt([1, 2, 3], keyring: keyring)
        let header = try MessageHeader.parse(message, maxEncryptedDataKeys: nil)
        message[header.bodyByteCount - 1] ^= 0x01  // last byte of the commit key
        let error = await #expect(throws: CryptoError.self) { try await c.decrypt(message, keyring: keyring) }
        #expect(error?.code == .commitmentMismatch)
    }

    @Test func wrongKeyringIsRejected() async throws {
        let message = try await sampleMessage(.aes256GCMHKDFSHA512CommitKey)
        let c = client(.aes256GCMHKDFSHA512CommitKey)
        for other in [
            try RawAESKeyring(keyNamespace: "mrkproxy-tests", keyName: "key-1", wrappingKey: SecretBytes(randomCount: 32)),
            try RawAESKeyring(keyNamespace: "mrkproxy-tests", keyName: "key-2", wrappingKey: Self.wrappingKey),
            try RawAESKeyring(keyNamespace: "other", keyName: "key-1", wrappingKey: Self.wrappingKey),
            try RawAESKeyring(keyNamespace: "mrkproxy-tests", keyName: "key-1", wrappingKey: SecretBytes(randomCount: 16)),
        ] {
            let error = await #expect(throws: CryptoError.self) { try await c.decrypt(message, keyring: other) }
            #expect(error?.code == .noDecryptableKey)
        }
    }

    @Test func wrongEncryptionContextIsRejected() async throws {
        let message = try await sampleMessage(.aes256GCMHKDFSHA512CommitKeyECDSAP384)
        let c = client(.aes256GCMHKDFSHA512CommitKeyECDSAP384)
        let error = await #expect(throws: CryptoError.self) { try await c.decrypt(message, keyring: keyring, encryptionContext: ["k": "w"]) }
        #expect(error?.code == .encryptionContextMismatch)
    }

    @Test func randomBytesAreRejected() async throws {
        let c = client(.aes256GCMHKDFSHA512CommitKey, policy: .requireEncryptAllowDecrypt)
        for i in 0..<500 {
            var junk = SecureRandom.bytes(count: i % 300)
            if i % 3 == 0, junk.count > 3 { junk[0] = 2; junk[1] = 4; junk[2] = 0x78 }
            if i % 3 == 1, junk.count > 4 { junk[0] = 1; junk[1] = 0x80; junk[2] = 0; junk[3] = 0x78 }
            await #expect(throws: CryptoError.self) { try await c.decrypt(junk, keyring: keyring) }
        }
    }

    /// A stored message is attacker-controlled (a DB admin can write it): single-byte and
    /// length-field mutations of real messages must be rejected with an error, never trap.
    @Test(arguments: committing)
    func mutatedMessagesNeverTrap(suite: AlgorithmSuite) async throws {
        let c = client(suite, frameLength: 64)
        let message = try await c.encrypt(SecureRandom.bytes(count: 200), keyring: keyring, encryptionContext: ["a": "b", "c": "d"])
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Int(state % UInt64(Int.max))
        }
        for round in 0..<3_000 {
            var mutated = message
            switch round % 3 {
            case 0: mutated[next() % mutated.count] = UInt8(next() % 256)
            case 1:
                // Overwrite two adjacent bytes with an extreme value (length fields).
                let at = next() % (mutated.count - 1)
                let value: [UInt8] = [[0xFF, 0xFF], [0x00, 0x00], [0x80, 0x00], [0x00, 0x01]][next() % 4]
                mutated[at] = value[0]; mutated[at + 1] = value[1]
            default:
                mutated = Array(mutated.prefix(next() % mutated.count)) + SecureRandom.bytes(count: next() % 40)
            }
            if mutated == message { continue }
            await #expect(throws: (any Error).self) { try await c.decrypt(mutated, keyring: keyring) }
        }
    }

    @Test func commitmentPolicyGuardsLegacySuites() async throws {
        let vector = TestPaths.esdkVectors.appendingPathComponent(
            "valid-Net-4.0.0/ciphertexts/0078-ec_len_2-cmm_RequiredEncryptionContext-fa27ab65-35e6-4b4b-bb48-a0b7a4347996")
        let message = try Array(Data(contentsOf: vector))
        let aes = try RawAESKeyring(keyNamespace: "aws-raw-vectors-persistant", keyName: "aes-256",
                                    wrappingKey: SecretBytes(Array(Data(base64Encoded: "AAECAwQFBgcICRAREhMUFRYXGBkgISIjJCUmJygpMDE=")!)))
        let strict = ESDKClient()
        let error = await #expect(throws: CryptoError.self) {
            try await strict.decrypt(message, keyring: aes, encryptionContext: ["key1": "val1", "key2": "val2"])
        }
        #expect(error?.code == .policyViolation)
        let lenient = ESDKClient(configuration: .init(commitmentPolicy: .requireEncryptAllowDecrypt))
        let decrypted = try await lenient.decrypt(message, keyring: aes, encryptionContext: ["key1": "val1", "key2": "val2"])
        #expect(decrypted.plaintext.count == 10240)
        #expect(decrypted.algorithmSuite == .aes256GCMNoKDF)
    }

    @Test func encryptRefusesReservedKeysAndLegacySuites() async throws {
        await #expect(throws: CryptoError.self) {
            try await ESDKClient().encrypt([1], keyring: keyring, encryptionContext: ["aws-crypto-public-key": "x"])
        }
        await #expect(throws: CryptoError.self) {
            try await client(.aes256GCMHKDFSHA384ECDSAP384, policy: .forbidEncryptAllowDecrypt).encrypt([1], keyring: keyring)
        }
        await #expect(throws: CryptoError.self) {
            try await ESDKClient().encrypt([1], keyring: keyring, encryptionContext: ["a": "b"], requiredEncryptionContextKeys: ["c"])
        }
    }

    @Test func maxEncryptedDataKeysIsEnforced() async throws {
        let second = try RawAESKeyring(keyNamespace: "mrkproxy-tests", keyName: "key-2", wrappingKey: SecretBytes(randomCount: 32))
        let multi = try MultiKeyring(generator: keyring, children: [second])
        let message = try await ESDKClient().encrypt([9], keyring: multi)
        #expect(try await ESDKClient().decrypt(message, keyring: second).plaintext == [9])
        let limited = ESDKClient(configuration: .init(maxEncryptedDataKeys: 1))
        await #expect(throws: CryptoError.self) { try await limited.decrypt(message, keyring: keyring) }
    }

    @Test func cachedMaterialsEncryptManyMessages() async throws {
        let c = client(.aes256GCMHKDFSHA512CommitKey)
        let materials = try await c.encryptionMaterials(keyring: keyring, encryptionContext: ["t": "x"])
        let a = try c.encrypt([1, 2, 3], materials: materials)
        let b = try c.encrypt([1, 2, 3], materials: materials)
        #expect(a != b)
        #expect(try await c.decrypt(a, keyring: keyring).plaintext == [1, 2, 3])
        #expect(try await c.decrypt(b, keyring: keyring).plaintext == [1, 2, 3])
    }

    @Test func ecdsaCompressedKeysRoundTrip() throws {
        for curve in [ECDSA.Curve.p256, .p384] {
            let key = try ECDSA.SigningKey(generating: curve)
            let point = key.compressedPublicKey
            #expect(point.count == curve.compressedPublicKeyByteCount)
            #expect(point[0] == 2 || point[0] == 3)
            let signature = try key.sign([1, 2, 3])
            let verifier = try ECDSA.VerifyingKey(encodedPoint: point, curve: curve)
            #expect(try verifier.isValidSignature(signature, for: [1, 2, 3]))
            #expect(try !verifier.isValidSignature(signature, for: [1, 2, 4]))
        }
        #expect(throws: CryptoError.self) { try ECDSA.VerifyingKey(encodedPoint: [2] + [UInt8](repeating: 0xFF, count: 48), curve: .p384) }
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        return (0...(count - subsequence.count)).contains { Array(self[$0..<($0 + subsequence.count)]) == subsequence }
    }
}

@Suite struct ESDKKeyDerivationTests {
    /// The HMAC-composed HKDF used for message keys equals libcrypto's EVP_KDF HKDF for every suite.
    @Test(arguments: AlgorithmSuite.all)
    func derivedKeysMatchLibcryptoHKDF(suite: AlgorithmSuite) throws {
        let dataKey = SecretBytes(randomCount: suite.dataKeyByteCount)
        let messageID = SecureRandom.bytes(count: suite.messageFormatVersion == 2 ? 32 : 16)
        let keys = try ESDKClient.deriveKeys(suite: suite, dataKey: dataKey, messageID: messageID)
        let suiteID = [UInt8(suite.id >> 8), UInt8(suite.id & 0xFF)]
        switch suite.kdf {
        case .identity:
            #expect(keys.encryptionKey == dataKey)
            #expect(keys.commitKey == nil)
        case .hkdf(let hash) where suite.isCommitting:
            let prk = try HKDF.extract(hash, ikm: dataKey, salt: messageID)
            #expect(keys.encryptionKey == (try HKDF.expand(hash, prk: prk, info: suiteID + Array("DERIVEKEY".utf8), length: 32)))
            #expect(keys.commitKey == (try HKDF.expand(hash, prk: prk, info: Array("COMMITKEY".utf8), length: 32)))
        case .hkdf(let hash):
            #expect(keys.encryptionKey == (try HKDF.deriveKey(hash, ikm: dataKey, salt: [UInt8](), info: suiteID + messageID,
                                                              length: suite.dataKeyByteCount)))
            #expect(keys.commitKey == nil)
        }
    }

    @Test func multiBlockExpandMatchesLibcrypto() throws {
        let ikm = SecretBytes(randomCount: 32)
        let salt = SecureRandom.bytes(count: 7)
        let fast = try HKDF.extractAndExpand(.sha256, ikm: ikm, salt: salt, outputs: [(Array("info".utf8), 100)])
        #expect(fast[0] == (try HKDF.deriveKey(.sha256, ikm: ikm, salt: salt, info: Array("info".utf8), length: 100)))
    }
}
