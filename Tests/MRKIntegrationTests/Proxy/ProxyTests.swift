import Foundation
import Logging
import MRKCluster
import MRKCrypto
@testable import MRKDevTools
import MRKKMS
@testable import MRKLocalKMS
import MRKPostgres
@testable import MRKProxy
import MRKSQL
import Testing

extension ProxyIntegration {
    @Suite struct Proxy {
        static func customersTable(_ name: String) -> String {
            """
            CREATE TABLE \(name) (id bigint PRIMARY KEY, name text NOT NULL, email text, ssn bytea, ssn_bidx bytea, dob bytea, notes bytea);
            CREATE INDEX ON \(name) (ssn_bidx);
            """
        }

        static func customersConfig(_ name: String, rowIdentity: Bool = true, extra: String = "") -> String {
            """
            tables:
              public.\(name):
            \(rowIdentity ? "    row_identity: id\n" : "")    columns:
                  ssn: { type: text, search: equality\(extra) }
                  dob: { type: date }
            """
        }

        @Test("seed scenario: insert in us-east-1 on the primary, decrypt in ap-southeast-2 from the replica; no plaintext in the table")
        func seedScenario() async throws {
            let stack = try currentStack()
            let table = uniqueName("customers")
            try ddl(stack, Self.customersTable(table))
            let keyspace = uniqueName("seed")
            let (east, south) = try await openBoth(stack, tables: Self.customersConfig(table), keyspace: keyspace)
            let ssns = [secret("SSN"), secret("SSN"), secret("SSN")]
            let writer = try east.connect()
            for (i, ssn) in ssns.enumerated() {
                try writer.execute("INSERT INTO \(table) (id, name, ssn, dob) VALUES ($1, $2, $3, $4)",
                                   [.int(i + 1), .text("Customer \(i + 1)"), .text(ssn), .text("1990-01-0\(i + 1)")])
            }
            let position = try writer.currentWALPosition()
            south.keystore.clearCache()
            stack.kms.resetAuditEvents()
            try south.waitForReplication(of: position)

            let reader = try south.connect()
            let rows = try reader.query("SELECT id, name, ssn, dob FROM \(table) ORDER BY id").rows
            #expect(rows.map { $0.string("ssn") } == ssns)
            #expect(rows.map { $0.calendarDate("dob")?.description } == ["1990-01-01", "1990-01-02", "1990-01-03"])
            let found = try reader.query("SELECT name FROM \(table) WHERE ssn = $1", [.text(ssns[1])])
            #expect(found.rows.map { $0.string("name") } == ["Customer 2"])

            // Decrypted by the replica key in ap-southeast-2; no call to us-east-1.
            let calls = stack.kms.auditEvents().filter { $0.encryptionContext?["mrkproxy:keyspace"] == keyspace }
            #expect(!calls.isEmpty)
            #expect(calls.allSatisfy { $0.region == "ap-southeast-2" && $0.operation == "Decrypt" })

            // What a DB admin sees: ciphertext only.
            let raw = try PostgresConnection(stack.databaseURL(replica: true))
                .execute("SELECT ssn, dob, ssn_bidx FROM \(table)", resultFormat: .binary)
            for row in raw.rows {
                let sealed = try #require(row.bytes(0))
                #expect(sealed.count == ssns[0].utf8.count + CompactEnvelope.overheadByteCount)
                #expect(ssns.allSatisfy { !sealed.containsSubsequence(Array($0.utf8)) })
                #expect(row.bytes(2)?.count == 32)
            }
        }

