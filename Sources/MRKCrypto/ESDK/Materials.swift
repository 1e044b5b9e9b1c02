/// An encrypted copy of a message's data key, as stored in the message header.
public struct EncryptedDataKey: Hashable, Sendable {
    /// Which keyring kind wrote it, e.g. a raw keyring's namespace or `aws-kms`.
    public var providerID: String
    /// Keyring-specific data, e.g. a key name and IV, or a KMS key ARN.
    public var providerInfo: [UInt8]
    /// The wrapped data key.
    public var ciphertext: [UInt8]

    public init(providerID: String, providerInfo: [UInt8], ciphertext: [UInt8]) {
        self.providerID = providerID
        self.providerInfo = providerInfo
        self.ciphertext = ciphertext
    }
}

/// What a keyring receives and returns on encrypt (framework/structures.md#encryption-materials).
/// Encryption materials may be cached and reused for several messages: every message derives its
/// own keys from its random message id.
public struct EncryptionMaterials: Sendable {
    /// The suite messages will be written with.
    public var algorithmSuite: AlgorithmSuite
    /// The full encryption context (including keys that are only authenticated, and, for signed
    /// suites, `aws-crypto-public-key`).
    public var encryptionContext: [String: String]
    /// Keys of `encryptionContext` that are authenticated but not stored in the message.
    public var requiredEncryptionContextKeys: Set<String>
    /// The plaintext data key, once a keyring generated it.
    public var plaintextDataKey: SecretBytes?
    /// The data key wrapped by each keyring.
    public var encryptedDataKeys: [EncryptedDataKey]
    /// The message signing key, for signed suites.
    public var signingKey: ECDSA.SigningKey?

    public init(algorithmSuite: AlgorithmSuite, encryptionContext: [String: String],
                requiredEncryptionContextKeys: Set<String> = [], plaintextDataKey: SecretBytes? = nil,
                encryptedDataKeys: [EncryptedDataKey] = [], signingKey: ECDSA.SigningKey? = nil) {
        self.algorithmSuite = algorithmSuite
        self.encryptionContext = encryptionContext
        self.requiredEncryptionContextKeys = requiredEncryptionContextKeys
        self.plaintextDataKey = plaintextDataKey
        self.encryptedDataKeys = encryptedDataKeys
        self.signingKey = signingKey
    }
}

/// What a keyring receives and returns on decrypt (framework/structures.md#decryption-materials).
public struct DecryptionMaterials: Sendable {
    /// The message's suite.
    public var algorithmSuite: AlgorithmSuite
    /// The stored encryption context merged with the caller's reproduced context.
    public var encryptionContext: [String: String]
    /// Keys supplied by the caller that were not stored in the message (authenticated only).
    public var requiredEncryptionContextKeys: Set<String>
    /// The plaintext data key, once a keyring decrypted one.
    public var plaintextDataKey: SecretBytes?
    /// The signature verification key, for signed suites.
    public var verificationKey: ECDSA.VerifyingKey?

    public init(algorithmSuite: AlgorithmSuite, encryptionContext: [String: String],
                requiredEncryptionContextKeys: Set<String> = [], plaintextDataKey: SecretBytes? = nil,
                verificationKey: ECDSA.VerifyingKey? = nil) {
        self.algorithmSuite = algorithmSuite
        self.encryptionContext = encryptionContext
        self.requiredEncryptionContextKeys = requiredEncryptionContextKeys
        self.plaintextDataKey = plaintextDataKey
        self.verificationKey = verificationKey
    }
}
