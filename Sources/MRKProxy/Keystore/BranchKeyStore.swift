import Foundation
import Synchronization
import Logging
import MRKCrypto
import MRKKMS
import MRKPostgres
import MRKSQL

/// The branch-key keystore: per keyspace, versioned 256-bit branch keys (1, 2, …), each generated
/// by KMS under the multi-Region key and stored wrapped in the keystore table. The keyspace's
/// beacon key (for blind indexes) is derived from version 1 with HKDF, so it never changes when
/// the keyspace rotates and costs no KMS call of its own.
///
/// Because the table lives in PostgreSQL it replicates with the data: in a replica region the
/// keystore reads the wrapped keys from the replica and unwraps them with the region's own
/// replica key through the region's KMS endpoint. Only the bare `mrk-…` id is stored.
///
/// **Which version seals.** New values are sealed under the keyspace's *highest* version, never
/// under a lower one than this process has seen: the `state` column is informational, so flipping
/// it back (or deleting the newest row) makes sealing fail with `.keystore` instead of silently
/// sealing under an older key. A version row the database adds without KMS (a forged wrapped key)
/// fails to unwrap — the encryption context binds keyspace and version — so it can deny service
/// but never choose the key.
///
/// Unwrapped keys are cached (`KeyCache`): one KMS Decrypt per key version per TTL, shared by
/// concurrent callers, with a bounded stale window if KMS becomes unreachable.
public final class BranchKeyStore: Sendable {
    /// Keystore settings.
    public struct Configuration: Sendable {
        /// The keystore table, schema-qualified so that the session's search_path cannot point it
        /// elsewhere. Default `public.mrkproxy_keystore` (see `sql/01-keystore.sql`).
        public var table = QualifiedName(schema: "public", name: "mrkproxy_keystore")
        /// How long an unwrapped key is used before it is unwrapped again. Default 5 minutes.
        public var cacheTTL: Duration = .seconds(300)
        /// How long past its TTL a cached key may still be used while KMS is unreachable. Default 10 minutes.
        public var staleWindow: Duration = .seconds(600)
        /// Where key lifetimes read the time (tests move a manual clock).
        package var time: TimeSource = .continuous
        public init() {}
    }

    /// A version of a keyspace's key, as listed (never with key material).
    public struct KeyVersion: Sendable, Hashable {
        public let keyspace: String
        public let keyspaceID: UInt32
        public let version: UInt32
        public let state: String
        public let kmsKeyID: String
        public let createdAt: String
    }

    /// An unwrapped branch key and its identity.
    package struct BranchKey: Sendable {
        package let keyspaceID: UInt32
        package let version: UInt32
        package let key: SecretBytes
    }

    let kms: any KMSClient
    /// The app's regional ARN of the multi-Region key; used for GenerateDataKey and Decrypt.
    public let kmsKeyARN: String
    let database: SerializedConnection
    let configuration: Configuration
    let cache: KeyCache
    let logger: Logger
    /// The highest version seen per keyspace id (never goes down).
    private let floor = VersionFloor()
    /// Keyspaces whose beacon entry (version 0) this process has seen: a row that disappears later
    /// is refused, never replaced by the key derived from v1 (blind indexes would silently change).
    private let beaconEntriesSeen = Mutex<Set<UInt32>>([])

    /// - Parameters:
    ///   - databaseURL: the region's database (primary in the primary region, replica elsewhere).
    ///   - kms: the region's KMS.
    ///   - kmsKeyARN: the regional ARN of the MRK in this region.
    ///   - configuration: the keystore table, cache TTL and stale window.
    ///   - logger: where key loads and KMS failures are logged (never key material).
    public init(databaseURL: String, kms: any KMSClient, kmsKeyARN: String, configuration: Configuration = Configuration(),
                logger: Logger = Logger(label: "mrkproxy.keystore", factory: { _ in SwiftLogNoOpLogHandler() })) {
        self.kms = kms
        self.kmsKeyARN = kmsKeyARN
        self.database = SerializedConnection(url: databaseURL)
        self.configuration = configuration
        self.cache = KeyCache(ttl: configuration.cacheTTL, staleWindow: configuration.staleWindow, logger: logger,
                              time: configuration.time)
        self.logger = logger
    }

