import Foundation
import MRKCrypto

/// The KMS operations MRKProxy needs. `LocalKMS` (embedded) and `AWSKMSClient` (AWS KMS over HTTPS)
/// implement it; everything else in MRKProxy talks to this protocol only.
///
/// Field names mirror the AWS KMS API. Every method throws `KMSError` whose `code` is AWS's error
/// name (`NotFoundException`, `AccessDeniedException`, `InvalidCiphertextException`, …).
public protocol KMSClient: Sendable {
    /// Returns a fresh data key in plaintext and encrypted under `keyId`.
    func generateDataKey(_ request: GenerateDataKeyRequest) async throws -> GenerateDataKeyResponse
    /// Returns a fresh data key encrypted under `keyId` only.
    func generateDataKeyWithoutPlaintext(_ request: GenerateDataKeyRequest) async throws -> GenerateDataKeyWithoutPlaintextResponse
    /// Encrypts up to 4096 bytes under `keyId`.
    func encrypt(_ request: EncryptRequest) async throws -> EncryptResponse
    /// Decrypts a ciphertext blob. With `keyId` set, the blob must have been made under that key
    /// (or, for a multi-Region key, under a related key in another region).
    func decrypt(_ request: DecryptRequest) async throws -> DecryptResponse
    /// Decrypts and re-encrypts under another key (or the same key with another context) without
    /// exposing the plaintext.
    func reEncrypt(_ request: ReEncryptRequest) async throws -> ReEncryptResponse
    /// Describes a key, including its multi-Region configuration.
    func describeKey(_ request: DescribeKeyRequest) async throws -> DescribeKeyResponse
}

/// AWS KMS encryption context: non-secret key/value pairs bound to the ciphertext as AAD.
public typealias EncryptionContext = [String: String]

/// Data key specs accepted by GenerateDataKey.
public struct DataKeySpec: RawRepresentable, Hashable, Sendable {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    /// A 256-bit key.
    public static let aes256 = DataKeySpec(rawValue: "AES_256")
    /// A 128-bit key.
    public static let aes128 = DataKeySpec(rawValue: "AES_128")

    package var byteCount: Int? {
        switch rawValue { case "AES_256": 32; case "AES_128": 16; default: nil }
    }
}

/// GenerateDataKey / GenerateDataKeyWithoutPlaintext input. Set `keySpec` or `numberOfBytes`.
public struct GenerateDataKeyRequest: Sendable, Hashable {
    /// Key id, key ARN, alias name (`alias/…`) or alias ARN.
    public var keyId: String
    public var encryptionContext: EncryptionContext
    public var keySpec: DataKeySpec?
    public var numberOfBytes: Int?
    public var grantTokens: [String]

    /// Defaults: `AES_256`, no context.
    public init(keyId: String, encryptionContext: EncryptionContext = [:], keySpec: DataKeySpec? = .aes256,
                numberOfBytes: Int? = nil, grantTokens: [String] = []) {
        self.keyId = keyId
        self.encryptionContext = encryptionContext
        self.keySpec = numberOfBytes == nil ? keySpec : nil
        self.numberOfBytes = numberOfBytes
        self.grantTokens = grantTokens
    }
}

/// GenerateDataKey output.
public struct GenerateDataKeyResponse: Sendable {
    /// ARN of the key that encrypted the data key (in the region that served the call).
    public var keyId: String
    public var ciphertextBlob: [UInt8]
    /// The data key; zeroed when released.
    public var plaintext: SecretBytes
    public init(keyId: String, ciphertextBlob: [UInt8], plaintext: SecretBytes) {
        self.keyId = keyId
        self.ciphertextBlob = ciphertextBlob
        self.plaintext = plaintext
    }
}

/// GenerateDataKeyWithoutPlaintext output.
public struct GenerateDataKeyWithoutPlaintextResponse: Sendable, Hashable {
    public var keyId: String
    public var ciphertextBlob: [UInt8]
    public init(keyId: String, ciphertextBlob: [UInt8]) {
        self.keyId = keyId
        self.ciphertextBlob = ciphertextBlob
    }
}

