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

/// The CLI end to end: `mrkproxy demo` and `mrkproxy sql` as a user runs them.
@Suite(.serialized) struct CLITests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `mrkproxy` binary `swift test` built next to the test bundle.
    static func binary() throws -> String {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundle.appendingPathComponent("mrkproxy"), bundle.deletingLastPathComponent().appendingPathComponent("mrkproxy"),
                          repo.appendingPathComponent(".build/debug/mrkproxy")]
        where FileManager.default.isExecutableFile(atPath: candidate.path) {
            return candidate.path
        }
        throw ProxyError(.configuration, "the mrkproxy binary was not built (run `swift build` first)")
    }

    /// Runs the CLI; returns (status, stdout, stderr).
    static func run(_ arguments: [String], environment: [String: String] = [:], input: String? = nil) async throws -> (Int32, String, String) {
        let path = try binary()
        return try await onBlockingThread {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("cli-out-\(UUID().uuidString)")
            let err = FileManager.default.temporaryDirectory.appendingPathComponent("cli-err-\(UUID().uuidString)")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            _ = FileManager.default.createFile(atPath: err.path, contents: nil)
            defer { try? FileManager.default.removeItem(at: out); try? FileManager.default.removeItem(at: err) }
            process.standardOutput = try FileHandle(forWritingTo: out)
            process.standardError = try FileHandle(forWritingTo: err)
            let stdin = FileManager.default.temporaryDirectory.appendingPathComponent("cli-in-\(UUID().uuidString)")
            try (input ?? "").write(to: stdin, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: stdin) }
            process.standardInput = try FileHandle(forReadingFrom: stdin)
            try process.run()
            process.waitUntilExit()
            return (process.terminationStatus, try String(contentsOf: out, encoding: .utf8), try String(contentsOf: err, encoding: .utf8))
        }
    }

    @Test("mrkproxy demo runs the seed scenario to completion")
    func demo() async throws {
        let (status, out, err) = try await Self.run(["demo", "--sql-directory", Self.repo.appendingPathComponent("sql").path])
        #expect(status == 0, "\(err)")
        #expect(out.contains("What the app in ap-southeast-2 sees through MRKProxy"))
        #expect(out.contains("078-05-1120"), "the app sees the decrypted SSN")
        #expect(out.contains("0 call(s) to us-east-1"))
        #expect(out.contains("Cleaned up"))
    }

    @Test("mrkproxy demo --failover tells the failover story and observes every step (its exit status says so)")
    func failoverDemo() async throws {
        let (status, out, err) = try await Self.run(["demo", "--failover", "--sql-directory", Self.repo.appendingPathComponent("sql").path])
        #expect(status == 0, "\(out)\n\(err)")
        #expect(out.contains("A write before the database is promoted: readOnlyRegion"))
        #expect(out.contains("sealed under v1 — the highest version its keystore has, never the v2 lost with the WAL"))
        #expect(out.contains("customer 7  ssn 219-09-9999"), "the old primary, now a replica, reads what the new primary wrote")
        #expect(out.contains("by that region's replica key: yes"))
        // The audit log: an ap-southeast-2 line never names the us-east-1 key, and the reverse.
        let audit = out.split(separator: "\n").filter { $0.contains("arn:aws:kms:") }
        #expect(audit.count > 10)
        #expect(audit.allSatisfy { line in ["us-east-1", "ap-southeast-2"].allSatisfy { region in
            !line.hasPrefix("   \(region) ") || line.contains("arn:aws:kms:\(region):") } })
        #expect(out.contains("Cleaned up"))
        let (refused, _, usage) = try await Self.run(["demo", "--failover", "--keep"])
        #expect(refused != 0 && usage.contains("cannot be combined"), "\(usage)")
    }

    @Test("mrkproxy kms serve refuses a non-loopback address unless --allow-remote")
    func kmsServeStaysLocal() async throws {
        let (status, _, err) = try await Self.run(["kms", "serve", "--host", "0.0.0.0", "--port", "0",
                                                   "--state", FileManager.default.temporaryDirectory.appendingPathComponent("unused-\(UUID().uuidString).json").path])
        #expect(status != 0)
        #expect(err.contains("--allow-remote"), "\(err)")
    }

    @Test("while kms serve runs, other kms commands refuse its state file instead of losing each other's changes")
    func kmsStateFileIsLocked() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("kms-lock-\(UUID().uuidString).json").path
        defer {
            try? FileManager.default.removeItem(atPath: state)
            try? FileManager.default.removeItem(atPath: state + ".lock")
        }
        let server = Process()
        server.executableURL = URL(fileURLWithPath: try Self.binary())
        server.arguments = ["kms", "serve", "--port", "0", "--state", state]
        let output = Pipe()
        server.standardOutput = output
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { server.terminate(); server.waitUntilExit() }
        // Wait for the banner: the lock is taken before it is printed.
        let banner = try await onBlockingThread { () throws -> String in
            var text = ""
            while !text.contains("listening") {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            return text
        }
        #expect(banner.contains("listening"))
        let (status, _, err) = try await Self.run(["kms", "create-key", "--state", state])
        #expect(status != 0)
        #expect(err.contains("is in use by another mrkproxy process"), "\(err)")
    }

    @Test("mrkproxy bench --json runs every variant on a small table and reports every figure")
    func bench() async throws {
        let (status, out, err) = try await Self.run(["bench", "--rows", "2000", "--pgcrypto-rows", "200", "--stream-rows", "3000", "--json",
                                                     "--sql-directory", Self.repo.appendingPathComponent("sql").path])
        #expect(status == 0, "\(err)")
        let report = try JSONDecoder().decode(ProxyBenchmark.Report.self, from: Data(out.utf8))
        #expect(report.rows == 2000 && report.pgcryptoRows == 200)
        for rate in [report.insertPlainRowsPerSecond, report.insertEncryptedRowsPerSecond, report.insertPgcryptoRowsPerSecond,
                     report.selectPlainRowsPerSecond, report.selectEncryptedRowsPerSecond, report.selectPgcryptoRowsPerSecond,
                     report.selectRawCiphertextRowsPerSecond, report.streamRowsPerSecond] {
            #expect(rate > 0 && rate.isFinite)
        }
        #expect(abs(report.insertRatio - report.insertEncryptedRowsPerSecond / report.insertPlainRowsPerSecond) < 1e-6)
        #expect(report.kmsCallsPerRegion == ["us-east-1": 2], "two KMS calls for the whole run: the branch key and the beacon key")
        #expect(report.overheadBytesPerValue == 42)
        #expect(report.sealMicros > 0 && report.openMicros > 0 && report.encryptMicrosPerRow > 0)
        #expect(report.lookupPlainMicros > 0 && report.lookupEncryptedMicros > 0)
        // Every inserted row plus the COPY-loaded ones came back through the decrypting stream.
        #expect(report.streamRows == 5000)
        #expect(report.streamPeakMemoryMiB >= report.streamBaselineMemoryMiB)
    }

    @Test("mrkproxy bench --proxy runs pgbench directly and through the proxy, plaintext and encrypted, and reports every figure")
    func benchProxy() async throws {
        let (status, out, err) = try await Self.run(["bench", "--proxy", "--seconds", "1", "--clients", "2", "--accounts", "500", "--json",
                                                     "--sql-directory", Self.repo.appendingPathComponent("sql").path])
        #expect(status == 0, "\(err)")
        let report = try JSONDecoder().decode(WireBenchmark.Report.self, from: Data(out.utf8))
        let names = Set(report.results.map(\.name))
        for expected in ["select, direct, plaintext", "select, proxy, plaintext", "select, proxy, encrypted",
                         "update, direct, plaintext", "update, proxy, plaintext", "update, proxy, encrypted"] {
            #expect(names.contains(expected), "\(expected) missing")
        }
        #expect(report.results.allSatisfy { $0.failed == 0 && $0.transactionsPerSecond > 0 && $0.p99Milliseconds >= $0.p50Milliseconds })
        #expect(report.proxyEncryptedRatio > 0 && report.proxyPlaintextRatio > 0)
    }

    @Test("mrkproxy sql works in both regions: table, --json and --csv output, one-line errors with a non-zero exit")
    func sqlShell() async throws {
        var configuration = LocalStack.Configuration(sqlDirectory: Self.repo.appendingPathComponent("sql"))
        configuration.database = "cli"
        let stack = try await LocalStack.start(configuration: configuration)
        do {
            let file = stack.directory.appendingPathComponent("cli.yaml")
            try stack.configurationYAML(region: "us-east-1", tables: Demo.tablesYAML).write(to: file, atomically: true, encoding: .utf8)
            let env = ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "MRKPROXY_HISTORY": stack.directory.appendingPathComponent("history").path]
            let ssn = secret("CLI")
            var (status, out, err) = try await Self.run(["keystore", "init", "--config", file.path], environment: env)
            #expect(status == 0, "\(err)")
            #expect(out.contains("active"))
            (status, out, err) = try await Self.run(["sql", "--config", file.path, "--region", "us-east-1", "-c",
                "INSERT INTO customers (id, name, ssn, dob) VALUES (1, 'Ada', '\(ssn)', '1815-12-10'); INSERT INTO customers (id, name, ssn) VALUES (2, 'Bob', NULL)"],
                environment: env)
            #expect(status == 0, "\(err)")
            #expect(out.contains("INSERT 0 1"))
            try stack.cluster.waitForReplication()

            (status, out, err) = try await Self.run(["sql", "--config", file.path, "--region", "ap-southeast-2", "--json", "-c",
                "SELECT id, name, ssn, dob FROM customers ORDER BY id"], environment: env)
            #expect(status == 0, "\(err)")
            let rows = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]])
            #expect(rows.count == 2)
            #expect(rows[0]["ssn"] as? String == ssn && rows[0]["id"] as? Int == 1)
            #expect(rows[1]["ssn"] is NSNull)

            (status, out, _) = try await Self.run(["sql", "--config", file.path, "--region", "ap-southeast-2", "-c",
                "SELECT id, name, ssn FROM customers WHERE ssn = '\(ssn)'"], environment: env)
            #expect(status == 0 && out.contains(" Ada ") && out.contains(ssn) && out.contains("(1 row)"), "\(out)")

            (status, out, _) = try await Self.run(["sql", "--config", file.path, "--region", "ap-southeast-2", "--csv", "-c",
                "SELECT id, name FROM customers ORDER BY id"], environment: env)
            #expect(status == 0 && out == "id,name\n1,Ada\n2,Bob\n")

            // Rotation: a new active version; values sealed under v1 still read, new ones use v2.
            (status, out, err) = try await Self.run(["keystore", "rotate", "--config", file.path], environment: env)
            #expect(status == 0 && out.contains("version 2 is now active"), "\(err)")
            (status, out, err) = try await Self.run(["keystore", "list", "--config", file.path], environment: env)
            #expect(status == 0 && out.contains("decrypt_only") && out.contains(" 2 ") , "\(out)\(err)")
            let later = secret("CLI")
            (status, _, err) = try await Self.run(["sql", "--config", file.path, "--region", "us-east-1", "-c",
                "INSERT INTO customers (id, name, ssn) VALUES (3, 'Cy', '\(later)')"], environment: env)
            #expect(status == 0, "\(err)")
            let raw = try PostgresConnection(stack.databaseURL(replica: false))
                .execute("SELECT id, ssn FROM customers WHERE id IN (1, 3) ORDER BY id", resultFormat: .binary)
            // Bytes 6…9 of a compact value are its key version.
            #expect(raw.bytes(row: 0, column: 1).map { Array($0[6..<10]) } == [0, 0, 0, 1])
            #expect(raw.bytes(row: 1, column: 1).map { Array($0[6..<10]) } == [0, 0, 0, 2])
            (status, out, err) = try await Self.run(["sql", "--config", file.path, "--region", "us-east-1", "--csv", "-c",
                "SELECT id, ssn FROM customers WHERE id IN (1, 3) ORDER BY id"], environment: env)
            #expect(status == 0 && out == "id,ssn\n1,\(ssn)\n3,\(later)\n", "\(out)\(err)")
            try stack.cluster.waitForReplication()

            // The shell fed from standard input (a pipe: no banner or prompts).
            (status, out, err) = try await Self.run(["sql", "--config", file.path, "--region", "ap-southeast-2"], environment: env,
                                                    input: "\\d customers\nSELECT id, name,\n  ssn FROM customers WHERE id = 1;\n\\q\n")
            #expect(status == 0, "\(err)")
            #expect(!out.contains("=>"), "no prompts when stdin is not a terminal")
            #expect(out.contains("encrypted text, searchable") && out.contains("blind index") && out.contains("row identity"))
            #expect(out.contains(ssn) && out.contains("(1 row)"), "\(out)")
            // …and a failing statement there: the error on stderr, a non-zero exit, later statements still run.
            (status, out, err) = try await Self.run(["sql", "--config", file.path, "--region", "ap-southeast-2"], environment: env,
                                                    input: "DELETE FROM customers;\nSELECT count(*) AS n FROM customers;\n")
            #expect(status != 0)
            #expect(err.contains("read-only replica region"), "\(err)")
            #expect(out.contains("(1 row)"), "\(out)")

            // Errors: one clear line on stderr, non-zero exit.
            for (region, sql, expected) in [
                ("ap-southeast-2", "DELETE FROM customers", "read-only replica region"),
                ("us-east-1", "SELECT id FROM customers WHERE ssn LIKE '4%'", "LIKE on encrypted column public.customers.ssn"),
                ("us-east-1", "SELECT nope FROM customers", "42703"),
            ] {
                (status, out, err) = try await Self.run(["sql", "--config", file.path, "--region", region, "-c", sql], environment: env)
                #expect(status != 0)
                #expect(err.split(separator: "\n").count == 1 && err.contains(expected), "\(err)")
            }
            (status, _, err) = try await Self.run(["sql", "--config", "/nonexistent.yaml", "-c", "SELECT 1"], environment: env)
            #expect(status != 0 && err.contains("/nonexistent.yaml"))
        } catch {
            await stack.stop()
            throw error
        }
        await stack.stop()
    }
}
