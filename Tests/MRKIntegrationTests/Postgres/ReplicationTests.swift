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

extension PostgresIntegration {
    @Suite struct Replication {
        @Test("a row written on the primary is readable on the replica after replay")
        func writeOnPrimaryReadOnReplica() throws {
            let cluster = try currentCluster()
            let db = try makeDatabase()
            let primary = try PostgresConnection(db.primary)
            try primary.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
            try primary.execute("INSERT INTO notes VALUES ($1, $2)", [1, "written in us-east-1"])
            let lsn = try primary.currentWALPosition()

            // The replica database appears once the CREATE DATABASE has been replayed.
            try cluster.waitForReplication()
            let replica = try PostgresConnection(db.replica)
            try replica.waitForReplay(of: lsn)
            let result = try replica.execute("SELECT body FROM notes WHERE id = $1", [1])
            #expect(result.rowCount == 1)
            #expect(result.string(row: 0, column: 0) == "written in us-east-1")
            #expect(try replica.lastReplayedWALPosition()! >= lsn)
        }

        @Test("writing to the replica fails with SQLSTATE 25006")
        func replicaIsReadOnly() throws {
            let cluster = try currentCluster()
            let db = try makeDatabase()
            try PostgresConnection(db.primary).execute("CREATE TABLE t (x int)")
            try cluster.waitForReplication()
            let replica = try PostgresConnection(db.replica)
            let error = try #require(throws: PostgresError.self) {
                try replica.execute("INSERT INTO t VALUES (1)")
            }
            #expect(error.code == .server)
            #expect(error.sqlState == PostgresError.SQLState.readOnlySQLTransaction)
            #expect(error.message.contains("read-only transaction"))
        }

        @Test("waiting for an LSN the primary never wrote times out with a clear error")
        func replayTimeout() throws {
            let cluster = try currentCluster()
            let replica = try PostgresConnection(cluster.replicaURL)
            let far = LSN(UInt64.max >> 8)
            let error = try #require(throws: PostgresError.self) {
                try replica.waitForReplay(of: far, timeout: .milliseconds(200))
            }
            #expect(error.code == .timeout)
            #expect(error.message.contains(far.description))
        }

        @Test func lsnParsing() {
            #expect(LSN("16/B374D848")?.value == 0x16_B374_D848)
            #expect(LSN("16/B374D848")?.description == "16/B374D848")
            #expect(LSN("nope") == nil)
            #expect(LSN("0/10")! < LSN("1/0")!)
        }
    }
}
