import Foundation
import MRKCrypto

/// The AWS KMS multi-Region-key-aware strict keyring of the AWS Encryption SDK
/// (framework/aws-kms/aws-kms-mrk-keyring.md), over any `KMSClient`.
///
/// Encrypt: GenerateDataKey (or Encrypt, when another keyring generated the data key) under the
/// configured key ARN; the encrypted data key has provider id `aws-kms` and the ARN KMS returned as
/// provider info. Decrypt: tries each `aws-kms` encrypted data key whose ARN is an MRK match
/// (`aws-kms-mrk-match-for-decrypt`: same partition, account and `mrk-` id, any region) for the
/// configured ARN, always calling Decrypt with the *configured* (local, regional) ARN — so data
/// sealed in us-east-1 is opened in ap-southeast-2 by the replica key there.
public struct AWSKMSMRKKeyring: Keyring {
    /// The provider id of KMS-wrapped data keys.
    public static let providerID = "aws-kms"

    /// The configured key ARN (this region's).
    public let keyARN: String
    let client: any KMSClient

    /// - Throws: `KMSError` `.configuration` when `keyARN` is not a key ARN.
    public init(keyARN: String, client: any KMSClient) throws {
        let arn = try KMSARN(parsing: keyARN)
        guard arn.resourceType == .key else {
            throw KMSError(.configuration, "the MRK-aware keyring needs a key ARN, not an alias: \(keyARN)")
        }
        self.keyARN = keyARN
        self.client = client
    }

    public func onEncrypt(_ materials: EncryptionMaterials) async throws -> EncryptionMaterials {
        var result = materials
        if let plaintext = materials.plaintextDataKey {
            let response = try await client.encrypt(EncryptRequest(keyId: keyARN, plaintext: plaintext,
                                                                   encryptionContext: materials.encryptionContext))
            try Self.checkReturnedARN(response.keyId)
            result.encryptedDataKeys.append(EncryptedDataKey(providerID: Self.providerID, providerInfo: Array(response.keyId.utf8),
                                                             ciphertext: response.ciphertextBlob))
            return result
        }
        let response = try await client.generateDataKey(GenerateDataKeyRequest(
            keyId: keyARN, encryptionContext: materials.encryptionContext, keySpec: nil,
            numberOfBytes: materials.algorithmSuite.dataKeyByteCount))
        guard response.plaintext.count == materials.algorithmSuite.dataKeyByteCount else {
            throw KMSError(.invalidResponse, "GenerateDataKey returned a key of the wrong length")
        }
        try Self.checkReturnedARN(response.keyId)
        result.plaintextDataKey = response.plaintext
        result.encryptedDataKeys.append(EncryptedDataKey(providerID: Self.providerID, providerInfo: Array(response.keyId.utf8),
                                                         ciphertext: response.ciphertextBlob))
        return result
    }

    public func onDecrypt(_ materials: DecryptionMaterials, encryptedDataKeys: [EncryptedDataKey]) async throws -> DecryptionMaterials {
        guard materials.plaintextDataKey == nil else {
            throw CryptoError(.invalidInput, "decryption materials already hold a data key")
        }
        var failures: [String] = []
        for edk in encryptedDataKeys where edk.providerID == Self.providerID {
            // Spec (aws-kms-mrk-keyring, OnDecrypt): the provider info of an aws-kms data key MUST be
            // a valid KMS key ARN, or decryption MUST fail.
            guard let info = String(bytes: edk.providerInfo, encoding: .utf8), let arn = try? KMSARN(parsing: info), arn.resourceType == .key else {
                throw CryptoError(.invalidInput, "an aws-kms encrypted data key's provider info is not a KMS key ARN")
            }
            guard KMSKeyIdentifier.mrkMatch(info, keyARN) else { continue }
            do {
                let response = try await client.decrypt(DecryptRequest(ciphertextBlob: edk.ciphertext, keyId: keyARN,
                                                                       encryptionContext: materials.encryptionContext))
                guard response.keyId == keyARN else {
                    failures.append("KMS answered for \(response.keyId), not \(keyARN)")
                    continue
                }
                guard response.plaintext.count == materials.algorithmSuite.dataKeyByteCount else {
                    failures.append("KMS returned a data key of the wrong length")
                    continue
                }
                var result = materials
                result.plaintextDataKey = response.plaintext
                return result
            } catch let error as KMSError {
                failures.append("\(error.code.name): \(error.message)")
            }
        }
        let detail = failures.isEmpty ? "no aws-kms data key matches \(keyARN)" : failures.joined(separator: "; ")
        throw CryptoError(.noDecryptableKey, detail)
    }

    private static func checkReturnedARN(_ arn: String) throws {
        guard (try? KMSARN(parsing: arn)) != nil else {
            throw KMSError(.invalidResponse, "KMS returned a key id that is not an ARN")
        }
    }
}
