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

/// The database as an adversary with admin rights: what it can do to the tables, the session and
/// the values must never make the app return a value it did not write, trap, or seal under a key
/// the app would not choose. Each test is one of the attacks of issue #9, generalised.
extension ProxyIntegration {
    @Suite struct DatabaseAdversary {
        /// A table with ids 1 and 2 written through MRKProxy; returns its name, the databases and the SSNs.
        static func seeded(_ stack: LocalStack, prefix: String, config: (String) -> String = { Proxy.customersConfig($0) })
            async throws -> (table: String, east: EncryptedDatabase, south: EncryptedDatabase, ssns: [String]) {
            let table = uniqueName(prefix)
            try ddl(stack, Proxy.customersTable(table))
            let (east, south) = try await openBoth(stack, tables: config(table), keyspace: uniqueName("ks"))
            let ssns = [secret("ADV"), secret("ADV")]
            try await onBlockingThread {
                let conn = try east.connect()
                try conn.execute("INSERT INTO \(table) (id, name, ssn, dob) VALUES (1, 'Ada', $1, '1815-12-10'), (2, 'Grace', $2, '1906-12-09')",
                                 [.text(ssns[0]), .text(ssns[1])])
                try south.waitForReplication(of: try conn.currentWALPosition())
            }
            return (table, east, south, ssns)
        }

        static func admin(_ stack: LocalStack) throws -> PostgresConnection {
            try PostgresConnection(stack.databaseURL(replica: false))
        }

        @Test("a relation shadowing a configured table through search_path (the role's default, or set in the session) is never read")
        func shadowTable() async throws {
            let stack = try currentStack()
            let (table, east, _, ssns) = try await Self.seeded(stack, prefix: "shadow")
            let admin = try Self.admin(stack)
            let role = try #require(admin.execute("SELECT current_user").string(row: 0, column: 0))
            let schema = uniqueName("shadow")
            try admin.executeScript("""
                CREATE SCHEMA \(schema);
                CREATE TABLE \(schema).\(table) (id bigint primary key, name text, ssn text, ssn_bidx bytea, dob text);
                INSERT INTO \(schema).\(table) SELECT id, name, 'FORGED-' || id, ssn_bidx, 'FORGED' FROM public.\(table);
                ALTER ROLE \(role) SET search_path = \(schema), public;
                """)
            defer { _ = try? admin.execute("ALTER ROLE \(role) RESET search_path") }
            // A new process (a new database and connection) of the app, whose sessions now start
            // with the shadow schema first.
            var config = east.configuration
            config.region = "us-east-1"
            let fresh = try await EncryptedDatabase.open(configuration: config, region: "us-east-1", kms: stack.kmsClient(region: "us-east-1"))
            let rows = try await onBlockingThread { () throws -> [SQLValue] in
                let conn = try fresh.connect()
                let plainView = try PostgresConnection(stack.databaseURL(replica: false))
                #expect(try plainView.execute("SELECT ssn FROM \(table) WHERE id = 2").string(row: 0, column: 0) == "FORGED-2",
                        "an unqualified name reaches the shadow table in these sessions")
                let byID = try conn.query("SELECT id, ssn, dob FROM \(table) WHERE id = 2").rows
                let bySSN = try conn.query("SELECT id, ssn FROM \(table) WHERE ssn = $1", [.text(ssns[0])]).rows
                let star = try conn.query("SELECT * FROM \(table) ORDER BY id").rows
                // A function the server runs can change search_path mid-session, too.
                _ = try conn.query("SELECT set_config('search_path', $1, false)", [.text("\(schema), public")])
                let afterSet = try conn.query("SELECT id, ssn FROM \(table) WHERE id = 1").rows
                return [byID.first?["ssn"] ?? .null, byID.first?["dob"] ?? .null, bySSN.first?["ssn"] ?? .null,
                        star.last?["ssn"] ?? .null, afterSet.first?["ssn"] ?? .null]
            }
            #expect(rows == [.text(ssns[1]), .date(SQLDate("1906-12-09")!), .text(ssns[0]), .text(ssns[1]), .text(ssns[0])])
        }

