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

/// Misuses of the connection API refused before anything is sent, and the connection left usable.
extension ProxyIntegration {
    @Suite struct RefusedBeforeSending {
        static func fixture() async throws -> (EncryptedDatabase, String, String) {
            let stack = try currentStack()
            let table = uniqueName("refuse")
            try ddl(stack, Proxy.customersTable(table))
            let (east, _) = try await openBoth(stack, tables: Proxy.customersConfig(table))
            return (east, table, stack.databaseURL(replica: false))
        }

        @Test("RETURNING an encrypted column without the row identity is refused before the write runs")
        func returningWithoutIdentity() async throws {
            let (east, table, _) = try await Self.fixture()
            try await onBlockingThread { () throws in
                let conn = try east.connect()
                let ssn = secret("RET")
                try conn.execute("INSERT INTO \(table) (id, name, ssn) VALUES (1, 'a', $1)", [.text(ssn)])
                let returning = #expect(throws: ProxyError.self) {
                    try conn.query("UPDATE \(table) SET ssn = $1 WHERE id = 1 RETURNING ssn", [.text(secret("OTHER"))])
                }
                #expect(returning?.code == .refused)
                #expect(try conn.query("SELECT id, ssn FROM \(table) WHERE id = 1").rows.first?.string("ssn") == ssn, "nothing was sent")
                #expect(try conn.query("UPDATE \(table) SET name = 'b' WHERE id = 1 RETURNING id, ssn").rows.first?.string("ssn") == ssn)
            }
        }

        @Test("a batch whose rows differ in shape is refused; a batch deallocates the statement it prepared")
        func batchShape() async throws {
            let (east, table, url) = try await Self.fixture()
            try await onBlockingThread { () throws in
                let conn = try east.connect()
                let ssn = secret("BATCH")
                let insert = "INSERT INTO \(table) (id, name, ssn) VALUES ($1, $2, $3)"
                #expect(throws: ProxyError.self) { try conn.batch(insert, [[.int(2), .text("x"), .text(ssn)], [.int(3), .text("y")]]) }
                try conn.batch(insert, [[.int(2), .text("x"), .text(ssn)], [.int(3), .text("y"), .text(ssn)]])
                #expect(try conn.query("SELECT count(*) AS n FROM pg_prepared_statements").rows.first?.int("n") == 0)
                #expect(try PostgresConnection(url).execute("SELECT count(*) FROM \(table)").string(row: 0, column: 0) == "2")
            }
        }

        @Test("a NUL in a text parameter is refused (PostgreSQL text cannot hold it; libpq would cut the value)")
        func nulInText() async throws {
            let (east, table, url) = try await Self.fixture()
            try await onBlockingThread { () throws in
                #expect(throws: ProxyError.self) { try east.connect().execute("INSERT INTO \(table) (id, name) VALUES (9, $1)", [.text("a\u{0}b")]) }
                #expect(try PostgresConnection(url).execute("SELECT count(*) FROM \(table)").string(row: 0, column: 0) == "0")
            }
        }

        @Test("COPY outside copyIn is ended and refused, and the connection is not left in COPY")
        func copyOutsideCopyIn() async throws {
            let (east, table, url) = try await Self.fixture()
            try await onBlockingThread { () throws in
                try PostgresConnection(url).execute("CREATE TABLE \(table)_audit (line text)")
                let conn = try east.connect()
                #expect(throws: ProxyError.self) { try conn.query("COPY \(table)_audit FROM STDIN") }
                #expect(try conn.query("SELECT 1 AS one").rows.first?.int("one") == 1)
            }
        }

        @Test("a prepared statement keeps its connection alive after the connection's variable is gone")
        func preparedStatementLifetime() async throws {
            let (east, table, url) = try await Self.fixture()
            try await onBlockingThread { () throws in
                let statement = try east.connect().prepare("INSERT INTO \(table) (id, name, ssn) VALUES ($1, $2, $3)", parameterCount: 3)
                try statement.execute([.int(1), .text("a"), .text(secret("PREP"))])
                try statement.execute([.int(2), .text("b"), .text(secret("PREP"))])
                #expect(try PostgresConnection(url).execute("SELECT count(*) FROM \(table)").string(row: 0, column: 0) == "2")
            }
        }
    }
}
