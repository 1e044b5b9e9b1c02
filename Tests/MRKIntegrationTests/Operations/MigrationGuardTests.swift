import Foundation
@testable import MRKDevTools
@testable import MRKOperations
import MRKPostgres
@testable import MRKProxy
import MRKSQL
import MRKWire
import Testing

extension ProxyIntegration {
    /// A process that planned its statements before a migration's swap (a long-running app with
    /// `migrating: true`) meets the swap: every statement is re-planned, none reads ciphertext as
    /// plaintext, compares plaintext with ciphertext, or writes a value of the old kind.
    @Suite(.serialized) struct MigrationGuard {
        static let environment = ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"]

        static func migrate(_ direction: String, _ file: URL, _ table: String, _ column: String) async throws {
            let (status, _, err) = try await CLITests.run(["migrate", direction, "--config", file.path, "--table", "public.\(table)", "--column", column],
                                                          environment: environment)
            #expect(status == 0, "\(err)")
        }

        @Test("statements planned before migrate encrypt's swap and run after it: reads decrypt, searches match, writes seal; a prepared statement is refused as stale; and the same after migrate decrypt")
        func stalePlansAcrossTheSwap() async throws {
            let stack = try currentStack()
            let (table, file) = try await ProxyIntegration.Migration.initializedTable(stack, rows: 2_000)
            let (_, database) = try await ProxyIntegration.Migration.openApp(stack, file)
            let connection = try database.connect()
            let admin = try PostgresConnection(stack.databaseURL(replica: false))
            let read = "SELECT id, ssn FROM \(table) WHERE id = $1"
            let search = "SELECT id FROM \(table) WHERE ssn = $1"
            let write = "UPDATE \(table) SET ssn = $1 WHERE id = $2"
            // Planned (and cached) while ssn is plaintext.
            #expect(try connection.query(read, [.int(5)]).rows.first?.string("ssn") == "SSN-5")
            #expect(try connection.query(search, [.text("SSN-6")]).rows.map { $0.int("id") } == [6])
            #expect(try connection.execute(write, [.text("A-7"), .int(7)]) == 1)
            let prepared = try connection.prepare(read, parameterCount: 1)
            #expect(try prepared.query([.int(5)]).rows.first?.string("ssn") == "SSN-5")

            try await Self.migrate("encrypt", file, table, "ssn")

            // The same statements on the same connection, after the swap.
            #expect(try connection.query(read, [.int(5)]).rows.first?.string("ssn") == "SSN-5")
            #expect(try connection.query(search, [.text("SSN-6")]).rows.map { $0.int("id") } == [6])
            #expect(try connection.execute(write, [.text("B-7"), .int(7)]) == 1)
            #expect(try admin.execute("SELECT pg_catalog.get_byte(ssn, 0) FROM \(table) WHERE id = 7").string(row: 0, column: 0) == "1")
            #expect(try connection.query(read, [.int(7)]).rows.first?.string("ssn") == "B-7")
            let stale = #expect(throws: ProxyError.self) { try prepared.query([.int(5)]) }
            #expect(stale?.code == .schemaMismatch, "\(String(describing: stale))")
            #expect(try connection.prepare(read, parameterCount: 1).query([.int(5)]).rows.first?.string("ssn") == "SSN-5")

            // The way back: a write planned while ssn is ciphertext, run after the decrypt swap,
            // stores plaintext (not the text form of a ciphertext the server would accept).
            #expect(try connection.execute(write, [.text("C-8"), .int(8)]) == 1)
            try await Self.migrate("decrypt", file, table, "ssn")
            #expect(try connection.execute(write, [.text("D-8"), .int(8)]) == 1)
            #expect(try admin.execute("SELECT ssn FROM \(table) WHERE id = 8").string(row: 0, column: 0) == "D-8")
            #expect(try connection.query(search, [.text("SSN-6")]).rows.map { $0.int("id") } == [6])
        }