    private var table: String { configuration.table.description }

    // MARK: Administration (primary region)

    /// The keystore table's definition (the same as `sql/01-keystore.sql`), for `table`.
    ///
    /// Version 0 of a keyspace is its beacon key (state `beacon`): the key blind indexes derive
    /// from, kept apart from the branch keys so that every branch-key version can be retired.
    /// Keystores made before it existed are upgraded (the constraints widened) by `create`.
    static func ddl(_ table: QualifiedName) -> String {
        let name = { (suffix: String) in SQLIdentifier.quoted(table.name + suffix) }
        return """
        CREATE TABLE IF NOT EXISTS \(table) (
            keyspace    text        NOT NULL,
            keyspace_id integer     NOT NULL CHECK (keyspace_id > 0),
            version     integer     NOT NULL,
            state       text        NOT NULL,
            kms_key_id  text        NOT NULL,
            wrapped_key bytea       NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (keyspace, version),
            UNIQUE (keyspace_id, version)
        );
        ALTER TABLE \(table) DROP CONSTRAINT IF EXISTS \(name("_version_check"));
        ALTER TABLE \(table) ADD CONSTRAINT \(name("_version_check")) CHECK (version >= 0);
        ALTER TABLE \(table) DROP CONSTRAINT IF EXISTS \(name("_state_check"));
        ALTER TABLE \(table) ADD CONSTRAINT \(name("_state_check"))
            CHECK (state IN ('active', 'decrypt_only', 'retired', 'beacon') AND (state = 'beacon') = (version = 0));
        CREATE UNIQUE INDEX IF NOT EXISTS \(name("_one_active"))
            ON \(table) (keyspace) WHERE state = 'active';
        """
    }

    /// Creates the keystore table if it does not exist, then `keyspace` with its first branch key
    /// (version 1) unless it exists (idempotent).
    ///
    /// - Returns: the keyspace's versions after the call.
    @discardableResult
    public func create(keyspace: String) async throws(ProxyError) -> [KeyVersion] {
        _ = try database.withConnection { conn throws(ProxyError) in
            try postgres("creating the keystore table \(table)") { try conn.executeScript(Self.ddl(configuration.table)) }
        }
        let existing = try list(keyspace: keyspace)
        if !existing.isEmpty {
            try checkKeyMatches(existing)
            try await ensureBeacon(keyspace: keyspace, versions: existing)
            return try list(keyspace: keyspace)
        }
        let first = try await generateWrapped(keyspace: keyspace, version: 1)
        let beacon = try await generateWrapped(keyspace: keyspace, version: 0)
        let mrkID = try bareKeyID()
        try database.withConnection { conn throws(ProxyError) in
            try postgres("creating keyspace \(keyspace)") {
                try conn.transaction { tx in
                    try tx.execute("LOCK TABLE \(table) IN SHARE ROW EXCLUSIVE MODE")
                    // A concurrent create may have won the race: keep its keys.
                    if try tx.execute("SELECT 1 FROM \(table) WHERE keyspace = $1", [.text(keyspace)]).rowCount > 0 { return }
                    let next = try tx.execute("SELECT coalesce(max(keyspace_id), 0) + 1 FROM \(table)")
                    let id = next.string(row: 0, column: 0) ?? "1"
                    try tx.execute("""
                        INSERT INTO \(table) (keyspace, keyspace_id, version, state, kms_key_id, wrapped_key)
                        VALUES ($1, $2, 1, 'active', $3, $4), ($1, $2, 0, 'beacon', $3, $5)
                        """, [.text(keyspace), .text(id, type: .int4), .text(mrkID), .bytea(first), .bytea(beacon)])
                }
            }
        }
        logger.info("keyspace created", metadata: ["keyspace": "\(keyspace)", "kms.key": "\(mrkID)"])
        return try list(keyspace: keyspace)
    }

