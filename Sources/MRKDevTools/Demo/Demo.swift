import MRKLocalKMS
import MRKCrypto
import MRKSQL
import MRKProxy
import Foundation
import MRKWire
import Logging
import MRKCluster
import MRKKMS
import MRKPostgres

/// The seed scenario, end to end (`mrkproxy demo`): a primary in us-east-1 and its streaming
/// replica in ap-southeast-2, an MRK in us-east-1 replicated to ap-southeast-2; customers are
/// written with SSNs through MRKProxy in us-east-1 and read back decrypted in ap-southeast-2 from
/// the replica, decrypted by the local replica key.
public struct Demo: Sendable {
    /// What the demo observed, for tests and scripts.
    public struct Report: Sendable {
        public var customersWritten = 0
        public var customersReadOnReplica = 0
        public var readBackMatches = false
        public var plaintextInRawTable = true
        public var replicaDecryptsInReplicaRegion = 0
        public var primaryRegionCallsDuringRead = 0
        public var replicaWriteRefused = false
        public var misuseRefused = false
        public var seconds = 0.0

        func apply(to report: inout Report) {
            report.replicaWriteRefused = replicaWriteRefused
            report.misuseRefused = misuseRefused
        }
    }

    public var sqlDirectory: URL
    /// Leave everything running and wait (for `mrkproxy sql` in another terminal).
    public var keep = false
    /// How the printed hints run the CLI (`mrkproxy`, or its path when it is not on PATH).
    public var command = "mrkproxy"
    /// Where the story goes.
    public var print: @Sendable (String) -> Void

    public init(sqlDirectory: URL, keep: Bool = false, print: @escaping @Sendable (String) -> Void) {
        self.sqlDirectory = sqlDirectory
        self.keep = keep
        self.print = print
    }

    static let customers: [(id: Int, name: String, email: String, ssn: String, dob: String, notes: String)] = [
        (1, "Ada Lovelace", "ada@example.com", "078-05-1120", "1815-12-10", "prefers analytical engines"),
        (2, "Grace Hopper", "grace@example.com", "219-09-9999", "1906-12-09", "found the first bug"),
        (3, "Alan Turing", "alan@example.com", "457-55-5462", "1912-06-23", "asks good questions"),
        (4, "Edsger Dijkstra", "edsger@example.com", "323-45-6789", "1930-05-11", "considers goto harmful"),
        (5, "Barbara Liskov", "barbara@example.com", "512-34-9876", "1939-11-07", "substitutes carefully"),
    ]

    static let tablesYAML = """
        tables:
          public.customers:
            row_identity: id
            columns:
              ssn: { type: text, search: equality }
              dob: { type: date }
              notes: { type: text, format: esdk }
        """

    /// Runs the scenario.
    public func run() async throws -> Report {
        let started = ContinuousClock.now
        var report = Report()
        let east = "us-east-1", south = "ap-southeast-2"
        print("MRKProxy demo — client-side column encryption with KMS multi-Region keys\n")
        print("1. Starting a PostgreSQL primary (\(east)) and a streaming hot-standby replica (\(south)),")
        print("   and the embedded KMS with a multi-Region key in \(east) replicated to \(south)…")
        let stack = try await LocalStack.start(configuration: LocalStack.Configuration(sqlDirectory: sqlDirectory))
        do {
            report = try await scenario(stack, east: east, south: south)
        } catch {
            await stack.stop()
            throw error
        }
        report.seconds = Double((ContinuousClock.now - started).components.seconds)
        await stack.stop()
        print("\nCleaned up: servers stopped, temporary files removed.")
        return report
    }