        @Test("every supported type round-trips through encryption, from parameters and from literals")
        func typesRoundTrip() async throws {
            let stack = try currentStack()
            let table = uniqueName("types")
            let types = ColumnValueType.allCases
            try ddl(stack, "CREATE TABLE \(table) (id int PRIMARY KEY, " + types.map { "c_\($0.rawValue) bytea" }.joined(separator: ", ") + ")")
            let plainConfig = "tables:\n  public.\(table):\n    row_identity: id\n    columns:\n"
                + types.map { "      c_\($0.rawValue): { type: \($0.rawValue) }" }.joined(separator: "\n")
            let (east, south) = try await openBoth(stack, tables: plainConfig)
            let when = try #require(SQLTimestamp(microsecondsSince1970: 1_700_000_000_123_456))
            let uuid = UUID()
            let values: [ColumnValueType: SQLValue] = [
                .text: .text(secret("TXT") + " ünïcødé"), .int2: .int(-32768), .int4: .int(2_147_483_647), .int8: .int(Int.min),
                .numeric: .numeric(SQLNumeric("12345678901234567890.000123")!), .float4: .float(1.5), .float8: .double(-0.1),
                .bool: .bool(true), .date: .date(SQLDate("2024-02-29")!), .timestamp: .timestamp(when),
                .timestamptz: .timestamptz(when), .uuid: .uuid(uuid), .bytea: .bytes([0, 1, 2, 255]), .json: .json("{\"a\": [1, 2]}"),
                .jsonb: .json("{\"b\": null}"),
            ]
            let writer = try east.connect()
            let columns = types.map { "c_\($0.rawValue)" }.joined(separator: ", ")
            let placeholders = (2...(types.count + 1)).map { "$\($0)" }.joined(separator: ", ")
            try writer.execute("INSERT INTO \(table) (id, \(columns)) VALUES ($1, \(placeholders))", [.int(1)] + types.map { values[$0]! })
            // Literals in the SQL are lifted into parameters and encrypted too.
            let literalSSN = secret("LIT")
            try writer.execute("""
                INSERT INTO \(table) (id, c_text, c_int4, c_date, c_bool, c_numeric, c_uuid)
                VALUES (2, '\(literalSSN)', 42, DATE '1999-12-31', TRUE, 3.25, '\(uuid.uuidString)')
                """)
            try south.waitForReplication(of: try writer.currentWALPosition())
            let rows = try south.connect().query("SELECT * FROM \(table) ORDER BY id").rows
            for type in types {
                #expect(rows[0]["c_\(type.rawValue)"] == values[type]!, "\(type)")
            }
            #expect(rows[1]["c_text"] == .text(literalSSN))
            #expect(rows[1]["c_int4"] == .int(42))
            #expect(rows[1].calendarDate("c_date")?.description == "1999-12-31")
            #expect(rows[1]["c_bool"] == .bool(true))
            #expect(rows[1]["c_numeric"] == .numeric(SQLNumeric("3.25")!))
            #expect(rows[1]["c_uuid"] == .uuid(uuid))
            #expect(rows[1]["c_json"] == .null)
            // A value of the wrong type is refused before anything is sent.
            let error = try #require(throws: ProxyError.self) {
                try writer.execute("INSERT INTO \(table) (id, c_int2) VALUES (3, $1)", [.int(70_000)])
            }
            #expect(error.code == .invalidValue && error.description.contains("c_int2"))
        }

        @Test("equality search: =, IN, <>, IS NULL, in SELECT, UPDATE and DELETE")
        func searchableEquality() async throws {
            let stack = try currentStack()
            let table = uniqueName("search")
            try ddl(stack, Self.customersTable(table))
            let (east, _) = try await openBoth(stack, tables: Self.customersConfig(table))
            let conn = try east.connect()
            let ssns = (1...6).map { _ in secret("EQ") }
            try conn.batch("INSERT INTO \(table) (id, name, ssn) VALUES ($1, $2, $3)",
                           ssns.enumerated().map { [.int($0.offset + 1), .text("n\($0.offset + 1)"), .text($0.element)] })
            try conn.execute("INSERT INTO \(table) (id, name, ssn) VALUES (7, 'no ssn', NULL)")
            func ids(_ sql: String, _ values: [SQLValue] = []) throws -> [Int] {
                try conn.query(sql, values).rows.compactMap { $0.int("id") }.sorted()
            }
            #expect(try ids("SELECT id FROM \(table) WHERE ssn = $1", [.text(ssns[2])]) == [3])
            #expect(try ids("SELECT id FROM \(table) WHERE ssn = '\(ssns[3])'") == [4])
            #expect(try ids("SELECT id FROM \(table) WHERE $1 = ssn", [.text(ssns[0])]) == [1])
            #expect(try ids("SELECT id FROM \(table) WHERE ssn IN ($1, '\(ssns[4])')", [.text(ssns[1])]) == [2, 5])
            #expect(try ids("SELECT id FROM \(table) WHERE ssn <> $1", [.text(ssns[0])]) == [2, 3, 4, 5, 6])
            #expect(try ids("SELECT id FROM \(table) WHERE ssn IS NULL") == [7])
            #expect(try ids("SELECT id FROM \(table) c WHERE c.ssn = $1 AND c.id > $2", [.text(ssns[5]), .int(1)]) == [6])
            #expect(try conn.execute("UPDATE \(table) SET name = 'changed' WHERE ssn = $1", [.text(ssns[5])]) == 1)
            #expect(try conn.execute("DELETE FROM \(table) WHERE ssn = $1", [.text(ssns[4])]) == 1)
            // Updating the searchable column updates its blind index.
            let newSSN = secret("EQ")
            #expect(try conn.execute("UPDATE \(table) SET ssn = $1 WHERE id = $2", [.text(newSSN), .int(1)]) == 1)
            #expect(try ids("SELECT id FROM \(table) WHERE ssn = $1", [.text(newSSN)]) == [1])
            #expect(try ids("SELECT id FROM \(table) WHERE ssn = $1", [.text(ssns[0])]) == [])
        }

