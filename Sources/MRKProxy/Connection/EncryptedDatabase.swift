import MRKSQL
import Foundation
import Logging
import MRKCrypto
import MRKKMS
import MRKPostgres

/// MRKProxy for one region: its database (the primary, or a replica in a replica region), its
/// KMS endpoint with the region's replica of the multi-Region key, and the keystore.
///
/// Open it once per process with `open(configuration:region:kms:logger:)`, then take
/// connections with `connect()` (sync) or use the async pool (`pool`). Opening checks the
/// configuration against the database and the KMS key and fails with a precise message.
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
    let catalog: Catalog
    let keyspaceID: UInt32
    let logger: Logger
    private let esdk: ESDKColumns?

    private init(configuration: ProxyConfiguration, region: String, kms: any KMSClient, keyARN: String, keystore: BranchKeyStore,
                 catalog: Catalog, keyspaceID: UInt32, logger: Logger) throws {
        self.configuration = configuration
        self.region = region
        self.isReadOnly = configuration.regions[region]!.readOnly
        self.databaseURL = configuration.regions[region]!.database
        self.kms = kms
        self.keyARN = keyARN
        self.keystore = keystore
        self.catalog = catalog
        self.keyspaceID = keyspaceID
        self.logger = logger
        let usesESDK = configuration.tables.values.contains { $0.columns.values.contains { $0.format == .esdk } }
        self.esdk = usesESDK ? try ESDKColumns(keyARN: keyARN, kms: kms, cacheTTL: configuration.kms.cacheTTL) : nil
    }

    /// The ESDK-format column support (only when such columns are configured).
    func esdkColumns() throws -> ESDKColumns {
        guard let esdk else { throw ProxyError(.configuration, "no column is configured with format: esdk") }
        return esdk
    }

    /// Opens MRKProxy for `region` (default: the configuration's region).
    ///
    /// Checks that the region's database has every configured table and column, that encrypted
    /// and blind-index columns are `bytea`, and that the keystore holds the configured keyspace;
    /// then loads the keys this region needs — one KMS Decrypt per key version, normally one in
    /// all — which also checks that the KMS key exists, is enabled here and allows this app.
    ///
    /// - Parameters:
    ///   - kms: the KMS to use; default an `AWSKMSClient` for the region (endpoint from the
    ///     configuration, credentials from the standard AWS chain).
    /// - Throws: `ProxyError` naming what does not match.
    public static func open(configuration: ProxyConfiguration, region: String? = nil, kms: (any KMSClient)? = nil,
                            logger: Logger = Logger(label: "mrkproxy", factory: { _ in SwiftLogNoOpLogHandler() })) async throws -> EncryptedDatabase {
        let region = region ?? configuration.region
        guard let regionConfig = configuration.regions[region] else {
            throw ProxyError(.configuration, "\(configuration.source): region \(region) is not configured")
        }
        let keyARN = try configuration.keyARN(in: region)
        let kms = kms ?? AWSKMSClient(configuration: .init(region: region, endpoints: configuration.kms.endpoints,
                                                           endpoint: configuration.kms.endpoint, logger: logger))

        let catalog = try Catalog.load(url: regionConfig.database, tables: configuration.tables, region: region)
        var keystoreConfig = BranchKeyStore.Configuration()
        keystoreConfig.cacheTTL = configuration.kms.cacheTTL
        keystoreConfig.staleWindow = configuration.kms.staleWindow
        let keystore = BranchKeyStore(databaseURL: regionConfig.database, kms: kms, kmsKeyARN: keyARN,
                                      configuration: keystoreConfig, logger: logger)
        let keyspaceID = try keystore.keyspaceID(configuration.keyspace)
        // Load the keys new writes and blind indexes need, so statements rarely wait for KMS. This
        // unwrap is also the key check: it fails precisely when the key does not exist, is disabled
        // here, or its policy denies this app (no separate DescribeKey call). That it is a
        // multi-Region key follows from its id (`mrk-…`), which the configuration checks.
        do {
            _ = try await keystore.beaconKey(keyspaceID: keyspaceID, keyspace: configuration.keyspace)
            if !regionConfig.readOnly { _ = try await keystore.activeKey(keyspace: configuration.keyspace) }
        } catch let error as ProxyError where error.code == .kms {
            throw ProxyError(.kmsKey, "KMS key \(keyARN) is not usable in \(region): \(error.reason)")
        }
        logger.info("mrkproxy open", metadata: ["region": "\(region)", "kms.key": "\(keyARN)", "read_only": "\(regionConfig.readOnly)"])
        return try EncryptedDatabase(configuration: configuration, region: region, kms: kms, keyARN: keyARN, keystore: keystore,
                                 catalog: catalog, keyspaceID: keyspaceID, logger: logger)
    }

    /// Opens a new connection to this region's database (sync API).
    public func connect() throws -> EncryptedConnection {
        try EncryptedConnection(database: self)
    }

    /// Waits until this (replica) region has replayed the primary's WAL up to `position`
    /// (read-your-writes across regions: take `position` from `currentWALPosition()` on the
    /// primary after writing).
    public func waitForReplication(of position: LSN, timeout: Duration = .seconds(30)) throws {
        do {
            try PostgresConnection(databaseURL).waitForReplay(of: position, timeout: timeout)
        } catch let error as PostgresError {
            throw ProxyError(.database, "waiting for replication in \(region): \(error.message)", sqlState: error.sqlState)
        }
    }

    // MARK: Keys

    /// Blocks until `body` (async) finishes. Used by the sync API on key-cache misses (a KMS call
    /// at most once per key version per TTL). The async work runs on the concurrency pool, so the
    /// sync API must be called from ordinary threads, never from async tasks: from async code use
    /// `EncryptedConnectionPool`, or `withBlockingThread`.
    func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            do { box.set(.success(try await body())) } catch { box.set(.failure(error)) }
            done.signal()
        }
        done.wait()
        return try box.get()
    }

    /// The branch key `version`, from the cache or KMS.
    func branchKey(version: UInt32, keyspaceID: UInt32) throws -> SecretBytes {
        if let key = keystore.cachedKey(keyspaceID: keyspaceID, version: version) { return key }
        let keyspace = configuration.keyspace
        return try blocking { [keystore] in try await keystore.key(keyspaceID: keyspaceID, version: version, keyspace: keyspace).key }
    }

    /// The active branch key version for new values (a keystore read; the key itself comes from
    /// the cache).
    func activeVersion() throws -> UInt32 {
        let active = try keystore.activeVersion(keyspace: configuration.keyspace)
        guard active.keyspaceID == keyspaceID else {
            throw ProxyError(.keystore, "the active key of keyspace \(configuration.keyspace) has keyspace id \(active.keyspaceID), not \(keyspaceID): the keystore table was altered")
        }
        return active.version
    }
}

/// Carries a result out of a detached task. `@unchecked Sendable`: guarded by `lock`.
final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<T, Error>?
    func set(_ value: Result<T, Error>) { lock.withLock { result = value } }
    func get() throws -> T { try lock.withLock { result! }.get() }
}