        @Test("during a migration of a json column the app inserts and updates it (its trigger compares text forms: json has no =), and every value ends sealed exactly")
        func jsonColumnMigration() async throws {
            let stack = try currentStack()
            let table = uniqueName("migjson")
            let admin = try PostgresConnection(stack.databaseURL(replica: false))
            try admin.execute("CREATE TABLE \(table) (id bigint PRIMARY KEY, doc json, amount numeric)")
            try admin.execute("INSERT INTO \(table) SELECT g, ('{\"n\": ' || g || '}')::json, g FROM generate_series(1, 50) g")
            let file = stack.directory.appendingPathComponent("\(table).yaml")
            try stack.configurationYAML(region: "us-east-1", tables: """
                tables:
                  public.\(table):
                    row_identity: id
                    columns:
                      doc:    { type: json, migrating: true }
                      amount: { type: numeric, migrating: true }
                """).write(to: file, atomically: true, encoding: .utf8)
            _ = try await CLITests.run(["keystore", "init", "--config", file.path], environment: Self.environment)
            let (configuration, database) = try await ProxyIntegration.Migration.openApp(stack, file)
            let name = QualifiedName(schema: "public", name: table)
            let spec = try #require(configuration.tables[name]?.columns["doc"])
            let connection = try database.connect()
            // The first phase only: the shadow column and the trigger; the backfill has not run.
            try ColumnMigrator(database: database, table: name, column: "doc", direction: .encrypt).prepare(connection, spec: spec)
            try connection.reloadCatalog()
            try connection.execute("INSERT INTO \(table) (id, doc, amount) VALUES ($1, $2, $3)", [.int(51), .text("{\"new\": true}"), .text("1.50")])
            try connection.execute("UPDATE \(table) SET doc = $1 WHERE id = $2", [.text("{\"changed\": 2}"), .int(2)])
            try await MigrationGuard.migrate("encrypt", file, table, "doc")
            try await MigrationGuard.migrate("encrypt", file, table, "amount")
            let rows = try database.connect().query("SELECT id, doc, amount FROM \(table) ORDER BY id").rows
            #expect(rows.count == 51)
            #expect(rows.first { $0.int("id") == 2 }?.string("doc") == "{\"changed\": 2}")
            #expect(rows.first { $0.int("id") == 3 }?.string("doc") == "{\"n\": 3}")
            #expect(rows.first { $0.int("id") == 51 }?.string("doc") == "{\"new\": true}" && rows.last?.string("amount") == "1.50")
        }
    }
}

extension ProxyIntegration.MigrationGuard {
    @Test("migrate asks for its exclusive locks (the first step, the swap) with a timeout and retries while a long transaction holds the table, instead of queueing every statement behind it")
    func swapWaitsForTheLockPolitely() async throws {
        let stack = try currentStack()
        let (table, file) = try await ProxyIntegration.Migration.initializedTable(stack, rows: 500)
        // A reader holding the table for ~5 s (ACCESS SHARE until its transaction ends).
        let reader = try PostgresConnection(stack.databaseURL(replica: false))
        try reader.execute("BEGIN")
        try reader.execute("SELECT count(*) FROM \(table)")
        let other = try PostgresConnection(stack.databaseURL(replica: false))
        let migration = Task {
            try await CLITests.run(["migrate", "encrypt", "--config", file.path, "--table", "public.\(table)", "--column", "dob"],
                                   environment: Self.environment)
        }
        // While the swap retries, other statements on the table still run (between its attempts).
        try await Task.sleep(for: .seconds(3))
        #expect(try other.execute("SELECT count(*) FROM \(table)").string(row: 0, column: 0) == "500")
        try await Task.sleep(for: .seconds(2))
        try reader.execute("COMMIT")
        let (status, _, err) = try await migration.value
        #expect(status == 0, "\(err)")
        #expect(err.contains("waiting for an exclusive lock"), "\(err)")
        #expect(try other.execute("SELECT pg_catalog.format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'dob'",
                                  [.text(table)]).string(row: 0, column: 0) == "bytea")
    }
}

