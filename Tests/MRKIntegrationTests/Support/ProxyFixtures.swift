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

/// Plaintexts that tests write only into encrypted columns (or only in refused statements). After
/// the suite, the no-leak scan looks for every one of them in both servers' data directories (heap
/// files, WAL) and logs.
final class SecretRegistry: @unchecked Sendable {
    // Guarded by `lock`.
    private var values: Set<String> = []
    private let lock = NSLock()
    static let shared = SecretRegistry()

    /// Registers and returns `value`.
    @discardableResult
    func secret(_ value: String) -> String {
        lock.withLock { _ = values.insert(value) }
        return value
    }

    var all: Set<String> { lock.withLock { values } }
}

/// A distinctive plaintext, registered for the no-leak scan.
func secret(_ prefix: String = "S") -> String {
    SecretRegistry.shared.secret("\(prefix)-\(UInt64.random(in: 100_000_000_000...999_999_999_999))")
}

/// Scans files for needles with `grep -raoF` (fast multi-pattern search over binary files);
/// returns "file:needle" findings.
enum LeakScanner {
    static func scan(directories: [String], needles: Set<String>) throws -> [String] {
        let patterns = FileManager.default.temporaryDirectory.appendingPathComponent("mrkproxy-needles-\(UUID().uuidString)")
        try needles.sorted().joined(separator: "\n").write(to: patterns, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: patterns) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["grep", "-r", "-a", "-o", "-F", "-f", patterns.path] + directories
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        // grep: 0 = found, 1 = nothing found, 2 = error.
        guard process.terminationStatus != 2 else { throw LeakScanError(findings: ["grep failed"]) }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}

/// Configuration text for the proxy tests' tables, against the running stack.
func proxyConfiguration(_ stack: LocalStack, region: String = "us-east-1", tables: String) throws -> ProxyConfiguration {
    try ProxyConfiguration.parse(stack.configurationYAML(region: region, tables: tables), source: "test.yaml")
}

/// Opens MRKProxy in both regions for `tables`, creating the keyspace first.
func openBoth(_ stack: LocalStack, tables: String, keyspace: String = "default") async throws -> (east: EncryptedDatabase, south: EncryptedDatabase) {
    var config = try proxyConfiguration(stack, tables: tables)
    config.keyspace = keyspace
    let keystore = BranchKeyStore(databaseURL: stack.databaseURL(replica: false), kms: stack.kmsClient(region: "us-east-1"),
                                  kmsKeyARN: try config.keyARN(in: "us-east-1"))
    try await keystore.create(keyspace: keyspace)
    try stack.cluster.waitForReplication()
    let east = try await EncryptedDatabase.open(configuration: config, region: "us-east-1", kms: stack.kmsClient(region: "us-east-1"))
    let south = try await EncryptedDatabase.open(configuration: config, region: "ap-southeast-2", kms: stack.kmsClient(region: "ap-southeast-2"))
    return (east, south)
}

/// Opens MRKProxy in us-east-1 for a fresh `table` (created) in a keyspace of its own, with
/// `adjust` applied to the configuration first. Returns the database and the keystore.
func openEast(_ stack: LocalStack, table: String, kms: (any KMSClient)? = nil, time: TimeSource = .continuous,
              adjust: (inout ProxyConfiguration) -> Void = { _ in }) async throws -> (database: EncryptedDatabase, keystore: BranchKeyStore) {
    try ddl(stack, ProxyIntegration.Proxy.customersTable(table))
    var config = try proxyConfiguration(stack, tables: ProxyIntegration.Proxy.customersConfig(table))
    config.keyspace = uniqueName("ks_\(table)")
    adjust(&config)
    let keystore = BranchKeyStore(databaseURL: stack.databaseURL(replica: false), kms: stack.kmsClient(region: "us-east-1"),
                                  kmsKeyARN: try config.keyARN(in: "us-east-1"))
    try await keystore.create(keyspace: config.keyspace)
    let database = try await EncryptedDatabase.open(configuration: config, region: "us-east-1", kms: kms ?? stack.kmsClient(region: "us-east-1"),
                                                    logger: Logger(label: "test"), time: time)
    return (database, keystore)
}

/// Runs DDL on the primary's app database and waits for the replica.
func ddl(_ stack: LocalStack, _ sql: String) throws {
    try PostgresConnection(stack.databaseURL(replica: false)).executeScript(sql)
    try stack.cluster.waitForReplication()
}
