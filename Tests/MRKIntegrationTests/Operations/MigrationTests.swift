import Foundation
@testable import MRKDevTools
import MRKOperations
import MRKPostgres
@testable import MRKProxy
import MRKSQL
import Synchronization
import Testing

extension ProxyIntegration {
    /// `mrkproxy migrate`: existing plaintext columns encrypted online (and back), while an app
    /// keeps writing through the library; interrupted and resumed.
    @Suite(.serialized) struct Migration {
        static let environment = ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"]

        /// A table of `rows` plaintext customers and a configuration describing ssn and dob as encrypted.
        /// `plaintextTable` with its keyspace made (`mrkproxy keystore init`).
        static func initializedTable(_ stack: LocalStack, rows: Int) async throws -> (table: String, file: URL) {
            let (table, file) = try plaintextTable(stack, rows: rows)
            let (status, _, err) = try await CLITests.run(["keystore", "init", "--config", file.path], environment: environment)
            #expect(status == 0, "\(err)")
            return (table, file)
        }

        /// An app in us-east-1 with the configuration in `file`.
        static func openApp(_ stack: LocalStack, _ file: URL) async throws -> (configuration: ProxyConfiguration, database: EncryptedDatabase) {
            let configuration = try ProxyConfiguration.load(path: file.path)
            return (configuration, try await EncryptedDatabase.open(configuration: configuration, region: "us-east-1", kms: stack.kmsClient(region: "us-east-1")))
        }

        static func plaintextTable(_ stack: LocalStack, rows: Int) throws -> (table: String, file: URL) {
            let table = uniqueName("mig")
            let admin = try PostgresConnection(stack.databaseURL(replica: false))
            try admin.execute("CREATE TABLE \(table) (id bigint PRIMARY KEY, name text NOT NULL, ssn text, dob date)")
            try admin.execute("""
                INSERT INTO \(table) SELECT g, 'customer ' || g, CASE WHEN g % 100 = 0 THEN NULL ELSE 'SSN-' || g END,
                       date '1950-01-01' + (g % 20000) FROM generate_series(1, \(rows)) g
                """)
            let file = stack.directory.appendingPathComponent("\(table).yaml")
            try stack.configurationYAML(region: "us-east-1", tables: """
                tables:
                  public.\(table):
                    row_identity: id
                    columns:
                      ssn: { type: text, search: equality, migrating: true }
                      dob: { type: date, migrating: true }
                """).write(to: file, atomically: true, encoding: .utf8)
            return (table, file)
        }

