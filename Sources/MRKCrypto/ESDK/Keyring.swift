/// A keyring generates, wraps and unwraps data keys (framework/keyring-interface.md).
///
/// This is the extension point for key management: `RawAESKeyring` wraps with a local AES key;
/// the AWS KMS MRK-aware strict keyring (issue 4, module MRKKMS) implements the same protocol,
/// writing encrypted data keys with provider id `aws-kms` and the key ARN as provider info, and
/// on decrypt accepting an EDK whose ARN matches its own under `aws-kms-mrk-match-for-decrypt`.
/// Methods are `async` so that a keyring may call a remote service.
public protocol Keyring: Sendable {
    /// Adds an encrypted data key to `materials`, generating the plaintext data key first when
    /// `materials.plaintextDataKey` is nil (its length must be `algorithmSuite.dataKeyByteCount`).
    /// - Throws: when the keyring cannot wrap (or generate) a data key.
    func onEncrypt(_ materials: EncryptionMaterials) async throws -> EncryptionMaterials

    /// Sets `plaintextDataKey` by unwrapping one of `encryptedDataKeys`. Must fail, without
    /// modifying anything, when the materials already hold a data key or no EDK can be unwrapped.
    /// - Throws: `CryptoError` `.noDecryptableKey` when none of the keys is for this keyring.
    func onDecrypt(_ materials: DecryptionMaterials, encryptedDataKeys: [EncryptedDataKey]) async throws -> DecryptionMaterials
}

/// Combines keyrings (framework/multi-keyring.md): the generator (if any) creates the data key,
/// every child wraps it too; on decrypt the generator then the children are tried in order.
public struct MultiKeyring: Keyring {
    public let generator: (any Keyring)?
    public let children: [any Keyring]

    /// - Throws: `CryptoError` `.invalidInput` when there is neither a generator nor a child.
    public init(generator: (any Keyring)?, children: [any Keyring] = []) throws {
        guard generator != nil || !children.isEmpty else { throw CryptoError(.invalidInput, "multi-keyring without keyrings") }
        self.generator = generator
        self.children = children
    }

    public func onEncrypt(_ materials: EncryptionMaterials) async throws -> EncryptionMaterials {
        var result = materials
        if let generator {
            result = try await generator.onEncrypt(result)
        } else if result.plaintextDataKey == nil {
            throw CryptoError(.invalidInput, "multi-keyring without a generator needs a data key")
        }
        for child in children { result = try await child.onEncrypt(result) }
        return result
    }

    public func onDecrypt(_ materials: DecryptionMaterials, encryptedDataKeys: [EncryptedDataKey]) async throws -> DecryptionMaterials {
        guard materials.plaintextDataKey == nil else { throw CryptoError(.invalidInput, "decryption materials already hold a data key") }
        var errors = [String]()
        for keyring in (generator.map { [$0] } ?? []) + children {
            do {
                return try await keyring.onDecrypt(materials, encryptedDataKeys: encryptedDataKeys)
            } catch let error as CryptoError {
                errors.append(error.description)
            }
        }
        throw CryptoError(.noDecryptableKey, "no keyring could decrypt a data key (\(errors.joined(separator: "; ")))")
    }
}
