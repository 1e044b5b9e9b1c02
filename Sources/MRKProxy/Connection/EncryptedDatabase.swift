import Foundation
import Logging
import MRKCrypto
import MRKKMS
import MRKPostgres
import MRKSQL

/// MRKProxy for one region: its database (the primary, or a replica in a replica region), its
/// KMS endpoint with the region's replica of the multi-Region key, and the keystore.
///
/// Open it once per process with `open(configuration:region:kms:logger:)`, then take
/// connections with `connect()` (sync) or use an `EncryptedConnectionPool` (async). Opening
/// checks the configuration against the database and the KMS key and fails with a precise message.
public final class EncryptedDatabase: Sendable {
    /// The configuration in force.
    public let configuration: ProxyConfiguration
    /// The region this instance serves.
    public let region: String
    /// True in a replica region: writes are refused before anything is encrypted.
    public let isReadOnly: Bool
    /// This region's database URL.
    public let databaseURL: String
    /// The regional ARN of the multi-Region key used here.
    public let keyARN: String
    /// The branch-key keystore (in this region's database).
    public let keystore: BranchKeyStore
    let kms: any KMSClient
    let catalogs: CatalogStore
    let keys: ColumnKeys
    var keyspaceID: UInt32 { keys.keyspaceID }
    let logger: Logger
    let esdk: ESDKColumns?
    /// The SQL analysis in force (the configuration, less columns a migration left plaintext).
    var interceptor: SQLInterceptor { catalogs.interceptor.interceptor }
    private let sealing: SealingVersion
    /// Configured tables with a `migrating: true` column: statements on them run behind
    /// `EncryptedConnection.withMigrationGuard`.
    let migratingTables: Set<QualifiedName>

    private init(configuration: ProxyConfiguration, region: String, kms: any KMSClient, keyARN: String, keystore: BranchKeyStore,
                 catalogs: CatalogStore, keys: ColumnKeys, logger: Logger, esdk: ESDKColumns?, time: TimeSource, serverVersion: Int) {
        self.configuration = configuration
        self.region = region
        self.isReadOnly = configuration.regions[region]?.readOnly ?? true
        self.databaseURL = configuration.regions[region]?.database ?? ""
        self.kms = kms
        self.keyARN = keyARN
        self.keystore = keystore
        self.catalogs = catalogs
        self.keys = keys
        self.logger = logger
        self.esdk = esdk
        self.migratingTables = Set(configuration.tables.values.filter { $0.columns.values.contains { $0.migrating } }.map(\.name))
        self.sealing = SealingVersion(keystore: keystore, keyspace: configuration.keyspace, keyspaceID: keys.keyspaceID,
                                      ttl: configuration.kms.cacheTTL, time: time)
    }

    /// Opens MRKProxy for `region` (default: the configuration's region).
    ///
    /// Checks that the region's database has every configured table and column, that encrypted
    /// and blind-index columns are `bytea`, and that the keystore holds the configured keyspace;
    /// then loads the keys this region needs — one KMS Decrypt per key version, normally one in
    /// all — which also checks that the KMS key exists, is enabled here and allows this app.
    ///
    /// - Parameters:
    ///   - configuration: the loaded configuration file.
    ///   - region: the region this process runs in; default the configuration's region (which
    ///     `MRKPROXY_REGION` overrides).
    ///   - kms: the KMS to use; default an `AWSKMSClient` for the region (endpoint from the
    ///     configuration, credentials from the standard AWS chain).
    ///   - logger: where opening, key loads and catalog reloads are logged (never values).
    /// - Throws: `ProxyError` naming what does not match.
    public static func open(configuration: ProxyConfiguration, region: String? = nil, kms: (any KMSClient)? = nil,
                            logger: Logger = Logger(label: "mrkproxy", factory: { _ in SwiftLogNoOpLogHandler() })) async throws(ProxyError) -> EncryptedDatabase {
        try await open(configuration: configuration, region: region, kms: kms, logger: logger, time: .continuous)
    }

