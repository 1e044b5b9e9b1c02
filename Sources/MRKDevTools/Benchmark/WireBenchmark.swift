import Foundation
import MRKCluster
import MRKCrypto
import MRKPostgres
import MRKProxy
import MRKWire

/// `mrkproxy bench --proxy`: pgbench against the database directly and through `mrkproxy serve`,
/// on plaintext and encrypted tables, select-only and a simple update, in one run: TPS and
/// p50/p99 latency (from pgbench's per-transaction log). pgbouncer, when installed, is measured on
/// the plaintext table as the reference for what any proxy costs on the machine.
public struct WireBenchmark: Sendable {
    /// One pgbench run.
    public struct Result: Sendable, Codable {
        public var name: String
        public var transactionsPerSecond: Double
        public var p50Milliseconds: Double
        public var p99Milliseconds: Double
        public var failed: Int
    }

    public struct Report: Sendable, Codable {
        public var clients: Int
        public var seconds: Int
        public var accounts: Int
        public var results: [Result]
        /// Proxy on the plaintext table ÷ direct (goal ≥ 0.7), select-only and update.
        public var proxyPlaintextRatio: Double
        public var proxyPlaintextUpdateRatio: Double
        /// Encrypted table through the proxy ÷ direct on plaintext (goal ≥ 0.6).
        public var proxyEncryptedRatio: Double
        public var proxyEncryptedUpdateRatio: Double
        /// pgbouncer on the plaintext table ÷ direct (when pgbouncer is installed).
        public var pgbouncerRatio: Double?
    }

    public var sqlDirectory: URL
    public var seconds = 10
    public var clients = 4
    public var accounts = 100_000
    public var protocolMode = "prepared"
    public var progress: @Sendable (String) -> Void

    public init(sqlDirectory: URL, seconds: Int, clients: Int, accounts: Int, progress: @escaping @Sendable (String) -> Void) {
        self.sqlDirectory = sqlDirectory
        self.seconds = seconds
        self.clients = clients
        self.accounts = accounts
        self.progress = progress
    }

    public func run() async throws -> Report {
        progress("starting primary + replica and the local KMS…")
        return try await LocalStack.with(configuration: LocalStack.Configuration(sqlDirectory: sqlDirectory)) { try await measure($0) }
    }

    private func measure(_ stack: LocalStack) async throws -> Report {
        let url = stack.databaseURL(replica: false)
        let admin = try PostgresConnection(url)
        // The plaintext table and its encrypted twin: same rows, abalance encrypted (int4).
        progress("creating \(accounts) plaintext accounts and \(accounts) encrypted ones (through MRKProxy)…")
        try admin.execute("CREATE TABLE bench_plain (aid int PRIMARY KEY, bid int NOT NULL, abalance int NOT NULL, filler char(84))")
        try admin.execute("""
            INSERT INTO bench_plain SELECT g, 1 + (g - 1) / 100000, 0, '' FROM generate_series(1, \(accounts)) g
            """)
        try admin.execute("CREATE TABLE bench_encrypted (aid int PRIMARY KEY, bid int NOT NULL, abalance bytea, filler char(84))")
        let yaml = stack.configurationYAML(region: "us-east-1", tables: """
            tables:
              public.bench_encrypted:
                row_identity: aid
                columns:
                  abalance: { type: int4 }
            """)
        let configuration = try ProxyConfiguration.parse(yaml, source: "bench.yaml", environment: [:])
        let keystore = BranchKeyStore(databaseURL: url, kms: stack.kmsClient(region: "us-east-1"), kmsKeyARN: try configuration.keyARN(in: "us-east-1"))
        try await keystore.create(keyspace: configuration.keyspace)
        let database = try await EncryptedDatabase.open(configuration: configuration, region: "us-east-1", kms: stack.kmsClient(region: "us-east-1"))
        let accounts = self.accounts
        try await onBlockingThread {
            let connection = try database.connect()
            _ = try connection.copyIn(into: "bench_encrypted", columns: ["aid", "bid", "abalance", "filler"],
                                      rows: (1...accounts).lazy.map { [.int($0), .int(1 + ($0 - 1) / 100_000), .int(0), .text("")] })
        }
        try admin.execute("VACUUM ANALYZE bench_plain")
        try admin.execute("VACUUM ANALYZE bench_encrypted")
        try admin.execute("CHECKPOINT")

        var settings = ProxyConfiguration.WireProxy()
        settings.listen = "127.0.0.1:0"
        settings.trust = true
        let server = try WireServer(database: database, configuration: .init(settings: settings))
        let (proxyPort, _) = try await server.start()
        do {
            return try await run(server: server, proxyPort: proxyPort, url: url)
        } catch {
            await server.shutdown()
            throw error
        }
    }

