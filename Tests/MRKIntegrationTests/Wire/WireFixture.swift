import Foundation
@testable import MRKDevTools
import MRKCrypto
import MRKPostgres
@testable import MRKProxy
@testable import MRKWire
@testable import MRKWireProtocol
import Testing

/// `mrkproxy serve` in both regions of a stack, in process: the primary region's proxy writes,
/// the replica region's reads from the replica. Clients authenticate with SCRAM as `app`.
struct WireFixture {
    let stack: LocalStack
    let table: String
    let east: WireServer
    let south: WireServer
    let eastPort: Int
    let southPort: Int
    let eastAdminPort: Int?
    static let user = "app"
    static let password = "proxy-password-\(UInt32.random(in: 0...UInt32.max))"

    static func tables(_ table: String) -> String {
        """
        tables:
          public.\(table):
            row_identity: id
            columns:
              ssn: { type: text, search: equality }
              dob: { type: date }
              balance: { type: numeric }
        """
    }

    /// Creates `table` and starts both proxies; `adjust` changes the proxy settings (both regions).
    static func start(_ stack: LocalStack, table: String = uniqueName("wire"),
                      adjust: (inout ProxyConfiguration.WireProxy) -> Void = { _ in }) async throws -> WireFixture {
        let admin = try PostgresConnection(stack.databaseURL(replica: false))
        try admin.execute("""
            CREATE TABLE \(table) (id bigint PRIMARY KEY, name text NOT NULL, ssn bytea, ssn_bidx bytea, dob bytea, balance bytea)
            """)
        try admin.execute("CREATE INDEX ON \(table) (ssn_bidx)")
        try stack.cluster.waitForReplication()
        let (east, south) = try await openBoth(stack, tables: tables(table))
        var settings = ProxyConfiguration.WireProxy()
        settings.listen = "127.0.0.1:0"
        settings.admin = "127.0.0.1:0"
        settings.users = [user: SCRAMVerifier(password: password)]
        adjust(&settings)
        let eastServer = try WireServer(database: east, configuration: .init(settings: settings))
        let southServer = try WireServer(database: south, configuration: .init(settings: settings))
        let (eastPort, eastAdmin) = try await eastServer.start()
        let (southPort, _) = try await southServer.start()
        return WireFixture(stack: stack, table: table, east: eastServer, south: southServer, eastPort: eastPort, southPort: southPort,
                           eastAdminPort: eastAdmin)
    }

    func stop() async {
        await east.shutdown()
        await south.shutdown()
    }

    /// libpq connection string of a region's proxy.
    func dsn(replica: Bool = false, password: String = Self.password, extra: String = "sslmode=disable") -> String {
        "host=127.0.0.1 port=\(replica ? southPort : eastPort) user=\(Self.user) password=\(password) dbname=app \(extra)"
    }

    /// Environment for psql and pgbench.
    var environment: [String: String] { ["PGPASSWORD": Self.password, "PGSSLMODE": "disable", "PGCONNECT_TIMEOUT": "10"] }

    /// `psql` against a region's proxy; returns (status, stdout, stderr).
    func psql(_ arguments: [String], replica: Bool = false, input: String? = nil) async throws -> (Int32, String, String) {
        try await WireClients.run("/usr/bin/env", ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                                                   "-p", String(replica ? southPort : eastPort), "-U", Self.user, "-d", "app"] + arguments,
                                  environment: environment, input: input)
    }
}

/// Running the real clients (psql, pgbench, Python scripts in Tests/WireClients).
enum WireClients {
    static let directory = CLITests.repo.appendingPathComponent("Tests/WireClients")

    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                    input: String? = nil) async throws -> (Int32, String, String) {
        try await onBlockingThread {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("wire-client-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: scratch) }
            let out = scratch.appendingPathComponent("out"), err = scratch.appendingPathComponent("err"), inFile = scratch.appendingPathComponent("in")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            _ = FileManager.default.createFile(atPath: err.path, contents: nil)
            try (input ?? "").write(to: inFile, atomically: true, encoding: .utf8)
            process.standardOutput = try FileHandle(forWritingTo: out)
            process.standardError = try FileHandle(forWritingTo: err)
            process.standardInput = try FileHandle(forReadingFrom: inFile)
            try process.run()
            process.waitUntilExit()
            return (process.terminationStatus, try String(contentsOf: out, encoding: .utf8), try String(contentsOf: err, encoding: .utf8))
        }
    }

    /// Runs a Python client script from Tests/WireClients with the test venv's interpreter.
    static func python(_ script: String, environment: [String: String]) async throws -> (Int32, String, String) {
        let python = try InteropPython.require(repository: CLITests.repo)
        return try await run(python, [directory.appendingPathComponent(script).path], environment: environment)
    }
}
