import ArgumentParser
import Foundation
import MRKDevTools
import MRKProxy

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark MRKProxy against plaintext and pgcrypto (build with -c release).",
        discussion: "With --proxy: pgbench directly and through `mrkproxy serve`, on plaintext and encrypted tables (and through pgbouncer when it is installed, as a reference).")

    @Flag(help: "Benchmark the wire proxy with pgbench instead of the library.")
    var proxy = false

    @Flag(help: "Benchmark migrate encrypt/decrypt and reencrypt on an existing table instead of the library.")
    var migrate = false

    @Option(help: "With --migrate: rows in the table (default 1,000,000).")
    var migrateRows = 1_000_000

    @Option(help: "With --migrate: rows per batch.")
    var batch = 5_000

    @Option(help: "With --proxy: seconds per pgbench run.")
    var seconds = 10

    @Option(help: "With --proxy: pgbench clients.")
    var clients = 4

    @Option(help: "With --proxy: accounts in each table.")
    var accounts = 100_000

    @Option(help: "Rows to insert and select in each variant.")
    var rows = 100_000

    @Option(help: "Rows for the pgcrypto variant (default: --rows; it is about 100× slower).")
    var pgcryptoRows: Int?

    @Option(help: "Extra rows for the streaming-memory measurement.")
    var streamRows = 1_000_000

    @Flag(help: "Print all figures as one JSON object.")
    var json = false

    @Option(help: "Directory of the schema scripts.")
    var sqlDirectory: String?

    func run() async throws {
        guard rows > 0, streamRows > 0, (pgcryptoRows ?? 1) > 0 else {
            throw ValidationError("--rows, --pgcrypto-rows and --stream-rows must be positive")
        }
        let quiet = json || isatty(STDERR_FILENO) == 0
        if proxy {
            try await runProxy(quiet: quiet)
            return
        }
        if migrate {
            try await runMigrate(quiet: quiet)
            return
        }
        let benchmark = ProxyBenchmark(sqlDirectory: try SQLDirectory.locate(sqlDirectory), rows: rows, pgcryptoRows: pgcryptoRows, streamRows: streamRows, progress: Self.progress(quiet: quiet))
        let report = try await benchmark.run()
        if json {
            try JSONOutput.print(report)
            return
        }
        func f(_ value: Double) -> String { String(format: "%.0f", value) }
        func r(_ value: Double) -> String { String(format: "%.2f×", value) }
        print("""
            MRKProxy benchmark (\(report.rows) rows\(report.pgcryptoRows < report.rows ? ", pgcrypto \(report.pgcryptoRows)" : ""); \(ProcessInfo.processInfo.activeProcessorCount) cores)
                                  plaintext   MRKProxy    pgcrypto    MRKProxy/plain  MRKProxy/pgcrypto
            insert rows/s         \(f(report.insertPlainRowsPerSecond).padding(toLength: 12, withPad: " ", startingAt: 0))\(f(report.insertEncryptedRowsPerSecond).padding(toLength: 12, withPad: " ", startingAt: 0))\(f(report.insertPgcryptoRowsPerSecond).padding(toLength: 12, withPad: " ", startingAt: 0))\(r(report.insertRatio).padding(toLength: 16, withPad: " ", startingAt: 0))\(r(report.insertSpeedupOverPgcrypto))
            select rows/s         \(f(report.selectPlainRowsPerSecond).padding(toLength: 12, withPad: " ", startingAt: 0))\(f(report.selectEncryptedRowsPerSecond).padding(toLength: 12, withPad: " ", startingAt: 0))\(f(report.selectPgcryptoRowsPerSecond).padding(toLength: 12, withPad: " ", startingAt: 0))\(r(report.selectRatio).padding(toLength: 16, withPad: " ", startingAt: 0))\(r(report.selectSpeedupOverPgcrypto))
            point lookup by ssn   \(String(format: "%.0f", report.lookupPlainMicros)) µs plaintext, \(String(format: "%.0f", report.lookupEncryptedMicros)) µs MRKProxy (blind index, decrypted), per query
            encrypt per row       \(String(format: "%.2f", report.encryptMicrosPerRow)) µs client-side (ssn seal + blind index + dob seal)
            select, raw ciphertext \(f(report.selectRawCiphertextRowsPerSecond)) rows/s (the encrypted table read without decrypting)
            seal / open           \(String(format: "%.2f", report.sealMicros)) µs / \(String(format: "%.2f", report.openMicros)) µs per value, \(report.overheadBytesPerValue) bytes overhead
            KMS calls             \(report.kmsCallsPerRegion.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))
            streaming read        \(report.streamRows) rows at \(f(report.streamRowsPerSecond)) rows/s, RSS \(String(format: "%.0f", report.streamBaselineMemoryMiB)) MiB before, at most \(String(format: "%.0f", report.streamPeakMemoryMiB)) MiB during
            """)
    }
}

