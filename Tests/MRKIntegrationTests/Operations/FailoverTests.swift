import Foundation
@testable import MRKDevTools
import MRKKMS
import MRKLocalKMS
import MRKPostgres
@testable import MRKProxy
import Testing

/// The regional failover runbook (README, "Regional failover"), on a stack of its own: the
/// primary region is lost with WAL its replica never received, the replica region's database is
/// promoted and becomes the writable region, and the old primary comes back as its replica.
@Suite(.serialized) struct FailoverTests {
    static let environment = ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"]

    /// The sealed value's branch-key version (compact header bytes 6–9), read raw from `url`.
    static func versions(_ url: String, _ ids: ClosedRange<Int>) throws -> Set<Int> {
        let rows = try PostgresConnection(url).execute("""
            SELECT DISTINCT (pg_catalog.get_byte(ssn, 6) << 24) | (pg_catalog.get_byte(ssn, 7) << 16)
                   | (pg_catalog.get_byte(ssn, 8) << 8) | pg_catalog.get_byte(ssn, 9)
            FROM failover WHERE id BETWEEN $1 AND $2
            """, [.int(ids.lowerBound), .int(ids.upperBound)])
        return Set(rows.rows.compactMap { Int($0.string(0) ?? "") })
    }

    static func insert(_ connection: EncryptedConnection, _ ids: ClosedRange<Int>) throws {
        try connection.batch("INSERT INTO failover (id, ssn) VALUES ($1, $2)", ids.map { [.int($0), .text("SSN-\($0)")] })
    }

    @Test("failover: writes refused during the switch, the new primary seals with its own replica key (never a version lost with WAL), rotates there, the old primary returns as a replica and reads; each region's KMS calls use its own key")
    func failoverRunbook() async throws {
        var stackConfiguration = LocalStack.Configuration(sqlDirectory: CLITests.repo.appendingPathComponent("sql"))
        stackConfiguration.database = "failover"
        try await LocalStack.with(configuration: stackConfiguration) { try await runbook($0) }
    }

    func runbook(_ stack: LocalStack) async throws {
        let east = "us-east-1", south = "ap-southeast-2"
        let eastURL = stack.databaseURL(replica: false), southURL = stack.databaseURL(replica: true)
        try PostgresConnection(eastURL).execute("CREATE TABLE failover (id bigint PRIMARY KEY, ssn bytea, ssn_bidx bytea)")
        let file = stack.directory.appendingPathComponent("failover.yaml")
        try stack.configurationYAML(region: east, tables: """
            tables:
              public.failover:
                row_identity: id
                columns:
                  ssn: { type: text, search: equality }
            """).write(to: file, atomically: true, encoding: .utf8)
        var (status, _, err) = try await CLITests.run(["keystore", "init", "--config", file.path], environment: Self.environment)
        #expect(status == 0, "\(err)")

        // Before: us-east-1 is the primary region and writes.
        let eastConfiguration = try ProxyConfiguration.load(path: file.path, environment: [:])
        let eastDatabase = try await EncryptedDatabase.open(configuration: eastConfiguration, region: east, kms: stack.kmsClient(region: east))
        try Self.insert(try eastDatabase.connect(), 1...50)
        try stack.cluster.waitForReplication()

        // WAL the replica never receives: with the replica down, the primary rotates to v2 and
        // seals rows under it. Then the primary region is lost.
        try stack.cluster.stopServer(replica: true)
        #expect(try await eastDatabase.keystore.rotate(keyspace: eastConfiguration.keyspace) == 2)
        eastDatabase.noticeServerChange()
        try Self.insert(try eastDatabase.connect(), 51...60)
        #expect(try Self.versions(eastURL, 51...60) == [2])
        try stack.cluster.stopServer(replica: false)
        try stack.cluster.startServer(replica: true)

        // The switch: the app in ap-southeast-2 is told it is the primary region (one environment
        // variable) before its database is promoted. Its writes are refused, nothing applied.
        let southEnvironment = ["MRKPROXY_REGION": south, "MRKPROXY_PRIMARY_REGION": south]
        let southConfiguration = try ProxyConfiguration.load(path: file.path, environment: southEnvironment)
        #expect(southConfiguration.primaryRegion == south && southConfiguration.regions[east]?.readOnly == true)
        let southDatabase = try await EncryptedDatabase.open(configuration: southConfiguration, region: south, kms: stack.kmsClient(region: south))
        #expect(!southDatabase.isReadOnly)
        let early = try southDatabase.connect()
        let refused = #expect(throws: ProxyError.self) {
            try early.transaction { (tx) throws(ProxyError) in
                try tx.execute("INSERT INTO failover (id, ssn) VALUES (1001, 'early')")
                try tx.execute("INSERT INTO failover (id, ssn) VALUES (1002, 'early')")
            }
        }
        #expect(refused?.code == .readOnlyRegion, "\(String(describing: refused))")

