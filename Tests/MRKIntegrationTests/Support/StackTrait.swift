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

/// Gives a suite one local stack (primary + streaming replica with `log_statement = all`, the
/// embedded KMS served over HTTP with an MRK in us-east-1 replicated to ap-southeast-2, schema
/// from `sql/`) for all its tests, stopped and deleted afterwards.
struct StackTrait: SuiteTrait, TestScoping {
    @TaskLocal static var current: LocalStack?

    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        var configuration = LocalStack.Configuration(sqlDirectory: Self.repo.appendingPathComponent("sql"))
        configuration.logAllStatements = true
        let stack = try await LocalStack.start(configuration: configuration)
        do {
            try await StackTrait.$current.withValue(stack) { try await function() }
            try Self.noLeakScan(stack)
        } catch {
            await stack.stop()
            throw error
        }
        await stack.stop()
    }

    /// The no-leak check, after every test of the suite has run: with `log_statement = all` on
    /// both servers, no plaintext a test wrote to an encrypted column (or put in a refused
    /// statement) may appear in either data directory (heap files, WAL) or server log.
    static func noLeakScan(_ stack: LocalStack) throws {
        guard let directory = stack.cluster.directory else { return }  // external servers: not inspectable
        try PostgresConnection(stack.cluster.primaryURL).execute("CHECKPOINT")
        try stack.cluster.waitForReplication()
        try PostgresConnection(stack.cluster.replicaURL).execute("CHECKPOINT")
        let secrets = SecretRegistry.shared.all
        guard !secrets.isEmpty else { return }  // a filtered run that wrote no secrets
        let findings = try LeakScanner.scan(directories: [directory], needles: secrets)
        if !findings.isEmpty { throw LeakScanError(findings: findings) }
    }
}

struct LeakScanError: Error, CustomStringConvertible {
    let findings: [String]
    var description: String { "plaintext found outside the app: " + findings.prefix(20).joined(separator: "; ") }
}

extension Trait where Self == StackTrait {
    static var localStack: StackTrait { StackTrait() }
}

func currentStack() throws -> LocalStack {
    try #require(StackTrait.current, "test must run inside a @Suite(.localStack)")
}

/// A name no other test uses (keyspaces, tables).
func uniqueName(_ prefix: String) -> String {
    "\(prefix)_\(UInt32.random(in: 0...UInt32.max))"
}

/// The top-level suite of tests that need the local stack.
// Serialized: the tests use the sync API, which blocks a thread of the concurrency pool while it
// waits for the (rare) KMS call it needs; one test at a time leaves the pool room for that call.
@Suite(.localStack, .serialized) struct ProxyIntegration {}