extension ProxyIntegration.MigrationGuard {
    @Test("--max-lag: while the replica's replay is paused (its lag grows), migrate waits and says so; once replay resumes it finishes")
    func throttledByReplicaLag() async throws {
        let stack = try currentStack()
        let (table, file) = try await ProxyIntegration.Migration.initializedTable(stack, rows: 3_000)
        let primary = try PostgresConnection(stack.databaseURL(replica: false))
        let replica = try PostgresConnection(stack.databaseURL(replica: true))
        try replica.execute("SELECT pg_catalog.pg_wal_replay_pause()")
        var resumed = false
        defer { if !resumed { _ = try? replica.execute("SELECT pg_catalog.pg_wal_replay_resume()") } }
        // WAL the paused replica does not replay: its replay lag grows from here.
        try primary.execute("CREATE TABLE \(table)_lag (n int)")
        try await Task.sleep(for: .seconds(2))
        let migration = Task {
            try await CLITests.run(["migrate", "encrypt", "--config", file.path, "--table", "public.\(table)", "--column", "dob",
                                    "--batch", "500", "--max-lag", "1s"], environment: Self.environment)
        }
        try await Task.sleep(for: .seconds(3))
        let done = Int(try primary.execute("SELECT coalesce(max(rows_done), 0) FROM public.mrkproxy_migrations WHERE table_name = $1",
                                           [.text(table)]).string(row: 0, column: 0) ?? "") ?? -1
        #expect(done < 3_000, "the backfill did not wait for the replica (\(done) rows done)")
        try replica.execute("SELECT pg_catalog.pg_wal_replay_resume()")
        resumed = true
        let (status, out, err) = try await migration.value
        #expect(status == 0, "\(out)\(err)")
        #expect(err.contains("waiting: a replica is"), "\(err)")
        let type = try primary.execute("SELECT pg_catalog.format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'dob'",
                                       [.text(table)]).string(row: 0, column: 0)
        #expect(type == "bytea")
    }
}