    /// Gives an existing keyspace whose beacon key is still derived from branch key v1 a beacon
    /// entry of its own, holding that same key (so every blind index stays valid), wrapped by
    /// KMS (`Encrypt`). Then v1 can be retired like any other version.
    private func ensureBeacon(keyspace: String, versions: [KeyVersion]) async throws(ProxyError) {
        guard !versions.contains(where: { $0.version == 0 }), let keyspaceID = versions.first?.keyspaceID else { return }
        let derived = try await beaconKey(keyspaceID: keyspaceID, keyspace: keyspace)
        let wrapped: [UInt8]
        do {
            wrapped = try await kms.encrypt(EncryptRequest(keyId: kmsKeyARN, plaintext: derived,
                                                           encryptionContext: Self.encryptionContext(keyspace: keyspace, version: 0))).ciphertextBlob
        } catch {
            throw ProxyError(kms: error, operation: "Encrypt of the beacon key of \(keyspace) with \(kmsKeyARN)")
        }
        let mrkID = try bareKeyID()
        try database.withConnection { conn throws(ProxyError) in
            try postgres("adding the beacon key of keyspace \(keyspace)") {
                try conn.execute("""
                    INSERT INTO \(table) (keyspace, keyspace_id, version, state, kms_key_id, wrapped_key)
                    VALUES ($1, $2, 0, 'beacon', $3, $4) ON CONFLICT DO NOTHING
                    """, [.text(keyspace), .int(Int(keyspaceID)), .text(mrkID), .bytea(wrapped)])
            }
        }
        logger.info("beacon key given its own keystore entry", metadata: ["keyspace": "\(keyspace)"])
    }

    /// Marks `version` of `keyspace` retired: it is never unwrapped again. The caller has checked
    /// that no stored value uses it (`mrkproxy keystore retire` counts them).
    ///
    /// - Throws: `.keystore` for the highest version (it seals new values), the beacon key, a
    ///   version that does not exist, and v1 while the beacon key is still derived from it.
    package func retire(keyspace: String, version: UInt32) throws(ProxyError) {
        let versions = try list(keyspace: keyspace)
        guard let target = versions.first(where: { $0.version == version }), version >= 1 else {
            throw ProxyError(.keystore, "keyspace \(keyspace) has no branch-key version \(version)")
        }
        guard version < (versions.map(\.version).max() ?? 0) else {
            throw ProxyError(.keystore, "v\(version) is the highest version of \(keyspace): new values are sealed under it; rotate first")
        }
        if version == 1 && !versions.contains(where: { $0.version == 0 }) {
            throw ProxyError(.keystore, "the beacon key of \(keyspace) is still derived from v1: run `mrkproxy keystore init` to give it "
                             + "an entry of its own, then retire v1")
        }
        guard target.state != "retired" else { return }
        try database.withConnection { conn throws(ProxyError) in
            try postgres("retiring \(keyspace) v\(version)") {
                try conn.execute("UPDATE \(table) SET state = 'retired' WHERE keyspace = $1 AND version = $2", [.text(keyspace), .int(Int(version))])
            }
        }
        if let keyspaceID = versions.first?.keyspaceID { cache.remove(KeyCache.Key(keyspaceID: keyspaceID, version: version)) }
        logger.info("branch-key version retired", metadata: ["keyspace": "\(keyspace)", "version": "\(version)"])
    }

    /// How long ago `version` of `keyspace` stopped sealing new values (the next version was
    /// made), by the database's clock; nil while it is still the highest.
    package func supersededAge(keyspace: String, version: UInt32) throws(ProxyError) -> Duration? {
        let rows = try database.reading { conn throws(ProxyError) in
            try postgres("reading the keystore \(table)") {
                try conn.execute("""
                    SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8 FROM \(table) WHERE keyspace = $1 AND version > $2
                    """, [.text(keyspace), .int(Int(version))])
            }
        }
        guard let text = rows.string(row: 0, column: 0), let seconds = Double(text) else { return nil }
        return .milliseconds(Int64(max(0, seconds) * 1000))
    }