    private func run(server: WireServer, proxyPort: Int, url: String) async throws -> Report {
        let accounts = self.accounts

        let components = URLComponents(string: url)
        let databasePort = components?.port ?? 5432
        let databaseName = String((components?.path ?? "/app").dropFirst())
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("mrkproxy-wirebench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        func script(_ name: String, _ text: String) throws -> String {
            let path = work.appendingPathComponent(name).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let selectPlain = try script("select-plain.sql", "\\set aid random(1, \(accounts))\nSELECT aid, abalance FROM bench_plain WHERE aid = :aid;\n")
        let selectEncrypted = try script("select-encrypted.sql", "\\set aid random(1, \(accounts))\nSELECT aid, abalance FROM bench_encrypted WHERE aid = :aid;\n")
        let updatePlain = try script("update-plain.sql",
                                     "\\set aid random(1, \(accounts))\n\\set delta random(-5000, 5000)\nUPDATE bench_plain SET abalance = :delta WHERE aid = :aid;\n")
        let updateEncrypted = try script("update-encrypted.sql",
                                         "\\set aid random(1, \(accounts))\n\\set delta random(-5000, 5000)\nUPDATE bench_encrypted SET abalance = :delta WHERE aid = :aid;\n")

        var pgbouncer: PgBouncer?
        if let binary = PgBouncer.locate() {
            pgbouncer = try? PgBouncer.start(binary: binary, directory: work, databasePort: databasePort, databaseName: databaseName)
        }
        defer { pgbouncer?.stop() }

        var results: [Result] = []
        func bench(_ name: String, port: Int, user: String, script: String) async throws -> Result {
            progress("pgbench \(name) (\(clients) clients, \(seconds) s)…")
            let result = try await PgBench.run(name: name, port: port, user: user, database: databaseName, script: script,
                                               clients: clients, seconds: seconds, mode: protocolMode, directory: work)
            results.append(result)
            return result
        }
        let direct = try await bench("select, direct, plaintext", port: databasePort, user: "postgres", script: selectPlain)
        let viaProxy = try await bench("select, proxy, plaintext", port: proxyPort, user: "app", script: selectPlain)
        let viaProxyEncrypted = try await bench("select, proxy, encrypted", port: proxyPort, user: "app", script: selectEncrypted)
        var bouncer: Result?
        if let pgbouncer {
            bouncer = try await bench("select, pgbouncer, plaintext", port: pgbouncer.port, user: "postgres", script: selectPlain)
        }
        let directUpdate = try await bench("update, direct, plaintext", port: databasePort, user: "postgres", script: updatePlain)
        let proxyUpdate = try await bench("update, proxy, plaintext", port: proxyPort, user: "app", script: updatePlain)
        let proxyUpdateEncrypted = try await bench("update, proxy, encrypted", port: proxyPort, user: "app", script: updateEncrypted)
        await server.shutdown()
        return Report(clients: clients, seconds: seconds, accounts: accounts, results: results,
                      proxyPlaintextRatio: viaProxy.transactionsPerSecond / direct.transactionsPerSecond,
                      proxyPlaintextUpdateRatio: proxyUpdate.transactionsPerSecond / directUpdate.transactionsPerSecond,
                      proxyEncryptedRatio: viaProxyEncrypted.transactionsPerSecond / direct.transactionsPerSecond,
                      proxyEncryptedUpdateRatio: proxyUpdateEncrypted.transactionsPerSecond / directUpdate.transactionsPerSecond,
                      pgbouncerRatio: bouncer.map { $0.transactionsPerSecond / direct.transactionsPerSecond })
    }
}

/// Runs pgbench and reads its per-transaction log for latency percentiles.
enum PgBench {
    static func run(name: String, port: Int, user: String, database: String, script: String, clients: Int, seconds: Int,
                    mode: String, directory: URL) async throws -> WireBenchmark.Result {
        let prefix = directory.appendingPathComponent("log-\(UUID().uuidString)").path
        let arguments = ["pgbench", "-n", "-M", mode, "-f", script, "-c", String(clients), "-j", String(clients % 2 == 0 ? 2 : 1), "-T", String(seconds),
                         "-h", "127.0.0.1", "-p", String(port), "-U", user, "-l", "--log-prefix=\(prefix)", database]
        let (status, output) = try await onBlockingThread { () throws -> (Int32, String) in
            // pgbench -T stops on SIGALRM: the thread it is spawned from (and so pgbench) must not
            // block signals, as threads started from the concurrency pool's do.
            var none = sigset_t()
            sigemptyset(&none)
            pthread_sigmask(SIG_SETMASK, &none, nil)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(["PGSSLMODE": "disable"]) { $1 }
            process.currentDirectoryURL = directory
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        guard status == 0 else { throw ProxyError(.database, "pgbench (\(name)) failed: \(output.suffix(600))") }
        func number(after label: String) -> Double? {
            guard let line = output.split(separator: "\n").first(where: { $0.contains(label) }) else { return nil }
            return line.split(separator: " ").compactMap { Double($0) }.first
        }
        let tps = number(after: "tps = ") ?? 0
        let failed = Int(number(after: "number of failed transactions:") ?? 0)
        // Log lines: client_id transaction_no latency_us script_no epoch epoch_us.
        var latencies: [Double] = []
        let logs = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { directory.appendingPathComponent($0).path.hasPrefix(prefix) }
        for log in logs {
            let text = try String(contentsOf: directory.appendingPathComponent(log), encoding: .utf8)
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ")
                if fields.count >= 3, let micros = Double(fields[2]) { latencies.append(micros) }
            }
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(log))
        }
        latencies.sort()
        func percentile(_ p: Double) -> Double {
            guard !latencies.isEmpty else { return 0 }
            return latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] / 1000
        }
        return .init(name: name, transactionsPerSecond: tps, p50Milliseconds: percentile(0.5), p99Milliseconds: percentile(0.99), failed: failed)
    }
}

