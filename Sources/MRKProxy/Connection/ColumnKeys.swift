import Foundation
import MRKCrypto
import MRKSQL

/// The keys a database's connections seal, open and index with: column data keys per branch-key
/// version and blind-index keys, derived from the keystore's branch keys.
///
/// Derived keys are dropped once per cache TTL (`refreshIfDue`), so they are fetched again
/// through the keystore's cache: losing KMS access (a disabled key, a denying policy) stops open
/// connections too once the cache's TTL and stale window have passed. `generation` changes at
/// every drop; ciphers made from older keys (`CipherCache`) are then made again.
///
/// `@unchecked Sendable`: all mutable state is guarded by `lock`; branch keys are fetched outside it.
final class ColumnKeys: @unchecked Sendable {
    private struct DataKeyID: Hashable {
        let column: ColumnKey
        let keyID: CompactKeyID
    }

    private let lock = NSLock()
    private var dataKeys: [DataKeyID: SecretBytes] = [:]
    private var indexKeys: [ColumnKey: SecretBytes] = [:]
    private var generationValue = 0
    private var refreshedAt: ContinuousClock.Instant
    private let ttl: Duration
    private let time: TimeSource
    let keyspaceID: UInt32
    private let keyspace: String
    private let keystore: BranchKeyStore

    init(keystore: BranchKeyStore, keyspace: String, keyspaceID: UInt32, ttl: Duration, time: TimeSource) {
        self.keystore = keystore
        self.keyspace = keyspace
        self.keyspaceID = keyspaceID
        self.ttl = ttl
        self.time = time
        refreshedAt = time.now()
    }

    /// Changes whenever derived keys are dropped.
    var generation: Int { lock.withLock { generationValue } }

    /// Drops every derived key when the TTL has passed since the last drop; returns the generation.
    @discardableResult
    func refreshIfDue() -> Int {
        let now = time.now()
        return lock.withLock {
            if now - refreshedAt >= ttl {
                dataKeys.removeAll()
                indexKeys.removeAll()
                generationValue += 1
                refreshedAt = now
            }
            return generationValue
        }
    }

    /// Drops every derived key now (the database may have changed under the process).
    func dropAll() {
        lock.withLock {
            dataKeys.removeAll()
            indexKeys.removeAll()
            generationValue += 1
            refreshedAt = time.now()
        }
    }

    /// The data key of `column` under `keyID`.
    ///
    /// - Throws: `.integrity` for a key id of another keyspace; `.kms`/`.keystore` when the branch
    ///   key cannot be had.
    func dataKey(for column: EncryptedColumn, keyID: CompactKeyID) throws(ProxyError) -> SecretBytes {
        guard keyID.keyspace == keyspaceID else {
            throw ProxyError(.integrity, "a value of \(column.table).\(column.name) was sealed under keyspace \(keyID.keyspace), not the configured keyspace \(keyspaceID)")
        }
        let id = DataKeyID(column: ColumnKey(column), keyID: keyID)
        if let key = lock.withLock({ dataKeys[id] }) { return key }
        let branch = try branchKey(version: keyID.version)
        let derived: SecretBytes
        do {
            derived = try CompactKeyHierarchy.columnKey(branchKey: branch, table: column.table.aadName, column: column.name)
        } catch {
            throw ProxyError(.keystore, "deriving the key of \(column.table).\(column.name) failed")
        }
        lock.withLock { dataKeys[id] = derived }
        return derived
    }

    /// The blind-index key of `column` (from the keyspace's beacon key, never from a branch-key version).
    func blindIndexKey(for column: EncryptedColumn) throws(ProxyError) -> SecretBytes {
        let id = ColumnKey(column)
        if let key = lock.withLock({ indexKeys[id] }) { return key }
        let beacon = try beaconKey()
        let derived: SecretBytes
        do {
            derived = try CompactKeyHierarchy.blindIndexKey(beaconKey: beacon, table: column.table.aadName, column: column.name)
        } catch {
            throw ProxyError(.keystore, "deriving the blind-index key of \(column.table).\(column.name) failed")
        }
        lock.withLock { indexKeys[id] = derived }
        return derived
    }

    /// The keyspace's beacon key: its own keystore entry (version 0), or for a keystore made before
    /// it had one, derived from branch key v1 (see `BranchKeyStore.beaconKey`).
    private func beaconKey() throws(ProxyError) -> SecretBytes {
        if let key = keystore.cachedKey(keyspaceID: keyspaceID, version: 0) { return key }
        let (keystore, keyspace, keyspaceID) = (self.keystore, self.keyspace, self.keyspaceID)
        return try KeyFetchExecutor.shared.wait { () async throws(ProxyError) -> SecretBytes in
            try await keystore.beaconKey(keyspaceID: keyspaceID, keyspace: keyspace)
        }
    }

    /// The branch key `version`, from the keystore's cache or (blocking this thread) KMS.
    private func branchKey(version: UInt32) throws(ProxyError) -> SecretBytes {
        if let key = keystore.cachedKey(keyspaceID: keyspaceID, version: version) { return key }
        let (keystore, keyspace, keyspaceID) = (self.keystore, self.keyspace, self.keyspaceID)
        return try KeyFetchExecutor.shared.wait { () async throws(ProxyError) -> SecretBytes in
            try await keystore.key(keyspaceID: keyspaceID, version: version, keyspace: keyspace).key
        }
    }
}

/// A column, for cache lookups (cheaper to hash than `EncryptedColumn`).
struct ColumnKey: Hashable {
    let schema: String
    let table: String
    let column: String
    init(_ column: EncryptedColumn) {
        schema = column.table.schema
        table = column.table.name
        self.column = column.name
    }
}

/// Ciphers and blind indexers made from `ColumnKeys`, for one thread (a connection, or one decode
/// worker): `ColumnCipher` and `BlindIndexer` own libcrypto contexts and are single-threaded.
/// Entries from an older key generation are made again.
final class CipherCache {
    private struct CipherID: Hashable {
        let column: ColumnKey
        let keyID: CompactKeyID
    }

    let keys: ColumnKeys
    private var generation: Int
    private var ciphers: [CipherID: ColumnCipher] = [:]
    private var indexers: [ColumnKey: BlindIndexer] = [:]

    init(keys: ColumnKeys) {
        self.keys = keys
        generation = keys.generation
    }

    /// Drops ciphers made from keys `ColumnKeys` has since dropped.
    func synchronize(generation current: Int) {
        guard current != generation else { return }
        ciphers.removeAll()
        indexers.removeAll()
        generation = current
    }

    func cipher(for column: EncryptedColumn, keyID: CompactKeyID) throws(ProxyError) -> ColumnCipher {
        let id = CipherID(column: ColumnKey(column), keyID: keyID)
        if let cipher = ciphers[id] { return cipher }
        let key = try keys.dataKey(for: column, keyID: keyID)
        let cipher: ColumnCipher
        do {
            cipher = try ColumnCipher(dataKey: key, keyID: keyID)
        } catch {
            throw ProxyError(.keystore, "the key of \(column.table).\(column.name) is unusable")
        }
        ciphers[id] = cipher
        return cipher
    }

    func indexer(for column: EncryptedColumn) throws(ProxyError) -> BlindIndexer {
        let id = ColumnKey(column)
        if let indexer = indexers[id] { return indexer }
        let key = try keys.blindIndexKey(for: column)
        let indexer: BlindIndexer
        do {
            indexer = try BlindIndexer(key: key)
        } catch {
            throw ProxyError(.keystore, "the blind-index key of \(column.table).\(column.name) is unusable")
        }
        indexers[id] = indexer
        return indexer
    }
}