extension BenchCommand {
    /// Where a benchmark's progress lines go: standard error, unless quiet.
    static func progress(quiet: Bool) -> @Sendable (String) -> Void {
        { line in if !quiet { FileHandle.standardError.write(Data(("… " + line + "\n").utf8)) } }
    }

    func runMigrate(quiet: Bool) async throws {
        guard migrateRows > 0, batch > 0 else { throw ValidationError("--migrate-rows and --batch must be positive") }
        let benchmark = MigrationBenchmark(sqlDirectory: try SQLDirectory.locate(sqlDirectory), rows: migrateRows, batch: batch, progress: Self.progress(quiet: quiet))
        let report = try await benchmark.run()
        if json {
            try JSONOutput.print(report)
            return
        }
        func f(_ value: Double) -> String { Int(value).formatted() }
        print("""
            mrkproxy migrate benchmark (\(report.rows.formatted()) rows, batches of \(report.batch.formatted()), --max-lag unset; \(ProcessInfo.processInfo.activeProcessorCount) cores)
            migrate encrypt, text + blind index   \(f(report.encryptSearchableRowsPerSecond)) rows/s (goal ≥ 50,000); swap under lock \(String(format: "%.2f", report.swapSeconds)) s
            migrate encrypt, date                 \(f(report.encryptDateRowsPerSecond)) rows/s
            reencrypt after rotate (both columns) \(f(report.reencryptValuesPerSecond)) values/s
            migrate decrypt, date                 \(f(report.decryptDateRowsPerSecond)) rows/s
            """)
    }

    func runProxy(quiet: Bool) async throws {
        guard seconds > 0, clients > 0, accounts > 0 else { throw ValidationError("--seconds, --clients and --accounts must be positive") }
        let benchmark = WireBenchmark(sqlDirectory: try SQLDirectory.locate(sqlDirectory), seconds: seconds, clients: clients, accounts: accounts, progress: Self.progress(quiet: quiet))
        let report = try await benchmark.run()
        if json {
            try JSONOutput.print(report)
            return
        }
        func pad(_ text: String, _ width: Int) -> String { text.padding(toLength: width, withPad: " ", startingAt: 0) }
        print("mrkproxy serve benchmark: pgbench -M prepared, \(report.clients) clients, \(report.seconds) s per run, \(report.accounts) accounts; \(ProcessInfo.processInfo.activeProcessorCount) cores")
        print(pad("", 32) + pad("TPS", 10) + pad("p50 ms", 9) + pad("p99 ms", 9) + "failed")
        for result in report.results {
            print(pad(result.name, 32) + pad(String(format: "%.0f", result.transactionsPerSecond), 10)
                  + pad(String(format: "%.3f", result.p50Milliseconds), 9) + pad(String(format: "%.3f", result.p99Milliseconds), 9) + String(result.failed))
        }
        print(String(format: "proxy ÷ direct, plaintext:          select %.2f×, update %.2f× (goal 0.7×)", report.proxyPlaintextRatio, report.proxyPlaintextUpdateRatio))
        print(String(format: "proxy encrypted ÷ direct plaintext: select %.2f×, update %.2f× (goal 0.6×)", report.proxyEncryptedRatio, report.proxyEncryptedUpdateRatio))
        if let ratio = report.pgbouncerRatio { print(String(format: "pgbouncer ÷ direct, plaintext:      select %.2f× (the cost of any proxy here)", ratio)) }
    }
}
