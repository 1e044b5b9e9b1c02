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

    @Flag(help: "Tell the regional failover story instead: the primary region is lost, the replica region is promoted, rotates, and the old primary returns as its replica.")
    var failover = false

    @Option(help: "Directory of the schema scripts (default: ./sql, or next to the executable's package).")
    var sqlDirectory: String?

    func validate() throws {
        if keep && failover { throw ValidationError("--keep and --failover cannot be combined") }
    }

    func run() async throws {
        let directory = try SQLDirectory.locate(sqlDirectory)
        if failover {
            var story = FailoverDemo(sqlDirectory: directory) { line in Swift.print(line); fflush(nil) }
            story.command = CLICommand.name
            let report = try await story.run()
            guard report.succeeded else {
                FileHandle.standardError.write(Data("error: the failover demo did not observe what it should (see above)\n".utf8))
                throw ExitCode.failure
            }
            Swift.print("\nDone in \(Int(report.seconds)) s.")
            return
        }
        // Flush every line: with --keep the instructions must show even when stdout is a pipe.
        var demo = Demo(sqlDirectory: directory, keep: keep) { line in Swift.print(line); fflush(nil) }
        demo.command = CLICommand.name
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
        // Installed by scripts/install: PREFIX/bin/mrkproxy and PREFIX/share/mrkproxy/sql.
        var executable = CLICommand.executable.deletingLastPathComponent()
        candidates.append(executable.deletingLastPathComponent().appendingPathComponent("share/mrkproxy/sql"))
        // .build/<config>/mrkproxy → the package root.
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

/// How to run this CLI again, for the commands the demo prints: `mrkproxy` when that name on
/// PATH is this executable, else the executable's absolute path.
enum CLICommand {
    static var executable: URL {
        let link = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")).map(URL.init(fileURLWithPath:))
        return link ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    }

    static var name: String {
        let me = executable.standardizedFileURL.path
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent("mrkproxy")
            guard FileManager.default.isExecutableFile(atPath: candidate.path) else { continue }
            return candidate.resolvingSymlinksInPath().standardizedFileURL.path == me ? "mrkproxy" : me
        }
        return me
    }
}
