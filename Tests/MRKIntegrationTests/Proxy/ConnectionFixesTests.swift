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
    /// Connection-level behaviour a connection-layer review asked for: nothing reported committed
    /// that was not, nothing left open for the next borrower, nothing run before a refusal.
    @Suite struct ConnectionBehaviour {
        @Test("transactions: an aborted one is reported, nested ones are savepoints; the pool resets what a borrower left open")
        func transactionsAndPool() async throws {
            let stack = try currentStack()
            let table = uniqueName("txn")
            try ddl(stack, Proxy.customersTable(table))
            let (east, _) = try await openBoth(stack, tables: Proxy.customersConfig(table))
            let insert = "INSERT INTO \(table) (id, name, ssn) VALUES ($1, 'n', $2)"
            let url = stack.databaseURL(replica: false)
            @Sendable func count() throws -> String? {
                try PostgresConnection(url).execute("SELECT count(*) FROM \(table)").string(row: 0, column: 0)
            }

            try await onBlockingThread { () throws in
                let raw = try PostgresConnection(url)
                let conn = try east.connect()
                // A failed statement whose error the body caught: COMMIT would silently roll back.
                let aborted = #expect(throws: ProxyError.self) {
                    try conn.transaction { (c) throws(ProxyError) in
                        try c.execute(insert, [.int(1), .text(secret("TXN"))])
                        _ = try? c.execute(insert, [.int(1), .text(secret("TXN"))])  // duplicate key, caught
                    }
                }
                #expect(aborted?.description.contains("rolled back") == true)
                #expect(try count() == "0")

                // Nested: the inner block is a savepoint; its failure leaves the outer work in place.
                try conn.transaction { (c) throws(ProxyError) in
                    try c.execute(insert, [.int(2), .text(secret("TXN"))])
                    #expect(throws: ProxyError.self) {
                        try c.transaction { (inner) throws(ProxyError) in
                            try inner.execute(insert, [.int(3), .text(secret("TXN"))])
                            try inner.execute(insert, [.int(2), .text(secret("TXN"))])  // duplicate key
                        }
                    }
                    _ = try c.transaction { (inner) throws(ProxyError) in try inner.execute(insert, [.int(4), .text(secret("TXN"))]) }
                }
                #expect(try raw.execute("SELECT string_agg(id::text, ',' ORDER BY id) FROM \(table)").string(row: 0, column: 0) == "2,4")

                // A batch failing half-way inside the caller's transaction leaves none of its rows;
                // the caller's own work stays.
                try conn.transaction { (c) throws(ProxyError) in
                    try c.execute(insert, [.int(6), .text(secret("TXN"))])
                    var rows: [[SQLValue]] = (10..<20).map { [.int($0), .text(secret("TXN"))] }
                    rows[5][0] = .null  // cannot be sealed: no row identity
                    #expect(throws: ProxyError.self) { try c.batch(insert, rows) }
                }
                #expect(try raw.execute("SELECT string_agg(id::text, ',' ORDER BY id) FROM \(table)").string(row: 0, column: 0) == "2,4,6")
            }

            // A borrower that opens a transaction and throws: the next borrower gets an idle connection.
            let pool = EncryptedConnectionPool(database: east, maxConnections: 1)
            let oops = await #expect(throws: ProxyError.self) {
                try await pool.withConnection { (c) throws(ProxyError) in
                    try c.execute("BEGIN")
                    try c.execute(insert, [.int(5), .text(secret("TXN"))])
                    throw ProxyError.rollback("oops")
                }
            }
            #expect(oops?.code == .cancelled)
            let status = try await pool.withConnection { c in c.connection.transactionStatus == .idle }
            #expect(status)
            #expect(try count() == "3", "the abandoned transaction was rolled back")
        }

        @Test("refused before sending: RETURNING without the identity; batch shape; NUL in text; COPY outside copyIn; prepared statements outlive their variable")
        func refusalsAndLifetimes() async throws {
            let stack = try currentStack()
            let table = uniqueName("conn")
            try ddl(stack, Proxy.customersTable(table))
            let (east, _) = try await openBoth(stack, tables: Proxy.customersConfig(table))
            let url = stack.databaseURL(replica: false)
            let ssn = secret("CONN")
            try await onBlockingThread { () throws in
                let raw = try PostgresConnection(url)
                // A prepared statement keeps its connection alive.
                let statement = try east.connect().prepare("INSERT INTO \(table) (id, name, ssn) VALUES ($1, $2, $3)", parameterCount: 3)
                try statement.query([.int(1), .text("a"), .text(ssn)])
                let conn = try east.connect()

                let returning = #expect(throws: ProxyError.self) {
                    try conn.query("UPDATE \(table) SET ssn = $1 WHERE id = 1 RETURNING ssn", [.text(secret("OTHER"))])
                }
                #expect(returning?.code == .refused)
                #expect(try conn.query("SELECT id, ssn FROM \(table) WHERE id = 1").rows.first?.string("ssn") == ssn, "nothing was sent")
                #expect(try conn.query("UPDATE \(table) SET name = 'b' WHERE id = 1 RETURNING id, ssn").rows.first?.string("ssn") == ssn)

                #expect(throws: ProxyError.self) {
                    try conn.batch("INSERT INTO \(table) (id, name, ssn) VALUES ($1, $2, $3)", [[.int(2), .text("x"), .text(ssn)], [.int(3), .text("y")]])
                }
                try conn.batch("INSERT INTO \(table) (id, name, ssn) VALUES ($1, $2, $3)", [[.int(2), .text("x"), .text(ssn)], [.int(3), .text("y"), .text(ssn)]])
                #expect(try conn.query("SELECT count(*) AS n FROM pg_prepared_statements").rows.first?.int("n") == 0, "batch deallocates its statement")

                #expect(throws: ProxyError.self) { try conn.execute("INSERT INTO \(table) (id, name) VALUES (9, $1)", [.text("a\u{0}b")]) }

                try raw.execute("CREATE TABLE \(table)_audit (line text)")
                #expect(throws: ProxyError.self) { try conn.query("COPY \(table)_audit FROM STDIN") }
                #expect(try conn.query("SELECT 1 AS one").rows.first?.int("one") == 1, "the connection is not left in COPY")
            }
            #expect(try PostgresConnection(url).execute("SELECT count(*) FROM \(table)").string(row: 0, column: 0) == "3")
        }
    }
}
