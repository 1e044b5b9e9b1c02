import Foundation

// The AWS KMS JSON 1.1 wire shapes, shared by `KMSHTTPServer` and `AWSKMSClient`. Property names are
// AWS's member names verbatim so that `Codable` maps them without key tables; `Data` members are
// base64 strings on the wire (JSONEncoder's default), as AWS sends blobs.

package struct WireTag: Codable {
    package var TagKey: String
    package var TagValue: String
    package init(TagKey: String, TagValue: String) {
        self.TagKey = TagKey
        self.TagValue = TagValue
    }
}

package struct WireGenerateDataKeyRequest: Codable {
    package var KeyId: String
    package var EncryptionContext: [String: String]?
    package var NumberOfBytes: Int?
    package var KeySpec: String?
    package var GrantTokens: [String]?
    package init(KeyId: String, EncryptionContext: [String: String]? = nil, NumberOfBytes: Int? = nil, KeySpec: String? = nil, GrantTokens: [String]? = nil) {
        self.KeyId = KeyId
        self.EncryptionContext = EncryptionContext
        self.NumberOfBytes = NumberOfBytes
        self.KeySpec = KeySpec
        self.GrantTokens = GrantTokens
    }
}

package struct WireGenerateDataKeyResponse: Codable {
    package var KeyId: String
    package var CiphertextBlob: Data
    package var Plaintext: Data?
    package init(KeyId: String, CiphertextBlob: Data, Plaintext: Data? = nil) {
        self.KeyId = KeyId
        self.CiphertextBlob = CiphertextBlob
        self.Plaintext = Plaintext
    }
}

package struct WireEncryptRequest: Codable {
    package var KeyId: String
    package var Plaintext: Data
    package var EncryptionContext: [String: String]?
    package var GrantTokens: [String]?
    package var EncryptionAlgorithm: String?
    package init(KeyId: String, Plaintext: Data, EncryptionContext: [String: String]? = nil, GrantTokens: [String]? = nil, EncryptionAlgorithm: String? = nil) {
        self.KeyId = KeyId
        self.Plaintext = Plaintext
        self.EncryptionContext = EncryptionContext
        self.GrantTokens = GrantTokens
        self.EncryptionAlgorithm = EncryptionAlgorithm
    }
}

package struct WireEncryptResponse: Codable {
    package var KeyId: String
    package var CiphertextBlob: Data
    package var EncryptionAlgorithm: String?
    package init(KeyId: String, CiphertextBlob: Data, EncryptionAlgorithm: String? = nil) {
        self.KeyId = KeyId
        self.CiphertextBlob = CiphertextBlob
        self.EncryptionAlgorithm = EncryptionAlgorithm
    }
}

package struct WireDecryptRequest: Codable {
    package var CiphertextBlob: Data
    package var KeyId: String?
    package var EncryptionContext: [String: String]?
    package var GrantTokens: [String]?
    package var EncryptionAlgorithm: String?
    package init(CiphertextBlob: Data, KeyId: String? = nil, EncryptionContext: [String: String]? = nil, GrantTokens: [String]? = nil, EncryptionAlgorithm: String? = nil) {
        self.CiphertextBlob = CiphertextBlob
        self.KeyId = KeyId
        self.EncryptionContext = EncryptionContext
        self.GrantTokens = GrantTokens
        self.EncryptionAlgorithm = EncryptionAlgorithm
    }
}

package struct WireDecryptResponse: Codable {
    package var KeyId: String
    package var Plaintext: Data
    package var EncryptionAlgorithm: String?
    package init(KeyId: String, Plaintext: Data, EncryptionAlgorithm: String? = nil) {
        self.KeyId = KeyId
        self.Plaintext = Plaintext
        self.EncryptionAlgorithm = EncryptionAlgorithm
    }
}

