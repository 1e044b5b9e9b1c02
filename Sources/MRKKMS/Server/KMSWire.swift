import Foundation

// The AWS KMS JSON 1.1 wire shapes, shared by `KMSHTTPServer` and `AWSKMSClient`. Property names are
// AWS's member names verbatim so that `Codable` maps them without key tables; `Data` members are
// base64 strings on the wire (JSONEncoder's default), as AWS sends blobs.

struct WireTag: Codable { var TagKey: String; var TagValue: String }

struct WireGenerateDataKeyRequest: Codable {
    var KeyId: String
    var EncryptionContext: [String: String]?
    var NumberOfBytes: Int?
    var KeySpec: String?
    var GrantTokens: [String]?
}

struct WireGenerateDataKeyResponse: Codable {
    var KeyId: String
    var CiphertextBlob: Data
    var Plaintext: Data?
}

struct WireEncryptRequest: Codable {
    var KeyId: String
    var Plaintext: Data
    var EncryptionContext: [String: String]?
    var GrantTokens: [String]?
    var EncryptionAlgorithm: String?
}

struct WireEncryptResponse: Codable {
    var KeyId: String
    var CiphertextBlob: Data
    var EncryptionAlgorithm: String?
}

struct WireDecryptRequest: Codable {
    var CiphertextBlob: Data
    var KeyId: String?
    var EncryptionContext: [String: String]?
    var GrantTokens: [String]?
    var EncryptionAlgorithm: String?
}

struct WireDecryptResponse: Codable {
    var KeyId: String
    var Plaintext: Data
    var EncryptionAlgorithm: String?
}

struct WireReEncryptRequest: Codable {
    var CiphertextBlob: Data
    var SourceKeyId: String?
    var SourceEncryptionContext: [String: String]?
    var DestinationKeyId: String
    var DestinationEncryptionContext: [String: String]?
    var GrantTokens: [String]?
}

struct WireReEncryptResponse: Codable {
    var CiphertextBlob: Data
    var SourceKeyId: String
    var KeyId: String
    var SourceEncryptionAlgorithm: String?
    var DestinationEncryptionAlgorithm: String?
}

struct WireKeyIdRequest: Codable { var KeyId: String }

struct WireKeyMetadataResponse: Codable { var KeyMetadata: KeyMetadata }

struct WireCreateKeyRequest: Codable {
    var Description: String?
    var MultiRegion: Bool?
    var Policy: String?
    var Tags: [WireTag]?
    var KeyUsage: String?
    var KeySpec: String?
    var CustomerMasterKeySpec: String?
    var Origin: String?
}

struct WireReplicateKeyRequest: Codable {
    var KeyId: String
    var ReplicaRegion: String
    var Description: String?
    var Policy: String?
    var Tags: [WireTag]?
}

struct WireReplicateKeyResponse: Codable {
    var ReplicaKeyMetadata: KeyMetadata
    var ReplicaPolicy: String
    var ReplicaTags: [WireTag]
}

struct WireUpdatePrimaryRegionRequest: Codable { var KeyId: String; var PrimaryRegion: String }

struct WireKeyListEntry: Codable { var KeyId: String; var KeyArn: String }
struct WireListKeysResponse: Codable { var Keys: [WireKeyListEntry]; var Truncated: Bool }

struct WireCreateAliasRequest: Codable { var AliasName: String; var TargetKeyId: String }
struct WireAliasNameRequest: Codable { var AliasName: String }
struct WireListAliasesRequest: Codable { var KeyId: String? }
struct WireAliasEntry: Codable { var AliasName: String; var AliasArn: String; var TargetKeyId: String? }
struct WireListAliasesResponse: Codable { var Aliases: [WireAliasEntry]; var Truncated: Bool }

struct WirePutKeyPolicyRequest: Codable { var KeyId: String; var Policy: String; var PolicyName: String? }
struct WireGetKeyPolicyResponse: Codable { var Policy: String; var PolicyName: String }

struct WireEnableKeyRotationRequest: Codable { var KeyId: String; var RotationPeriodInDays: Int? }
struct WireRotationStatusResponse: Codable {
    var KeyRotationEnabled: Bool
    var KeyId: String
    var RotationPeriodInDays: Int?
    var NextRotationDate: Double?
}

struct WireTagResourceRequest: Codable { var KeyId: String; var Tags: [WireTag] }
struct WireUntagResourceRequest: Codable { var KeyId: String; var TagKeys: [String] }
struct WireListResourceTagsResponse: Codable { var Tags: [WireTag]; var Truncated: Bool }

struct WireGenerateRandomRequest: Codable { var NumberOfBytes: Int? }
struct WireGenerateRandomResponse: Codable { var Plaintext: Data }

struct WireError: Codable { var __type: String; var message: String?; var Message: String? }

struct WireEmpty: Codable {}
