import MRKSQL
import Foundation
import MRKCrypto
import MRKKMS

/// Columns configured `format: esdk` hold AWS Encryption SDK messages (suite 0x0478, framed),
/// whose data keys are wrapped by KMS under the multi-Region key (the MRK-aware strict keyring),
/// so any app using an official Encryption SDK with KMS access can read them — in any region
/// holding a replica of the key.
///
/// Like the SDKs' caching CMM, encryption materials (one KMS GenerateDataKey) are reused per
/// column for at most `maxAge` and `maxMessages`; unwrapped data keys are cached by their wrapped
/// form for `cacheTTL` (at most `maxCachedDataKeys` of them), so that losing KMS access stops
/// reads once the TTL has passed. Each message's encryption context names the table, column and
/// type, and is checked on read so a message copied to another column does not decrypt there.
/// Messages carrying more than one encrypted data key are refused (ours carry one), so a stored
/// message cannot make a read call KMS many times.
///
/// `@unchecked Sendable`: the caches are guarded by `lock`; KMS calls run outside it.
final class ESDKColumns: @unchecked Sendable {
    static let maxAge: Duration = .seconds(300)
    static let maxMessages = 100_000

    private let lock = NSLock()
    private var encryption: [String: (materials: EncryptionMaterials, created: ContinuousClock.Instant, uses: Int)] = [:]
    static let maxCachedDataKeys = 10_000

    private var decryption: [[UInt8]: (materials: DecryptionMaterials, created: ContinuousClock.Instant)] = [:]
    private let keyring: AWSKMSMRKKeyring
    private let client = ESDKClient(configuration: .init(algorithmSuite: .aes256GCMHKDFSHA512CommitKey, maxEncryptedDataKeys: 1))
    private let clock = ContinuousClock()
    private let cacheTTL: Duration

    init(keyARN: String, kms: any KMSClient, cacheTTL: Duration) throws {
        keyring = try AWSKMSMRKKeyring(keyARN: keyARN, client: kms)
        self.cacheTTL = cacheTTL
    }

    static func context(for column: EncryptedColumn) -> [String: String] {
        ["mrkproxy:table": "\(column.table.schema).\(column.table.name)", "mrkproxy:column": column.name,
         "mrkproxy:type": column.type.rawValue]
    }

    /// Seals `plaintext` (the value's PostgreSQL text form) as an ESDK message for `column`.
    func seal(_ plaintext: [UInt8], column: EncryptedColumn, blocking: (@escaping @Sendable () async throws -> EncryptionMaterials) throws -> EncryptionMaterials) throws -> [UInt8] {
        let name = "\(column.table).\(column.name)"
        let cached: EncryptionMaterials? = lock.withLock {
            guard var entry = encryption[name], clock.now - entry.created < min(Self.maxAge, cacheTTL), entry.uses < Self.maxMessages else {
                return nil
            }
            entry.uses += 1
            encryption[name] = entry
            return entry.materials
        }
        let materials: EncryptionMaterials
        if let cached {
            materials = cached
        } else {
            let context = Self.context(for: column)
            materials = try blocking { [client, keyring] in try await client.encryptionMaterials(keyring: keyring, encryptionContext: context) }
            lock.withLock { encryption[name] = (materials, clock.now, 1) }
        }
        return try client.encrypt(plaintext, materials: materials)
    }

    /// Opens an ESDK message stored in `column`.
    func open(_ message: [UInt8], column: EncryptedColumn, blocking: (@escaping @Sendable () async throws -> DecryptionMaterials) throws -> DecryptionMaterials) throws -> [UInt8] {
        let parsed = try client.parse(message)
        guard parsed.storedEncryptionContext.filter({ $0.key.hasPrefix("mrkproxy:") }) == Self.context(for: column) else {
            throw CryptoError(.encryptionContextMismatch, "message belongs to another column")
        }
        let cacheKey = parsed.encryptedDataKeys.flatMap(\.ciphertext)
        let cached: DecryptionMaterials? = lock.withLock {
            guard let entry = decryption[cacheKey] else { return nil }
            guard clock.now - entry.created < cacheTTL else {
                decryption[cacheKey] = nil
                return nil
            }
            return entry.materials
        }
        let materials: DecryptionMaterials
        if let cached, cached.algorithmSuite == parsed.algorithmSuite, cached.verificationKey == nil {
            materials = cached
        } else {
            materials = try blocking { [client, keyring] in try await client.decryptionMaterials(for: parsed, keyring: keyring) }
            if materials.verificationKey == nil {
                lock.withLock {
                    if decryption.count >= Self.maxCachedDataKeys { decryption.removeAll() }
                    decryption[cacheKey] = (materials, clock.now)
                }
            }
        }
        return try client.decrypt(parsed, materials: materials).plaintext
    }
}