    private func scenario(_ stack: LocalStack, east: String, south: String) async throws -> Report {
        var report = Report()
        print("   primary  \(stack.databaseURL(replica: false))")
        print("   replica  \(stack.databaseURL(replica: true))")
        print("   KMS      \(stack.kmsEndpoint.absoluteString)  key \(stack.keyID)")

        let configFile = stack.directory.appendingPathComponent("mrkproxy.yaml")
        try stack.configurationYAML(region: east, tables: Self.tablesYAML).write(to: configFile, atomically: true, encoding: .utf8)
        let configuration = try ProxyConfiguration.load(path: configFile.path)
        print("\n2. Configuration (\(configFile.path)):")
        print(Self.tablesYAML.split(separator: "\n").map { "   " + $0 }.joined(separator: "\n"))

        let primaryKeystore = BranchKeyStore(databaseURL: stack.databaseURL(replica: false), kms: stack.kmsClient(region: east),
                                             kmsKeyARN: try configuration.keyARN(in: east))
        let versions = try await primaryKeystore.create(keyspace: configuration.keyspace)
        print("\n3. Keystore: keyspace '\(configuration.keyspace)' with \(versions.count) keys wrapped by KMS under \(stack.keyID)")

        let primary = try await EncryptedDatabase.open(configuration: configuration, region: east, kms: stack.kmsClient(region: east))
        // libpq and the sync API block: run them on a thread of their own.
        let position = try await onBlockingThread { [self] in try writePhase(primary) }
        report.customersWritten = Self.customers.count

        stack.kms.resetAuditEvents()
        let replica = try await EncryptedDatabase.open(configuration: configuration, region: south, kms: stack.kmsClient(region: south))
        var readReport = try await onBlockingThread { [self] in try readPhase(stack, replica, position: position, east: east, south: south) }
        readReport.customersWritten = report.customersWritten
        report = readReport
        try await onBlockingThread { [self] in
            var failClosed = Report()
            try failClosedPhase(primary: primary, replica: replica, south: south, into: &failClosed)
            return failClosed
        }.apply(to: &report)

        if keep {
            // `mrkproxy serve` in each region (trust on loopback), for psql and any other client.
            var settings = ProxyConfiguration.WireProxy()
            settings.listen = "127.0.0.1:0"
            settings.trust = true
            let eastProxy = try WireServer(database: primary, configuration: .init(settings: settings))
            let southProxy = try WireServer(database: replica, configuration: .init(settings: settings))
            let (eastPort, _) = try await eastProxy.start()
            let (southPort, _) = try await southProxy.start()
            print("\nTry it:")
            print("   export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test")
            print("   \(command) sql --config \(configFile.path) --region \(south) -c \"SELECT id, name, ssn FROM customers\"")
            print("   \(command) sql --config \(configFile.path) --region \(east) -c \"INSERT INTO customers (id, name, ssn) VALUES (6, 'Katherine Johnson', '111-22-3333')\"")
            print("   psql '\(stack.databaseURL(replica: true))' -c 'SELECT id, name, ssn FROM customers'   # what the database holds")
            print("\n   mrkproxy serve is running in each region (any PostgreSQL client, no Swift needed):")
            print("   psql 'host=127.0.0.1 port=\(eastPort) user=app dbname=app sslmode=disable'    # \(east): writes, encrypted by the proxy")
            print("   psql 'host=127.0.0.1 port=\(southPort) user=app dbname=app sslmode=disable'    # \(south): reads from the replica, decrypted there")
            print("\nEverything is still running (--keep). Press Ctrl-C to stop and clean up.")
            await Self.waitForInterrupt()
            await eastProxy.shutdown()
            await southProxy.shutdown()
        }
        return report
    }

    private func writePhase(_ primary: EncryptedDatabase) throws -> LSN {
        let writer = try primary.connect()
        try writer.batch("INSERT INTO customers (id, name, email, ssn, dob, notes) VALUES ($1, $2, $3, $4, $5, $6)",
                         Self.customers.map { [.int($0.id), .text($0.name), .text($0.email), .text($0.ssn), .text($0.dob), .text($0.notes)] })
        print("\n4. \(primary.region): inserted \(Self.customers.count) customers through MRKProxy (SSN, date of birth and notes encrypted in the app)")
        return try writer.currentWALPosition()
    }

