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

/// Values bound to their row's identity: bound to what the server stores, and read only where
/// the row is known.
extension ProxyIntegration {
    @Suite struct RowIdentity {
        @Test("an identity given as text in a non-canonical form binds to what the server stores")
        func canonicalIdentity() async throws {
            let stack = try currentStack()
            let table = uniqueName("ident")
            try ddl(stack, Proxy.customersTable(table))
            let (east, _) = try await openBoth(stack, tables: Proxy.customersConfig(table))
            try await onBlockingThread { () throws in
                let conn = try east.connect()
                let ssn = secret("IDENT")
                try conn.execute("INSERT INTO \(table) (id, name, ssn) VALUES ($1, 'x', $2)", [.text(" 007"), .text(ssn)])
                #expect(try conn.query("SELECT id, ssn FROM \(table) WHERE id = 7").rows.first?.string("ssn") == ssn)
            }
        }

        @Test("two instances of a row-bound table in one result are refused rather than checked against the wrong row")
        func selfJoinRefused() async throws {
            let stack = try currentStack()
            let table = uniqueName("ident")
            try ddl(stack, Proxy.customersTable(table))
            let (east, _) = try await openBoth(stack, tables: Proxy.customersConfig(table))
            try await onBlockingThread { () throws in
                let error = #expect(throws: ProxyError.self) {
                    try east.connect().query("SELECT a.ssn, a.id, b.id FROM \(table) a JOIN \(table) b ON a.id = b.id")
                }
                #expect(error?.code == .refused)
            }
        }
    }
}