    /// Adds a new highest version to `keyspace`; earlier versions stay for decryption.
    ///
    /// - Returns: the new version number.
    public func rotate(keyspace: String) async throws(ProxyError) -> UInt32 {
        let versions = try list(keyspace: keyspace)
        guard !versions.isEmpty else {
            throw ProxyError(.keystore, "keyspace \(keyspace) does not exist; run `mrkproxy keystore init` first")
        }
        try checkKeyMatches(versions)
        let next = (versions.map(\.version).max() ?? 0) + 1
        let wrapped = try await generateWrapped(keyspace: keyspace, version: next)
        let mrkID = try bareKeyID()
        let keyspaceID = versions[0].keyspaceID
        try database.withConnection { conn throws(ProxyError) in
            try postgres("rotating keyspace \(keyspace)") {
                try conn.transaction { tx in
                    try tx.execute("UPDATE \(table) SET state = 'decrypt_only' WHERE keyspace = $1 AND state = 'active'", [.text(keyspace)])
                    try tx.execute("""
                        INSERT INTO \(table) (keyspace, keyspace_id, version, state, kms_key_id, wrapped_key)
                        VALUES ($1, $2, $3, 'active', $4, $5)
                        """, [.text(keyspace), .int(Int(keyspaceID)), .int(Int(next)), .text(mrkID), .bytea(wrapped)])
                }
            }
        }
        floor.raise(keyspaceID: keyspaceID, to: next)
        logger.info("keyspace rotated", metadata: ["keyspace": "\(keyspace)", "version": "\(next)"])
        return next
    }

    /// Lists key versions (all keyspaces, or one), oldest first. Never returns key material.
    public func list(keyspace: String? = nil) throws(ProxyError) -> [KeyVersion] {
        let rows = try database.reading { conn throws(ProxyError) in
            try postgres("reading the keystore \(table)") {
                try conn.execute("""
                    SELECT keyspace, keyspace_id, version, state, kms_key_id, created_at::text
                    FROM \(table) WHERE $1::text IS NULL OR keyspace = $1 ORDER BY keyspace, version
                    """, [keyspace.map { .text($0) } ?? .null])
            }
        }
        return rows.rows.map { row in
            KeyVersion(keyspace: row.string(0) ?? "", keyspaceID: UInt32(row.string(1) ?? "") ?? 0,
                       version: UInt32(row.string(2) ?? "") ?? 0, state: row.string(3) ?? "",
                       kmsKeyID: row.string(4) ?? "", createdAt: row.string(5) ?? "")
        }
    }

    // MARK: Keys for encryption and decryption

    /// The version new values of `keyspace` are sealed under, with the keyspace's id: its highest
    /// version (a database read; no KMS call).
    ///
    /// - Throws: `.keystore` when the keyspace is missing, its rows disagree on its id, or its
    ///   highest version is lower than one this process has already seen (a rolled-back keystore).
    public func sealingVersion(keyspace: String) throws(ProxyError) -> (keyspaceID: UInt32, version: UInt32) {
        let result = try database.reading { conn throws(ProxyError) in
            try postgres("reading the keystore \(table)") {
                try conn.execute("SELECT keyspace_id, max(version) FILTER (WHERE version >= 1) FROM \(table) WHERE keyspace = $1 GROUP BY keyspace_id", [.text(keyspace)])
            }
        }
        guard result.rowCount > 0 else {
            throw ProxyError(.keystore, "keyspace \(keyspace) has no keys in \(table); run `mrkproxy keystore init`")
        }
        guard result.rowCount == 1, let id = UInt32(result.string(row: 0, column: 0) ?? ""),
              let version = UInt32(result.string(row: 0, column: 1) ?? "") else {
            throw ProxyError(.keystore, "keyspace \(keyspace) has rows with different keyspace ids: the keystore table was altered")
        }
        let seen = floor.raise(keyspaceID: id, to: version)
        guard version >= seen else {
            throw ProxyError(.keystore, "keyspace \(keyspace)'s highest branch-key version is v\(version), but this process has already used v\(seen): "
                             + "the keystore table was rolled back or lost rows, so MRKProxy will not seal under an older key")
        }
        return (id, version)
    }

    /// The key new values of `keyspace` are sealed under (see `sealingVersion(keyspace:)`).
    package func activeKey(keyspace: String) async throws(ProxyError) -> BranchKey {
        let (id, version) = try sealingVersion(keyspace: keyspace)
        return try await key(keyspaceID: id, version: version, keyspace: keyspace)
    }

