import ArgumentParser
import Foundation
import MRKOperations
import MRKProxy
import MRKSQL

/// `mrkproxy migrate encrypt|decrypt` and `mrkproxy reencrypt`.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Encrypt an existing column of plaintext online (or decrypt one), while apps keep using it.",
        subcommands: [Encrypt.self, Decrypt.self])

    struct Options: ParsableArguments {
        @Option(help: "The MRKProxy configuration file (it describes the column as encrypted).") var config: String
        @Option(help: "The table, schema.table.") var table: String
        @Option(help: "The column.") var column: String
        @Option(help: "Rows per batch (each its own transaction).") var batch = 5_000
        @Option(help: "Wait while a replica lags further behind than this (e.g. 5s, 1m); default: never wait.") var maxLag: String?
        @Flag(help: "Report what would be done; change nothing.") var dryRun = false
        @Flag(help: "Print the final report as JSON.") var json = false

        func validate() throws {
            guard batch > 0 else { throw ValidationError("--batch must be positive") }
            if let maxLag, Duration.parse(maxLag) == nil { throw ValidationError("--max-lag \(maxLag): expected a duration such as 500ms, 5s or 1m") }
        }

        func run(_ direction: ColumnMigrator.Direction) async throws {
            let configuration = try ProxyConfiguration.load(path: config)
            let region = configuration.primaryRegion
            let database = try await EncryptedDatabase.open(configuration: configuration, region: region, kms: configuration.kmsClient(region: region))
            var migration = ColumnMigrator.Options()
            migration.batch = batch
            migration.maxLag = maxLag.flatMap(Duration.parse)
            migration.dryRun = dryRun
            let name = try OperationsCLI.qualifiedName(table)
            let stop = OperationsCLI.stopOnSignals()
            let migrator = ColumnMigrator(database: database, table: name, column: column, direction: direction, options: migration, stop: stop)
            let report = try migrator.run()
            if json { try JSONOutput.print(report) }
            if report.alreadyDone {
                FileHandle.standardError.write(Data("\(name).\(column) is already \(direction == .encrypt ? "encrypted" : "decrypted"): nothing to do\n".utf8))
            }
            if !report.finished && !dryRun { throw ExitCode(3) }
        }
    }

    struct Encrypt: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn a column's plaintext into ciphertext, online and resumable.",
            discussion: """
            Adds a shadow column (and a blind-index column for a searchable one), fills it in batches walked by the \
            primary key, then swaps it in under a short exclusive lock and drops the plaintext. Stopping it (Ctrl-C, \
            SIGTERM) finishes the current batch; running it again continues. Old plaintext stays in WAL, dead tuples \
            and backups until they are recycled, vacuumed or expire (see the README).
            """)
        @OptionGroup var options: Options
        func run() async throws { try await options.run(.encrypt) }
    }

    struct Decrypt: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn a column's ciphertext back into plaintext (the way back), online and resumable.",
            discussion: "Afterwards, remove the column from the configuration.")
        @OptionGroup var options: Options
        func run() async throws { try await options.run(.decrypt) }
    }
}

struct ReencryptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reencrypt",
        abstract: "Re-seal every value not under the active branch-key version (after keystore rotate).",
        discussion: "Batched, resumable (a run re-reads only what is still under an older version), throttled by --max-lag. A value the app changes meanwhile is never overwritten.")

    @Option(help: "The MRKProxy configuration file.") var config: String
    @Option(help: "Only this table (schema.table).") var table: String?
    @Option(help: "Only this column (with --table).") var column: String?
    @Option(help: "Values per batch.") var batch = 2_000
    @Option(help: "Wait while a replica lags further behind than this (e.g. 5s).") var maxLag: String?
    @Flag(help: "Re-seal ESDK columns too, each value under a fresh data key.") var includeEsdk = false
    @Flag(help: "Print the final report as JSON.") var json = false

    func validate() throws {
        guard batch > 0 else { throw ValidationError("--batch must be positive") }
        if column != nil && table == nil { throw ValidationError("--column needs --table") }
        if let maxLag, Duration.parse(maxLag) == nil { throw ValidationError("--max-lag \(maxLag): expected a duration such as 500ms, 5s or 1m") }
    }

    func run() async throws {
        let configuration = try ProxyConfiguration.load(path: config)
        let region = configuration.primaryRegion
        let database = try await EncryptedDatabase.open(configuration: configuration, region: region, kms: configuration.kmsClient(region: region))
        var options = Reencryptor.Options()
        options.batch = batch
        options.maxLag = maxLag.flatMap(Duration.parse)
        options.includeESDK = includeEsdk
        options.table = try table.map(OperationsCLI.qualifiedName)
        options.column = column
        let report = try Reencryptor(database: database, options: options, stop: OperationsCLI.stopOnSignals()).run()
        if json { try JSONOutput.print(report) }
        if !report.finished { throw ExitCode(3) }
    }
}

enum OperationsCLI {
    static func qualifiedName(_ text: String) throws -> QualifiedName {
        let parts = text.split(separator: ".").map { $0.lowercased() }
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty }) else {
            throw ValidationError("--table \(text): expected schema.table")
        }
        return QualifiedName(schema: parts.count == 2 ? parts[0] : "public", name: parts.last!)
    }

    /// SIGINT and SIGTERM finish the current batch, then stop.
    static func stopOnSignals() -> StopFlag {
        let flag = StopFlag()
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { flag.set() }
            source.resume()
            retained.append(source)
        }
        return flag
    }

    nonisolated(unsafe) static var retained: [any DispatchSourceSignal] = []

}

extension Duration {
    /// `500ms`, `5s`, `2m`, `1h` (or plain seconds).
    static func parse(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            if let value = Double(text.dropLast(suffix.count)), value >= 0 { return .milliseconds(Int64(value * scale * 1000)) }
        }
        return Double(text).flatMap { $0 >= 0 ? .milliseconds(Int64($0 * 1000)) : nil }
    }
}
