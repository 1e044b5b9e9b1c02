import Foundation
import MRKProxy
import Testing
import Yams

/// docker compose cannot run here (no Docker engine); this keeps docker/docker-compose.yml
/// well-formed and consistent with the repository.
@Suite struct DockerCompose {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func load() throws -> [String: Any] {
        let text = try String(contentsOf: Self.repo.appendingPathComponent("docker/docker-compose.yml"), encoding: .utf8)
        return try #require(try Yams.load(yaml: text) as? [String: Any])
    }

    func service(_ name: String) throws -> [String: Any] {
        let services = try #require(try load()["services"] as? [String: Any])
        return try #require(services[name] as? [String: Any], "service \(name) missing")
    }

    @Test func primaryReplicaAndKMSServicesExistWithHealthChecks() throws {
        for name in ["primary", "replica", "kms"] {
            let service = try service(name)
            let health = try #require(service["healthcheck"] as? [String: Any], "\(name) has no healthcheck")
            #expect(health["test"] != nil)
            let ports = try #require(service["ports"] as? [String], "\(name) publishes no ports")
            #expect(!ports.isEmpty)
        }
    }

    @Test func primaryIsConfiguredForStreamingReplicationAndLoadsSQL() throws {
        let primary = try service("primary")
        let image = try #require(primary["image"] as? String)
        let major = try #require(Int(image.split(separator: ":").last.map(String.init) ?? ""))
        #expect(image.hasPrefix("postgres:") && major >= 15)
        let command = try #require(primary["command"] as? [String]).joined(separator: " ")
        #expect(command.contains("wal_level=replica"))
        #expect(command.contains("max_wal_senders="))
        let volumes = try #require(primary["volumes"] as? [String])
        let sqlFiles = try FileManager.default.contentsOfDirectory(atPath: Self.repo.appendingPathComponent("sql").path)
            .filter { $0.hasSuffix(".sql") }
        #expect(!sqlFiles.isEmpty)
        for file in sqlFiles {
            #expect(volumes.contains { $0.hasPrefix("../sql/\(file):/docker-entrypoint-initdb.d/") }, "sql/\(file) not mounted")
        }
        // Every mounted host file exists.
        for volume in volumes where volume.hasPrefix(".") {
            let host = String(volume.split(separator: ":")[0])
            #expect(FileManager.default.fileExists(atPath: Self.repo.appendingPathComponent("docker").appendingPathComponent(host).path),
                    "\(host) does not exist")
        }
    }

    @Test func replicaStreamsFromPrimaryAsHotStandby() throws {
        let replica = try service("replica")
        let dependsOn = try #require(replica["depends_on"] as? [String: Any])
        let primary = try #require(dependsOn["primary"] as? [String: Any])
        #expect(primary["condition"] as? String == "service_healthy")
        let entrypoint = try #require(replica["entrypoint"] as? [String]).joined()
        let script = try String(contentsOf: Self.repo.appendingPathComponent("docker/replica-entrypoint.sh"), encoding: .utf8)
        #expect(entrypoint.hasSuffix("replica-entrypoint.sh"))
        #expect(script.contains("pg_basebackup") && script.contains(" -R ") && script.contains("hot_standby=on"))
    }

    @Test func kmsServiceRunsKmsServeWithTheSampleConfigurationsKey() throws {
        let kms = try service("kms")
        let command = try #require(kms["command"] as? [String])
        #expect(Array(command.prefix(2)) == ["kms", "serve"])
        #expect(command.contains("--port") && command.contains("--state"))
        let keyID = try #require(command.firstIndex(of: "--ensure-mrk").map { command[$0 + 1] })
        let replica = try #require(command.firstIndex(of: "--replica-region").map { command[$0 + 1] })

        // docker/mrkproxy.yaml names that key, the replica region and the published ports.
        let text = try String(contentsOf: Self.repo.appendingPathComponent("docker/mrkproxy.yaml"), encoding: .utf8)
        let configuration = try ProxyConfiguration.parse(text, source: "docker/mrkproxy.yaml", environment: [:])
        #expect(configuration.kms.key.hasSuffix("key/" + keyID))
        #expect(configuration.regions[replica]?.readOnly == true)
        func published(_ name: String) throws -> String {
            let ports = try #require(try service(name)["ports"] as? [String])
            return try #require(ports.first.map { String($0.split(separator: ":").dropLast().joined(separator: ":")) })
        }
        #expect(try published("primary") == "127.0.0.1:15432")
        #expect(try published("replica") == "127.0.0.1:15433")
        #expect(try published("kms") == "127.0.0.1:14599")
        #expect(configuration.kms.endpoint?.absoluteString == "http://127.0.0.1:14599")
        let primaryURL = try #require(configuration.regions[configuration.region]?.database)
        let replicaURL = try #require(configuration.regions[replica]?.database)
        #expect(primaryURL.contains("@127.0.0.1:15432/") && replicaURL.contains("@127.0.0.1:15433/"))
        // Nothing binds the host's own PostgreSQL port.
        for name in ["primary", "replica", "kms"] {
            #expect(!(try published(name)).hasSuffix(":5432"))
        }
    }

    @Test func imageBuildsWithTheSwiftTheTestsUse() throws {
        let dockerfile = try String(contentsOf: Self.repo.appendingPathComponent("docker/Dockerfile"), encoding: .utf8)
        let images = dockerfile.split(separator: "\n").filter { $0.hasPrefix("FROM swift:") }
        #expect(!images.isEmpty)
        #if compiler(>=6.3)
        for image in images { #expect(image.contains("swift:6.3-"), "\(image)") }
        #endif
    }
}
