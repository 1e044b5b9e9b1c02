import MRKLocalKMS
import MRKCrypto
import MRKSQL
import MRKProxy
import Foundation
import Logging
import MRKCluster
import MRKKMS
import MRKPostgres

/// Everything MRKProxy needs, running locally: a PostgreSQL primary with a streaming replica,
/// the embedded KMS with a multi-Region key in a primary region replicated to a replica region,
/// served over the AWS KMS JSON API on loopback, and the schema from `sql/` loaded.
///
/// Used by `mrkproxy demo`, the benchmark and the integration tests. The production code path
/// is used throughout: the stack's clients are `AWSKMSClient`s talking SigV4 to the server.
public final class LocalStack: Sendable {
    /// Settings.
    public struct Configuration: Sendable {
        /// Region of the primary database and of the MRK's primary key. Default us-east-1.
        public var primaryRegion = "us-east-1"
        /// Region of the replica database and of the MRK's replica key. Default ap-southeast-2.
        public var replicaRegion = "ap-southeast-2"
        /// The application database created on the primary. Default `app`.
        public var database = "app"
        /// Log every statement the servers receive.
        public var logAllStatements = false
        /// Directory holding the `*.sql` schema scripts (loaded in name order).
        public var sqlDirectory: URL
        /// Access key id and secret the local KMS accepts (the local-AWS convention).
        public var accessKeyID = "test"
        public var secretAccessKey = "test"

        public init(sqlDirectory: URL) { self.sqlDirectory = sqlDirectory }
    }

    public let configuration: Configuration
    /// The primary + replica.
    public let cluster: PostgresCluster
    /// The embedded KMS, as seen from the primary region.
    public let kms: LocalKMS
    /// The KMS HTTP endpoint (`http://127.0.0.1:PORT`).
    public let kmsEndpoint: URL
    /// The multi-Region key id (`mrk-…`).
    public let keyID: String
    /// Where the KMS state and audit log live.
    public let directory: URL
    /// The application database (a per-run name on an external pair).
    public let database: String
    private let ownsDatabase: Bool
    private let server: KMSHTTPServer
    private let stopOnce = StopOnce()

    private init(configuration: Configuration, cluster: PostgresCluster, kms: LocalKMS, server: KMSHTTPServer,
                 kmsEndpoint: URL, keyID: String, directory: URL, database: String, ownsDatabase: Bool) {
        self.configuration = configuration
        self.cluster = cluster
        self.kms = kms
        self.server = server
        self.kmsEndpoint = kmsEndpoint
        self.keyID = keyID
        self.directory = directory
        self.database = database
        self.ownsDatabase = ownsDatabase
    }

