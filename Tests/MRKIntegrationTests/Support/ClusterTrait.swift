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

/// Gives a suite one primary + streaming replica for all its tests, stopped and deleted afterwards.
struct ClusterTrait: SuiteTrait, TestScoping {
    @TaskLocal static var current: PostgresCluster?

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        var configuration = PostgresCluster.Configuration()
        configuration.logAllStatements = true
        let cluster = try PostgresCluster.fromEnvironmentOrStart(configuration: configuration)
        defer { try? cluster.stop() }
        try await ClusterTrait.$current.withValue(cluster) { try await function() }
    }
}

extension Trait where Self == ClusterTrait {
    /// Runs the suite against a real primary + streaming replica.
    static var postgresCluster: ClusterTrait { ClusterTrait() }
}

/// The cluster of the enclosing `.postgresCluster` suite.
func currentCluster() throws -> PostgresCluster {
    try #require(ClusterTrait.current, "test must run inside a @Suite(.postgresCluster)")
}

/// A fresh database on the primary for one test, so tests running in parallel do not collide.
/// Returns URLs of that database on the primary and on the replica.
func makeDatabase(_ name: String = "t\(UInt32.random(in: 0...UInt32.max))") throws -> (primary: String, replica: String) {
    let cluster = try currentCluster()
    try PostgresConnection(cluster.primaryURL).execute("CREATE DATABASE \(name)")
    return (cluster.primaryURL.replacingDatabase(with: name), cluster.replicaURL.replacingDatabase(with: name))
}

extension String {
    func replacingDatabase(with name: String) -> String {
        guard var components = URLComponents(string: self) else { return self }
        components.path = "/" + name
        return components.string ?? self
    }
}

/// The top-level suite of tests that need PostgreSQL: one cluster serves them all.
@Suite(.postgresCluster) struct PostgresIntegration {}