    package static func open(configuration: ProxyConfiguration, region: String?, kms: (any KMSClient)?, logger: Logger,
                             time: TimeSource) async throws(ProxyError) -> EncryptedDatabase {
        let region = region ?? configuration.region
        guard let regionConfig = configuration.regions[region] else {
            throw ProxyError(.configuration, "\(configuration.source): region \(region) is not configured "
                             + "(configured: \(configuration.regions.keys.sorted().joined(separator: ", ")))")
        }
        let keyARN = try configuration.keyARN(in: region)
        let kms = kms ?? configuration.kmsClient(region: region, logger: logger)

        let catalogConnection = SerializedConnection(url: regionConfig.database, label: "the \(region) database")
        let (catalog, serverVersion) = try catalogConnection.withConnection { connection throws(ProxyError) in
            (try Catalog.load(from: connection, configuration: configuration, region: region), connection.serverVersion)
        }
        var keystoreConfig = BranchKeyStore.Configuration()
        keystoreConfig.cacheTTL = configuration.kms.cacheTTL
        keystoreConfig.staleWindow = configuration.kms.staleWindow
        keystoreConfig.time = time
        let keystore = BranchKeyStore(databaseURL: regionConfig.database, kms: kms, kmsKeyARN: keyARN,
                                      configuration: keystoreConfig, logger: logger)
        let (keyspaceID, sealingVersion) = try keystore.sealingVersion(keyspace: configuration.keyspace)
        // Load the keys new writes and blind indexes need, so statements rarely wait for KMS. This
        // unwrap is also the key check: it fails precisely when the key does not exist, is disabled
        // here, or its policy denies this app (no separate DescribeKey call). That it is a
        // multi-Region key follows from its id (`mrk-…`), which the configuration checks.
        // The beacon key only when a column is searchable; the active branch key where values
        // are sealed (and as the key check where nothing else is unwrapped at open).
        let searchable = configuration.tables.values.contains { $0.columns.values.contains { $0.search == .equality } }
        do {
            if searchable {
                _ = try await keystore.beaconKey(keyspaceID: keyspaceID, keyspace: configuration.keyspace)
            }
            if !regionConfig.readOnly || !searchable {
                _ = try await keystore.key(keyspaceID: keyspaceID, version: sealingVersion, keyspace: configuration.keyspace)
            }
        } catch where error.code == .kms {
            throw ProxyError(.kmsKey, "KMS key \(keyARN) is not usable in \(region): \(configuration.explainKMSFailure(error.reason, region: region))")
        }
        let keys = ColumnKeys(keystore: keystore, keyspace: configuration.keyspace, keyspaceID: keyspaceID,
                              ttl: configuration.kms.cacheTTL, time: time)
        let usesESDK = configuration.tables.values.contains { $0.columns.values.contains { $0.format == .esdk } }
        let esdk = usesESDK ? try ESDKColumns(keyARN: keyARN, kms: kms, keyspace: configuration.keyspace,
                                               cacheTTL: configuration.kms.cacheTTL, time: time) : nil
        let catalogs = CatalogStore(catalog: catalog, configuration: configuration, region: region, connection: catalogConnection,
                                    dialect: SQLTokenizer.Dialect(serverVersion: serverVersion))
        logger.info("mrkproxy open", metadata: ["region": "\(region)", "kms.key": "\(keyARN)", "read_only": "\(regionConfig.readOnly)"])
        return EncryptedDatabase(configuration: configuration, region: region, kms: kms, keyARN: keyARN, keystore: keystore,
                                 catalogs: catalogs, keys: keys, logger: logger, esdk: esdk, time: time, serverVersion: serverVersion)
    }

    /// Opens a new connection to this region's database (sync API).
    public func connect() throws(ProxyError) -> EncryptedConnection {
        try EncryptedConnection(database: self)
    }

    /// A new connection with extra libpq connection parameters (`application_name`,
    /// `options`), for the wire proxy's sessions. `client_encoding` stays UTF8.
    package func connect(parameters: [String: String]) throws(ProxyError) -> EncryptedConnection {
        try EncryptedConnection(database: self, parameters: parameters)
    }

    /// Waits until this (replica) region has replayed the primary's WAL up to `position`
    /// (read-your-writes across regions: take `position` from `currentWALPosition()` on the
    /// primary after writing).
    public func waitForReplication(of position: LSN, timeout: Duration = .seconds(30)) throws(ProxyError) {
        try postgres("waiting for replication in \(region)") {
            try PostgresConnection(databaseURL, overrides: PostgresConnection.libraryParameters).waitForReplay(of: position, timeout: timeout)
        }
    }

    /// After the database may have changed under this process — a connection lost, a write
    /// refused because the server is in recovery (a regional failover) — the version new values
    /// are sealed under is read again and branch keys are unwrapped again: a version lost with
    /// WAL that was never replicated (and perhaps made again with other key material) is not used
    /// from memory. The floor stays: a keystore lower than a version already used is refused.
    func noticeServerChange() {
        sealing.reset()
        keys.dropAll()
        keystore.clearCache()
    }

    /// Forgets the cached sealing version, so that the next value is sealed under the keyspace's
    /// active version as the keystore says now (for `mrkproxy reencrypt` right after a rotation).
    package func refreshSealingVersion() {
        sealing.reset()
    }

    /// The branch-key version new values are sealed under: the keyspace's highest, re-read from
    /// the keystore once per key-cache TTL (and never lower than one already seen).
    func sealingVersion() throws(ProxyError) -> UInt32 {
        try sealing.current()
    }
}

/// The version new values are sealed under, read from the keystore once per TTL.
///
/// `@unchecked Sendable`: `cached` is guarded by `lock`.
final class SealingVersion: @unchecked Sendable {
    private let lock = NSLock()
    private var cached: (version: UInt32, readAt: ContinuousClock.Instant)?
    private let keystore: BranchKeyStore
    private let keyspace: String
    private let keyspaceID: UInt32
    private let ttl: Duration
    private let time: TimeSource

    init(keystore: BranchKeyStore, keyspace: String, keyspaceID: UInt32, ttl: Duration, time: TimeSource) {
        self.keystore = keystore
        self.keyspace = keyspace
        self.keyspaceID = keyspaceID
        self.ttl = ttl
        self.time = time
    }

    func current() throws(ProxyError) -> UInt32 {
        let now = time.now()
        if let cached = lock.withLock({ cached }), now - cached.readAt < ttl { return cached.version }
        let (id, version) = try keystore.sealingVersion(keyspace: keyspace)
        guard id == keyspaceID else {
            throw ProxyError(.keystore, "keyspace \(keyspace) now has keyspace id \(id), not \(keyspaceID): the keystore table was altered")
        }
        lock.withLock { cached = (version, now) }
        return version
    }

    /// Forgets the cached version (after a failover, so that it is read from the new primary).
    func reset() { lock.withLock { cached = nil } }
}