        @Test("a configured column renamed away and replaced by a plaintext column is an integrity error, in the running process")
        func renamedAndReplaced() async throws {
            let stack = try currentStack()
            let (table, east, _, ssns) = try await Self.seeded(stack, prefix: "renamed")
            let conn = try east.connect()
            #expect(try conn.query("SELECT id, ssn FROM \(table) WHERE id = 2").rows.first?.string("ssn") == ssns[1])
            try Self.admin(stack).executeScript("""
                ALTER TABLE \(table) RENAME COLUMN ssn TO ssn_old;
                ALTER TABLE \(table) ADD COLUMN ssn text;
                UPDATE \(table) SET ssn = '999-99-9999';
                """)
            for (sql, values) in [("SELECT id, ssn FROM \(table) WHERE id = 2", [SQLValue]()),
                                  ("SELECT id, ssn FROM \(table) WHERE ssn = $1", [.text(ssns[0])]),
                                  ("SELECT * FROM \(table)", []),
                                  ("SELECT c.id, c.ssn AS s FROM \(table) c", [])] {
                let error = #expect(throws: ProxyError.self, "\(sql)") { try conn.query(sql, values) }
                #expect(error?.code == .integrity, "\(sql): \(String(describing: error))")
                #expect(error?.description.contains("999-99-9999") == false)
            }
        }

        @Test("ciphertext replaced by other bytes, or by plaintext bytes in a bytea column, never reads as a value")
        func plaintextInBytea() async throws {
            let stack = try currentStack()
            let (table, east, _, _) = try await Self.seeded(stack, prefix: "bytes")
            try Self.admin(stack).executeScript("""
                ALTER TABLE \(table) RENAME COLUMN ssn TO ssn_old;
                ALTER TABLE \(table) ADD COLUMN ssn bytea;
                UPDATE \(table) SET ssn = convert_to('FORGED-' || id, 'UTF8');
                """)
            let conn = try east.connect()
            let error = #expect(throws: ProxyError.self) { try conn.query("SELECT id, ssn FROM \(table) ORDER BY id") }
            #expect(error?.code == .integrity)
        }

        @Test("a legitimate schema change (the column rebuilt with its ciphertexts) is picked up without a restart")
        func legitimateRebuild() async throws {
            let stack = try currentStack()
            let (table, east, _, ssns) = try await Self.seeded(stack, prefix: "rebuilt")
            let conn = try east.connect()
            #expect(try conn.query("SELECT id, ssn FROM \(table) WHERE id = 1").rows.first?.string("ssn") == ssns[0])
            try Self.admin(stack).executeScript("""
                ALTER TABLE \(table) ADD COLUMN ssn_new bytea;
                UPDATE \(table) SET ssn_new = ssn;
                ALTER TABLE \(table) DROP COLUMN ssn;
                ALTER TABLE \(table) RENAME COLUMN ssn_new TO ssn;
                """)
            let rows = try conn.query("SELECT * FROM \(table) ORDER BY id").rows
            #expect(rows.map { $0.string("ssn") } == ssns, "the same values, read through the new attribute")
        }

        @Test("a plain column named like an encrypted one in the same result cannot stand in for it")
        func shadowedName() async throws {
            let stack = try currentStack()
            let (table, east, _, ssns) = try await Self.seeded(stack, prefix: "named")
            let other = uniqueName("other")
            try ddl(stack, "CREATE TABLE \(other) (cid bigint, ssn text); INSERT INTO \(other) VALUES (1, 'FORGED')")
            let conn = try east.connect()
            let row = try #require(conn.query("SELECT * FROM \(other) o JOIN \(table) c ON c.id = o.cid").rows.first)
            #expect(row.columns.filter { $0 == "ssn" }.count == 2)
            #expect(row.string("ssn") == ssns[0], "the decrypted column wins the name")
        }

        @Test("values PostgreSQL accepts at the edges of their ranges round-trip, and none traps the process")
        func poisonValues() async throws {
            let stack = try currentStack()
            let table = uniqueName("poison")
            try ddl(stack, "CREATE TABLE \(table) (id int PRIMARY KEY, tz bytea, d bytea, plain_d date)")
            let (east, _) = try await openBoth(stack, tables: """
                tables:
                  public.\(table):
                    row_identity: id
                    columns:
                      tz: { type: timestamptz }
                      d: { type: date }
                """)
            try await onBlockingThread {
                let conn = try east.connect()
                for (sql, values) in [("INSERT INTO \(table) (id, tz) VALUES (1, '2020-01-01 00:00:00+9999999999999999')", [SQLValue]()),
                                      ("INSERT INTO \(table) (id, tz) VALUES (1, $1)", [.text("2020-01-01 00:00:00+9999999999999999")])] {
                    let error = #expect(throws: ProxyError.self) { try conn.execute(sql, values) }
                    #expect(error?.code == .invalidValue)
                }
                try conn.execute("INSERT INTO \(table) (id, d, tz, plain_d) VALUES (130, '5874897-12-31', '294276-12-31 23:59:59.999999+00', '5874897-12-31')")
                try conn.execute("INSERT INTO \(table) (id, d, tz, plain_d) VALUES (131, $1, $2, $3)",
                                 [.text("4714-11-24 BC"), .text("4714-11-24 00:00:00 BC"), .text("-infinity")])
                let rows = try conn.query("SELECT id, d, tz, plain_d FROM \(table) ORDER BY id").rows
                #expect(rows.map { $0.string("d") } == ["5874897-12-31", "4714-11-24 BC"])
                #expect(rows.map { $0.string("tz") } == ["294276-12-31 23:59:59.999999+00", "4714-11-24 00:00:00+00 BC"])
                #expect(rows.map { $0.string("plain_d") } == ["5874897-12-31", "-infinity"])
                // The largest date PostgreSQL has, read from a plain date column the library did not write.
                #expect(try conn.query("SELECT '5874897-12-31'::date AS d").rows.first?["d"] == .date(SQLDate("5874897-12-31")!))
            }
        }

