import Foundation
import MRKOperations
import MRKPostgres
import MRKProxy

/// `mrkproxy bench --migrate`: `migrate encrypt` of an existing plaintext table, `reencrypt`
/// after a rotation and `migrate decrypt`, on a fresh local stack, in rows per second.
public struct MigrationBenchmark: Sendable {
    public struct Report: Sendable, Codable {
        public var rows: Int
        public var batch: Int
        /// `migrate encrypt` of a searchable text column (ciphertext + blind index), rows/s.
        public var encryptSearchableRowsPerSecond: Double
        /// `migrate encrypt` of a date column, rows/s.
        public var encryptDateRowsPerSecond: Double
        /// `reencrypt` of both columns after `keystore rotate`, values/s.
        public var reencryptValuesPerSecond: Double
        /// `migrate decrypt` of the date column, rows/s.
        public var decryptDateRowsPerSecond: Double
        /// Seconds the swap (the step under the exclusive lock) took, for the searchable column.
        public var swapSeconds: Double
    }

    public var sqlDirectory: URL
    public var rows: Int
    public var batch: Int
    public var progress: @Sendable (String) -> Void

    public init(sqlDirectory: URL, rows: Int, batch: Int, progress: @escaping @Sendable (String) -> Void) {
        self.sqlDirectory = sqlDirectory
        self.rows = rows
        self.batch = batch
        self.progress = progress
    }

    public func run() async throws -> Report {
        progress("starting primary + replica and the local KMS…")
        return try await LocalStack.with(configuration: LocalStack.Configuration(sqlDirectory: sqlDirectory)) { try await measure($0) }
    }

    private func measure(_ stack: LocalStack) async throws -> Report {
        let region = "us-east-1"
        let url = stack.databaseURL(replica: false)
        let admin = try PostgresConnection(url)
        progress("loading \(rows.formatted()) plaintext rows…")
        try admin.executeScript("""
            CREATE TABLE bench_migrate (id bigint PRIMARY KEY, name text NOT NULL, ssn text, dob date);
            INSERT INTO bench_migrate SELECT g, 'customer ' || g, pg_catalog.lpad((g % 1000)::text, 3, '0') || '-' || pg_catalog.lpad((g % 100)::text, 2, '0')
                   || '-' || pg_catalog.lpad(g::text, 6, '0'), date '1950-01-01' + (g % 20000) FROM generate_series(1, \(rows)) g;
            """)
        try admin.executeScript("VACUUM ANALYZE bench_migrate")
        try admin.executeScript("CHECKPOINT")
        let configuration = try ProxyConfiguration.parse(stack.configurationYAML(region: region, tables: """
            tables:
              public.bench_migrate:
                row_identity: id
                columns:
                  ssn: { type: text, search: equality, migrating: true }
                  dob: { type: date, migrating: true }
            """), source: "bench")
        let keystore = BranchKeyStore(databaseURL: url, kms: stack.kmsClient(region: region), kmsKeyARN: try configuration.keyARN(in: region))
        _ = try await keystore.create(keyspace: configuration.keyspace)
        let database = try await EncryptedDatabase.open(configuration: configuration, region: region, kms: stack.kmsClient(region: region))
        let table = QualifiedName(schema: "public", name: "bench_migrate")
        var options = ColumnMigrator.Options()
        options.batch = batch
        let quiet: @Sendable (String) -> Void = { _ in }

        func migrate(_ column: String, _ direction: ColumnMigrator.Direction) async throws -> ColumnMigrator.Report {
            progress("migrate \(direction.rawValue) \(column)…")
            return try await onBlockingThread { [options] in
                try ColumnMigrator(database: database, table: table, column: column, direction: direction, options: options, terminal: false, progress: quiet).run()
            }
        }
        let ssn = try await migrate("ssn", .encrypt)
        let dob = try await migrate("dob", .encrypt)

        progress("keystore rotate, then reencrypt…")
        _ = try await keystore.rotate(keyspace: configuration.keyspace)
        var reencryptOptions = Reencryptor.Options()
        reencryptOptions.batch = batch
        let reencrypt = try await onBlockingThread { [reencryptOptions] in
            try Reencryptor(database: database, options: reencryptOptions, terminal: false, progress: quiet).run()
        }
        let resealed = reencrypt.columns.reduce(0) { $0 + $1.resealed }
        let decrypt = try await migrate("dob", .decrypt)
        return Report(rows: rows, batch: batch, encryptSearchableRowsPerSecond: ssn.rowsPerSecond, encryptDateRowsPerSecond: dob.rowsPerSecond,
                      reencryptValuesPerSecond: reencrypt.seconds > 0 ? Double(resealed) / reencrypt.seconds : 0,
                      decryptDateRowsPerSecond: decrypt.rowsPerSecond, swapSeconds: ssn.swapSeconds)
    }
}