package struct WireReEncryptRequest: Codable {
    package var CiphertextBlob: Data
    package var SourceKeyId: String?
    package var SourceEncryptionContext: [String: String]?
    package var DestinationKeyId: String
    package var DestinationEncryptionContext: [String: String]?
    package var GrantTokens: [String]?
    package init(CiphertextBlob: Data, SourceKeyId: String? = nil, SourceEncryptionContext: [String: String]? = nil, DestinationKeyId: String, DestinationEncryptionContext: [String: String]? = nil, GrantTokens: [String]? = nil) {
        self.CiphertextBlob = CiphertextBlob
        self.SourceKeyId = SourceKeyId
        self.SourceEncryptionContext = SourceEncryptionContext
        self.DestinationKeyId = DestinationKeyId
        self.DestinationEncryptionContext = DestinationEncryptionContext
        self.GrantTokens = GrantTokens
    }
}

package struct WireReEncryptResponse: Codable {
    package var CiphertextBlob: Data
    package var SourceKeyId: String
    package var KeyId: String
    package var SourceEncryptionAlgorithm: String?
    package var DestinationEncryptionAlgorithm: String?
    package init(CiphertextBlob: Data, SourceKeyId: String, KeyId: String, SourceEncryptionAlgorithm: String? = nil, DestinationEncryptionAlgorithm: String? = nil) {
        self.CiphertextBlob = CiphertextBlob
        self.SourceKeyId = SourceKeyId
        self.KeyId = KeyId
        self.SourceEncryptionAlgorithm = SourceEncryptionAlgorithm
        self.DestinationEncryptionAlgorithm = DestinationEncryptionAlgorithm
    }
}

package struct WireKeyIdRequest: Codable {
    package var KeyId: String
    package init(KeyId: String) {
        self.KeyId = KeyId
    }
}

package struct WireKeyMetadataResponse: Codable {
    package var KeyMetadata: KeyMetadata
    package init(KeyMetadata: KeyMetadata) {
        self.KeyMetadata = KeyMetadata
    }
}

package struct WireCreateKeyRequest: Codable {
    package var Description: String?
    package var MultiRegion: Bool?
    package var Policy: String?
    package var Tags: [WireTag]?
    package var KeyUsage: String?
    package var KeySpec: String?
    package var CustomerMasterKeySpec: String?
    package var Origin: String?
    package init(Description: String? = nil, MultiRegion: Bool? = nil, Policy: String? = nil, Tags: [WireTag]? = nil, KeyUsage: String? = nil, KeySpec: String? = nil, CustomerMasterKeySpec: String? = nil, Origin: String? = nil) {
        self.Description = Description
        self.MultiRegion = MultiRegion
        self.Policy = Policy
        self.Tags = Tags
        self.KeyUsage = KeyUsage
        self.KeySpec = KeySpec
        self.CustomerMasterKeySpec = CustomerMasterKeySpec
        self.Origin = Origin
    }
}

package struct WireReplicateKeyRequest: Codable {
    package var KeyId: String
    package var ReplicaRegion: String
    package var Description: String?
    package var Policy: String?
    package var Tags: [WireTag]?
    package init(KeyId: String, ReplicaRegion: String, Description: String? = nil, Policy: String? = nil, Tags: [WireTag]? = nil) {
        self.KeyId = KeyId
        self.ReplicaRegion = ReplicaRegion
        self.Description = Description
        self.Policy = Policy
        self.Tags = Tags
    }
}

package struct WireReplicateKeyResponse: Codable {
    package var ReplicaKeyMetadata: KeyMetadata
    package var ReplicaPolicy: String
    package var ReplicaTags: [WireTag]
    package init(ReplicaKeyMetadata: KeyMetadata, ReplicaPolicy: String, ReplicaTags: [WireTag]) {
        self.ReplicaKeyMetadata = ReplicaKeyMetadata
        self.ReplicaPolicy = ReplicaPolicy
        self.ReplicaTags = ReplicaTags
    }
}

package struct WireUpdatePrimaryRegionRequest: Codable {
    package var KeyId: String
    package var PrimaryRegion: String
    package init(KeyId: String, PrimaryRegion: String) {
        self.KeyId = KeyId
        self.PrimaryRegion = PrimaryRegion
    }
}

package struct WireKeyListEntry: Codable {
    package var KeyId: String
    package var KeyArn: String
    package init(KeyId: String, KeyArn: String) {
        self.KeyId = KeyId
        self.KeyArn = KeyArn
    }
}
package struct WireListKeysResponse: Codable {
    package var Keys: [WireKeyListEntry]
    package var Truncated: Bool
    package init(Keys: [WireKeyListEntry], Truncated: Bool) {
        self.Keys = Keys
        self.Truncated = Truncated
    }
}