        @Test("a truncated blind index finds exactly the matching rows (false positives removed after decryption)")
        func truncatedIndex() async throws {
            let stack = try currentStack()
            let table = uniqueName("trunc")
            try ddl(stack, Self.customersTable(table))
            let (east, _) = try await openBoth(stack, tables: Self.customersConfig(table, extra: ", index_bits: 16"))
            let conn = try east.connect()
            let values = (1...3000).map { "T-\($0)" }
            try conn.copyIn(into: table, columns: ["id", "name", "ssn"], rows: values.enumerated().map { [.int($0.offset + 1), .text("n"), .text($0.element)] })
            let raw = try PostgresConnection(stack.databaseURL(replica: false)).execute("SELECT ssn_bidx FROM \(table) LIMIT 1", resultFormat: .binary)
            #expect(raw.bytes(row: 0, column: 0)?.count == 2)
            for probe in ["T-1", "T-777", "T-2999"] {
                let rows = try conn.query("SELECT id, ssn FROM \(table) WHERE ssn = $1", [.text(probe)]).rows
                #expect(rows.map { $0.string("ssn") } == [probe])
            }
            // With 3000 values and 2^16 index values some searches collide on the index: the
            // candidates the server returns are more than the matches (proves the filter works).
            let collisions = try PostgresConnection(stack.databaseURL(replica: false))
                .execute("SELECT min(id) FROM \(table) GROUP BY ssn_bidx HAVING count(*) > 1")
            #expect(collisions.rowCount > 0)
            for row in collisions.rows.prefix(5) {
                // The server returns every row sharing the index value; only the true match comes back.
                let probe = "T-\(row.string(0)!)"
                let found = try conn.query("SELECT id, ssn FROM \(table) WHERE ssn = $1", [.text(probe)])
                #expect(found.rows.map { $0.string("ssn") } == [probe])
                #expect(found.affectedRows == 1)
            }
        }

        @Test("swapping two rows' ciphertexts fails with an integrity error; copying ssn into dob always fails")
        func integrity() async throws {
            let stack = try currentStack()
            let bound = uniqueName("bound"), unbound = uniqueName("unbound")
            try ddl(stack, Self.customersTable(bound) + Self.customersTable(unbound))
            let (east, _) = try await openBoth(stack, tables: Self.customersConfig(bound) + "\n" + Self.customersConfig(unbound, rowIdentity: false)
                .replacingOccurrences(of: "tables:\n", with: ""))
            let conn = try east.connect()
            for table in [bound, unbound] {
                try conn.execute("INSERT INTO \(table) (id, name, ssn, dob) VALUES (1, 'a', $1, '2000-01-01'), (2, 'b', $2, '2000-01-02')",
                                 [.text(secret("INT")), .text(secret("INT"))])
            }
            let admin = try PostgresConnection(stack.databaseURL(replica: false))
            try admin.execute("""
                UPDATE \(bound) SET ssn = CASE id WHEN 1 THEN (SELECT ssn FROM \(bound) WHERE id = 2) ELSE (SELECT ssn FROM \(bound) WHERE id = 1) END
                """)
            let swapped = try #require(throws: ProxyError.self) { try conn.query("SELECT id, ssn FROM \(bound)") }
            #expect(swapped.code == .integrity)
            #expect(swapped.description.contains("ssn"))
            for table in [bound, unbound] {
                try admin.execute("UPDATE \(table) SET dob = ssn WHERE id = 1")
                let moved = try #require(throws: ProxyError.self) { try conn.query("SELECT id, dob FROM \(table) WHERE id = 1") }
                #expect(moved.code == .integrity && moved.description.contains("dob"))
            }
            // Rows not tampered with still read.
            #expect(try conn.query("SELECT id, dob FROM \(unbound) WHERE id = 2").rows.first?.date("dob") != nil)
        }