    /// The branch key `version` of keyspace `keyspaceID` (for opening values sealed under it).
    ///
    /// - Parameter keyspace: when given, the keyspace the key must belong to. It is checked against
    ///   the row and bound into the KMS encryption context, so a row moved from another keyspace
    ///   (by someone who can write the keystore table) does not unwrap.
    package func key(keyspaceID: UInt32, version: UInt32, keyspace: String? = nil) async throws(ProxyError) -> BranchKey {
        let secret = try await cache.value(for: KeyCache.Key(keyspaceID: keyspaceID, version: version)) { () async throws(ProxyError) -> SecretBytes in
            try await self.unwrap(keyspaceID: keyspaceID, version: version, expectedKeyspace: keyspace)
        }
        return BranchKey(keyspaceID: keyspaceID, version: version, key: secret)
    }

    /// The beacon key of keyspace `keyspaceID` (derives blind-index keys): the keystore's version 0
    /// entry, or for a keystore made before it had one, HKDF-SHA256 of branch key version 1. It
    /// never changes when the keyspace rotates, and no branch-key version is needed for it.
    package func beaconKey(keyspaceID: UInt32, keyspace: String? = nil) async throws(ProxyError) -> SecretBytes {
        // Its own entry (version 0) when the keystore has one; else derived from v1, as keystores
        // made before the beacon entry existed do.
        if try hasBeaconEntry(keyspaceID: keyspaceID) {
            return try await key(keyspaceID: keyspaceID, version: 0, keyspace: keyspace).key
        }
        let first = try await key(keyspaceID: keyspaceID, version: 1, keyspace: keyspace).key
        do {
            return try CompactKeyHierarchy.beaconKey(fromFirstBranchKey: first)
        } catch {
            throw ProxyError(.keystore, "deriving the beacon key of keyspace \(keyspaceID) failed")
        }
    }

    private func hasBeaconEntry(keyspaceID: UInt32) throws(ProxyError) -> Bool {
        if cachedKey(keyspaceID: keyspaceID, version: 0) != nil { return true }
        let rows = try database.reading { conn throws(ProxyError) in
            try postgres("reading the keystore \(table)") {
                try conn.execute("SELECT 1 FROM \(table) WHERE keyspace_id = $1 AND version = 0", [.int(Int(keyspaceID))])
            }
        }
        if rows.rowCount > 0 {
            beaconEntriesSeen.withLock { _ = $0.insert(keyspaceID) }
            return true
        }
        if beaconEntriesSeen.withLock({ $0.contains(keyspaceID) }) {
            throw ProxyError(.keystore, "the beacon key entry (version 0) of keyspace \(keyspaceID) disappeared from the keystore; "
                             + "blind indexes cannot be computed without it")
        }
        return false
    }

    /// The numeric id of `keyspace`.
    public func keyspaceID(_ keyspace: String) throws(ProxyError) -> UInt32 {
        try sealingVersion(keyspace: keyspace).keyspaceID
    }

    /// The key if it is already cached and fresh (never calls KMS).
    func cachedKey(keyspaceID: UInt32, version: UInt32) -> SecretBytes? {
        cache.cached(KeyCache.Key(keyspaceID: keyspaceID, version: version))
    }

    /// Number of KMS unwraps so far.
    public var unwrapCount: Int { cache.loads }

    /// Drops every cached key (zeroing it once no caller holds it any more).
    public func clearCache() { cache.removeAll() }

    // MARK: KMS

    /// The KMS encryption context of a keystore entry: version 0 is the beacon key.
    static func encryptionContext(keyspace: String, version: UInt32) -> EncryptionContext {
        ["mrkproxy:keyspace": keyspace, "mrkproxy:version": String(version), "mrkproxy:purpose": version == 0 ? "beacon" : "branch"]
    }

    private func generateWrapped(keyspace: String, version: UInt32) async throws(ProxyError) -> [UInt8] {
        let request = GenerateDataKeyRequest(keyId: kmsKeyARN, encryptionContext: Self.encryptionContext(keyspace: keyspace, version: version),
                                             keySpec: .aes256)
        do {
            return try await kms.generateDataKeyWithoutPlaintext(request).ciphertextBlob
        } catch {
            throw ProxyError(kms: error, operation: "GenerateDataKeyWithoutPlaintext with \(kmsKeyARN)")
        }
    }

