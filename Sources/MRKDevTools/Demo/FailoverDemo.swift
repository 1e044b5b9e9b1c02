import Foundation
import MRKKMS
import MRKLocalKMS
import MRKPostgres
import MRKProxy

/// The regional failover runbook as a story (`mrkproxy demo --failover`): us-east-1 writes, is
/// lost with WAL its replica never received, ap-southeast-2 is promoted and becomes the writable
/// region (one environment variable), rotates there, the old primary returns as its replica and
/// reads; the KMS audit log shows every call served by the calling region's own replica key.
public struct FailoverDemo: Sendable {
    /// What the story observed, for the CLI's exit status and for tests.
    public struct Report: Sendable {
        public var writeRefusedBeforePromotion = false
        public var nothingAppliedBeforePromotion = false
        public var lostVersionNeverUsed = false
        public var rotatedInNewPrimaryRegion = false
        public var oldPrimaryReadsAsReplica = false
        public var oldPrimaryWriteRefused = false
        public var everyCallUsedItsOwnRegionsKey = false
        public var kmsCallsPerRegion: [String: Int] = [:]
        public var keyPrimaryRegionMoved = false
        public var seconds = 0.0

        public var succeeded: Bool {
            writeRefusedBeforePromotion && nothingAppliedBeforePromotion && lostVersionNeverUsed && rotatedInNewPrimaryRegion
                && oldPrimaryReadsAsReplica && oldPrimaryWriteRefused && everyCallUsedItsOwnRegionsKey && keyPrimaryRegionMoved
        }
    }

    public var sqlDirectory: URL
    /// How the printed hints run the CLI.
    public var command = "mrkproxy"
    public var print: @Sendable (String) -> Void

    public init(sqlDirectory: URL, print: @escaping @Sendable (String) -> Void) {
        self.sqlDirectory = sqlDirectory
        self.print = print
    }

    static let east = "us-east-1", south = "ap-southeast-2"

    public func run() async throws -> Report {
        let started = ContinuousClock.now
        print("MRKProxy failover demo — Aurora Global style switchover with KMS multi-Region keys\n")
        print("1. Starting a PostgreSQL primary (\(Self.east)), its streaming replica (\(Self.south)) and the embedded KMS…")
        var configuration = LocalStack.Configuration(sqlDirectory: sqlDirectory)
        configuration.database = "failover_demo"
        var report = try await LocalStack.with(configuration: configuration) { try await story($0) }
        report.seconds = Double((ContinuousClock.now - started).components.seconds)
        print("\nCleaned up: servers stopped, temporary files removed.")
        return report
    }