        @Test("after a rotation, flipping the keystore's active flag back or deleting the newest version never makes new values seal under v1")
        func keystoreRollback() async throws {
            let stack = try currentStack()
            let (table, east, _, _) = try await Self.seeded(stack, prefix: "rollback")
            let keyspace = east.configuration.keyspace
            let version = try await east.keystore.rotate(keyspace: keyspace)
            #expect(version == 2)
            let admin = try Self.admin(stack)
            func sealedVersions() throws -> [UInt32] {
                try admin.execute("SELECT ssn FROM \(table) WHERE id >= 10 ORDER BY id", resultFormat: .binary).rows.map { row in
                    let bytes = row.bytes(0)!
                    return try CompactEnvelope.header(of: bytes).keyID.version
                }
            }
            // The flag flipped back: still v2 (the highest).
            try admin.executeScript("""
                UPDATE mrkproxy_keystore SET state = 'decrypt_only' WHERE keyspace = '\(keyspace)' AND version = 2;
                UPDATE mrkproxy_keystore SET state = 'active' WHERE keyspace = '\(keyspace)' AND version = 1;
                """)
            let fresh = try await EncryptedDatabase.open(configuration: east.configuration, region: "us-east-1", kms: stack.kmsClient(region: "us-east-1"))
            try fresh.connect().execute("INSERT INTO \(table) (id, name, ssn) VALUES (10, 'x', $1)", [.text(secret("RB"))])
            #expect(try sealedVersions() == [2])
            // The newest version deleted: a process that has seen v2 refuses to seal at all.
            let wrapped = try admin.execute("SELECT wrapped_key FROM mrkproxy_keystore WHERE keyspace = $1 AND version = 2", [.text(keyspace)])
            #expect(wrapped.rowCount == 1)
            try admin.execute("DELETE FROM mrkproxy_keystore WHERE keyspace = $1 AND version = 2", [.text(keyspace)])
            // `fresh` has seen v2: when it reads the keystore again it refuses to seal.
            let error = #expect(throws: ProxyError.self) { try fresh.keystore.sealingVersion(keyspace: keyspace) }
            #expect(error?.code == .keystore)
            #expect(error?.reason.contains("rolled back") == true)
            #expect(try sealedVersions() == [2])
        }

        @Test("ESDK values are bound to their keyspace: one copied from another tenant's row does not decrypt")
        func esdkKeyspace() async throws {
            let stack = try currentStack()
            let table = uniqueName("tenants")
            try ddl(stack, "CREATE TABLE \(table) (id int PRIMARY KEY, tenant text, notes bytea)")
            let tables = """
                tables:
                  public.\(table):
                    columns:
                      notes: { type: text, format: esdk }
                """
            let (tenantA, _) = try await openBoth(stack, tables: tables, keyspace: uniqueName("tenanta"))
            let (tenantB, _) = try await openBoth(stack, tables: tables, keyspace: uniqueName("tenantb"))
            let secretB = secret("TENANTB")
            try await onBlockingThread {
                try tenantB.connect().execute("INSERT INTO \(table) (id, tenant, notes) VALUES (2, 'b', $1)", [.text(secretB)])
                try tenantA.connect().execute("INSERT INTO \(table) (id, tenant, notes) VALUES (1, 'a', $1)", [.text(secret("TENANTA"))])
                try Self.admin(stack).execute("UPDATE \(table) SET notes = (SELECT notes FROM \(table) WHERE id = 2) WHERE id = 1")
                let error = #expect(throws: ProxyError.self) { try tenantA.connect().query("SELECT id, notes FROM \(table) WHERE id = 1") }
                #expect(error?.code == .integrity)
                #expect(try tenantB.connect().query("SELECT id, notes FROM \(table) WHERE id = 2").rows.first?.string("notes") == secretB)
            }
        }

