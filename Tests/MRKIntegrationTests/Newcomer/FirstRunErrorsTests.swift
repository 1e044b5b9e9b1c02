import Foundation
@testable import MRKDevTools
import MRKPostgres
import Testing

/// What a newcomer meets on a first run, through the CLI as they run it: a fresh database, a
/// missing variable, a typo. Every error says what is wrong and where, on one line.
@Suite(.serialized) struct FirstRunErrors {
    /// A stack whose database has the demo table but no keystore table (a fresh database).
    static func freshStack() async throws -> LocalStack {
        let scripts = FileManager.default.temporaryDirectory.appendingPathComponent("fresh-sql-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scripts, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scripts) }
        try FileManager.default.copyItem(at: CLITests.repo.appendingPathComponent("sql/02-customers.sql"),
                                         to: scripts.appendingPathComponent("02-customers.sql"))
        var configuration = LocalStack.Configuration(sqlDirectory: scripts)
        configuration.database = "fresh"
        return try await LocalStack.start(configuration: configuration)
    }

    static let credentials = ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "MRKPROXY_HISTORY": ""]

    @Test("keystore init creates its table on a fresh database; later errors name the file, line, endpoint and regions")
    func freshDatabaseAndErrors() async throws {
        let stack = try await Self.freshStack()
        do {
            try await firstRun(stack)
        } catch {
            await stack.stop()
            throw error
        }
        await stack.stop()
    }

    private func firstRun(_ stack: LocalStack) async throws {
        let file = stack.directory.appendingPathComponent("app.yaml")
        let yaml = stack.configurationYAML(region: "us-east-1", tables: Demo.tablesYAML)
        try yaml.write(to: file, atomically: true, encoding: .utf8)

        // No keystore table yet: `init` creates it (twice is fine), then SQL works.
        let keystore = try PostgresConnection(stack.databaseURL(replica: false))
            .execute("SELECT to_regclass('public.mrkproxy_keystore') IS NULL AS missing")
        #expect(keystore.string(row: 0, column: 0) == "t")
        for _ in 0..<2 {
            let (status, out, err) = try await CLITests.run(["keystore", "init", "--config", file.path], environment: Self.credentials)
            #expect(status == 0, "\(err)")
            #expect(out.contains("active"), "\(out)")
        }
        let (status, out, firstError) = try await CLITests.run(["sql", "--config", file.path, "-c", "SELECT count(*) AS n FROM customers"],
                                                        environment: Self.credentials)
        #expect(status == 0 && out.contains("(1 row)"), "\(firstError)")

        func failure(_ arguments: [String], environment: [String: String] = Self.credentials) async throws -> String {
            let (status, _, err) = try await CLITests.run(arguments, environment: environment)
            #expect(status != 0)
            return err
        }

        // A region that is not configured: the configured ones are listed.
        var err = try await failure(["sql", "--config", file.path, "--region", "eu-west-9", "-c", "SELECT 1"])
        #expect(err.contains("region eu-west-9 is not configured") && err.contains("ap-southeast-2, us-east-1"), "\(err)")

        // No credentials for the local KMS: say which variables it takes (not an IMDS error).
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("AWS_") }
        environment["MRKPROXY_HISTORY"] = ""
        environment["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/credentials"
        environment["AWS_CONFIG_FILE"] = "/nonexistent/config"
        environment["AWS_EC2_METADATA_DISABLED"] = "true"
        err = try await runWithoutAWS(["sql", "--config", file.path, "-c", "SELECT 1"], environment: environment)
        #expect(err.contains("no AWS credentials found for the local KMS") && err.contains("AWS_ACCESS_KEY_ID=test"), "\(err)")

        // An endpoint nothing listens on: the URL and where it was configured.
        let closed = try ClosedPort.closedLoopbackPort()
        let unreachable = stack.directory.appendingPathComponent("unreachable.yaml")
        try yaml.replacingOccurrences(of: stack.kmsEndpoint.absoluteString, with: "http://127.0.0.1:\(closed)")
            .write(to: unreachable, atomically: true, encoding: .utf8)
        err = try await failure(["sql", "--config", unreachable.path, "-c", "SELECT 1"])
        #expect(err.contains("cannot reach the KMS endpoint http://127.0.0.1:\(closed)") && err.contains("kms.endpoint in \(unreachable.path)"), "\(err)")
        #expect(!err.contains("URLError") && !err.contains("-1004"), "\(err)")

        // A configured column the database lacks: the file and line of the column.
        let mismatch = stack.directory.appendingPathComponent("mismatch.yaml")
        try yaml.replacingOccurrences(of: "dob: { type: date }", with: "birthday: { type: date }")
            .write(to: mismatch, atomically: true, encoding: .utf8)
        let line = try #require(yaml.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("dob: { type: date }") }) + 1
        err = try await failure(["sql", "--config", mismatch.path, "-c", "SELECT 1"])
        #expect(err.contains("\(mismatch.path):\(line):") && err.contains("birthday"), "\(err)")

        // A typo in the key's region.
        let typo = stack.directory.appendingPathComponent("typo.yaml")
        try yaml.replacingOccurrences(of: ":us-east-1:", with: ":us-eats-1:").write(to: typo, atomically: true, encoding: .utf8)
        err = try await failure(["sql", "--config", typo.path, "-c", "SELECT 1"])
        #expect(err.contains("us-eats-1") && err.contains("did you mean us-east-1?"), "\(err)")

        // YAML syntax: file, line and column, and a whole sentence.
        let broken = stack.directory.appendingPathComponent("broken.yaml")
        try "region: us-east-1\nkms: [\n".write(to: broken, atomically: true, encoding: .utf8)
        err = try await failure(["sql", "--config", broken.path, "-c", "SELECT 1"])
        #expect(err.contains("\(broken.path):") && err.contains("not valid YAML") && err.trimmingCharacters(in: .whitespacesAndNewlines).hasSuffix("."), "\(err)")

        // A missing file, a directory.
        err = try await failure(["sql", "--config", "/nonexistent/app.yaml", "-c", "SELECT 1"])
        #expect(err.contains("/nonexistent/app.yaml: cannot read the configuration file: no such file"), "\(err)")
        err = try await failure(["sql", "--config", stack.directory.path, "-c", "SELECT 1"])
        #expect(err.contains("it is a directory"), "\(err)")

        // -f with a missing file: the sql command's usage, not the top level's.
        err = try await failure(["sql", "--config", file.path, "-f", "/nonexistent.sql"])
        #expect(err.contains("cannot read /nonexistent.sql: no such file") && err.contains("Usage: mrkproxy sql"), "\(err)")
    }

    /// Runs the CLI with exactly `environment` (no inherited AWS variables).
    private func runWithoutAWS(_ arguments: [String], environment: [String: String]) async throws -> String {
        let binary = try CLITests.binary()
        return try await onBlockingThread {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
            process.environment = environment
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            try process.run()
            let data = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            #expect(process.terminationStatus != 0)
            return String(decoding: data, as: UTF8.self)
        }
    }
}

enum ClosedPort {
    /// A loopback TCP port that nothing listens on (bound, then closed).
    static func closedLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound)
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