/// Encrypt input.
public struct EncryptRequest: Sendable {
    public var keyId: String
    public var plaintext: SecretBytes
    public var encryptionContext: EncryptionContext
    public var grantTokens: [String]
    public init(keyId: String, plaintext: SecretBytes, encryptionContext: EncryptionContext = [:], grantTokens: [String] = []) {
        self.keyId = keyId
        self.plaintext = plaintext
        self.encryptionContext = encryptionContext
        self.grantTokens = grantTokens
    }
}

/// Encrypt output.
public struct EncryptResponse: Sendable, Hashable {
    public var keyId: String
    public var ciphertextBlob: [UInt8]
    public var encryptionAlgorithm: String
    public init(keyId: String, ciphertextBlob: [UInt8], encryptionAlgorithm: String = "SYMMETRIC_DEFAULT") {
        self.keyId = keyId
        self.ciphertextBlob = ciphertextBlob
        self.encryptionAlgorithm = encryptionAlgorithm
    }
}

/// Decrypt input.
public struct DecryptRequest: Sendable, Hashable {
    public var ciphertextBlob: [UInt8]
    /// The key to decrypt with; recommended (for an MRK, the replica ARN of the local region).
    public var keyId: String?
    public var encryptionContext: EncryptionContext
    public var grantTokens: [String]
    public init(ciphertextBlob: [UInt8], keyId: String? = nil, encryptionContext: EncryptionContext = [:], grantTokens: [String] = []) {
        self.ciphertextBlob = ciphertextBlob
        self.keyId = keyId
        self.encryptionContext = encryptionContext
        self.grantTokens = grantTokens
    }
}

/// Decrypt output.
public struct DecryptResponse: Sendable {
    /// ARN of the key that decrypted, in the region that served the call.
    public var keyId: String
    public var plaintext: SecretBytes
    public var encryptionAlgorithm: String
    public init(keyId: String, plaintext: SecretBytes, encryptionAlgorithm: String = "SYMMETRIC_DEFAULT") {
        self.keyId = keyId
        self.plaintext = plaintext
        self.encryptionAlgorithm = encryptionAlgorithm
    }
}

/// ReEncrypt input.
public struct ReEncryptRequest: Sendable, Hashable {
    public var ciphertextBlob: [UInt8]
    public var sourceKeyId: String?
    public var sourceEncryptionContext: EncryptionContext
    public var destinationKeyId: String
    public var destinationEncryptionContext: EncryptionContext
    public var grantTokens: [String]
    public init(ciphertextBlob: [UInt8], sourceKeyId: String? = nil, sourceEncryptionContext: EncryptionContext = [:],
                destinationKeyId: String, destinationEncryptionContext: EncryptionContext = [:], grantTokens: [String] = []) {
        self.ciphertextBlob = ciphertextBlob
        self.sourceKeyId = sourceKeyId
        self.sourceEncryptionContext = sourceEncryptionContext
        self.destinationKeyId = destinationKeyId
        self.destinationEncryptionContext = destinationEncryptionContext
        self.grantTokens = grantTokens
    }
}

/// ReEncrypt output.
public struct ReEncryptResponse: Sendable, Hashable {
    public var ciphertextBlob: [UInt8]
    public var sourceKeyId: String
    public var keyId: String
    public init(ciphertextBlob: [UInt8], sourceKeyId: String, keyId: String) {
        self.ciphertextBlob = ciphertextBlob
        self.sourceKeyId = sourceKeyId
        self.keyId = keyId
    }
}

/// DescribeKey input.
public struct DescribeKeyRequest: Sendable, Hashable {
    public var keyId: String
    public init(keyId: String) { self.keyId = keyId }
}

/// DescribeKey output.
public struct DescribeKeyResponse: Sendable, Hashable, Codable {
    public var keyMetadata: KeyMetadata
    public init(keyMetadata: KeyMetadata) { self.keyMetadata = keyMetadata }
    enum CodingKeys: String, CodingKey { case keyMetadata = "KeyMetadata" }
}

/// Key metadata as AWS KMS returns it (the subset MRKProxy and the embedded KMS use).
public struct KeyMetadata: Sendable, Hashable, Codable {
    public var awsAccountId: String
    public var keyId: String
    public var arn: String
    /// Seconds since 1970 (AWS sends a JSON number).
    public var creationDate: Double
    public var enabled: Bool
    public var description: String
    public var keyUsage: String
    /// `Enabled`, `Disabled`, `PendingDeletion`, …
    public var keyState: String
    public var origin: String
    public var keyManager: String
    public var keySpec: String
    public var encryptionAlgorithms: [String]?
    public var multiRegion: Bool
    public var multiRegionConfiguration: MultiRegionConfiguration?

