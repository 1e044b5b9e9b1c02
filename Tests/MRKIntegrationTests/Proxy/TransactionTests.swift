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

/// Nothing is reported committed that was not, and nothing is left open for the next user.
extension ProxyIntegration {
    @Suite struct Transactions {
        struct Fixture {
            let east: EncryptedDatabase
            let table: String
            let url: String
            var insert: String { "INSERT INTO \(table) (id, name, ssn) VALUES ($1, 'n', $2)" }
            func ids() throws -> String? {
                try PostgresConnection(url).execute("SELECT string_agg(id::text, ',' ORDER BY id) FROM \(table)").string(row: 0, column: 0)
            }
        }

        static func fixture() async throws -> Fixture {
            let stack = try currentStack()
            let table = uniqueName("txn")
            try ddl(stack, Proxy.customersTable(table))
            let (east, _) = try await openBoth(stack, tables: Proxy.customersConfig(table))
            return Fixture(east: east, table: table, url: stack.databaseURL(replica: false))
        }

        @Test("a transaction in which a statement failed (its error caught) is reported rolled back, not committed")
        func abortedTransaction() async throws {
            let f = try await Self.fixture()
            try await onBlockingThread { () throws in
                let conn = try f.east.connect()
                let aborted = #expect(throws: ProxyError.self) {
                    try conn.transaction { (c) throws(ProxyError) in
                        try c.execute(f.insert, [.int(1), .text(secret("TXN"))])
                        _ = try? c.execute(f.insert, [.int(1), .text(secret("TXN"))])  // duplicate key, caught
                    }
                }
                #expect(aborted?.description.contains("rolled back") == true)
                #expect(try f.ids() == nil)
            }
        }

        @Test("a nested transaction is a savepoint: its failure leaves the outer transaction's work")
        func nestedTransactions() async throws {
            let f = try await Self.fixture()
            try await onBlockingThread { () throws in
                let conn = try f.east.connect()
                try conn.transaction { (c) throws(ProxyError) in
                    try c.execute(f.insert, [.int(2), .text(secret("TXN"))])
                    #expect(throws: ProxyError.self) {
                        try c.transaction { (inner) throws(ProxyError) in
                            try inner.execute(f.insert, [.int(3), .text(secret("TXN"))])
                            try inner.execute(f.insert, [.int(2), .text(secret("TXN"))])  // duplicate key
                        }
                    }
                    _ = try c.transaction { (inner) throws(ProxyError) in try inner.execute(f.insert, [.int(4), .text(secret("TXN"))]) }
                }
                #expect(try f.ids() == "2,4")
            }
        }

        @Test("a batch whose row fails to encrypt half-way commits nothing, alone or inside the caller's transaction")
        func batchAtomicity() async throws {
            let f = try await Self.fixture()
            try await onBlockingThread { () throws in
                let conn = try f.east.connect()
                var rows: [[SQLValue]] = (100...599).map { [.int($0), .text(secret("ATOM"))] }
                rows[300][0] = .null  // no row identity: this row cannot be sealed
                #expect(throws: ProxyError.self) { try conn.batch(f.insert, rows) }
                #expect(try f.ids() == nil, "rows before the failing one must not be committed")
                try conn.transaction { (c) throws(ProxyError) in
                    try c.execute(f.insert, [.int(6), .text(secret("TXN"))])
                    #expect(throws: ProxyError.self) { try c.batch(f.insert, Array(rows[295...305])) }
                }
                #expect(try f.ids() == "6", "the caller's own work stays")
            }
        }

        @Test("the pool rolls back what a borrower left open, and a borrower can roll back with its own reason")
        func poolResetsBorrowers() async throws {
            let f = try await Self.fixture()
            let pool = EncryptedConnectionPool(database: f.east, maxConnections: 1)
            let oops = await #expect(throws: ProxyError.self) {
                try await pool.withConnection { (c) throws(ProxyError) in
                    try c.execute("BEGIN")
                    try c.execute(f.insert, [.int(5), .text(secret("TXN"))])
                    throw ProxyError.rollback("oops")
                }
            }
            #expect(oops?.code == .cancelled && oops?.reason == "oops")
            #expect(try await pool.withConnection { c in c.connection.transactionStatus == .idle })
            #expect(try f.ids() == nil, "the abandoned transaction was rolled back")
        }

        @Test("a task waiting for a pool connection is cancelled promptly, and the pool keeps serving")
        func poolWaitersHonourCancellation() async throws {
            let f = try await Self.fixture()
            let pool = EncryptedConnectionPool(database: f.east, maxConnections: 1)
            let release = DispatchSemaphore(value: 0)
            let started = DispatchSemaphore(value: 0)
            let holder = Task { try await pool.withConnection { _ in started.signal(); release.wait() } }
            await withCheckedContinuation { continuation in DispatchQueue.global().async { started.wait(); continuation.resume() } }
            let waiter = Task { try await pool.query("SELECT 1 AS one") }
            waiter.cancel()
            let result = await waiter.result
            guard case .failure(let error) = result else { Issue.record("a cancelled waiter got a connection"); return }
            #expect((error as? ProxyError)?.code == .cancelled)
            release.signal()
            try await holder.value
            #expect(try await pool.query("SELECT 1 AS one").rows.first?.int("one") == 1)
        }
    }
}