        @Test("migrate encrypt of 200,000 rows while a writer inserts and updates through the library; SIGTERM mid-way, then resumed: every row reads back exactly")
        func encryptOnlineWithAWriterAndAnInterruption() async throws {
            let stack = try currentStack()
            let rows = 200_000
            let (table, file) = try Self.plaintextTable(stack, rows: rows)
            var (status, _, err) = try await CLITests.run(["keystore", "init", "--config", file.path], environment: Self.environment)
            #expect(status == 0, "\(err)")

            // The first run: stopped with SIGTERM once it has done part of the table.
            let first = Process()
            first.executableURL = URL(fileURLWithPath: try CLITests.binary())
            first.arguments = ["migrate", "encrypt", "--config", file.path, "--table", "public.\(table)", "--column", "ssn", "--batch", "2000"]
            first.environment = ProcessInfo.processInfo.environment.merging(Self.environment) { $1 }
            first.standardOutput = FileHandle.nullDevice
            first.standardError = FileHandle.nullDevice
            try first.run()
            let admin = try PostgresConnection(stack.databaseURL(replica: false))
            var done = 0
            for _ in 0..<600 {
                done = Int((try? admin.execute("""
                    SELECT rows_done FROM public.mrkproxy_migrations WHERE table_name = $1 AND column_name = 'ssn'
                    """, [.text(table)]).string(row: 0, column: 0)) ?? "0") ?? 0
                if done >= 20_000 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            first.terminate()
            first.waitUntilExit()
            #expect(first.terminationReason == .exit && first.terminationStatus == 3, "stopped cleanly, saying it is not finished")
            let stopped = try admin.execute("""
                SELECT phase, rows_done FROM public.mrkproxy_migrations WHERE table_name = $1 AND column_name = 'ssn'
                """, [.text(table)])
            #expect(stopped.string(row: 0, column: 0) == "backfill")
            let doneAtStop = Int(stopped.string(row: 0, column: 1) ?? "0") ?? 0
            #expect(doneAtStop >= 20_000 && doneAtStop < rows, "\(doneAtStop)")

            // An app with the new configuration, writing while the migration runs.
            let configuration = try ProxyConfiguration.load(path: file.path)
            let database = try await EncryptedDatabase.open(configuration: configuration, region: "us-east-1", kms: stack.kmsClient(region: "us-east-1"))
            let expected = Mutex<[Int: String?]>([:])
            let writing = Atomic<Bool>(true)
            let errors = Atomic<Int>(0)
            let writer = Task.detached {
                try await onBlockingThread {
                    let connection = try database.connect()
                    var n = 0
                    while writing.load(ordering: .relaxed) || n < 400 {
                        n += 1
                        do {
                            if n % 2 == 0 {
                                let id = 1_000_000 + n
                                try connection.execute("INSERT INTO \(table) (id, name, ssn, dob) VALUES ($1, 'new', $2, '2001-02-03')",
                                                       [.int(id), .text("NEW-\(n)")])
                                expected.withLock { $0[id] = "NEW-\(n)" }
                            } else {
                                let id = (n * 7919) % rows + 1
                                try connection.execute("UPDATE \(table) SET ssn = $1 WHERE id = $2", [.text("UPD-\(id)-\(n)"), .int(id)])
                                expected.withLock { $0[id] = "UPD-\(id)-\(n)" }
                            }
                        } catch let error as ProxyError where error.code == .schemaMismatch || error.code == .database || error.code == .integrity {
                            // The migration's swap happened under this statement: retried with a new plan.
                            errors.wrappingAdd(1, ordering: .relaxed)
                            n -= 1
                            Thread.sleep(forTimeInterval: 0.01)
                        }
                        if n % 50 == 0 { Thread.sleep(forTimeInterval: 0.002) }
                    }
                }
            }

            // Run again: it continues and finishes.
            let (resumedStatus, out, resumedError) = try await CLITests.run(
                ["migrate", "encrypt", "--config", file.path, "--table", "public.\(table)", "--column", "ssn", "--batch", "2000", "--json"],
                environment: Self.environment)
            #expect(resumedStatus == 0, "\(resumedError)")
            let report = try JSONDecoder().decode(ColumnMigrator.Report.self, from: Data(out.utf8))
            #expect(report.resumed && report.finished)
            try await Task.sleep(for: .milliseconds(500))
            writing.store(false, ordering: .relaxed)
            try await writer.value

            // The plaintext column is gone: ssn holds sealed values only, and no shadow is left.
            let columns = try admin.execute("""
                SELECT attname, pg_catalog.format_type(atttypid, NULL) FROM pg_catalog.pg_attribute
                WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum
                """, [.text(table)])
            let types = Dictionary(uniqueKeysWithValues: columns.rows.map { ($0.string(0) ?? "", $0.string(1) ?? "") })
            #expect(types["ssn"] == "bytea" && types["ssn_bidx"] == "bytea" && types.keys.allSatisfy { !$0.contains("mrkproxy") }, "\(types)")
            let unsealed = try admin.execute("SELECT count(*) FROM \(table) WHERE ssn IS NOT NULL AND pg_catalog.get_byte(ssn, 0) <> 1")
            #expect(unsealed.string(row: 0, column: 0) == "0")
            #expect(throws: PostgresError.self, "plaintext cannot be written into the column any more") {
                try admin.execute("UPDATE \(table) SET ssn = 'plaintext'::bytea WHERE id = 1")
            }

            // Every row reads back exactly through the library, the writer's changes included.
            let reader = try database.connect()
            let result = try reader.query("SELECT id, ssn FROM \(table) ORDER BY id")
            let changes = expected.withLock { $0 }
            var mismatches = 0
            var count = 0
            for row in result.rows {
                guard let id = row.int("id") else { continue }
                count += 1
                let want: String? = changes[id] ?? (id <= rows ? (id % 100 == 0 ? nil : "SSN-\(id)") : nil)
                if row.string("ssn") != want { mismatches += 1 }
            }
            let inserted = changes.keys.filter { $0 > rows }.count
            #expect(count == rows + inserted, "no row lost or duplicated")
            #expect(mismatches == 0, "\(mismatches) rows differ")
            // Equality search works on the new blind index.
            let found = try reader.query("SELECT id FROM \(table) WHERE ssn = $1", [.text("SSN-777")])
            #expect(found.rows.map { $0.int("id") } == (changes[777] == nil ? [777] : []))

            // Running it again: nothing to do.
            (status, _, err) = try await CLITests.run(["migrate", "encrypt", "--config", file.path, "--table", "public.\(table)", "--column", "ssn"],
                                                      environment: Self.environment)
            #expect(status == 0 && err.contains("already encrypted"), "\(err)")
        }

        @Test("migrate encrypt then decrypt of a date column: values round-trip exactly, and the library follows each step")
        func encryptThenDecrypt() async throws {
            let stack = try currentStack()
            let (table, file) = try await Self.initializedTable(stack, rows: 5_000)
            let configuration = try ProxyConfiguration.load(path: file.path)
            // ssn first (the configuration describes both), then dob.
            for column in ["ssn", "dob"] {
                let (status, _, err) = try await CLITests.run(["migrate", "encrypt", "--config", file.path, "--table", "public.\(table)", "--column", column],
                                                              environment: Self.environment)
                #expect(status == 0, "\(err)")
            }
            let database = try await EncryptedDatabase.open(configuration: configuration, region: "us-east-1", kms: stack.kmsClient(region: "us-east-1"))
            let connection = try database.connect()
            var row = try #require(try connection.query("SELECT id, dob FROM \(table) WHERE id = 4321").rows.first)
            #expect(row.calendarDate("dob")?.description == "1961-10-31")

            // The way back: dob becomes a plain date column again, read as one.
            let (status, _, err) = try await CLITests.run(["migrate", "decrypt", "--config", file.path, "--table", "public.\(table)", "--column", "dob"],
                                                          environment: Self.environment)
            #expect(status == 0, "\(err)")
            let admin = try PostgresConnection(stack.databaseURL(replica: false))
            #expect(try admin.execute("SELECT dob::text FROM \(table) WHERE id = 4321").string(row: 0, column: 0) == "1961-10-31")
            row = try #require(try connection.query("SELECT id, dob, ssn FROM \(table) WHERE id = 4321").rows.first)
            #expect(row.calendarDate("dob")?.description == "1961-10-31" && row.string("ssn") == "SSN-4321")
            // A dry run changes nothing.
            let dry = try await CLITests.run(["migrate", "decrypt", "--config", file.path, "--table", "public.\(table)", "--column", "ssn", "--dry-run"],
                                             environment: Self.environment)
            #expect(dry.0 == 0 && dry.2.contains("dry run"), "\(dry.2)")
            #expect(try admin.execute("SELECT pg_catalog.format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'ssn'",
                                      [.text(table)]).string(row: 0, column: 0) == "bytea")
        }
    }
}