extension ProxyIntegration.MigrationGuard {
    @Test("through mrkproxy serve, one client session across migrations' swaps (simple and extended protocol, libpq): a simple query is planned again, an extended one bound under the old plan is refused as retryable (MK005), then reads decrypt, searches match, writes seal")
    func wireSessionAcrossTheSwap() async throws {
        let stack = try currentStack()
        let (table, file) = try await ProxyIntegration.Migration.initializedTable(stack, rows: 1_000)
        let (_, database) = try await ProxyIntegration.Migration.openApp(stack, file)
        var settings = ProxyConfiguration.WireProxy()
        settings.listen = "127.0.0.1:0"
        settings.trust = true
        let server = try WireServer(database: database, configuration: .init(settings: settings))
        let (port, _) = try await server.start()
        do {
            let client = try PostgresConnection("host=127.0.0.1 port=\(port) user=app dbname=app sslmode=disable")
            let read = "SELECT id, ssn FROM \(table) WHERE id = $1"
            let search = "SELECT id FROM \(table) WHERE ssn = $1"
            #expect(try client.execute(read, [.text("5")]).string(row: 0, column: 1) == "SSN-5")
            #expect(try client.execute(search, [.text("SSN-6")]).string(row: 0, column: 0) == "6")
            #expect(try client.executeScript("SELECT id, ssn FROM \(table) WHERE id = 9").string(row: 0, column: 1) == "SSN-9")

            try await Self.migrate("encrypt", file, table, "ssn")

            // A simple query planned before the swap is planned again by the proxy; an extended
            // one whose parameters were already bound under the old plan is refused with the
            // retryable SQLSTATE MK005 before anything is sent, and the client's retry works.
            #expect(try client.executeScript("SELECT id, ssn FROM \(table) WHERE id = 9").string(row: 0, column: 1) == "SSN-9")
            try await Self.migrate("decrypt", file, table, "ssn")
            let stale = #expect(throws: PostgresError.self) { try client.execute(read, [.text("5")]) }
            #expect(stale?.sqlState == "MK005", "\(String(describing: stale))")
            try await Self.migrate("encrypt", file, table, "ssn")
            _ = try? client.execute(read, [.text("5")])
            #expect(try client.execute(read, [.text("5")]).string(row: 0, column: 1) == "SSN-5")
            #expect(try client.execute(search, [.text("SSN-6")]).string(row: 0, column: 0) == "6")
            try client.execute("UPDATE \(table) SET ssn = $1 WHERE id = $2", [.text("W-7"), .text("7")])
            let admin = try PostgresConnection(stack.databaseURL(replica: false))
            #expect(try admin.execute("SELECT pg_catalog.get_byte(ssn, 0) FROM \(table) WHERE id = 7").string(row: 0, column: 0) == "1")
            #expect(try client.execute(read, [.text("7")]).string(row: 0, column: 1) == "W-7")
            #expect(client.transactionStatus == .idle, "the guard's transactions are closed before ReadyForQuery")
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }
}

extension ProxyIntegration.MigrationGuard {
    @Test("a migration record saying plaintext beside a bytea column (a DB admin's forgery, or two snapshots across a swap) is not believed: the column is read as ciphertext")
    func contradictedRecordIsNotBelieved() async throws {
        let stack = try currentStack()
        let (table, file) = try await ProxyIntegration.Migration.initializedTable(stack, rows: 100)
        try await Self.migrate("encrypt", file, table, "ssn")
        let admin = try PostgresConnection(stack.databaseURL(replica: false))
        try admin.execute("UPDATE public.mrkproxy_migrations SET phase = 'backfill' WHERE table_name = $1 AND column_name = 'ssn'", [.text(table)])
        let (_, database) = try await ProxyIntegration.Migration.openApp(stack, file)
        let connection = try database.connect()
        #expect(try connection.query("SELECT id, ssn FROM \(table) WHERE id = 5").rows.first?.string("ssn") == "SSN-5")
        #expect(try connection.query("SELECT id FROM \(table) WHERE ssn = $1", [.text("SSN-6")]).rows.map { $0.int("id") } == [6])
        try admin.execute("UPDATE public.mrkproxy_migrations SET phase = 'done' WHERE table_name = $1 AND column_name = 'ssn'", [.text(table)])
    }
}

extension ProxyIntegration.MigrationGuard {
    @Test("the guard needs no privilege beyond the statement's own: a role that may only INSERT into a table with a migrating: true column inserts")
    func guardWithAnInsertOnlyRole() async throws {
        let stack = try currentStack()
        let (table, file) = try await ProxyIntegration.Migration.initializedTable(stack, rows: 10)
        let admin = try PostgresConnection(stack.databaseURL(replica: false))
        let role = "ins_\(table)"
        try admin.executeScript(ColumnMigration.ddl)
        try admin.executeScript("""
            CREATE ROLE \(role) LOGIN;
            GRANT SELECT ON public.mrkproxy_keystore, public.mrkproxy_migrations TO \(role);
            GRANT INSERT ON \(table) TO \(role);
            """)
        let yaml = try String(contentsOf: file, encoding: .utf8).replacingOccurrences(of: "postgres@", with: "\(role)@")
        let configuration = try ProxyConfiguration.parse(yaml, source: file.path)
        let database = try await EncryptedDatabase.open(configuration: configuration, region: "us-east-1", kms: stack.kmsClient(region: "us-east-1"))
        #expect(try database.connect().execute("INSERT INTO \(table) (id, name, ssn, dob) VALUES ($1, 'x', $2, $3)",
                                               [.int(5_001), .text("SSN-5001"), .text("2000-01-02")]) == 1)
        #expect(try admin.execute("SELECT ssn FROM \(table) WHERE id = 5001").string(row: 0, column: 0) == "SSN-5001", "still plaintext: not migrated yet")
    }
}