    /// Starts the stack. Stop it with `stop()`.
    public static func start(configuration: Configuration, logger: Logger = Logger(label: "mrkproxy.noop", factory: { _ in SwiftLogNoOpLogHandler() })) async throws -> LocalStack {
        let scripts = try FileManager.default.contentsOfDirectory(atPath: configuration.sqlDirectory.path)
            .filter { $0.hasSuffix(".sql") }.sorted()
        guard !scripts.isEmpty else {
            throw ProxyError(.configuration, "no .sql scripts in \(configuration.sqlDirectory.path)")
        }
        var clusterConfiguration = PostgresCluster.Configuration()
        clusterConfiguration.logAllStatements = configuration.logAllStatements
        let cluster = try PostgresCluster.fromEnvironmentOrStart(configuration: clusterConfiguration, logger: logger)
        // On a pair given by MRKPROXY_PRIMARY_URL/REPLICA_URL every run gets a database of its own,
        // dropped by `stop()`, so runs neither collide nor leave data behind.
        let external = cluster.directory == nil
        let database = external ? "\(configuration.database)_\(UInt32.random(in: 0...UInt32.max))" : configuration.database
        // Owner-only: it holds the KMS state and the configuration with the database URLs.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mrkproxy-stack-\(UUID().uuidString)")
        var server: KMSHTTPServer?
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let admin = try PostgresConnection(cluster.primaryURL)
            if try admin.execute("SELECT 1 FROM pg_database WHERE datname = $1", [.text(database)]).rowCount == 0 {
                try admin.execute("CREATE DATABASE \(database)")
            }
            let app = try PostgresConnection(cluster.primaryURL.replacingDatabase(with: database))
            for script in scripts {
                let sql = try String(contentsOf: configuration.sqlDirectory.appendingPathComponent(script), encoding: .utf8)
                try app.executeScript(sql)
            }

            let kms = try LocalKMS(configuration: .init(stateFile: directory.appendingPathComponent("kms-state.json").path,
                                                         auditLogFile: directory.appendingPathComponent("kms-audit.jsonl").path,
                                                         region: configuration.primaryRegion))
            let key = try kms.createKey(description: "MRKProxy demo key", multiRegion: true)
            _ = try kms.replicateKey(keyId: key.keyId, replicaRegion: configuration.replicaRegion)
            let kmsServer = KMSHTTPServer(kms: kms)
            server = kmsServer
            let port = try await kmsServer.start(host: "127.0.0.1", port: 0)
            try cluster.waitForReplication()
            let stack = LocalStack(configuration: configuration, cluster: cluster, kms: kms, server: kmsServer,
                                   kmsEndpoint: URL(string: "http://127.0.0.1:\(port)")!, keyID: key.keyId, directory: directory,
                                   database: database, ownsDatabase: external)
            StackCleanup.register(stack)
            return stack
        } catch {
            await server?.shutdown()
            if external { Self.dropDatabase(database, on: cluster) }
            try? cluster.stop()
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    private static func dropDatabase(_ name: String, on cluster: PostgresCluster) {
        _ = try? PostgresConnection(cluster.primaryURL).execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Starts a stack, runs `body` with it, and stops it whether `body` returns or throws.
    public static func with<R: Sendable>(configuration: Configuration, _ body: (LocalStack) async throws -> R) async throws -> R {
        let stack = try await start(configuration: configuration)
        do {
            let result = try await body(stack)
            await stack.stop()
            return result
        } catch {
            await stack.stop()
            throw error
        }
    }

    /// Stops the KMS server and the databases and deletes their files.
    public func stop() async {
        await stopOnce.run { [self] in
            await server.shutdown()
            if ownsDatabase { Self.dropDatabase(database, on: cluster) }
            try? cluster.stop()
            try? FileManager.default.removeItem(at: directory)
            StackCleanup.unregister(self)
        }
    }

    /// URL of the application database on the primary or the replica.
    public func databaseURL(replica: Bool) -> String {
        (replica ? cluster.replicaURL : cluster.primaryURL).replacingDatabase(with: database)
    }

    /// The key's ARN in `region`.
    public func keyARN(region: String) -> String {
        kms.inRegion(region).keyARN(keyID)
    }

    /// An AWS KMS client (SigV4 over HTTP) for `region`, pointed at the local server.
    public func kmsClient(region: String) -> AWSKMSClient {
        AWSKMSClient(configuration: .init(region: region, endpoint: kmsEndpoint, timeout: 5, environment: [:]),
                     credentialsProvider: StaticCredentialsProvider(AWSCredentials(accessKeyId: configuration.accessKeyID,
                                                                                   secretAccessKey: configuration.secretAccessKey)))
    }

    /// A configuration file for this stack (YAML), with `tables` appended verbatim.
    public func configurationYAML(region: String, tables: String) -> String {
        """
        region: \(region)
        kms:
          key: \(keyARN(region: configuration.primaryRegion))
          endpoint: \(kmsEndpoint.absoluteString)
          cache_ttl: 5m
        regions:
          \(configuration.primaryRegion): { database: "\(databaseURL(replica: false))" }
          \(configuration.replicaRegion): { database: "\(databaseURL(replica: true))", read_only: true }
        \(tables)
        """
    }
}

extension String {
    /// This libpq URL with its database name replaced.
    func replacingDatabase(with name: String) -> String {
        guard var components = URLComponents(string: self) else { return self }
        components.path = "/" + name
        return components.string ?? self
    }
}

/// Stops running stacks when the process is told to end (SIGINT, SIGTERM, SIGHUP): the servers
/// are daemons started by `pg_ctl` and would otherwise outlive it, with their files. Installed
/// with the first stack. A caller that waits for a signal itself (`mrkproxy demo --keep`) uses
/// `waitForSignal()` — one set of signal sources serves both.
public enum StackCleanup {
    private static let lock = NSLock()
    // Guarded by `lock`.
    nonisolated(unsafe) private static var stacks: [ObjectIdentifier: LocalStack] = [:]
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []
    nonisolated(unsafe) private static var waiter: CheckedContinuation<Void, Never>?

    static func register(_ stack: LocalStack) {
        lock.withLock {
            stacks[ObjectIdentifier(stack)] = stack
            installLocked()
        }
    }

    static func unregister(_ stack: LocalStack) {
        lock.withLock { _ = stacks.removeValue(forKey: ObjectIdentifier(stack)) }
    }

    /// Returns at the next SIGINT, SIGTERM or SIGHUP, which then stops nothing by itself.
    public static func waitForSignal() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.withLock {
                installLocked()
                waiter = continuation
            }
        }
    }

    private static func installLocked() {
        guard sources.isEmpty else { return }
        for number in [SIGINT, SIGTERM, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handle(number) }
            source.resume()
            sources.append(source)
        }
    }

    private static func handle(_ number: Int32) {
        let (waiting, running): (CheckedContinuation<Void, Never>?, [LocalStack]) = lock.withLock {
            defer { waiter = nil }
            return (waiter, Array(stacks.values))
        }
        if let waiting {
            waiting.resume()
            return
        }
        Task {
            for stack in running { await stack.stop() }
            FileHandle.standardError.write(Data("\nstopped the databases and the KMS; removed their files\n".utf8))
            // `_exit`: other threads may still be in the middle of work on the stopped servers;
            // running exit handlers under them would crash.
            _exit(128 + number)
        }
    }
}

/// Runs a stack's shutdown once; every caller (the normal path, a signal) awaits the same one.
/// `@unchecked Sendable`: `task` is guarded by `lock`.
final class StopOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var task: Task<Void, Never>?

    func run(_ body: @escaping @Sendable () async -> Void) async {
        let shared: Task<Void, Never> = lock.withLock {
            if let existing = task { return existing }
            let created = Task { await body() }
            task = created
            return created
        }
        await shared.value
    }
}