    private func story(_ stack: LocalStack) async throws -> Report {
        let east = Self.east, south = Self.south
        var report = Report()
        let eastURL = stack.databaseURL(replica: false), southURL = stack.databaseURL(replica: true)
        print("   \(east)  \(eastURL)  (primary)")
        print("   \(south)  \(southURL)  (replica)")
        let file = stack.directory.appendingPathComponent("mrkproxy.yaml")
        try stack.configurationYAML(region: east, tables: Demo.tablesYAML).write(to: file, atomically: true, encoding: .utf8)
        let eastConfiguration = try ProxyConfiguration.load(path: file.path, environment: [:])
        let eastKeystore = BranchKeyStore(databaseURL: eastURL, kms: stack.kmsClient(region: east), kmsKeyARN: try eastConfiguration.keyARN(in: east))
        try await eastKeystore.create(keyspace: eastConfiguration.keyspace)
        stack.kms.resetAuditEvents()

        let eastApp = try await EncryptedDatabase.open(configuration: eastConfiguration, region: east, kms: stack.kmsClient(region: east))
        try await onBlockingThread {
            try Self.insert(eastApp, Array(Demo.customers.prefix(3)))
            try stack.cluster.waitForReplication()
        }
        print("\n2. \(east) is the primary region: the app inserted customers 1–3 (sealed under branch key v1); replicated.")

        // Replication breaks, then the region is lost: what the primary did meanwhile is gone.
        try stack.cluster.stopServer(replica: true)
        let rotated = try await eastKeystore.rotate(keyspace: eastConfiguration.keyspace)
        let eastAfterRotation = try await EncryptedDatabase.open(configuration: eastConfiguration, region: east, kms: stack.kmsClient(region: east))
        try await onBlockingThread { try Self.insert(eastAfterRotation, [Demo.customers[3]]) }
        try stack.cluster.stopServer(replica: false)
        try stack.cluster.startServer(replica: true)
        print("\n3. Replication to \(south) breaks; \(east) rotates to v\(rotated) and inserts customer 4 under it.")
        print("   Then \(east) is lost: customer 4 and branch key v\(rotated) never reached \(south).")

        // The switch: the app in ap-southeast-2 is told it is the primary region first.
        let southEnvironment = ["MRKPROXY_REGION": south, "MRKPROXY_PRIMARY_REGION": south]
        let southConfiguration = try ProxyConfiguration.load(path: file.path, environment: southEnvironment)
        let southApp = try await EncryptedDatabase.open(configuration: southConfiguration, region: south, kms: stack.kmsClient(region: south))
        print("\n4. Switch: MRKPROXY_PRIMARY_REGION=\(south) for the apps (primary_region: in the config file).")
        let early = try await onBlockingThread {
            Result { () throws(ProxyError) in
                try southApp.connect().transaction { (tx) throws(ProxyError) in
                    try tx.execute("INSERT INTO customers (id, name, ssn) VALUES (101, 'too early', '000-00-0101')")
                    try tx.execute("INSERT INTO customers (id, name, ssn) VALUES (102, 'too early', '000-00-0102')")
                }
            }
        }
        if case .failure(let error) = early, error.code == .readOnlyRegion {
            report.writeRefusedBeforePromotion = true
            print("   A write before the database is promoted: \(error)")
        }
        try stack.cluster.promote(replica: true)
        print("   pg_ctl promote: \(south)'s database is now the primary.")

        let southWrites = try await onBlockingThread { () throws -> (Int, Set<Int>) in
            let connection = try southApp.connect()
            let count = try connection.query("SELECT count(*) AS n FROM customers").rows.first?.int("n") ?? -1
            try Self.insert(southApp, [Demo.customers[4]])
            return (count, try Self.versions(southURL, 5...5))
        }
        report.nothingAppliedBeforePromotion = southWrites.0 == 3
        report.lostVersionNeverUsed = southWrites.1 == [1]
        print("\n5. \(south) writes: \(southWrites.0) customers there (the early transaction left nothing); customer 5 inserted,")
        print("   sealed under v\(southWrites.1.sorted().map(String.init).joined(separator: ",")) — the highest version its keystore has, never the v\(rotated) lost with the WAL.")

        let eventsBeforeRotation = stack.kms.auditEvents().count
        let southKeystore = BranchKeyStore(databaseURL: southURL, kms: stack.kmsClient(region: south),
                                           kmsKeyARN: try southConfiguration.keyARN(in: south))
        let southVersion = try await southKeystore.rotate(keyspace: southConfiguration.keyspace)
        let generate = stack.kms.auditEvents().dropFirst(eventsBeforeRotation).filter { $0.operation == "GenerateDataKeyWithoutPlaintext" }
        report.rotatedInNewPrimaryRegion = generate.count == 1 && generate.first?.region == south && generate.first?.keyArn == stack.keyARN(region: south)
        let southAfterRotation = try await EncryptedDatabase.open(configuration: southConfiguration, region: south, kms: stack.kmsClient(region: south))
        let afterRotation = try await onBlockingThread { () throws -> Set<Int> in
            var customer = Demo.customers[1]
            customer.id = 7
            try Self.insert(southAfterRotation, [customer])
            return try Self.versions(southURL, 7...7)
        }
        report.rotatedInNewPrimaryRegion = report.rotatedInNewPrimaryRegion && afterRotation == [Int(southVersion)]
        print("\n6. keystore rotate in \(south): v\(southVersion) generated by \(generate.first?.keyArn ?? "?")")
        print("   (GenerateDataKeyWithoutPlaintext against the local replica key); customer 7 sealed under v\(southVersion).")

        try stack.cluster.rebuildAsStandby(replica: false)
        let toldConfiguration = try ProxyConfiguration.load(path: file.path, environment: ["MRKPROXY_PRIMARY_REGION": south])
        let eastReader = try await EncryptedDatabase.open(configuration: toldConfiguration, region: east, kms: stack.kmsClient(region: east))
        let readBack = try await onBlockingThread { () throws -> [(Int, String)] in
            try PostgresConnection(eastURL).waitForReplay(of: try PostgresConnection(southURL).currentWALPosition(), timeout: .seconds(30))
            let connection = try eastReader.connect()
            let rows = try connection.query("SELECT id, name, ssn FROM customers ORDER BY id").rows
            return rows.map { ($0.int("id") ?? 0, $0.string("ssn") ?? "") }
        }
        let expected = Demo.customers.prefix(3).map { ($0.id, $0.ssn) } + [(5, Demo.customers[4].ssn), (7, Demo.customers[1].ssn)]
        report.oldPrimaryReadsAsReplica = readBack.map(\.0) == expected.map(\.0) && readBack.map(\.1) == expected.map(\.1)
        print("\n7. The old primary returns as \(south)'s streaming replica (a new base backup; pg_rewind works too).")
        print("   The app in \(east) reads there, decrypting with its own replica key:")
        for (id, ssn) in readBack { print("     customer \(id)  ssn \(ssn)") }
        let write = try await onBlockingThread {
            Result { () throws(ProxyError) in try eastReader.connect().execute("UPDATE customers SET email = 'x' WHERE id = 1") }
        }
        if case .failure(let error) = write, error.code == .readOnlyRegion {
            report.oldPrimaryWriteRefused = true
            print("   A write in \(east): \(error)")
        }

        try await stack.kmsClient(region: east).updatePrimaryRegion(keyId: stack.keyID, primaryRegion: south)
        let described = try await stack.kmsClient(region: south).describeKey(DescribeKeyRequest(keyId: stack.keyID))
        report.keyPrimaryRegionMoved = described.keyMetadata.multiRegionConfiguration?.primaryKey.region == south
        print("\n8. UpdatePrimaryRegion (`\(command) kms update-primary-region --key-id \(stack.keyID) --region \(east) --primary-region \(south)`):")
        print("   the key's primary is now the replica in \(south), the one in \(east) a replica.")
        print("   (Not needed for data encryption — every region already has the same key material — but key policy,")
        print("   rotation settings and new replicas are managed from the primary key's region.)")

        // The whole story's KMS calls, region by region.
        let events = stack.kms.auditEvents()
        report.everyCallUsedItsOwnRegionsKey = !events.isEmpty && events.allSatisfy { $0.keyArn == nil || $0.keyArn == stack.keyARN(region: $0.region) }
        report.kmsCallsPerRegion = Dictionary(grouping: events, by: \.region).mapValues(\.count)
        print("\n9. The story's KMS audit log (CloudTrail-like):")
        for event in events {
            let context = event.encryptionContext ?? [:]
            let what = context["mrkproxy:purpose"].map { "\($0) key v\(context["mrkproxy:version"] ?? "?")" }
                ?? context["mrkproxy:column"].map { "ESDK data key for \($0)" } ?? ""
            print("   \(pad(event.region, 15)) \(pad(event.operation, 32)) \(event.keyArn ?? "-")  \(event.outcome)  \(what)")
        }
        print("   → every call was served in the caller's region by that region's replica key: \(report.everyCallUsedItsOwnRegionsKey ? "yes" : "NO")")
        return report
    }

    private static func insert(_ database: EncryptedDatabase, _ customers: [(id: Int, name: String, email: String, ssn: String, dob: String, notes: String)]) throws {
        try database.connect().batch("INSERT INTO customers (id, name, email, ssn, dob, notes) VALUES ($1, $2, $3, $4, $5, $6)",
                                     customers.map { [.int($0.id), .text($0.name), .text($0.email), .text($0.ssn), .text($0.dob), .text($0.notes)] })
    }

    /// The branch-key versions (compact header bytes 6–9) of the SSNs of `ids`, read raw.
    private static func versions(_ url: String, _ ids: ClosedRange<Int>) throws -> Set<Int> {
        let rows = try PostgresConnection(url).execute("""
            SELECT DISTINCT (pg_catalog.get_byte(ssn, 6) << 24) | (pg_catalog.get_byte(ssn, 7) << 16)
                   | (pg_catalog.get_byte(ssn, 8) << 8) | pg_catalog.get_byte(ssn, 9)
            FROM customers WHERE id BETWEEN $1 AND $2
            """, [.int(ids.lowerBound), .int(ids.upperBound)])
        return Set(rows.rows.compactMap { Int($0.string(0) ?? "") })
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
