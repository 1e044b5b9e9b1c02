import Foundation
import Logging
import MRKPostgres

/// A PostgreSQL primary and a hot-standby replica streaming from it, on loopback.
///
/// `start()` builds a throwaway cluster from the installed binaries in a temporary directory:
/// `initdb` a primary with `wal_level = replica`, `pg_basebackup -R` a standby, start both and
/// wait until the standby is streaming. `stop()` stops both and deletes the directory. When the
/// process runs as root, the server binaries run as the `postgres` user.
///
/// `fromEnvironment()` instead uses an existing pair given by `MRKPROXY_PRIMARY_URL` and
/// `MRKPROXY_REPLICA_URL` (for example the docker compose setup in `docker/`).
public final class PostgresCluster: Sendable {
    /// How to build a throwaway cluster.
    public struct Configuration: Sendable {
        /// Log every statement the servers receive (`log_statement = 'all'`). Default false.
        public var logAllStatements = false
        /// Extra `postgresql.conf` settings for both servers.
        public var settings: [String: String] = [:]
        /// Where to create the cluster directory. Default: the system temporary directory.
        public var parentDirectory: String = NSTemporaryDirectory()
        /// How long to wait for startup and for the standby to stream. Default 60 s.
        public var startupTimeout: Duration = .seconds(60)

        public init() {}
    }

    /// libpq URL of the primary (read-write).
    public let primaryURL: String
    /// libpq URL of the streaming replica (read-only).
    public let replicaURL: String
    /// The cluster's directory when this process created it; nil for an external cluster.
    public let directory: String?
    private let binaries: PostgresBinaries?
    private let logger: Logger

    private init(primaryURL: String, replicaURL: String, directory: String?, binaries: PostgresBinaries?, logger: Logger) {
        self.primaryURL = primaryURL
        self.replicaURL = replicaURL
        self.directory = directory
        self.binaries = binaries
        self.logger = logger
    }