    private func readPhase(_ stack: LocalStack, _ replica: EncryptedDatabase, position: LSN, east: String, south: String) throws -> Report {
        var report = Report()
        try replica.waitForReplication(of: position)
        print("\n5. \(south): the replica has replayed the primary's WAL up to \(position)")

        let reader = try replica.connect()
        let rows = try reader.query("SELECT id, name, ssn, dob, notes FROM customers ORDER BY id")
        report.customersReadOnReplica = rows.rows.count
        report.readBackMatches = rows.rows.count == Self.customers.count && zip(rows.rows, Self.customers).allSatisfy { row, expected in
            row.string("ssn") == expected.ssn && row.string("notes") == expected.notes
                && row.calendarDate("dob")?.description == expected.dob
        }
        let raw = try PostgresConnection(stack.databaseURL(replica: true))
            .execute("SELECT id, name, ssn, dob FROM customers ORDER BY id")
        report.plaintextInRawTable = Self.customers.contains { customer in
            raw.rows.contains { row in [2, 3].contains { (row.string($0) ?? "").contains(customer.ssn) } }
        }

        print("\n   What a DB admin sees on the replica (raw bytea):")
        print("   " + pad("id", 3) + pad("name", 17) + pad("ssn", 40) + "dob")
        for row in raw.rows {
            print("   " + pad(row.string(0) ?? "", 3) + pad(row.string(1) ?? "", 17) + pad(abbreviate(row.string(2)), 40) + abbreviate(row.string(3)))
        }
        print("\n   What the app in \(south) sees through MRKProxy:")
        print("   " + pad("id", 3) + pad("name", 17) + pad("ssn", 13) + pad("dob", 12) + "notes")
        for row in rows.rows {
            print("   " + pad(row.string("id") ?? "", 3) + pad(row.string("name") ?? "", 17) + pad(row.string("ssn") ?? "", 13)
                  + pad(row.calendarDate("dob")?.description ?? "", 12) + (row.string("notes") ?? ""))
        }

        let found = try reader.query("SELECT id, name FROM customers WHERE ssn = $1", [.text("457-55-5462")])
        print("\n   Equality search through the blind index: WHERE ssn = $1 → \(found.rows.map { $0.string("name") ?? "" })")

        print("\n6. KMS audit log (CloudTrail-like) for the read in \(south):")
        let events = stack.kms.auditEvents()
        for event in events {
            let context = event.encryptionContext ?? [:]
            let what = context["mrkproxy:purpose"].map { "\($0) key v\(context["mrkproxy:version"] ?? "?")" }
                ?? context["mrkproxy:column"].map { "ESDK data key for \($0)" } ?? ""
            print("   \(event.time)  \(pad(event.region, 15)) \(pad(event.operation, 12)) \(event.keyArn ?? "-")  \(event.outcome)  \(what)")
        }
        report.replicaDecryptsInReplicaRegion = events.filter { $0.operation == "Decrypt" && $0.region == south && $0.succeeded }.count
        report.primaryRegionCallsDuringRead = events.filter { $0.region == east }.count
        print("   → \(report.replicaDecryptsInReplicaRegion) Decrypt call(s) in \(south) with the local replica key; \(report.primaryRegionCallsDuringRead) call(s) to \(east).")

        return report
    }

    private func failClosedPhase(primary: EncryptedDatabase, replica: EncryptedDatabase, south: String, into report: inout Report) throws {
        let reader = try replica.connect()
        let writer = try primary.connect()
        print("\n7. Fail closed:")
        let write = Result { () throws(ProxyError) in try reader.execute("UPDATE customers SET email = $1 WHERE id = $2", [.text("x@example.com"), .int(1)]) }
        if case .failure(let error) = write {
            guard error.code == .readOnlyRegion else { throw error }
            report.replicaWriteRefused = true
            print("   write in \(south): \(error)")
        }
        let like = Result { () throws(ProxyError) in try writer.query("SELECT id FROM customers WHERE ssn LIKE '078%'") }
        if case .failure(let error) = like {
            guard error.code == .refused else { throw error }
            report.misuseRefused = true
            print("   LIKE on an encrypted column: \(error)")
        }
    }

    /// Waits for SIGINT, SIGTERM or SIGHUP (instead of dying on it), so the stack is stopped and deleted.
    static func waitForInterrupt() async {
        await StackCleanup.waitForSignal()
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? String(text.prefix(width - 1)) + " " : text + String(repeating: " ", count: width - text.count)
    }

    private func abbreviate(_ hex: String?) -> String {
        guard let hex else { return "NULL" }
        return hex.count > 36 ? String(hex.prefix(30)) + "…(\((hex.count - 2) / 2) B)" : hex
    }
}