    public init(awsAccountId: String, keyId: String, arn: String, creationDate: Double, enabled: Bool, description: String,
                keyUsage: String = "ENCRYPT_DECRYPT", keyState: String, origin: String = "AWS_KMS",
                keyManager: String = "CUSTOMER", keySpec: String = "SYMMETRIC_DEFAULT",
                encryptionAlgorithms: [String]? = ["SYMMETRIC_DEFAULT"], multiRegion: Bool,
                multiRegionConfiguration: MultiRegionConfiguration?) {
        self.awsAccountId = awsAccountId
        self.keyId = keyId
        self.arn = arn
        self.creationDate = creationDate
        self.enabled = enabled
        self.description = description
        self.keyUsage = keyUsage
        self.keyState = keyState
        self.origin = origin
        self.keyManager = keyManager
        self.keySpec = keySpec
        self.encryptionAlgorithms = encryptionAlgorithms
        self.multiRegion = multiRegion
        self.multiRegionConfiguration = multiRegionConfiguration
    }

    enum CodingKeys: String, CodingKey {
        case awsAccountId = "AWSAccountId", keyId = "KeyId", arn = "Arn", creationDate = "CreationDate", enabled = "Enabled"
        case description = "Description", keyUsage = "KeyUsage", keyState = "KeyState", origin = "Origin"
        case keyManager = "KeyManager", keySpec = "KeySpec", encryptionAlgorithms = "EncryptionAlgorithms"
        case multiRegion = "MultiRegion", multiRegionConfiguration = "MultiRegionConfiguration"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        awsAccountId = try c.decodeIfPresent(String.self, forKey: .awsAccountId) ?? ""
        keyId = try c.decode(String.self, forKey: .keyId)
        arn = try c.decodeIfPresent(String.self, forKey: .arn) ?? ""
        creationDate = try c.decodeIfPresent(Double.self, forKey: .creationDate) ?? 0
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? false
        description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
        keyUsage = try c.decodeIfPresent(String.self, forKey: .keyUsage) ?? "ENCRYPT_DECRYPT"
        keyState = try c.decodeIfPresent(String.self, forKey: .keyState) ?? "Unknown"
        origin = try c.decodeIfPresent(String.self, forKey: .origin) ?? "AWS_KMS"
        keyManager = try c.decodeIfPresent(String.self, forKey: .keyManager) ?? "CUSTOMER"
        keySpec = try c.decodeIfPresent(String.self, forKey: .keySpec) ?? "SYMMETRIC_DEFAULT"
        encryptionAlgorithms = try c.decodeIfPresent([String].self, forKey: .encryptionAlgorithms)
        multiRegion = try c.decodeIfPresent(Bool.self, forKey: .multiRegion) ?? false
        multiRegionConfiguration = try c.decodeIfPresent(MultiRegionConfiguration.self, forKey: .multiRegionConfiguration)
    }
}

/// The multi-Region configuration of an MRK as DescribeKey reports it.
public struct MultiRegionConfiguration: Sendable, Hashable, Codable {
    /// `PRIMARY` or `REPLICA`.
    public var multiRegionKeyType: String
    public var primaryKey: MultiRegionKey
    public var replicaKeys: [MultiRegionKey]

    public init(multiRegionKeyType: String, primaryKey: MultiRegionKey, replicaKeys: [MultiRegionKey]) {
        self.multiRegionKeyType = multiRegionKeyType
        self.primaryKey = primaryKey
        self.replicaKeys = replicaKeys
    }

    enum CodingKeys: String, CodingKey {
        case multiRegionKeyType = "MultiRegionKeyType", primaryKey = "PrimaryKey", replicaKeys = "ReplicaKeys"
    }
}

/// One member of an MRK family.
public struct MultiRegionKey: Sendable, Hashable, Codable {
    public var arn: String
    public var region: String
    public init(arn: String, region: String) {
        self.arn = arn
        self.region = region
    }
    enum CodingKeys: String, CodingKey { case arn = "Arn", region = "Region" }
}
