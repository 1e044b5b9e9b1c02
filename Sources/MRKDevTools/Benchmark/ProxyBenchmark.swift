import MRKLocalKMS
import MRKCluster
import MRKKMS
import MRKSQL
import MRKProxy
import Foundation
import MRKCrypto
import MRKPostgres

/// `mrkproxy bench`: the same customers inserted and read through MRKProxy, as plaintext through
/// the same libpq binding, and with pgcrypto's `pgp_sym_encrypt`, side by side in one run.
public struct ProxyBenchmark: Sendable {
    /// Figures of one run (all also printed).
    public struct Report: Sendable, Codable {
        public var rows: Int
        public var pgcryptoRows: Int
        public var insertPlainRowsPerSecond: Double
        public var insertEncryptedRowsPerSecond: Double
        public var insertPgcryptoRowsPerSecond: Double
        public var selectPlainRowsPerSecond: Double
        public var selectEncryptedRowsPerSecond: Double
        public var selectPgcryptoRowsPerSecond: Double
        /// Client-side cost of encrypting one customer row for an insert (µs), without the database.
        public var encryptMicrosPerRow: Double
        /// The encrypted table read without decrypting (what the server and wire cost alone).
        public var selectRawCiphertextRowsPerSecond: Double
        /// Encrypted ÷ plaintext throughput (goal ≥ 0.8).
        public var insertRatio: Double
        public var selectRatio: Double
        /// Encrypted ÷ pgcrypto throughput (goal ≥ 20).
        public var insertSpeedupOverPgcrypto: Double
        public var selectSpeedupOverPgcrypto: Double
        /// Mean latency of a point lookup by SSN (µs), one round trip each.
        public var lookupPlainMicros: Double
        public var lookupEncryptedMicros: Double
        /// KMS calls made during the run, per region (goal ≤ 1 per region for the data path).
        public var kmsCallsPerRegion: [String: Int]
        public var sealMicros: Double
        public var openMicros: Double
        public var overheadBytesPerValue: Int
        public var streamRows: Int
        /// Resident memory before the streaming read, and the most seen during it (MiB, sampled every 10k rows).
        public var streamBaselineMemoryMiB: Double
        public var streamPeakMemoryMiB: Double
        public var streamRowsPerSecond: Double
    }

    public var sqlDirectory: URL
    public var rows = 100_000
    /// Rows for the pgcrypto variant (it is ~100× slower; a rate needs fewer rows to be stable).
    public var pgcryptoRows = 100_000
    public var streamRows = 1_000_000
    public var progress: @Sendable (String) -> Void

    public init(sqlDirectory: URL, rows: Int, pgcryptoRows: Int? = nil, streamRows: Int,
                progress: @escaping @Sendable (String) -> Void) {
        self.sqlDirectory = sqlDirectory
        self.rows = rows
        self.pgcryptoRows = min(pgcryptoRows ?? rows, rows)
        self.streamRows = streamRows
        self.progress = progress
    }

    public func run() async throws -> Report {
        progress("starting primary + replica and the local KMS…")
        return try await LocalStack.with(configuration: LocalStack.Configuration(sqlDirectory: sqlDirectory)) { try await measure($0) }
    }

    private func measure(_ stack: LocalStack) async throws -> Report {
        let region = "us-east-1"
        let url = stack.databaseURL(replica: false)
        let yaml = stack.configurationYAML(region: region, tables: """
            tables:
              public.customers:
                row_identity: id
                columns:
                  ssn: { type: text, search: equality }
                  dob: { type: date }
            """)
        let configuration = try ProxyConfiguration.parse(yaml, source: "bench")
        let keystore = BranchKeyStore(databaseURL: url, kms: stack.kmsClient(region: region), kmsKeyARN: try configuration.keyARN(in: region))
        try await keystore.create(keyspace: configuration.keyspace)
        stack.kms.resetAuditEvents()
        let database = try await EncryptedDatabase.open(configuration: configuration, region: region, kms: stack.kmsClient(region: region))
        // libpq and the sync API block: measure on a thread of its own.
        return try await onBlockingThread { [self] in try measureBlocking(stack, database: database, url: url) }
    }

