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
    @Suite struct PlanCache {
        @Test("a statement run again reuses its plan; plans holding SQL literals are not kept; a key rotation reaches cached plans")
        func plansAreReusedSafely() async throws {
            let stack = try currentStack()
            let table = uniqueName("plans")
            let clock = ManualClock()
            let (east, keystore) = try await openEast(stack, table: table, time: clock.source)
            let insert = "INSERT INTO \(table) (id, name, ssn) VALUES ($1, $2, $3)"
            let (first, second, literal, later) = (secret("PLAN1"), secret("PLAN2"), secret("PLANLIT"), secret("PLAN3"))

            let box = try await onBlockingThread { () throws -> UncheckedBox<EncryptedConnection> in
                let conn = try east.connect()
                try conn.execute(insert, [.int(1), .text("a"), .text(first)])
                try conn.execute(insert, [.int(2), .text("b"), .text(second)])
                #expect(conn.plans.count == 1, "the second insert reuses the first one's plan")
                // A plan that holds a value written in the SQL text is not kept.
                try conn.execute("INSERT INTO \(table) (id, name, ssn) VALUES (3, 'c', '\(literal)')")
                #expect(try conn.query("SELECT id, ssn FROM \(table) WHERE ssn = '\(literal)'").rows.map { $0.int("id") } == [3])
                #expect(conn.plans.count == 1)
                let found = try conn.query("SELECT id, ssn FROM \(table) WHERE ssn = $1", [.text(second)])
                #expect(found.rows.map { $0.int("id") } == [2])
                #expect(try conn.query("SELECT id, ssn FROM \(table) WHERE ssn = $1", [.text(first)]).rows.map { $0.int("id") } == [1])
                #expect(conn.plans.count == 2)
                return UncheckedBox(conn)
            }

            // After a rotation (and the active-version TTL), the cached insert plan seals under v2.
            #expect(try await keystore.rotate(keyspace: east.configuration.keyspace) == 2)
            clock.advance(by: east.configuration.kms.cacheTTL)
            try await onBlockingThread {
                let conn = box.value
                try conn.execute(insert, [.int(4), .text("d"), .text(later)])
                let raw = try PostgresConnection(stack.databaseURL(replica: false)).execute("SELECT id, ssn FROM \(table) ORDER BY id")
                let versions = try (0..<raw.rowCount).map { try CompactEnvelope.header(of: try raw.bytea(row: $0, column: 1)!).keyID.version }
                #expect(versions == [1, 1, 1, 2])
                let all = try conn.query("SELECT id, ssn FROM \(table) ORDER BY id").rows.map { $0.string("ssn") }
                #expect(all == [first, second, literal, later])
            }
        }
    
        @Test("an open connection drops its derived keys once per TTL: after the stale window, losing KMS stops it")
        func connectionsForgetKeys() async throws {
            let stack = try currentStack()
            let table = uniqueName("expiry")
            let unreachable = AWSKMSClient(configuration: .init(region: "us-east-1", endpoint: URL(string: "http://127.0.0.1:9")!, timeout: 1,
                                                                maxAttempts: 1, environment: [:]),
                                           credentialsProvider: StaticCredentialsProvider(AWSCredentials(accessKeyId: "test", secretAccessKey: "test")))
            let flaky = FlakyKMS(working: stack.kmsClient(region: "us-east-1"), broken: unreachable)
            let clock = ManualClock()
            let (east, _) = try await openEast(stack, table: table, kms: flaky, time: clock.source)
            let ssn = secret("EXPIRY")
            let box = try await onBlockingThread { () throws -> UncheckedBox<EncryptedConnection> in
                let conn = try east.connect()
                try conn.execute("INSERT INTO \(table) (id, name, ssn) VALUES ($1, 'x', $2)", [.int(1), .text(ssn)])
                #expect(try conn.query("SELECT id, ssn FROM \(table)").rows.first?.string("ssn") == ssn)
                return UncheckedBox(conn)
            }
            flaky.breakIt()
            // Within the TTL and stale window the connection keeps working from cached keys…
            try await onBlockingThread { () throws in
                #expect(try box.value.query("SELECT id, ssn FROM \(table)").rows.first?.string("ssn") == ssn)
            }
            // …and once both have passed it must ask KMS again, which now fails.
            clock.advance(by: east.configuration.kms.cacheTTL + east.configuration.kms.staleWindow + .seconds(1))
            try await onBlockingThread {
                #expect(throws: ProxyError.self) { try box.value.query("SELECT id, ssn FROM \(table)") }
                #expect(throws: ProxyError.self) { try box.value.execute("INSERT INTO \(table) (id, name, ssn) VALUES (2, 'y', $1)", [.text(ssn)]) }
            }
        }
    

        @Test("a connection whose server has standard_conforming_strings off sends nothing")
        func nonStandardStringsAreRefused() async throws {
            let stack = try currentStack()
            let table = uniqueName("scs")
            let (east, _) = try await openEast(stack, table: table) { config in
                let separator = config.regions["us-east-1"]!.database.contains("?") ? "&" : "?"
                config.regions["us-east-1"]!.database += separator + "options=-c%20standard_conforming_strings%3Doff"
            }
            try await onBlockingThread { () throws in
                let conn = try east.connect()
                let error = #expect(throws: ProxyError.self) {
                    try conn.execute("INSERT INTO \(table) (id, name, ssn) VALUES (1, 'a', $1)", [.text(secret("SCS"))])
                }
                #expect(error?.code == .refused)
                #expect(error?.description.contains("standard_conforming_strings") == true)
            }
        }
    }
}