    /// The cluster named by `MRKPROXY_PRIMARY_URL` and `MRKPROXY_REPLICA_URL`, or nil if unset.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment,
                                       logger: Logger = Logger(label: "mrkproxy.noop", factory: { _ in SwiftLogNoOpLogHandler() })) -> PostgresCluster? {
        guard let primary = environment["MRKPROXY_PRIMARY_URL"], !primary.isEmpty,
              let replica = environment["MRKPROXY_REPLICA_URL"], !replica.isEmpty else { return nil }
        return PostgresCluster(primaryURL: primary, replicaURL: replica, directory: nil, binaries: nil, logger: logger)
    }

    /// The environment's cluster if configured, else a new throwaway one.
    public static func fromEnvironmentOrStart(configuration: Configuration = Configuration(),
                                              logger: Logger = Logger(label: "mrkproxy.noop", factory: { _ in SwiftLogNoOpLogHandler() })) throws -> PostgresCluster {
        if let external = fromEnvironment(logger: logger) { return external }
        return try start(configuration: configuration, logger: logger)
    }

    /// Creates and starts a throwaway primary + streaming replica. See the type's documentation.
    public static func start(configuration: Configuration = Configuration(), logger: Logger = Logger(label: "mrkproxy.noop", factory: { _ in SwiftLogNoOpLogHandler() })) throws -> PostgresCluster {
        let binaries = try PostgresBinaries.locate()
        let runner = CommandRunner(logger: logger)
        let dir = try makeDirectory(parent: configuration.parentDirectory, runner: runner)
        do {
            return try build(in: dir, binaries: binaries, configuration: configuration, runner: runner, logger: logger)
        } catch {
            // Leave nothing running or on disk after a failed start.
            let logs = ["primary", "replica"].compactMap { server -> String? in
                guard let log = try? String(contentsOfFile: dir + "/\(server).log", encoding: .utf8), !log.isEmpty else { return nil }
                return "\(server) log: …\(log.suffix(1200))"
            }
            _ = try? runner.run(binaries.path("pg_ctl"), ["-D", dir + "/replica", "-m", "immediate", "stop"])
            _ = try? runner.run(binaries.path("pg_ctl"), ["-D", dir + "/primary", "-m", "immediate", "stop"])
            try? FileManager.default.removeItem(atPath: dir)
            guard !logs.isEmpty else { throw error }
            // The directory (and the logs) are gone now: the reason travels with the error.
            throw ClusterError((error as? ClusterError)?.code ?? .commandFailed, "\(error)\n" + logs.joined(separator: "\n"))
        }
    }

    private static func build(in dir: String, binaries: PostgresBinaries, configuration: Configuration,
                              runner: CommandRunner, logger: Logger) throws -> PostgresCluster {
        let primaryDir = dir + "/primary", replicaDir = dir + "/replica"
        let startTimeout = String(max(1, configuration.startupTimeout.components.seconds))

        try runner.run(binaries.path("initdb"), ["-D", primaryDir, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                                                 "--locale=C", "--no-sync"])
        var settings: [(String, String)] = [
            ("listen_addresses", "'127.0.0.1'"),
            ("unix_socket_directories", "''"),
            ("wal_level", "replica"),
            ("max_wal_senders", "10"),
            ("hot_standby", "on"),
            ("fsync", "off"),
            ("full_page_writes", "off"),
            ("shared_buffers", "64MB"),
            ("log_line_prefix", "'%m [%p] %q%u@%d '"),
        ]
        if configuration.logAllStatements { settings.append(("log_statement", "'all'")) }
        settings += configuration.settings.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        try appendSettings(settings, to: primaryDir + "/postgresql.conf", runner: runner)
        let primaryPort = try startOnFreePort(primaryDir, log: dir + "/primary.log", avoiding: [], binaries: binaries, runner: runner,
                                              timeout: startTimeout)

        // Loopback servers without TLS: a PGSSLMODE=require in the caller's environment must not apply.
        let primaryURL = "postgresql://postgres@127.0.0.1:\(primaryPort)/postgres?sslmode=disable"
        try runner.run(binaries.path("pg_basebackup"), ["-h", "127.0.0.1", "-p", String(primaryPort), "-U", "postgres",
                                                        "-D", replicaDir, "-R", "-X", "stream", "-c", "fast", "--no-sync"])
        let replicaPort = try startOnFreePort(replicaDir, log: dir + "/replica.log", avoiding: [primaryPort], binaries: binaries,
                                              runner: runner, timeout: startTimeout)
        let replicaURL = "postgresql://postgres@127.0.0.1:\(replicaPort)/postgres?sslmode=disable"

        let cluster = PostgresCluster(primaryURL: primaryURL, replicaURL: replicaURL, directory: dir, binaries: binaries, logger: logger)
        try cluster.waitUntilStreaming(timeout: configuration.startupTimeout)
        logger.info("cluster ready", metadata: ["primary": "\(primaryURL)", "replica": "\(replicaURL)", "dir": "\(dir)"])
        return cluster
    }

    /// Starts the server in `dataDirectory` on a free loopback port, trying another port when the
    /// one found was taken before the server could bind it (another process won the race).
    ///
    /// - Returns: the port it listens on.
    package static func startOnFreePort(_ dataDirectory: String, log: String, avoiding: Set<Int>, binaries: PostgresBinaries,
                                        runner: CommandRunner, timeout: String, attempts: Int = 5,
                                        ports: () throws -> Int = FreePort.find) throws -> Int {
        var lastError: (any Error)?
        for _ in 0..<attempts {
            var port = try ports()
            while avoiding.contains(port) { port = try ports() }
            // A later `port` line overrides an earlier one (pg_basebackup copies the primary's).
            try appendSettings([("port", String(port))], to: dataDirectory + "/postgresql.conf", runner: runner)
            do {
                try runner.run(binaries.path("pg_ctl"), ["-D", dataDirectory, "-l", log, "-w", "-t", timeout, "start"])
                return port
            } catch {
                lastError = error
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                guard text.contains("could not bind") || text.contains("Address already in use") else { throw error }
            }
        }
        throw lastError ?? ClusterError(.commandFailed, "no free port after \(attempts) attempts")
    }

    /// Stops both servers and deletes the cluster directory. Does nothing for an external cluster.
    public func stop() throws {
        guard let directory, let binaries else { return }
        let runner = CommandRunner(logger: logger)
        var failure: Error?
        for server in ["replica", "primary"] {
            do {
                try runner.run(binaries.path("pg_ctl"), ["-D", directory + "/" + server, "-m", "immediate", "-w", "stop"])
            } catch { failure = failure ?? error }
        }
        try FileManager.default.removeItem(atPath: directory)
        if let failure { throw failure }
    }

    /// Restarts the primary or the replica (`pg_ctl restart -m fast`): its sessions end, and it
    /// listens again on the same port. Throwaway clusters only.
    public func restart(replica: Bool) throws {
        guard let directory, let binaries else { throw ClusterError(.commandFailed, "restart needs a cluster this process started") }
        let server = replica ? "replica" : "primary"
        try CommandRunner(logger: logger).run(binaries.path("pg_ctl"), ["-D", directory + "/" + server, "-l", directory + "/\(server).log",
                                                                     "-m", "fast", "-w", "-t", "60", "restart"])
    }

    // MARK: Failover (throwaway clusters only)

    /// Stops the primary or the replica at once (`pg_ctl stop -m immediate`), as a region outage does.
    public func stopServer(replica: Bool) throws {
        let (directory, binaries) = try owned("stopServer")
        let server = replica ? "replica" : "primary"
        try CommandRunner(logger: logger).run(binaries.path("pg_ctl"), ["-D", directory + "/" + server, "-m", "immediate", "-w", "stop"])
    }

    /// Starts a stopped server again, on its port.
    public func startServer(replica: Bool) throws {
        let (directory, binaries) = try owned("startServer")
        let server = replica ? "replica" : "primary"
        try CommandRunner(logger: logger).run(binaries.path("pg_ctl"), ["-D", directory + "/" + server, "-l", directory + "/\(server).log",
                                                                     "-w", "-t", "60", "start"])
    }

    /// Promotes a standby (`pg_ctl promote -w`): it leaves recovery and accepts writes — the
    /// replica region's database becomes the primary (Aurora Global's switchover or failover).
    public func promote(replica: Bool = true) throws {
        let (directory, binaries) = try owned("promote")
        let server = replica ? "replica" : "primary"
        try CommandRunner(logger: logger).run(binaries.path("pg_ctl"), ["-D", directory + "/" + server, "-w", "-t", "60", "promote"])
    }

    /// Makes the primary's (or the replica's) server a standby of the other one, from a new base
    /// backup (`pg_basebackup -R`), on the same port: how a failed primary comes back after a
    /// failover. Its data directory is replaced; the server is stopped first if it runs.
    ///
    /// - Parameter replica: which server to rebuild (false: the primary's, following the replica's).
    public func rebuildAsStandby(replica: Bool) throws {
        let (directory, binaries) = try owned("rebuildAsStandby")
        let runner = CommandRunner(logger: logger)
        let server = replica ? "replica" : "primary"
        let dataDirectory = directory + "/" + server
        guard let port = URLComponents(string: replica ? replicaURL : primaryURL)?.port,
              let sourcePort = URLComponents(string: replica ? primaryURL : replicaURL)?.port else {
            throw ClusterError(.commandFailed, "cannot read the servers' ports")
        }
        _ = try? runner.run(binaries.path("pg_ctl"), ["-D", dataDirectory, "-m", "immediate", "-w", "stop"])
        try FileManager.default.removeItem(atPath: dataDirectory)
        try runner.run(binaries.path("pg_basebackup"), ["-h", "127.0.0.1", "-p", String(sourcePort), "-U", "postgres",
                                                        "-D", dataDirectory, "-R", "-X", "stream", "-c", "fast", "--no-sync"])
        try Self.appendSettings([("port", String(port))], to: dataDirectory + "/postgresql.conf", runner: runner)
        try runner.run(binaries.path("pg_ctl"), ["-D", dataDirectory, "-l", directory + "/\(server).log", "-w", "-t", "60", "start"])
        try waitUntilStreaming(standby: replica ? replicaURL : primaryURL)
    }

    /// Whether the server is a standby (in recovery).
    public func isInRecovery(replica: Bool) throws -> Bool {
        try PostgresConnection(replica ? replicaURL : primaryURL).execute("SELECT pg_catalog.pg_is_in_recovery()").string(row: 0, column: 0) == "t"
    }

    private func owned(_ operation: String) throws -> (String, PostgresBinaries) {
        guard let directory, let binaries else { throw ClusterError(.commandFailed, "\(operation) needs a cluster this process started") }
        return (directory, binaries)
    }

    /// Path of the primary's or the replica's server log (throwaway clusters only).
    public func logFile(replica: Bool) -> String? {
        directory.map { $0 + (replica ? "/replica.log" : "/primary.log") }
    }

    /// Data directory of the primary or the replica (throwaway clusters only).
    public func dataDirectory(replica: Bool) -> String? {
        directory.map { $0 + (replica ? "/replica" : "/primary") }
    }

    /// Waits until the replica reports a streaming WAL receiver.
    public func waitUntilStreaming(timeout: Duration = .seconds(60)) throws {
        try waitUntilStreaming(standby: replicaURL, timeout: timeout)
    }

    /// Waits until the server at `standby` reports a streaming WAL receiver.
    public func waitUntilStreaming(standby: String, timeout: Duration = .seconds(60)) throws {
        let replicaURL = standby
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var lastError = "no answer"
        while clock.now < deadline {
            do {
                let replica = try PostgresConnection(replicaURL)
                let result = try replica.execute("SELECT status FROM pg_stat_wal_receiver")
                if result.rowCount == 1, result.string(row: 0, column: 0) == "streaming" { return }
                lastError = "WAL receiver status: \(result.rowCount == 1 ? result.string(row: 0, column: 0) ?? "?" : "none")"
            } catch {
                lastError = "\(error)"
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw ClusterError(.startupTimeout, "replica not streaming after \(timeout): \(lastError)")
    }

    /// Waits until the replica has replayed everything the primary has written so far
    /// (read-your-writes across the two servers).
    ///
    /// - Throws: `PostgresError` `.timeout` naming both WAL positions if `timeout` passes first.
    public func waitForReplication(timeout: Duration = .seconds(30)) throws {
        let target = try PostgresConnection(primaryURL).currentWALPosition()
        try PostgresConnection(replicaURL).waitForReplay(of: target, timeout: timeout)
    }

    // MARK: Setup helpers

    package static func makeDirectory(parent: String, runner: CommandRunner) throws -> String {
        var template = Array((parent.hasSuffix("/") ? parent : parent + "/").utf8CString.dropLast()) + Array("mrkproxy-pg-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw ClusterError(.commandFailed, "cannot create a temporary directory under \(parent)")
        }
        let dir = String(cString: made)
        try runner.handOver(dir)
        return dir
    }

    package static func appendSettings(_ settings: [(String, String)], to file: String, runner: CommandRunner) throws {
        let text = "\n# Added by MRKProxy's PostgresCluster\n" + settings.map { "\($0.0) = \($0.1)" }.joined(separator: "\n") + "\n"
        guard let handle = FileHandle(forWritingAtPath: file) else {
            throw ClusterError(.commandFailed, "cannot open \(file)")
        }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
    }
}

/// A logger that discards everything.