        @Test("a statement filtered on a truncated blind index cannot call functions that could act on false positives")
        func sideEffectsOnFalsePositives() async throws {
            let stack = try currentStack()
            let table = uniqueName("touch")
            try ddl(stack, """
                CREATE TABLE \(table) (id int PRIMARY KEY, tx bytea, tx_bidx bytea, touched int DEFAULT 0);
                CREATE FUNCTION \(table)_touch(i int) RETURNS int LANGUAGE sql AS 'UPDATE \(table) SET touched = touched + 1 WHERE id = i RETURNING id';
                """)
            let (east, _) = try await openBoth(stack, tables: """
                tables:
                  public.\(table):
                    columns:
                      tx: { type: text, search: equality, index_bits: 16 }
                """)
            try await onBlockingThread {
                let conn = try east.connect()
                try conn.batch("INSERT INTO \(table) (id, tx) VALUES ($1, $2)", (1...400).map { [.int($0), .text("k\($0)")] })
                let error = #expect(throws: ProxyError.self) { try conn.query("SELECT id, \(table)_touch(id) FROM \(table) WHERE tx = 'k82'") }
                #expect(error?.code == .refused)
                #expect(error?.refusal?.construct.contains("\(table)_touch") == true)
                #expect(try Self.admin(stack).execute("SELECT count(*) FROM \(table) WHERE touched > 0").string(row: 0, column: 0) == "0")
                // Built-ins without side effects are fine, and the false positives are removed.
                let rows = try conn.query("SELECT id, upper('x') AS u, lower('X') AS l FROM \(table) WHERE tx = 'k82'").rows
                #expect(rows.map { $0.int("id") } == [82])
            }
        }

        @Test("the tokenizer and the server read the same statement: client_encoding, NUL bytes, UESCAPE forms, invalid UTF-8")
        func sameStatement() async throws {
            let stack = try currentStack()
            let (table, east, _, ssns) = try await Self.seeded(stack, prefix: "lexer")
            try await onBlockingThread {
                let conn = try east.connect()
                // NUL: libpq would send only the text before it (an UPDATE without its WHERE).
                let nul = #expect(throws: ProxyError.self) {
                    try conn.execute("UPDATE \(table) SET dob = '1999-09-09' --\u{0}\nWHERE id = 1")
                }
                #expect(nul?.code == .refused)
                #expect(try conn.query("SELECT id, dob FROM \(table) ORDER BY id").rows.map { $0.string("dob") } == ["1815-12-10", "1906-12-09"])
                // U&"…" spellings of the table name are analysed like the name: the value is encrypted.
                let unicodeSSN = secret("UNI")
                try conn.execute("INSERT INTO U&\"" + Self.escaped(table) + "\" (id, name, ssn) VALUES (3, 'U', $1)", [.text(unicodeSSN)])
                let raw = try Self.admin(stack).execute("SELECT ssn FROM \(table) WHERE id = 3").string(row: 0, column: 0) ?? ""
                #expect(!raw.contains(unicodeSSN))
                #expect(try conn.query("SELECT id, ssn FROM \(table) WHERE id = 3").rows.first?.string("ssn") == unicodeSSN)
                // UESCAPE with a dollar-quoted or escape string is read as PostgreSQL reads it.
                #expect(try conn.query("SELECT U&'x!0041' UESCAPE $$!$$ AS a, U&'y!0042' UESCAPE E'!' AS b").rows.first?.string("a") == "xA")
                // Escapes that make invalid UTF-8 or NUL are refused, as PostgreSQL refuses them.
                for literal in [#"E'A\xffB'"#, #"E'A\400B'"#] {
                    let error = #expect(throws: ProxyError.self) { try conn.execute("INSERT INTO \(table) (id, name, ssn) VALUES (4, 'x', \(literal))") }
                    #expect(error?.code == .refused)
                }
                // client_encoding changed in the session: nothing is sent until it is UTF8 again.
                try conn.execute("SET client_encoding TO 'GBK'")
                let gbk = #expect(throws: ProxyError.self) {
                    try conn.query("SELECT id, name FROM \(table) WHERE name = E'ぁ\\' OR ssn = $$\(secret("SECGBK"))$$ --'")
                }
                #expect(gbk?.code == .refused)
                #expect(gbk?.reason.contains("client_encoding") == true)
                #expect(ssns.count == 2)
            }
        }

        /// `name` with its first letter written as a `\XXXX` escape.
        static func escaped(_ name: String) -> String {
            let first = name.unicodeScalars.first!
            return String(format: "\\%04x", first.value) + String(name.dropFirst())
        }
    }
}