package struct WireCreateAliasRequest: Codable {
    package var AliasName: String
    package var TargetKeyId: String
    package init(AliasName: String, TargetKeyId: String) {
        self.AliasName = AliasName
        self.TargetKeyId = TargetKeyId
    }
}
package struct WireAliasNameRequest: Codable {
    package var AliasName: String
    package init(AliasName: String) {
        self.AliasName = AliasName
    }
}
package struct WireListAliasesRequest: Codable {
    package var KeyId: String?
    package init(KeyId: String? = nil) {
        self.KeyId = KeyId
    }
}
package struct WireAliasEntry: Codable {
    package var AliasName: String
    package var AliasArn: String
    package var TargetKeyId: String?
    package init(AliasName: String, AliasArn: String, TargetKeyId: String? = nil) {
        self.AliasName = AliasName
        self.AliasArn = AliasArn
        self.TargetKeyId = TargetKeyId
    }
}
package struct WireListAliasesResponse: Codable {
    package var Aliases: [WireAliasEntry]
    package var Truncated: Bool
    package init(Aliases: [WireAliasEntry], Truncated: Bool) {
        self.Aliases = Aliases
        self.Truncated = Truncated
    }
}

package struct WirePutKeyPolicyRequest: Codable {
    package var KeyId: String
    package var Policy: String
    package var PolicyName: String?
    package init(KeyId: String, Policy: String, PolicyName: String? = nil) {
        self.KeyId = KeyId
        self.Policy = Policy
        self.PolicyName = PolicyName
    }
}
package struct WireGetKeyPolicyResponse: Codable {
    package var Policy: String
    package var PolicyName: String
    package init(Policy: String, PolicyName: String) {
        self.Policy = Policy
        self.PolicyName = PolicyName
    }
}

package struct WireEnableKeyRotationRequest: Codable {
    package var KeyId: String
    package var RotationPeriodInDays: Int?
    package init(KeyId: String, RotationPeriodInDays: Int? = nil) {
        self.KeyId = KeyId
        self.RotationPeriodInDays = RotationPeriodInDays
    }
}
package struct WireRotationStatusResponse: Codable {
    package var KeyRotationEnabled: Bool
    package var KeyId: String
    package var RotationPeriodInDays: Int?
    package var NextRotationDate: Double?
    package init(KeyRotationEnabled: Bool, KeyId: String, RotationPeriodInDays: Int? = nil, NextRotationDate: Double? = nil) {
        self.KeyRotationEnabled = KeyRotationEnabled
        self.KeyId = KeyId
        self.RotationPeriodInDays = RotationPeriodInDays
        self.NextRotationDate = NextRotationDate
    }
}

package struct WireTagResourceRequest: Codable {
    package var KeyId: String
    package var Tags: [WireTag]
    package init(KeyId: String, Tags: [WireTag]) {
        self.KeyId = KeyId
        self.Tags = Tags
    }
}
package struct WireUntagResourceRequest: Codable {
    package var KeyId: String
    package var TagKeys: [String]
    package init(KeyId: String, TagKeys: [String]) {
        self.KeyId = KeyId
        self.TagKeys = TagKeys
    }
}
package struct WireListResourceTagsResponse: Codable {
    package var Tags: [WireTag]
    package var Truncated: Bool
    package init(Tags: [WireTag], Truncated: Bool) {
        self.Tags = Tags
        self.Truncated = Truncated
    }
}

package struct WireGenerateRandomRequest: Codable {
    package var NumberOfBytes: Int?
    package init(NumberOfBytes: Int? = nil) {
        self.NumberOfBytes = NumberOfBytes
    }
}
package struct WireGenerateRandomResponse: Codable {
    package var Plaintext: Data
    package init(Plaintext: Data) {
        self.Plaintext = Plaintext
    }
}

package struct WireError: Codable {
    package var __type: String
    package var message: String?
    package var Message: String?
    package init(__type: String, message: String? = nil, Message: String? = nil) {
        self.__type = __type
        self.message = message
        self.Message = Message
    }
}

package struct WireEmpty: Codable {
    package init() {}
}