    private func unwrap(keyspaceID: UInt32, version: UInt32, expectedKeyspace: String?) async throws(ProxyError) -> SecretBytes {
        let row = try database.reading { conn throws(ProxyError) in
            try postgres("reading the keystore \(table)") {
                try conn.execute("SELECT keyspace, kms_key_id, wrapped_key, state FROM \(table) WHERE keyspace_id = $1 AND version = $2",
                                 [.int(Int(keyspaceID)), .int(Int(version))], resultFormat: .binary)
            }
        }
        guard row.rowCount == 1, let keyspace = row.string(row: 0, column: 0), let storedKey = row.string(row: 0, column: 1),
              let wrapped = row.bytes(row: 0, column: 2) else {
            throw ProxyError(.keystore, "key \(keyspaceID)/v\(version) is not in the keystore (has the replica caught up?)")
        }
        if row.string(row: 0, column: 3) == "retired" {
            throw ProxyError(.keystore, "key \(keyspaceID)/v\(version) was retired: values still sealed under it cannot be opened "
                             + "(keystore status shows which columns hold them)")
        }
        if let expectedKeyspace, keyspace != expectedKeyspace {
            throw ProxyError(.keystore, "keystore key \(keyspaceID)/v\(version) belongs to keyspace \(keyspace), not to \(expectedKeyspace)")
        }
        guard KMSKeyIdentifier.mrkMatch(storedKey, kmsKeyARN) || storedKey == kmsKeyARN else {
            throw ProxyError(.keystore, "keystore key \(keyspaceID)/v\(version) is wrapped under \(storedKey), not under the configured key \(kmsKeyARN)")
        }
        logger.debug("unwrapping branch key", metadata: ["keyspace": "\(keyspace)", "version": "\(version)", "kms.key": "\(kmsKeyARN)"])
        let response: DecryptResponse
        do {
            response = try await kms.decrypt(DecryptRequest(ciphertextBlob: wrapped, keyId: kmsKeyARN,
                                                            encryptionContext: Self.encryptionContext(keyspace: expectedKeyspace ?? keyspace, version: version)))
        } catch {
            throw ProxyError(kms: error, operation: "Decrypt of keystore key \(keyspace) v\(version) with \(kmsKeyARN)")
        }
        guard response.plaintext.count == 32 else { throw ProxyError(.keystore, "KMS returned a key of the wrong size") }
        if version >= 1 { floor.raise(keyspaceID: keyspaceID, to: version) }
        return response.plaintext
    }

    private func bareKeyID() throws(ProxyError) -> String {
        do {
            let arn = try KMSARN(parsing: kmsKeyARN)
            return arn.isMultiRegionKey ? arn.resourceId : kmsKeyARN
        } catch {
            throw ProxyError(.configuration, "\(kmsKeyARN) is not a KMS key ARN")
        }
    }

    private func checkKeyMatches(_ versions: [KeyVersion]) throws(ProxyError) {
        for version in versions where !(KMSKeyIdentifier.mrkMatch(version.kmsKeyID, kmsKeyARN) || version.kmsKeyID == kmsKeyARN) {
            throw ProxyError(.keystore, "keyspace \(version.keyspace) is wrapped under \(version.kmsKeyID), not under the configured key \(kmsKeyARN)")
        }
    }
}

/// The highest branch-key version seen per keyspace: it only ever goes up.
///
/// `@unchecked Sendable`: guarded by `lock`.
final class VersionFloor: @unchecked Sendable {
    private let lock = NSLock()
    private var highest: [UInt32: UInt32] = [:]

    /// Raises the floor of `keyspaceID` to at least `version`; returns the floor.
    @discardableResult
    func raise(keyspaceID: UInt32, to version: UInt32) -> UInt32 {
        lock.withLock {
            let floor = max(highest[keyspaceID] ?? 0, version)
            highest[keyspaceID] = floor
            return floor
        }
    }
}

extension ProxyError {
    /// The mapping from KMS client errors; `operation` names the call and key.
    package init(kms error: any Error, operation: String) {
        if let error = error as? KMSError {
            self.init(.kms, "KMS \(operation) failed: \(error.code.name): \(error.message)")
        } else {
            self.init(.kms, "KMS \(operation) failed")
        }
    }
}
