import Foundation
@testable import MRKDevTools
import MRKCrypto
import MRKPostgres
@testable import MRKProxy
import Testing

extension ProxyIntegration {
    /// `mrkproxy serve` and `mrkproxy serve add-user` as an operator runs them.
    @Suite(.serialized) struct ServeCommand {
        @Test("serve add-user prints a verifier entry; serve reads the proxy: section, answers psql, and stops on SIGTERM")
        func serveFromTheConfiguration() async throws {
            let stack = try currentStack()
            let table = uniqueName("serve")
            try PostgresConnection(stack.databaseURL(replica: false)).execute("CREATE TABLE \(table) (id bigint PRIMARY KEY, ssn bytea)")
            let password = "serve-\(UInt32.random(in: 0...UInt32.max))"
            var (status, out, err) = try await CLITests.run(["serve", "add-user", "ops"], input: password + "\n")
            #expect(status == 0, "\(err)")
            let entry = out.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(entry.hasPrefix("ops: \"SCRAM-SHA-256$4096:") && !entry.contains(password), "\(entry)")

            let file = stack.directory.appendingPathComponent("\(table).yaml")
            try (stack.configurationYAML(region: "us-east-1", tables: """
                tables:
                  public.\(table):
                    columns:
                      ssn: { type: text }
                """) + """

                proxy:
                  listen: 127.0.0.1:0
                  admin: 127.0.0.1:0
                  users:
                    \(entry)
                """).write(to: file, atomically: true, encoding: .utf8)
            (status, _, err) = try await CLITests.run(["keystore", "init", "--config", file.path], environment: ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"])
            #expect(status == 0, "\(err)")

            let serve = Process()
            serve.executableURL = URL(fileURLWithPath: try CLITests.binary())
            serve.arguments = ["serve", "--config", file.path]
            serve.environment = ProcessInfo.processInfo.environment.merging(["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"]) { $1 }
            let output = Pipe()
            serve.standardOutput = output
            serve.standardError = FileHandle.nullDevice
            try serve.run()
            defer { if serve.isRunning { serve.terminate() } }
            let banner = try await onBlockingThread { () -> String in
                var text = ""
                while !text.contains("\n") {
                    let chunk = output.fileHandleForReading.availableData
                    if chunk.isEmpty { break }
                    text += String(decoding: chunk, as: UTF8.self)
                }
                return text
            }
            let port = try #require(banner.split(separator: " ").first { $0.hasPrefix("127.0.0.1:") }.flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .punctuationCharacters)) },
                                    "\(banner)")
            #expect(banner.contains("us-east-1 (primary region)") && banner.contains("/metrics"), "\(banner)")
            let ssn = secret("SERVE")
            (status, out, err) = try await WireClients.run("/usr/bin/env", [
                "psql", "-X", "-tA", "-h", "127.0.0.1", "-p", String(port), "-U", "ops", "-d", "app",
                "-c", "INSERT INTO \(table) (id, ssn) VALUES (1, '\(ssn)')", "-c", "SELECT ssn FROM \(table)",
            ], environment: ["PGPASSWORD": password, "PGSSLMODE": "disable"])
            #expect(status == 0 && out.contains(ssn), "\(out)\(err)")
            serve.terminate()
            serve.waitUntilExit()
            #expect(serve.terminationStatus == 0)
        }

        @Test("serve refuses to start without users unless --trust on loopback, and refuses a password where a verifier belongs")
        func serveRefusesUnsafeSettings() async throws {
            let stack = try currentStack()
            let file = stack.directory.appendingPathComponent("nousers-\(UInt32.random(in: 0...UInt32.max)).yaml")
            try stack.configurationYAML(region: "us-east-1", tables: "").write(to: file, atomically: true, encoding: .utf8)
            var (status, _, err) = try await CLITests.run(["serve", "--config", file.path], environment: ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"])
            #expect(status != 0 && err.contains("no users"), "\(err)")
            (status, _, err) = try await CLITests.run(["serve", "--config", file.path, "--listen", "0.0.0.0:0", "--trust"])
            #expect(status != 0 && err.contains("loopback"), "\(err)")
            try (stack.configurationYAML(region: "us-east-1", tables: "") + "\nproxy:\n  users:\n    app: hunter2\n")
                .write(to: file, atomically: true, encoding: .utf8)
            (status, _, err) = try await CLITests.run(["serve", "--config", file.path])
            #expect(status != 0 && err.contains("proxy.users.app") && err.contains("never a password"), "\(err)")
            #expect(!err.contains("hunter2"), "the error quotes the password")
        }
    }
}
