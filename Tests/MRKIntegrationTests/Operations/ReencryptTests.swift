import Foundation
@testable import MRKDevTools
import MRKOperations
import MRKPostgres
@testable import MRKProxy
import Synchronization
import Testing

extension ProxyIntegration {
    /// `keystore rotate`, `reencrypt`, `keystore status` and `keystore retire`, end to end.
    @Suite(.serialized) struct Reencryption {
        static let environment = ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"]

        static func status(_ file: URL) async throws -> KeystoreStatus.Report {
            let (status, out, err) = try await CLITests.run(["keystore", "status", "--config", file.path, "--json"], environment: environment)
            #expect(status == 0, "\(err)")
            return try JSONDecoder().decode(KeystoreStatus.Report.self, from: Data(out.utf8))
        }

        @Test("after rotate, reencrypt re-seals every value under v2 without overwriting the app's changes; status counts values per version; retire of v1 is refused before and succeeds after, and v1 is never unwrapped again")
        func rotateReencryptRetire() async throws {
            let stack = try currentStack()
            let table = uniqueName("reenc")
            let keyspace = uniqueName("ks")
            let rows = 3_000
            try PostgresConnection(stack.databaseURL(replica: false)).execute(
                "CREATE TABLE \(table) (id bigint PRIMARY KEY, ssn bytea, ssn_bidx bytea, dob bytea, notes bytea)")
            let file = stack.directory.appendingPathComponent("\(table).yaml")
            // A one-second key cache: retire waits one TTL after a rotation (processes re-read the
            // version they seal under once per TTL).
            try stack.configurationYAML(region: "us-east-1", tables: """
                keyspace: \(keyspace)
                tables:
                  public.\(table):
                    row_identity: id
                    columns:
                      ssn:   { type: text, search: equality }
                      dob:   { type: date }
                      notes: { type: text, format: esdk }
                """).replacingOccurrences(of: "cache_ttl: 5m", with: "cache_ttl: 1s").write(to: file, atomically: true, encoding: .utf8)
            var (status, _, err) = try await CLITests.run(["keystore", "init", "--config", file.path], environment: Self.environment)
            #expect(status == 0, "\(err)")
            let configuration = try ProxyConfiguration.load(path: file.path)
            let before = try await EncryptedDatabase.open(configuration: configuration, region: "us-east-1", kms: stack.kmsClient(region: "us-east-1"))
            try before.connect().batch("INSERT INTO \(table) (id, ssn, dob, notes) VALUES ($1, $2, $3, $4)", (1...rows).map {
                [.int($0), .text("SSN-\($0)"), .text("1980-01-\(String(format: "%02d", $0 % 28 + 1))"), .text("note \($0)")]
            })

            (status, _, err) = try await CLITests.run(["keystore", "rotate", "--config", file.path], environment: Self.environment)
            #expect(status == 0, "\(err)")
            // Right after the rotation: refused, processes may still seal under v1 for one TTL.
            (status, _, err) = try await CLITests.run(["keystore", "retire", "--config", file.path, "--version", "1"], environment: Self.environment)
            #expect(status != 0 && err.contains("key-cache TTL"), "\(err)")
            try await Task.sleep(for: .milliseconds(1_200))

            var report = try await Self.status(file)
            #expect(report.versions.map(\.version) == [1, 2] && report.versions.map(\.state) == ["decrypt_only", "active"] && report.beaconEntry)
            #expect(report.versions.first?.values == 2 * rows && report.versions.last?.values == 0, "\(report.versions)")
            #expect(report.columns.first { $0.column == "notes" }?.esdkValues == rows)
            // Values still use v1: refused, naming the columns.
            (status, _, err) = try await CLITests.run(["keystore", "retire", "--config", file.path, "--version", "1"], environment: Self.environment)
            #expect(status != 0 && err.contains("still seals values") && err.contains("\(table).ssn (\(rows) values)"), "\(err)")

            // reencrypt while the app updates rows (sealing under v2): no update is overwritten.
            let app = try await EncryptedDatabase.open(configuration: configuration, region: "us-east-1", kms: stack.kmsClient(region: "us-east-1"))
            let updated = Mutex<[Int: String]>([:])
            let writer = Task.detached {
                try await onBlockingThread {
                    let connection = try app.connect()
                    for round in 0..<3 {
                        for id in stride(from: 1 + round, through: rows, by: 37) {
                            try connection.execute("UPDATE \(table) SET ssn = $1 WHERE id = $2", [.text("UPD-\(id)-\(round)"), .int(id)])
                            updated.withLock { $0[id] = "UPD-\(id)-\(round)" }
                        }
                    }
                }
            }
            let (reencryptStatus, out, reencryptError) = try await CLITests.run(
                ["reencrypt", "--config", file.path, "--batch", "200", "--include-esdk", "--json"], environment: Self.environment)
            try await writer.value
            #expect(reencryptStatus == 0, "\(reencryptError)")
            let result = try JSONDecoder().decode(Reencryptor.Report.self, from: Data(out.utf8))
            #expect(result.finished && result.version == 2, "\(out)")
            #expect(result.columns.first { $0.column == "notes" }?.resealed == rows, "ESDK messages under fresh data keys: \(out) \(reencryptError)")

            report = try await Self.status(file)
            #expect(report.versions.first?.values == 0 && report.versions.last?.values == 2 * rows, "\(report.versions)")
            (status, _, err) = try await CLITests.run(["keystore", "retire", "--config", file.path, "--version", "1"], environment: Self.environment)
            #expect(status == 0, "\(err)")
            #expect(try await Self.status(file).versions.first?.state == "retired")

            // Everything reads back exactly — the app's updates included — and v1 is never unwrapped.
            stack.kms.resetAuditEvents()
            let after = try await EncryptedDatabase.open(configuration: configuration, region: "us-east-1", kms: stack.kmsClient(region: "us-east-1"))
            let connection = try after.connect()
            let changes = updated.withLock { $0 }
            var mismatches = 0
            for row in try connection.query("SELECT id, ssn, dob, notes FROM \(table) ORDER BY id").rows {
                let id = row.int("id") ?? 0
                if row.string("ssn") != (changes[id] ?? "SSN-\(id)") || row.string("notes") != "note \(id)"
                    || row.calendarDate("dob")?.description != "1980-01-\(String(format: "%02d", id % 28 + 1))" { mismatches += 1 }
            }
            #expect(mismatches == 0)
            let untouched = (1...rows).first { changes[$0] == nil && $0 > 100 } ?? 0
            #expect(try connection.query("SELECT id FROM \(table) WHERE ssn = $1", [.text("SSN-\(untouched)")]).rows.map { $0.int("id") } == [untouched])
            #expect(try connection.query("SELECT id FROM \(table) WHERE ssn = $1", [.text("UPD-2-1")]).rows.map { $0.int("id") } == [2])
            let unwrapped = stack.kms.auditEvents().filter { $0.operation == "Decrypt" }.compactMap { $0.encryptionContext?["mrkproxy:version"] }
            #expect(!unwrapped.contains("1") && unwrapped.contains("0") && unwrapped.contains("2"), "\(unwrapped)")
            let keyspaceID = try after.keystore.keyspaceID(keyspace)
            let retired = await #expect(throws: ProxyError.self) { _ = try await after.keystore.key(keyspaceID: keyspaceID, version: 1, keyspace: keyspace) }
            #expect(retired?.reason.contains("retired") == true)
        }
    }
}
