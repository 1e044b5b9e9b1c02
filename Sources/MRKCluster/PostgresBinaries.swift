import Foundation

/// Locates the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup).
public struct PostgresBinaries: Sendable {
    /// Directory holding the binaries.
    public let directory: String

    /// Finds the binaries: `MRKPROXY_PG_BIN`, then `pg_config --bindir`, then the newest
    /// `/usr/lib/postgresql/*/bin`, then `/usr/local/pgsql/bin`.
    ///
    /// - Throws: `ClusterError` `.binariesNotFound` listing where it looked.
    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> PostgresBinaries {
        var looked: [String] = []
        func usable(_ dir: String) -> Bool {
            looked.append(dir)
            return FileManager.default.isExecutableFile(atPath: dir + "/initdb")
                && FileManager.default.isExecutableFile(atPath: dir + "/pg_ctl")
        }
        if let dir = environment["MRKPROXY_PG_BIN"], !dir.isEmpty {
            guard usable(dir) else {
                throw ClusterError(.binariesNotFound, "MRKPROXY_PG_BIN=\(dir) has no initdb/pg_ctl")
            }
            return PostgresBinaries(directory: dir)
        }
        if let output = try? runCapturing(["pg_config", "--bindir"]), case let dir = output.trimmingCharacters(in: .whitespacesAndNewlines),
           !dir.isEmpty, usable(dir) {
            return PostgresBinaries(directory: dir)
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap { Int($0) }.sorted(by: >)
        for version in versions where usable("\(root)/\(version)/bin") {
            return PostgresBinaries(directory: "\(root)/\(version)/bin")
        }
        if usable("/usr/local/pgsql/bin") { return PostgresBinaries(directory: "/usr/local/pgsql/bin") }
        throw ClusterError(.binariesNotFound,
                           "PostgreSQL server binaries (initdb, pg_ctl) not found; looked in \(looked.joined(separator: ", ")). "
                           + "Install PostgreSQL 15+ (apt-get install postgresql) or set MRKPROXY_PG_BIN")
    }

    /// Full path of `tool`.
    public func path(_ tool: String) -> String { directory + "/" + tool }

    private static func runCapturing(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ClusterError(.commandFailed, "\(arguments[0]) failed") }
        return String(decoding: data, as: UTF8.self)
    }
}

/// An error starting, using or stopping a local cluster.
public struct ClusterError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }
        public static let binariesNotFound = Code("binariesNotFound")
        public static let commandFailed = Code("commandFailed")
        public static let startupTimeout = Code("startupTimeout")
        public static let configuration = Code("configuration")
    }

    public let code: Code
    public let reason: String
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }
    public var description: String { "\(code): \(reason)" }
}
