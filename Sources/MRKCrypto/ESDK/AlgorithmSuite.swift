/// An AWS Encryption SDK algorithm suite (framework/algorithm-suites.md). All 11 ESDK suites are
/// supported for decryption; encryption writes message format 2 with the committing suites.
public struct AlgorithmSuite: Hashable, Sendable, CustomStringConvertible {
    /// How the data key becomes the encryption key.
    enum KDF: Hashable, Sendable {
        case identity
        case hkdf(HKDF.Hash)
    }

    /// The 2-byte suite id, e.g. 0x0478.
    public let id: UInt16
    /// The ESDK enum name, e.g. `ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY`.
    public let name: String
    /// Message format version the suite is written with (1 or 2).
    public let messageFormatVersion: UInt8
    /// AES key size (also the data-key length).
    public let keySize: AESGCM.KeySize
    let kdf: KDF
    /// Whether the suite commits to the data key (v2 suites).
    public let isCommitting: Bool
    /// The ECDSA curve of the message signature, if the suite signs.
    public let signatureCurve: ECDSA.Curve?

    /// Whether messages carry an ECDSA signature footer.
    public var isSigned: Bool { signatureCurve != nil }
    /// Data key length in bytes.
    public var dataKeyByteCount: Int { keySize.byteCount }
    /// Length of the algorithm-suite data in a v2 header (the commit key).
    var suiteDataByteCount: Int { isCommitting ? 32 : 0 }
    /// Message id length.
    var messageIDByteCount: Int { messageFormatVersion == 2 ? 32 : 16 }

    public var description: String { hex16(id) + " " + name }

    public static let aes128GCMNoKDF = AlgorithmSuite(id: 0x0014, name: "ALG_AES_128_GCM_IV12_TAG16_NO_KDF", messageFormatVersion: 1, keySize: .aes128, kdf: .identity, isCommitting: false, signatureCurve: nil)
    public static let aes192GCMNoKDF = AlgorithmSuite(id: 0x0046, name: "ALG_AES_192_GCM_IV12_TAG16_NO_KDF", messageFormatVersion: 1, keySize: .aes192, kdf: .identity, isCommitting: false, signatureCurve: nil)
    public static let aes256GCMNoKDF = AlgorithmSuite(id: 0x0078, name: "ALG_AES_256_GCM_IV12_TAG16_NO_KDF", messageFormatVersion: 1, keySize: .aes256, kdf: .identity, isCommitting: false, signatureCurve: nil)
    public static let aes128GCMHKDFSHA256 = AlgorithmSuite(id: 0x0114, name: "ALG_AES_128_GCM_IV12_TAG16_HKDF_SHA256", messageFormatVersion: 1, keySize: .aes128, kdf: .hkdf(.sha256), isCommitting: false, signatureCurve: nil)
    public static let aes192GCMHKDFSHA256 = AlgorithmSuite(id: 0x0146, name: "ALG_AES_192_GCM_IV12_TAG16_HKDF_SHA256", messageFormatVersion: 1, keySize: .aes192, kdf: .hkdf(.sha256), isCommitting: false, signatureCurve: nil)
    public static let aes256GCMHKDFSHA256 = AlgorithmSuite(id: 0x0178, name: "ALG_AES_256_GCM_IV12_TAG16_HKDF_SHA256", messageFormatVersion: 1, keySize: .aes256, kdf: .hkdf(.sha256), isCommitting: false, signatureCurve: nil)
    public static let aes128GCMHKDFSHA256ECDSAP256 = AlgorithmSuite(id: 0x0214, name: "ALG_AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256", messageFormatVersion: 1, keySize: .aes128, kdf: .hkdf(.sha256), isCommitting: false, signatureCurve: .p256)
    public static let aes192GCMHKDFSHA384ECDSAP384 = AlgorithmSuite(id: 0x0346, name: "ALG_AES_192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384", messageFormatVersion: 1, keySize: .aes192, kdf: .hkdf(.sha384), isCommitting: false, signatureCurve: .p384)
    public static let aes256GCMHKDFSHA384ECDSAP384 = AlgorithmSuite(id: 0x0378, name: "ALG_AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384", messageFormatVersion: 1, keySize: .aes256, kdf: .hkdf(.sha384), isCommitting: false, signatureCurve: .p384)
    public static let aes256GCMHKDFSHA512CommitKey = AlgorithmSuite(id: 0x0478, name: "ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY", messageFormatVersion: 2, keySize: .aes256, kdf: .hkdf(.sha512), isCommitting: true, signatureCurve: nil)
    public static let aes256GCMHKDFSHA512CommitKeyECDSAP384 = AlgorithmSuite(id: 0x0578, name: "ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384", messageFormatVersion: 2, keySize: .aes256, kdf: .hkdf(.sha512), isCommitting: true, signatureCurve: .p384)

    /// Every ESDK suite, by id.
    public static let all: [AlgorithmSuite] = [
        .aes128GCMNoKDF, .aes192GCMNoKDF, .aes256GCMNoKDF,
        .aes128GCMHKDFSHA256, .aes192GCMHKDFSHA256, .aes256GCMHKDFSHA256,
        .aes128GCMHKDFSHA256ECDSAP256, .aes192GCMHKDFSHA384ECDSAP384, .aes256GCMHKDFSHA384ECDSAP384,
        .aes256GCMHKDFSHA512CommitKey, .aes256GCMHKDFSHA512CommitKeyECDSAP384,
    ]

    /// The suite with `id`, or nil for an unknown id.
    public static func suite(id: UInt16) -> AlgorithmSuite? { all.first { $0.id == id } }
}

/// Which suites may be used (framework/commitment-policy.md).
public enum CommitmentPolicy: Sendable, Hashable, CaseIterable {
    /// Encrypt with non-committing suites only (not supported for encryption here); decrypt anything.
    case forbidEncryptAllowDecrypt
    /// Encrypt with committing suites; decrypt anything (for reading legacy messages).
    case requireEncryptAllowDecrypt
    /// Encrypt and decrypt committing suites only. The default.
    case requireEncryptRequireDecrypt

    /// Whether a message written with `suite` may be decrypted.
    public func allowsDecrypt(_ suite: AlgorithmSuite) -> Bool {
        self == .requireEncryptRequireDecrypt ? suite.isCommitting : true
    }

    /// Whether `suite` may be used to encrypt.
    public func allowsEncrypt(_ suite: AlgorithmSuite) -> Bool {
        self == .forbidEncryptAllowDecrypt ? !suite.isCommitting : suite.isCommitting
    }
}

/// `0x0478`-style rendering of a suite id.
func hex16(_ value: UInt16) -> String {
    let hex = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
}
