import Foundation
import MRKPostgres
import MRKProxy
import MRKSQL

/// `mrkproxy reencrypt`: re-seals every compact value not under the keyspace's active branch-key
/// version (and, with `includeESDK`, every ESDK value under a fresh data key), in batches walked
/// by primary key. A value is replaced only if it is still the ciphertext that was read (compared
/// on its SHA-256 in the UPDATE, which re-checks a row another transaction changed meanwhile): a
/// value the app wrote meanwhile is the app's, sealed under the active version, and is left alone;
/// a change to another column of the row does not stop the re-seal.
/// Running it again continues where it stopped: only values still under an older version are read.
public final class Reencryptor {
    public struct Options: Sendable {
        public var batch = 2_000
        public var maxLag: Duration?
        /// Re-seal `format: esdk` columns too (every value: they use data keys, not versions).
        public var includeESDK = false
        public var table: QualifiedName?
        public var column: String?
        public init() {}
    }

    public struct ColumnReport: Sendable, Codable {
        public var table: String
        public var column: String
        public var resealed: Int
        public var skippedChangedMeanwhile: Int
    }

    public struct Report: Sendable, Codable {
        public var version: UInt32
        public var columns: [ColumnReport]
        public var seconds: Double
        public var finished: Bool
    }

    let database: EncryptedDatabase
    let options: Options
    let stop: StopFlag
    let terminal: Bool
    let progress: @Sendable (String) -> Void

    public init(database: EncryptedDatabase, options: Options = Options(), stop: StopFlag = StopFlag(), terminal: Bool = isatty(STDERR_FILENO) == 1,
                progress: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.database = database
        self.options = options
        self.stop = stop
        self.terminal = terminal
        self.progress = progress
    }

    public func run() throws(ProxyError) -> Report {
        let started = ContinuousClock.now
        guard !database.isReadOnly else {
            throw ProxyError(.readOnlyRegion, "reencrypt runs in the primary region (\(database.configuration.primaryRegion)); \(database.region) is read-only")
        }
        // Seal under the active version as the keystore says now, not as cached before a rotation.
        database.refreshSealingVersion()
        let connection = try database.connect()
        var columns: [EncryptedColumn] = []
        for table in database.configuration.tables.values.sorted(by: { "\($0.name)" < "\($1.name)" }) where options.table == nil || options.table == table.name {
            for column in table.columns.values.sorted(by: { $0.name < $1.name }) where options.column == nil || options.column == column.name {
                if column.format == .esdk && !options.includeESDK && options.column == nil { continue }
                columns.append(column)
            }
        }
        guard !columns.isEmpty else {
            throw ProxyError(.configuration, "no configured encrypted column matches \(options.table.map { "\($0)" } ?? "")\(options.column.map { ".\($0)" } ?? "")")
        }
        var report = Report(version: 0, columns: [], seconds: 0, finished: false)
        for column in columns {
            // A column still being encrypted by `mrkproxy migrate` holds plaintext: its backfill
            // seals under the active version anyway.
            let type = try connection.operationsExecute("""
                SELECT pg_catalog.format_type(atttypid, NULL) FROM pg_catalog.pg_attribute
                WHERE attrelid = pg_catalog.to_regclass($1) AND attname = $2 AND attnum > 0 AND NOT attisdropped
                """, [.text("\(column.table)"), .text(column.name)]).string(row: 0, column: 0)
            guard type == "bytea" else {
                progress("reencrypt \(column.table.name).\(column.name): skipped, it holds plaintext (\(type ?? "missing")) until `mrkproxy migrate encrypt` finishes\n")
                continue
            }
            let sealer = try ColumnSealer(connection: connection, table: column.table, column: column.name)
            report.version = sealer.version
            let (done, finished) = try reencrypt(column, connection: connection, version: sealer.version)
            report.columns.append(done)
            if !finished {
                report.seconds = ColumnMigrator.seconds(ContinuousClock.now - started)
                return report
            }
        }
        report.finished = true
        report.seconds = ColumnMigrator.seconds(ContinuousClock.now - started)
        return report
    }

    func q(_ identifier: String) -> String { SQLIdentifier.quoted(identifier) }