        @Test("a write in the read-only region is refused before anything is encrypted or sent")
        func readOnlyRegion() async throws {
            let stack = try currentStack()
            let table = uniqueName("ro")
            try ddl(stack, Self.customersTable(table))
            let (_, south) = try await openBoth(stack, tables: Self.customersConfig(table))
            let marker = secret("RO")
            let conn = try south.connect()
            for sql in ["INSERT INTO \(table) (id, name, ssn) VALUES (1, 'x', '\(marker)')",
                        "UPDATE \(table) SET name = '\(marker)' WHERE id = 1",
                        "DELETE FROM \(table) WHERE name = '\(marker)'",
                        "SELECT * FROM \(table) WHERE name = '\(marker)' FOR UPDATE"] {
                let error = try #require(throws: ProxyError.self) { try conn.execute(sql) }
                #expect(error.code == .readOnlyRegion)
                #expect(error.description.contains("us-east-1"))
            }
            let log = try String(contentsOfFile: try #require(stack.cluster.logFile(replica: true)), encoding: .utf8)
            #expect(!log.contains(marker))
            // Reads work there.
            #expect(try conn.query("SELECT count(*) FROM \(table)").rows.first?.int("count") == 0)
        }

        @Test("library API: RETURNING, SELECT *, joins with aliases, prepared statements, transactions, batch, COPY, streaming, async pool")
        func apiSurface() async throws {
            let stack = try currentStack()
            let table = uniqueName("api")
            try ddl(stack, Self.customersTable(table) + "CREATE TABLE \(table)_orders (id int PRIMARY KEY, customer_id bigint, total numeric);")
            let (east, south) = try await openBoth(stack, tables: Self.customersConfig(table))
            let conn = try east.connect()
            let a = secret("API"), b = secret("API")
            let returned = try conn.query("INSERT INTO \(table) (id, name, ssn, dob) VALUES ($1, $2, $3, $4) RETURNING id, ssn AS s, dob",
                                          [.int(1), .text("Ada"), .text(a), .date(SQLDate("1815-12-10")!)])
            #expect(returned.rows.first?["s"] == .text(a))
            try conn.execute("INSERT INTO \(table)_orders VALUES (10, 1, 9.5)")
            let star = try conn.query("SELECT * FROM \(table)")
            #expect(star.rows.first?["ssn"] == .text(a) && star.columns.contains("ssn_bidx"))
            let joined = try conn.query("SELECT o.total, c.ssn AS secret, c.id FROM \(table)_orders o JOIN \(table) AS c ON c.id = o.customer_id")
            #expect(joined.rows.first?["secret"] == .text(a))
            #expect(joined.rows.first?["total"] == .decimal(Decimal(string: "9.5")!))

            let prepared = try conn.prepare("SELECT name FROM \(table) WHERE ssn = $1", parameterCount: 1)
            #expect(try prepared.query([.text(a)]).rows.first?.string("name") == "Ada")

            let rolledBack = #expect(throws: ProxyError.self) {
                try conn.transaction { (tx) throws(ProxyError) in
                    try tx.execute("INSERT INTO \(table) (id, name, ssn) VALUES (2, 'rolled back', $1)", [.text(b)])
                    throw ProxyError.rollback("boom")
                }
            }
            #expect(rolledBack?.code == .cancelled)
            #expect(try conn.query("SELECT id FROM \(table) WHERE id = 2").rows.isEmpty)

            let inserted = try conn.batch("INSERT INTO \(table) (id, name, ssn) VALUES ($1, $2, $3)",
                                          (100..<600).map { [.int($0), .text("batch"), .text("B-\($0)")] })
            #expect(inserted == 500)
            let copied = try conn.copyIn(into: table, columns: ["id", "name", "ssn", "dob"],
                                         rows: (1000..<6000).map { [.int($0), .text("copy\t\"x\""), .text("C-\($0)"), .text("2001-02-03")] })
            #expect(copied == 5000)
            // A result this large is decrypted on several threads; order and values must hold.
            let all = try conn.query("SELECT id, ssn, dob FROM \(table) WHERE id >= 1000 ORDER BY id")
            #expect(all.rows.count == 5000)
            #expect(all.rows.enumerated().allSatisfy { $0.element.int("id") == 1000 + $0.offset && $0.element.string("ssn") == "C-\(1000 + $0.offset)" })
            #expect(try conn.query("SELECT id, name FROM \(table) WHERE ssn = 'C-1500'").rows.first?.string("name") == "copy\t\"x\"")
            var streamed = 0, matched = 0
            try conn.stream("SELECT id, ssn FROM \(table) WHERE id >= $1", [.int(1000)]) { row in
                streamed += 1
                if row.string("ssn") == "C-\(row.int("id")!)" { matched += 1 }
            }
            #expect(streamed == 5000 && matched == 5000)

            // Async pool in the replica region.
            try south.waitForReplication(of: try conn.currentWALPosition())
            let pool = EncryptedConnectionPool(database: south, maxConnections: 3)
            let counts = try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<12 {
                    group.addTask { try await pool.query("SELECT id FROM \(table) WHERE ssn = $1", [.text("B-\(100 + i)")]).rows.count }
                }
                return try await group.reduce(0, +)
            }
            #expect(counts == 12)
        }

        @Test("connect-time checks name what is wrong")
        func connectChecks() async throws {
            let stack = try currentStack()
            let table = uniqueName("chk")
            try ddl(stack, "CREATE TABLE \(table) (id int PRIMARY KEY, ssn text, dob bytea, notes bytea)")
            func openError(_ tables: String, region: String = "us-east-1") async throws -> ProxyError {
                let config = try proxyConfiguration(stack, region: region, tables: tables)
                return try await #require(throws: ProxyError.self) {
                    _ = try await EncryptedDatabase.open(configuration: config, region: region, kms: stack.kmsClient(region: region))
                }
            }
            var error = try await openError("tables:\n  public.\(table):\n    columns:\n      ssn: { type: text }")
            #expect(error.code == .schemaMismatch && error.description.contains("\(table).ssn is text"))
            error = try await openError("tables:\n  public.\(table):\n    columns:\n      missing: { type: text }")
            #expect(error.code == .schemaMismatch && error.description.contains("does not exist"))
            error = try await openError("tables:\n  public.\(table):\n    columns:\n      dob: { type: date, search: equality }")
            #expect(error.code == .schemaMismatch && error.description.contains("dob_bidx"))
            error = try await openError("tables:\n  public.nope_\(table):\n    columns:\n      dob: { type: date }")
            #expect(error.code == .schemaMismatch && error.description.contains("does not exist"))

            // A replica key disabled in ap-southeast-2 only.
            let key = try stack.kms.createKey(multiRegion: true)
            _ = try stack.kms.replicateKey(keyId: key.keyId, replicaRegion: "ap-southeast-2")
            let yaml = stack.configurationYAML(region: "ap-southeast-2", tables: "tables:\n  public.\(table):\n    columns:\n      dob: { type: date }")
                .replacingOccurrences(of: stack.keyID, with: key.keyId)
            var disabled = try ProxyConfiguration.parse(yaml)
            disabled.keyspace = uniqueName("disabled")
            try await BranchKeyStore(databaseURL: stack.databaseURL(replica: false), kms: stack.kmsClient(region: "us-east-1"),
                                     kmsKeyARN: try disabled.keyARN(in: "us-east-1")).create(keyspace: disabled.keyspace)
            try stack.cluster.waitForReplication()
            try stack.kms.inRegion("ap-southeast-2").disableKey(keyId: key.keyId)
            error = try await #require(throws: ProxyError.self) {
                _ = try await EncryptedDatabase.open(configuration: disabled, region: "ap-southeast-2", kms: stack.kmsClient(region: "ap-southeast-2"))
            }
            #expect(error.code == .kmsKey && error.description.contains("disabled") && error.description.contains("ap-southeast-2"))
        }
    }
}
