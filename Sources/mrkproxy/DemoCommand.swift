import ArgumentParser
import Foundation
import MRKDevTools
import MRKProxy

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the seed scenario: write encrypted in us-east-1, read decrypted in ap-southeast-2 from the replica.")

    @Flag(help: "Leave the databases and the KMS running and print how to connect.")
    var keep = false

    @Option(help: "Directory of the schema scripts (default: ./sql, or next to the executable's package).")
    var sqlDirectory: String?

    func run() async throws {
        let directory = try SQLDirectory.locate(sqlDirectory)
        // Flush every line: with --keep the instructions must show even when stdout is a pipe.
        let demo = Demo(sqlDirectory: directory, keep: keep) { line in Swift.print(line); fflush(nil) }
        let report = try await demo.run()
        guard report.readBackMatches, !report.plaintextInRawTable, report.replicaDecryptsInReplicaRegion > 0,
              report.primaryRegionCallsDuringRead == 0, report.replicaWriteRefused, report.misuseRefused else {
            FileHandle.standardError.write(Data("error: the demo did not observe what it should (see above)\n".utf8))
            throw ExitCode.failure
        }
        Swift.print("\nDone in \(Int(report.seconds)) s.")
    }
}

/// Finds the `sql/` schema directory.
enum SQLDirectory {
    static func locate(_ explicit: String?) throws -> URL {
        var candidates: [URL] = []
        if let explicit { candidates.append(URL(fileURLWithPath: explicit)) }
        if let env = ProcessInfo.processInfo.environment["MRKPROXY_SQL_DIR"] { candidates.append(URL(fileURLWithPath: env)) }
        candidates.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("sql"))
        // .build/<config>/mrkproxy → the package root.
        var executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(executable.appendingPathComponent("sql"))
            executable.deleteLastPathComponent()
        }
        for candidate in candidates where FileManager.default.fileExists(atPath: candidate.appendingPathComponent("01-keystore.sql").path) {
            return candidate
        }
        throw ValidationError("cannot find the sql/ schema directory; pass --sql-directory or set MRKPROXY_SQL_DIR")
    }
}
