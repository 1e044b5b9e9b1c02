import MRKSQL
import Foundation
import MRKCrypto
import MRKKMS

/// Columns configured `format: esdk` hold AWS Encryption SDK messages (suite 0x0478, framed),
/// whose data keys are wrapped by KMS under the multi-Region key (the MRK-aware strict keyring),
/// so any app using an official Encryption SDK with KMS access can read them — in any region
/// holding a replica of the key.
///
/// Each message's encryption context names the keyspace, table, column and type, and is checked
/// on read: a message copied to another column, table or keyspace (another tenant's) does not
/// decrypt there. The row is not bound (unlike compact values with `row_identity`): the context is
/// also KMS's, and one data key serves many rows, so swapping two rows' ESDK values of the same
/// column is not detected — use `format: compact` with `row_identity` where that matters.
///
/// Like the SDKs' caching CMM, encryption materials (one KMS GenerateDataKey) are reused per
/// column for at most `maxAge` and `maxMessages`; unwrapped data keys are cached by their wrapped
/// form for `cacheTTL` (at most `maxCachedDataKeys` of them), so that losing KMS access stops
/// reads once the TTL has passed. Messages carrying more than one encrypted data key are refused (ours carry one), so a stored
/// message cannot make a read call KMS many times.
///
/// `@unchecked Sendable`: the caches are guarded by `lock`; KMS calls run outside it.
final class ESDKColumns: @unchecked Sendable {
    static let maxAge: Duration = .seconds(300)
    static let maxMessages = 100_000
    static let maxCachedDataKeys = 10_000

    private let lock = NSLock()
    private var encryption: [String: (materials: EncryptionMaterials, created: ContinuousClock.Instant, uses: Int)] = [:]
    private var decryption: [[UInt8]: (materials: DecryptionMaterials, created: ContinuousClock.Instant)] = [:]
    private let keyring: AWSKMSMRKKeyring
    private let client = ESDKClient(configuration: .init(algorithmSuite: .aes256GCMHKDFSHA512CommitKey, maxEncryptedDataKeys: 1))
    private let time: TimeSource
    private let cacheTTL: Duration
    private let keyspace: String

    init(keyARN: String, kms: any KMSClient, keyspace: String, cacheTTL: Duration, time: TimeSource = .continuous) throws(ProxyError) {
        do {
            keyring = try AWSKMSMRKKeyring(keyARN: keyARN, client: kms)
        } catch {
            throw ProxyError(.configuration, "\(keyARN) cannot be used by the ESDK keyring")
        }
        self.keyspace = keyspace
        self.cacheTTL = cacheTTL
        self.time = time
    }

    /// The encryption context of `column`'s messages in `keyspace`.
    static func context(for column: EncryptedColumn, keyspace: String) -> [String: String] {
        ["mrkproxy:keyspace": keyspace, "mrkproxy:table": column.table.aadName, "mrkproxy:column": column.name,
         "mrkproxy:type": column.type.rawValue]
    }

    /// Seals `plaintext` (the value's PostgreSQL text form) as an ESDK message for `column`.
    func seal(_ plaintext: [UInt8], column: EncryptedColumn) throws(ProxyError) -> [UInt8] {
        let name = "\(column.table).\(column.name)"
        let now = time.now()
        let cached: EncryptionMaterials? = lock.withLock {
            guard var entry = encryption[name], now - entry.created < min(Self.maxAge, cacheTTL), entry.uses < Self.maxMessages else {
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
            let context = Self.context(for: column, keyspace: keyspace)
            let (client, keyring) = (self.client, self.keyring)
            LibraryStatistics.shared.kmsCalls.wrappingAdd(1, ordering: .relaxed)
            materials = try KeyFetchExecutor.shared.wait { () async throws(ProxyError) -> EncryptionMaterials in
                do {
                    return try await client.encryptionMaterials(keyring: keyring, encryptionContext: context)
                } catch {
                    throw ProxyError(kms: error, operation: "GenerateDataKey for \(name)")
                }
            }
            lock.withLock { encryption[name] = (materials, now, 1) }
        }
        do {
            return try client.encrypt(plaintext, materials: materials)
        } catch {
            throw ProxyError(.invalidValue, "a value for \(name) could not be sealed as an ESDK message")
        }
    }

    /// Opens an ESDK message stored in `column`.
    ///
    /// - Throws: `failure` when the message is malformed, belongs to another keyspace, table or
    ///   column, or does not authenticate; `.kms` when its data key cannot be unwrapped.
    func open(_ message: [UInt8], column: EncryptedColumn, failure: ProxyError) throws(ProxyError) -> [UInt8] {
        guard let parsed = try? client.parse(message),
              parsed.storedEncryptionContext.filter({ $0.key.hasPrefix("mrkproxy:") }) == Self.context(for: column, keyspace: keyspace) else {
            throw failure
        }
        let cacheKey = parsed.encryptedDataKeys.flatMap(\.ciphertext)
        let now = time.now()
        let cached: DecryptionMaterials? = lock.withLock {
            guard let entry = decryption[cacheKey] else { return nil }
            guard now - entry.created < cacheTTL else {
                decryption[cacheKey] = nil
                return nil
            }
            return entry.materials
        }
        let materials: DecryptionMaterials
        if let cached, cached.algorithmSuite == parsed.algorithmSuite, cached.verificationKey == nil {
            materials = cached
        } else {
            let (client, keyring) = (self.client, self.keyring)
            let name = "\(column.table).\(column.name)"
            LibraryStatistics.shared.kmsCalls.wrappingAdd(1, ordering: .relaxed)
            materials = try KeyFetchExecutor.shared.wait { () async throws(ProxyError) -> DecryptionMaterials in
                do {
                    return try await client.decryptionMaterials(for: parsed, keyring: keyring)
                } catch let error as KMSError where error.code == .invalidCiphertext || error.code == .incorrectKey {
                    // The stored data key was altered: the value is not one this app wrote.
                    throw failure
                } catch {
                    throw ProxyError(kms: error, operation: "Decrypt of a data key of \(name)")
                }
            }
            if materials.verificationKey == nil {
                lock.withLock {
                    if decryption.count >= Self.maxCachedDataKeys { decryption.removeAll() }
                    decryption[cacheKey] = (materials, now)
                }
            }
        }
        guard let plaintext = try? client.decrypt(parsed, materials: materials).plaintext else { throw failure }
        return plaintext
    }
}
