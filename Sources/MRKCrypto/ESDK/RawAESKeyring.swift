/// The raw AES keyring (framework/raw-aes-keyring.md): wraps data keys with a local AES-GCM key.
///
/// EDK layout: provider id = key namespace; provider info = key name ‖ u32 tag bits (128) ‖
/// u32 IV length (12) ‖ IV; ciphertext = AES-GCM(wrapping key, IV, AAD = serialized encryption
/// context, data key) ‖ tag.
public struct RawAESKeyring: Keyring {
    /// The key namespace (EDK provider id).
    public let keyNamespace: String
    /// The key name (first part of the EDK provider info).
    public let keyName: String
    private let wrappingKey: SecretBytes
    private let keySize: AESGCM.KeySize

    /// - Parameters:
    ///   - keyNamespace: provider id written to EDKs; must not be `aws-kms`.
    ///   - keyName: key name written to EDKs.
    ///   - wrappingKey: a 128-, 192- or 256-bit AES key.
    /// - Throws: `CryptoError` `.invalidLength` for another key size, `.invalidInput` for the `aws-kms` namespace.
    public init(keyNamespace: String, keyName: String, wrappingKey: SecretBytes) throws {
        guard let size = AESGCM.KeySize(rawValue: wrappingKey.count) else {
            throw CryptoError(.invalidLength, "raw AES wrapping key must be 16, 24 or 32 bytes")
        }
        guard keyNamespace != "aws-kms" else { throw CryptoError(.invalidInput, "raw AES keyring namespace must not be aws-kms") }
        guard keyNamespace.utf8.count <= Int(UInt16.max), keyName.utf8.count <= Int(UInt16.max) - 20 else {
            throw CryptoError(.invalidInput, "raw AES keyring namespace or name too long")
        }
        self.keyNamespace = keyNamespace
        self.keyName = keyName
        self.wrappingKey = wrappingKey
        self.keySize = size
    }

    public func onEncrypt(_ materials: EncryptionMaterials) async throws -> EncryptionMaterials {
        try wrap(materials)
    }

    /// Synchronous `onEncrypt`.
    package func wrap(_ materials: EncryptionMaterials) throws -> EncryptionMaterials {
        var result = materials
        let dataKey = materials.plaintextDataKey ?? SecretBytes(randomCount: materials.algorithmSuite.dataKeyByteCount)
        let aad = try EncryptionContextCodec.serialize(materials.encryptionContext)
        let iv = SecureRandom.bytes(count: AESGCM.nonceByteCount)
        var ciphertext = [UInt8](repeating: 0, count: dataKey.count + AESGCM.tagByteCount)
        try wrappingKey.withUnsafeBytes { k in
            try dataKey.withUnsafeBytes { d in
                try iv.withUnsafeBytes { n in
                    try aad.withUnsafeBytes { a in
                        try ciphertext.withUnsafeMutableBytes { o in
                            try AESGCM.Context().sealRaw(keySize: keySize, key: k, nonce: n, plaintext: d, aad: a, output: o)
                        }
                    }
                }
            }
        }
        var info = Array(keyName.utf8)
        info.appendBigEndian(UInt32(AESGCM.tagByteCount * 8))
        info.appendBigEndian(UInt32(AESGCM.nonceByteCount))
        info += iv
        result.plaintextDataKey = dataKey
        result.encryptedDataKeys.append(EncryptedDataKey(providerID: keyNamespace, providerInfo: info, ciphertext: ciphertext))
        return result
    }

    public func onDecrypt(_ materials: DecryptionMaterials, encryptedDataKeys: [EncryptedDataKey]) async throws -> DecryptionMaterials {
        try unwrap(materials, encryptedDataKeys: encryptedDataKeys)
    }

    /// Synchronous `onDecrypt`.
    func unwrap(_ materials: DecryptionMaterials, encryptedDataKeys: [EncryptedDataKey]) throws -> DecryptionMaterials {
        guard materials.plaintextDataKey == nil else { throw CryptoError(.invalidInput, "decryption materials already hold a data key") }
        let aad = try EncryptionContextCodec.serialize(materials.encryptionContext)
        let name = Array(keyName.utf8)
        let gcm = AESGCM.Context()
        for edk in encryptedDataKeys where edk.providerID == keyNamespace {
            let info = edk.providerInfo
            guard info.count == name.count + 8 + AESGCM.nonceByteCount, info.starts(with: name) else { continue }
            var reader = ByteReader(info, offset: name.count)
            guard (try? reader.u32("tag length")) == UInt32(AESGCM.tagByteCount * 8),
                  (try? reader.u32("IV length")) == UInt32(AESGCM.nonceByteCount) else { continue }
            let iv = Array(info[reader.offset...])
            guard edk.ciphertext.count > AESGCM.tagByteCount else { continue }
            var dataKey = [UInt8](repeating: 0, count: edk.ciphertext.count - AESGCM.tagByteCount)
            defer { dataKey.withUnsafeMutableBytes { secureZero($0) } }
            let opened: Bool = wrappingKey.withUnsafeBytes { k in
                iv.withUnsafeBytes { n in
                    edk.ciphertext.withUnsafeBytes { c in
                        aad.withUnsafeBytes { a in
                            dataKey.withUnsafeMutableBytes { o in
                                (try? gcm.openRaw(keySize: keySize, key: k, nonce: n, ciphertextAndTag: c, aad: a, output: o)) != nil
                            }
                        }
                    }
                }
            }
            guard opened else { continue }
            guard dataKey.count == materials.algorithmSuite.dataKeyByteCount else {
                throw CryptoError(.invalidLength, "unwrapped data key has the wrong length for \(materials.algorithmSuite.name)")
            }
            var result = materials
            result.plaintextDataKey = SecretBytes(dataKey)
            return result
        }
        throw CryptoError(.noDecryptableKey, "no encrypted data key for raw AES key \(keyNamespace)/\(keyName) could be decrypted")
    }
}
