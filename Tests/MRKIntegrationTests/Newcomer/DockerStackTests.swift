import Foundation
@testable import MRKDevTools
import MRKProxy
import Testing
import Yams

/// docker/: no Docker engine runs here, so the compose file is validated against the Compose
/// Specification's schema (check-jsonschema, from PyPI into the test venv), and the stack's steps
/// from `up` to a decrypted read are run with the same `kms serve` command line the compose file
/// gives its KMS, against this test's primary and replica instead of the containers.
@Suite(.serialized) struct DockerStack {
    static let repo = CLITests.repo

    static var checkJSONSchema: String? {
        guard let python = InteropPython.path(repository: repo) else { return nil }
        let tool = URL(fileURLWithPath: python).deletingLastPathComponent().appendingPathComponent("check-jsonschema").path
        return FileManager.default.isExecutableFile(atPath: tool) ? tool : nil
    }

    @Test("docker-compose.yml is valid under the Compose Specification schema",
          .enabled(if: checkJSONSchema != nil || ProcessInfo.processInfo.environment["MRKPROXY_REQUIRE_INTEROP"] == "1",
                   "needs check-jsonschema in the test venv: run scripts/test"))
    func composeFileIsValid() async throws {
        let tool = try #require(Self.checkJSONSchema, "check-jsonschema is not in the venv (scripts/test installs it)")
        let file = Self.repo.appendingPathComponent("docker/docker-compose.yml").path
        let result = try await onBlockingThread { try ExampleApp.run(tool, ["--builtin-schema", "vendor.compose-spec", file]) }
        #expect(result.status == 0, "\(result.output)\(result.error)")
        // …and the validator does reject a broken file, so the check above means something.
        let broken = FileManager.default.temporaryDirectory.appendingPathComponent("compose-\(UUID().uuidString).yml")
        defer { try? FileManager.default.removeItem(at: broken) }
        try String(contentsOfFile: file, encoding: .utf8).replacingOccurrences(of: "    healthcheck:", with: "    healthchek:")
            .write(to: broken, atomically: true, encoding: .utf8)
        let rejected = try await onBlockingThread { try ExampleApp.run(tool, ["--builtin-schema", "vendor.compose-spec", broken.path]) }
        #expect(rejected.status != 0)
    }

    @Test("the compose KMS command line and docker/mrkproxy.yaml give a decrypted read in the replica region")
    func stackStepsWork() async throws {
        // The KMS exactly as the compose file starts it, on a free port and a temporary state file.
        let compose = try #require(try Yams.load(yaml: String(contentsOf: Self.repo.appendingPathComponent("docker/docker-compose.yml"), encoding: .utf8)) as? [String: Any])
        let services = try #require(compose["services"] as? [String: Any])
        var command = try #require((services["kms"] as? [String: Any])?["command"] as? [String])
        let stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("docker-kms-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: stateDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: stateDirectory) }
        func replace(_ option: String, with value: String) throws {
            let index = try #require(command.firstIndex(of: option))
            command[index + 1] = value
        }
        try replace("--host", with: "127.0.0.1")
        try replace("--port", with: "0")
        try replace("--state", with: stateDirectory.appendingPathComponent("kms.json").path)
        try replace("--audit-log", with: stateDirectory.appendingPathComponent("audit.jsonl").path)

        let kms = Process()
        kms.executableURL = URL(fileURLWithPath: try CLITests.binary())
        kms.arguments = command
        let output = Pipe()
        kms.standardOutput = output
        try kms.run()
        defer { kms.interrupt(); kms.waitUntilExit() }
        let banner = try await onBlockingThread { () -> String in
            var text = ""
            while !text.contains("listening") {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            return text
        }
        let endpoint = try #require(banner.split(separator: " ").first { $0.hasPrefix("http://") }.map(String.init), "\(banner)")
        #expect(banner.contains("(us-east-1)") && banner.contains("(ap-southeast-2)"), "\(banner)")

        // The databases: this test's primary and replica, with the compose file's init scripts.
        var configuration = LocalStack.Configuration(sqlDirectory: Self.repo.appendingPathComponent("sql"))
        configuration.database = "docker"
        let stack = try await LocalStack.start(configuration: configuration)
        do {
            let sample = try String(contentsOf: Self.repo.appendingPathComponent("docker/mrkproxy.yaml"), encoding: .utf8)
            let file = stack.directory.appendingPathComponent("mrkproxy.yaml")
            try sample
                .replacingOccurrences(of: "http://127.0.0.1:14599", with: endpoint)
                .replacingOccurrences(of: "postgresql://postgres:postgres@127.0.0.1:15432/mrkproxy", with: stack.databaseURL(replica: false))
                .replacingOccurrences(of: "postgresql://postgres:postgres@127.0.0.1:15433/mrkproxy", with: stack.databaseURL(replica: true))
                .write(to: file, atomically: true, encoding: .utf8)
            let environment = ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "MRKPROXY_HISTORY": ""]
            var (status, out, err) = try await CLITests.run(["keystore", "init", "--config", file.path], environment: environment)
            #expect(status == 0, "\(err)")
            (status, out, err) = try await CLITests.run(["sql", "--config", file.path, "-c",
                "INSERT INTO customers (id, name, ssn) VALUES (1, 'Ada', '078-05-1120')"], environment: environment)
            #expect(status == 0, "\(err)")
            try stack.cluster.waitForReplication()
            (status, out, err) = try await CLITests.run(["sql", "--config", file.path, "--region", "ap-southeast-2", "-c",
                "SELECT id, name, ssn FROM customers"], environment: environment)
            #expect(status == 0 && out.contains("078-05-1120"), "\(out)\(err)")

            // Key commands reach the running server through its API (its state file is locked).
            (status, out, err) = try await CLITests.run(["kms", "describe-key", "--endpoint", endpoint, "--region", "ap-southeast-2",
                                                          "--key-id", "mrk-5d7a3c0e9b1f4e2a8c6d0f1e2b3a4c5d"], environment: environment)
            #expect(status == 0 && out.contains("arn:aws:kms:ap-southeast-2:111122223333:key/mrk-5d7a3c0e9b1f4e2a8c6d0f1e2b3a4c5d"), "\(out)\(err)")
            (status, out, err) = try await CLITests.run(["kms", "create-key", "--endpoint", endpoint, "--multi-region"], environment: environment)
            #expect(status == 0 && out.contains("\"MultiRegion\" : true"), "\(out)\(err)")
        } catch {
            await stack.stop()
            throw error
        }
        await stack.stop()
    }
}
