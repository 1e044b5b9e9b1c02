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
    @Suite struct Atomicity {
        @Test("a batch whose row fails to encrypt half-way commits nothing; row identities are canonical; self-joins are refused")
        func batchAtomicityIdentityAndSelfJoin() async throws {
            let stack = try currentStack()
            let table = uniqueName("atom")
            try ddl(stack, Proxy.customersTable(table))
            let (east, _) = try await openBoth(stack, tables: Proxy.customersConfig(table))
            try await onBlockingThread {
                let conn = try east.connect()
                var rows: [[SQLValue]] = (1...500).map { [.int($0), .text("n"), .text(secret("ATOM"))] }
                rows[300][0] = .null  // no row identity: this row cannot be sealed
                #expect(throws: ProxyError.self) {
                    try conn.batch("INSERT INTO \(table) (id, name, ssn) VALUES ($1, $2, $3)", rows)
                }
                let count = try PostgresConnection(stack.databaseURL(replica: false)).execute("SELECT count(*) FROM \(table)")
                #expect(count.string(row: 0, column: 0) == "0", "rows before the failing one must not be committed")

                // An identity given as text in a non-canonical form still binds to what the server stores.
                let ssn = secret("ATOM")
                try conn.execute("INSERT INTO \(table) (id, name, ssn) VALUES ($1, 'x', $2)", [.text("007"), .text(ssn)])
                #expect(try conn.query("SELECT id, ssn FROM \(table) WHERE id = 7").rows.first?.string("ssn") == ssn)

                // Two instances of the table in one result: refused rather than checked against the wrong row.
                let error = #expect(throws: ProxyError.self) {
                    try conn.query("SELECT a.ssn, a.id, b.id FROM \(table) a JOIN \(table) b ON a.id = b.id")
                }
                #expect(error?.code == .refused)
            }
        }
    }
}