    private func reencrypt(_ column: EncryptedColumn, connection: EncryptedConnection, version: UInt32) throws(ProxyError) -> (ColumnReport, Bool) {
        let migrator = ColumnMigrator(database: database, table: column.table, column: column.name, direction: .encrypt)
        let key = try migrator.primaryKey(connection)
        let table = column.table.description
        let identity = database.configuration.tables[column.table]?.rowIdentity
        // Which values need it, decided from the header in the server (never a plaintext): those
        // under a lower version (the big-endian version bytes compare as numbers). A value under a
        // newer version (a rotation during the run) is left alone.
        let versionBytes = "\\x" + String(format: "%08x", version)
        let stale = column.format == .esdk ? "true" : "pg_catalog.substr(\(q(column.name)), 7, 4) < $2::bytea"
        let total = Int(try connection.operationsExecute(
            "SELECT count(*) FROM \(table) WHERE \(q(column.name)) IS NOT NULL AND \(column.format == .esdk ? "true" : stale.replacingOccurrences(of: "$2", with: "$1"))",
            column.format == .esdk ? [] : [.text(versionBytes)]).string(row: 0, column: 0) ?? "0") ?? 0
        let reporter = ProgressReporter(label: "reencrypt \(column.table.name).\(column.name) → v\(version)", total: total, terminal: terminal, write: progress)
        var report = ColumnReport(table: "\(column.table.schema).\(column.table.name)", column: column.name, resealed: 0, skippedChangedMeanwhile: 0)
        var after: String?
        let reportDone = { (report: ColumnReport) in report.resealed + report.skippedChangedMeanwhile }
        while true {
            if stop.isSet {
                reporter.finish("stopped after \(report.resealed.formatted()) values; run the same command again to continue")
                return (report, false)
            }
            if let maxLag = options.maxLag {
                while !stop.isSet {
                    let lag = Double(try connection.operationsExecute("""
                        SELECT coalesce(max(EXTRACT(EPOCH FROM replay_lag)), 0)::float8 FROM pg_catalog.pg_stat_replication
                        """).string(row: 0, column: 0) ?? "0") ?? 0
                    guard lag > ColumnMigrator.seconds(maxLag) else { break }
                    reporter.update(done: reportDone(report), note: String(format: "waiting: a replica is %.1f s behind", lag), force: true)
                    Thread.sleep(forTimeInterval: 0.1)
                }
            }
            let keys = try connection.operationsExecute("""
                SELECT \(q(key.name))::text AS k, pg_catalog.encode(pg_catalog.sha256(\(q(column.name))), 'hex') AS h FROM \(table)
                WHERE ($1::text IS NULL OR \(q(key.name)) > $1::\(key.type)) AND \(q(column.name)) IS NOT NULL AND \(stale)
                ORDER BY \(table).\(q(key.name)) LIMIT \(options.batch)
                """, [after.map { .text($0) } ?? .null] + (column.format == .esdk ? [] : [.text(versionBytes)]))
            guard keys.rowCount > 0 else { break }
            let batchKeys = (0..<keys.rowCount).compactMap { keys.string(row: $0, column: 0) }
            var readHashes: [String: String] = [:]
            for index in 0..<keys.rowCount {
                if let k = keys.string(row: index, column: 0), let h = keys.string(row: index, column: 1) { readHashes[k] = h }
            }
            after = batchKeys.last
            // The values, opened by the library (each checked against its row).
            let identitySelect = identity.map { ", \(q($0))" } ?? ""
            let rows = try connection.query("""
                SELECT \(q(key.name))::text AS mrkproxy_key, \(q(column.name)) AS mrkproxy_value\(identitySelect) FROM \(table)
                WHERE \(q(key.name)) = ANY ($1::\(key.type)[])
                """, [.text(ColumnMigrator.textArray(batchKeys))])
            let sealer = try ColumnSealer(connection: connection, table: column.table, column: column.name)
            var resealKeys: [String?] = [], hashes: [String?] = [], values: [String?] = []
            for row in rows.rows {
                // By position: the row identity column may have any name.
                guard row.values.count == (identity == nil ? 2 : 3) else { continue }
                let value = row.values[1]
                guard !value.isNull, let k = row.string("mrkproxy_key"), let h = readHashes[k] else { continue }
                let sealed = try sealer.seal(value, rowIdentity: identity == nil ? nil : row.values[2])
                resealKeys.append(k)
                hashes.append(h)
                values.append(sealed.ciphertext.map(ByteaText.encode))
            }
            let updated = try connection.operationsExecute("""
                UPDATE \(table) AS t SET \(q(column.name)) = u.v::bytea
                FROM unnest($1::\(key.type)[], $2::text[], $3::text[]) AS u(k, h, v)
                WHERE t.\(q(key.name)) = u.k AND pg_catalog.sha256(t.\(q(column.name))) = pg_catalog.decode(u.h, 'hex')
                """, [.text(ColumnMigrator.textArray(resealKeys)), .text(ColumnMigrator.textArray(hashes)), .text(ColumnMigrator.textArray(values))])
            let count = updated.affectedRows ?? 0
            report.resealed += count
            report.skippedChangedMeanwhile += resealKeys.count - count
            reporter.update(done: reportDone(report))
        }
        reporter.finish("\(report.resealed.formatted()) values re-sealed under v\(version)"
                        + (report.skippedChangedMeanwhile > 0 ? ", \(report.skippedChangedMeanwhile) rewritten by the app meanwhile and left as it wrote them" : ""))
        return (report, true)
    }
}