    private func measureBlocking(_ stack: LocalStack, database: EncryptedDatabase, url: String) throws -> Report {
        let plain = try PostgresConnection(url)
        try plain.executeScript("""
            CREATE EXTENSION IF NOT EXISTS pgcrypto;
            -- The same shape as customers (sql/02-customers.sql), with ssn and dob in plaintext.
            CREATE TABLE bench_plain (id bigint PRIMARY KEY, name text NOT NULL, email text, ssn text, dob date, notes text,
                                      created_at timestamptz NOT NULL DEFAULT now());
            -- A plaintext app that looks customers up by SSN indexes it, as the encrypted table indexes ssn_bidx.
            CREATE INDEX ON bench_plain (ssn);
            CREATE TABLE bench_pgcrypto (id bigint PRIMARY KEY, name text NOT NULL, email text, ssn bytea, dob bytea);
            """)
        let data: [BenchRow] = (1...rows).map(BenchRow.init)
        let encrypted = try database.connect()

        // Inserts: the same pipelined, prepared INSERT through the same binding.
        progress("insert \(rows) rows: plaintext…")
        let insertPlain = try time {
            try plain.prepare(name: "ins", sql: "INSERT INTO bench_plain (id, name, email, ssn, dob) VALUES ($1, $2, $3, $4, $5)")
            _ = try plain.pipeline(data.map { PostgresStatement(prepared: "ins", [.int($0.id), .text($0.name), .text($0.email), .text($0.ssn), .text($0.dob)]) })
        }
        progress("insert \(rows) rows: MRKProxy (ssn + blind index + dob encrypted)…")
        let insertEncrypted = try time {
            try encrypted.batch("INSERT INTO customers (id, name, email, ssn, dob) VALUES ($1, $2, $3, $4, $5)",
                                data.map { row -> [SQLValue] in [.int(row.id), .text(row.name), .text(row.email), .text(row.ssn), .text(row.dob)] })
        }
        // The client's share of an encrypted insert: planning done once, then binding every row
        // (two seals and a blind index each), without the database.
        let insertSQL = "INSERT INTO customers (id, name, email, ssn, dob) VALUES ($1, $2, $3, $4, $5)"
        let binder = Binder(plan: try encrypted.planned(insertSQL, 5))
        let bindTime = try time {
            for row in data { _ = try encrypted.bind(binder, [.int(row.id), .text(row.name), .text(row.email), .text(row.ssn), .text(row.dob)]) }
        }
        progress("insert \(pgcryptoRows) rows: pgcrypto pgp_sym_encrypt…")
        let insertPgcrypto = try time {
            try plain.prepare(name: "insp", sql: """
                INSERT INTO bench_pgcrypto (id, name, email, ssn, dob)
                VALUES ($1, $2, $3, pgp_sym_encrypt($4, 'bench-secret'), pgp_sym_encrypt($5, 'bench-secret'))
                """)
            _ = try plain.pipeline(data.prefix(pgcryptoRows).map { PostgresStatement(prepared: "insp", [.int($0.id), .text($0.name), .text($0.email), .text($0.ssn), .text($0.dob)]) })
        }

        // Settle the tables before reading: without this, autovacuum and a checkpoint triggered by
        // the inserts (pgcrypto's especially) run during the reads and skew whichever runs then.
        progress("VACUUM ANALYZE and CHECKPOINT before the reads…")
        try plain.executeScript("VACUUM ANALYZE bench_plain, customers, bench_pgcrypto")
        try plain.executeScript("CHECKPOINT")

        // Point lookups by SSN, one round trip each: through the blind index for MRKProxy, through
        // the plaintext index for the plaintext table.
        let lookups = min(rows, 5_000)
        progress("\(lookups) point lookups by ssn: plaintext and MRKProxy…")
        let lookupPlain = try time {
            for i in 0..<lookups {
                _ = Self.materialize(try plain.execute("SELECT id, name, ssn, dob FROM bench_plain WHERE ssn = $1", [.text(data[i].ssn)]))
            }
        }
        let lookupEncrypted = try time {
            for i in 0..<lookups {
                _ = try encrypted.query("SELECT id, name, ssn, dob FROM customers WHERE ssn = $1", [.text(data[i].ssn)])
            }
        }

        // Selects: every row, all columns.
        progress("select \(rows) rows: plaintext…")
        // Every variant turns every value into a typed Swift value, as an app reading rows does.
        let selectPlain = try time { _ = Self.materialize(try plain.execute("SELECT id, name, email, ssn, dob FROM bench_plain")) }
        progress("select \(rows) rows: MRKProxy (decrypting)…")
        let selectEncrypted = try time { _ = try encrypted.query("SELECT id, name, email, ssn, dob FROM customers") }
        progress("select \(rows) rows: the encrypted table read raw (ciphertext, no decryption)…")
        let selectRaw = try time { _ = Self.materialize(try plain.execute("SELECT id, name, email, ssn, dob FROM customers")) }
        progress("select \(pgcryptoRows) rows: pgcrypto pgp_sym_decrypt…")
        let selectPgcrypto = try time {
            _ = Self.materialize(try plain.execute(
                "SELECT id, name, email, pgp_sym_decrypt(ssn, 'bench-secret'), pgp_sym_decrypt(dob, 'bench-secret')::date FROM bench_pgcrypto"))
        }

        // Streaming memory: load streamRows more rows with COPY, then stream them all.
        progress("COPY \(streamRows) more encrypted rows for the streaming read…")
        try encrypted.copyIn(into: "customers", columns: ["id", "name", "ssn", "dob"], rows: (1...streamRows).lazy.map { i -> [SQLValue] in
            [.int(rows + i), .text("Streamed \(i)"), .text(String(format: "%03d-%02d-%04d", i % 1000, i % 100, i % 10000)), .text("2000-01-01")]
        })
        progress("streaming \(rows + streamRows) rows through MRKProxy…")
        let baseline = PeakMemory.current()
        var peak = baseline
        var streamed = 0
        let streamTime = try time {
            streamed = try encrypted.stream("SELECT id, name, ssn, dob FROM customers") { (row) throws(ProxyError) in
                if case .null = row[2] { throw ProxyError(.integrity, "unexpected NULL") }
                if row.int("id")! % 10_000 == 0 { peak = max(peak, PeakMemory.current()) }
            }
        }

        let crypto = try CryptoBenchmark.run(iterations: min(200_000, max(10_000, 2 * rows)))
        var calls: [String: Int] = [:]
        for event in stack.kms.auditEvents() { calls[event.region, default: 0] += 1 }

        func rate(_ seconds: Double) -> Double { Double(rows) / seconds }
        let pgcryptoScale = Double(pgcryptoRows) / Double(rows)
        return Report(
            rows: rows, pgcryptoRows: pgcryptoRows,
            insertPlainRowsPerSecond: rate(insertPlain), insertEncryptedRowsPerSecond: rate(insertEncrypted),
            insertPgcryptoRowsPerSecond: rate(insertPgcrypto) * pgcryptoScale,
            selectPlainRowsPerSecond: rate(selectPlain), selectEncryptedRowsPerSecond: rate(selectEncrypted),
            selectPgcryptoRowsPerSecond: rate(selectPgcrypto) * pgcryptoScale, encryptMicrosPerRow: bindTime / Double(rows) * 1e6,
            selectRawCiphertextRowsPerSecond: rate(selectRaw),
            insertRatio: insertPlain / insertEncrypted, selectRatio: selectPlain / selectEncrypted,
            insertSpeedupOverPgcrypto: insertPgcrypto / pgcryptoScale / insertEncrypted,
            selectSpeedupOverPgcrypto: selectPgcrypto / pgcryptoScale / selectEncrypted,
            lookupPlainMicros: lookupPlain / Double(lookups) * 1e6, lookupEncryptedMicros: lookupEncrypted / Double(lookups) * 1e6,
            kmsCallsPerRegion: calls,
            sealMicros: crypto.compactSealMicros, openMicros: crypto.compactOpenMicros, overheadBytesPerValue: crypto.compactOverheadBytes,
            streamRows: streamed, streamBaselineMemoryMiB: Double(baseline) / 1_048_576, streamPeakMemoryMiB: Double(peak) / 1_048_576,
            streamRowsPerSecond: Double(streamed) / streamTime)
    }

    /// Typed values of every row and column, as `EncryptedConnection` produces for plain columns.
    static func materialize(_ result: PostgresResult) -> [[SQLValue]] {
        (0..<result.rowCount).map { row in
            result.columns.indices.map { column in
                result.string(row: row, column: column).map { SQLValue(postgresText: $0, oid: result.columns[column].type) } ?? .null
            }
        }
    }

    private struct BenchRow {
        let id: Int, name: String, email: String, ssn: String, dob: String
        init(_ i: Int) {
            id = i
            name = "Customer \(i)"
            email = "c\(i)@example.com"
            ssn = String(format: "%03d-%02d-%04d", i % 1000, i % 100, i % 10000)
            dob = String(format: "19%02d-%02d-%02d", i % 100, i % 12 + 1, i % 28 + 1)
        }
    }

    private func time(_ body: () throws -> Void) throws -> Double {
        let clock = ContinuousClock()
        let elapsed = try clock.measure(body)
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}

/// Resident memory (VmRSS) from /proc, sampled while streaming.
enum PeakMemory {
    static func current() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }
}