        // Promoted: ap-southeast-2 writes, sealing under the highest version its keystore has
        // (v1): v2 was lost with the WAL and is never used.
        try stack.cluster.promote(replica: true)
        #expect(try stack.cluster.isInRecovery(replica: true) == false)
        let southConnection = try southDatabase.connect()
        #expect(try southConnection.query("SELECT count(*) AS n FROM failover").rows.first?.int("n") == 50, "the early transaction left nothing")
        try Self.insert(southConnection, 101...110)
        #expect(try Self.versions(southURL, 101...110) == [1])

        // keystore rotate in the new primary region: GenerateDataKeyWithoutPlaintext with its own replica key.
        stack.kms.resetAuditEvents()
        (status, _, err) = try await CLITests.run(["keystore", "rotate", "--config", file.path], environment: Self.environment.merging(southEnvironment) { $1 })
        #expect(status == 0, "\(err)")
        let rotation = stack.kms.auditEvents().filter { $0.operation == "GenerateDataKeyWithoutPlaintext" }
        #expect(rotation.count == 1 && rotation.first?.region == south && rotation.first?.keyArn == stack.keyARN(region: south), "\(rotation)")
        let fresh = try await EncryptedDatabase.open(configuration: southConfiguration, region: south, kms: stack.kmsClient(region: south))
        try Self.insert(try fresh.connect(), 111...120)
        #expect(try Self.versions(southURL, 111...120) == [2], "sealed under the new v2, made in ap-southeast-2")

        // The old primary comes back as a replica of the new primary (a new base backup).
        try stack.cluster.rebuildAsStandby(replica: false)
        #expect(try stack.cluster.isInRecovery(replica: false))
        try PostgresConnection(eastURL).waitForReplay(of: try PostgresConnection(southURL).currentWALPosition(), timeout: .seconds(30))

        // The us-east-1 app that has not been told yet: its writes are refused, never applied;
        // its reads see the new primary's rows, the new v2 included (the v2 it had in memory,
        // lost with the WAL, was dropped when its connections were lost).
        let stale = try eastDatabase.connect()
        let write = #expect(throws: ProxyError.self) { try stale.execute("INSERT INTO failover (id, ssn) VALUES (2001, 'stale')") }
        #expect(write?.code == .readOnlyRegion, "\(String(describing: write))")
        let rows = try stale.query("SELECT id, ssn FROM failover ORDER BY id").rows
        #expect(rows.map { $0.int("id") ?? 0 } == Array(1...50) + Array(101...120), "rows 51–60 were lost with the WAL; nothing else")
        #expect(rows.allSatisfy { $0.string("ssn") == "SSN-\($0.int("id") ?? 0)" })
        #expect(try stale.query("SELECT id FROM failover WHERE ssn = $1", [.text("SSN-115")]).rows.map { $0.int("id") } == [115])

        // Once told (MRKPROXY_PRIMARY_REGION), us-east-1 is a replica region: refused before sending.
        let toldConfiguration = try ProxyConfiguration.load(path: file.path, environment: ["MRKPROXY_PRIMARY_REGION": south])
        let told = try await EncryptedDatabase.open(configuration: toldConfiguration, region: east, kms: stack.kmsClient(region: east))
        #expect(told.isReadOnly)

        // Every KMS call was served by a region with its own replica of the key.
        let events = stack.kms.auditEvents()
        #expect(!events.isEmpty)
        for event in events where event.keyArn != nil {
            #expect(event.keyArn == stack.keyARN(region: event.region), "\(event.operation) in \(event.region) used \(event.keyArn ?? "")")
        }

        // Where the key is managed from can move too (it does not matter for data encryption).
        (status, _, err) = try await CLITests.run(["kms", "update-primary-region", "--key-id", stack.keyID, "--region", east,
                                                   "--primary-region", south, "--endpoint", stack.kmsEndpoint.absoluteString],
                                                  environment: Self.environment)
        #expect(status == 0, "\(err)")
        let described = try await stack.kmsClient(region: south).describeKey(DescribeKeyRequest(keyId: stack.keyID))
        #expect(described.keyMetadata.multiRegionConfiguration?.primaryKey.region == south, "\(described)")
    }
}