/// pgbouncer (session pooling, trust) in front of the benchmark database, when it is installed.
struct PgBouncer {
    let process: Process
    let port: Int

    static func locate() -> String? {
        ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func start(binary: String, directory: URL, databasePort: Int, databaseName: String) throws -> PgBouncer {
        let port = try FreePort.find()
        let config = directory.appendingPathComponent("pgbouncer.ini")
        try """
            [databases]
            \(databaseName) = host=127.0.0.1 port=\(databasePort) dbname=\(databaseName) user=postgres
            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = \(port)
            auth_type = trust
            auth_file = \(directory.appendingPathComponent("users.txt").path)
            pool_mode = session
            unix_socket_dir =
            max_client_conn = 100
            default_pool_size = 20
            """.write(to: config, atomically: true, encoding: .utf8)
        try "\"postgres\" \"\"\n".write(to: directory.appendingPathComponent("users.txt"), atomically: true, encoding: .utf8)
        let process = Process()
        if getuid() == 0 {
            // pgbouncer refuses to run as root.
            _ = try? Process.run(URL(fileURLWithPath: "/bin/chown"), arguments: ["-R", "postgres", directory.path]).waitUntilExit()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            process.arguments = ["-u", "postgres", "--", binary, config.path]
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = [config.path]
        }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until it accepts connections.
        for _ in 0..<100 {
            if (try? PostgresConnection("postgresql://postgres@127.0.0.1:\(port)/\(databaseName)?sslmode=disable")) != nil { break }
            usleep(50_000)
        }
        return PgBouncer(process: process, port: port)
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}
