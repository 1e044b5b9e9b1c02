import Foundation
import MRKCrypto
import MRKPostgres
import MRKProxy
import MRKSQL

/// `mrkproxy migrate encrypt|decrypt`: turns an existing column of plaintext into ciphertext (or
/// back) online, while apps keep reading and writing it.
///
/// Phases, recorded in `public.mrkproxy_migrations` (so a run that stops resumes where it was):
///
/// 1. **Prepare** (one transaction): a shadow column (and for a searchable column its blind
///    index) is added, the migration recorded in phase `backfill`, and a trigger installed that
///    clears a row's shadow value whenever the row's value changes. From here on the library
///    treats the column as what it holds now: plaintext while encrypting (so apps that already
///    run the new configuration keep working), ciphertext while decrypting.
/// 2. **Backfill**: the rows are walked by primary key in batches, each batch its own
///    transaction: values sealed (or opened) in the app and written to the shadow column only if
///    the row is unchanged since it was read (`xmin`). The batch records how far it got.
/// 3. **Swap** (one short transaction under an exclusive lock): the rows changed meanwhile are
///    done, the old column dropped, the shadow renamed into its place, the migration marked
///    `done`. When encrypting, a check constraint then refuses anything but a sealed value in
///    the column, so a process still on the old configuration cannot write plaintext there.
///
/// Processes using the library switch at the swap: a statement planned before it fails with a
/// retryable `.schemaMismatch` and the next is planned for the new column.
public final class ColumnMigrator {
    public enum Direction: String, Sendable { case encrypt, decrypt }

    public struct Options: Sendable {
        /// Rows per batch (transaction).
        public var batch = 5_000
        /// Wait while a replica's replay lag exceeds this; nil: never wait.
        public var maxLag: Duration?
        /// Report what would be done; change nothing.
        public var dryRun = false
        public init() {}
    }

    public struct Report: Sendable, Codable {
        public var table: String
        public var column: String
        public var direction: String
        /// Rows whose value was migrated by this run (backfill and swap).
        public var rowsMigrated: Int
        /// Rows in the table when the run started.
        public var rowsInTable: Int
        public var seconds: Double
        public var rowsPerSecond: Double
        /// The run continued one that had stopped.
        public var resumed: Bool
        /// The migration is finished (false: stopped; run again to continue).
        public var finished: Bool
        /// Nothing was left to do (already migrated).
        public var alreadyDone: Bool
        /// Seconds spent waiting for replicas to catch up.
        public var secondsWaitingForReplicas: Double
        /// Seconds the last step (under the table's exclusive lock) took.
        public var swapSeconds: Double = 0
    }

    let database: EncryptedDatabase
    let table: QualifiedName
    let column: String
    let direction: Direction
    let options: Options
    let stop: StopFlag
    let progress: @Sendable (String) -> Void
    let terminal: Bool

    public init(database: EncryptedDatabase, table: QualifiedName, column: String, direction: Direction, options: Options = Options(),
                stop: StopFlag = StopFlag(), terminal: Bool = isatty(STDERR_FILENO) == 1,
                progress: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.database = database
        self.table = table
        self.column = column
        self.direction = direction
        self.options = options
        self.stop = stop
        self.terminal = terminal
        self.progress = progress
    }

    // MARK: Names

    var quotedTable: String { table.description }
    var shadow: String { column + "__mrkproxy_new" }
    var shadowIndex: String { column + "__mrkproxy_new_bidx" }
    /// Named to sort last: PostgreSQL fires a row's BEFORE triggers in name order, and this one
    /// must see what the others changed.
    var triggerName: String {
        "zzz_mrkproxy_mig_" + Digest.sha256(Array("\(table.schema).\(table.name).\(column)".utf8)).prefix(6).map { String(format: "%02x", $0) }.joined()
    }
    func q(_ identifier: String) -> String { SQLIdentifier.quoted(identifier) }

    /// A name for an object the migration makes (`bidx` index, `sealed` check): readable, within
    /// PostgreSQL's 63 bytes, and distinct per table and column (`a_b`.`c` and `a`.`b_c` differ).
    func objectName(_ kind: String) -> String {
        let hash = Digest.sha256(Array("\(table.schema).\(table.name).\(column)".utf8)).prefix(4).map { String(format: "%02x", $0) }.joined()
        var readable = "\(table.name)_\(column)"
        while readable.utf8.count > 40 { readable.removeLast() }
        return "\(readable)_mrkproxy_\(kind)_\(hash)"
    }

    /// The swap asks for its exclusive lock this long at a time, this many times more.
    static let swapLockTimeoutMilliseconds = 2_000
    static let swapAttempts = 30

    // MARK: Running

    /// Runs (or continues) the migration.
    ///
    /// - Throws: `ProxyError` (`.configuration` for a column or table it cannot migrate, naming why).
    public func run() throws(ProxyError) -> Report {
        let started = ContinuousClock.now
        guard let spec = database.configuration.tables[table]?.columns[column] else {
            throw ProxyError(.configuration, "\(table).\(column) is not an encrypted column in \(database.configuration.source): "
                             + "configure it (type, search) before migrating it")
        }
        guard spec.migrating else {
            throw ProxyError(.configuration, "\(table).\(column) needs `migrating: true` in \(database.configuration.source) while it is migrated: "
                             + "with it, apps using the library follow the column from plaintext to ciphertext (or back); "
                             + "roll the configuration out to the apps first, and remove the key once the migration is done")
        }
        guard spec.type != .bytea else {
            throw ProxyError(.configuration, "\(table).\(column) is bytea: plaintext and ciphertext would both be bytea, so a process still "
                             + "on the other configuration could not be told apart from a migrated one; migrate it offline "
                             + "(copy through the library into a new column)")
        }
        guard !database.isReadOnly else {
            throw ProxyError(.readOnlyRegion, "migrate runs in the primary region (\(database.configuration.primaryRegion)); \(database.region) is read-only")
        }
        guard column.utf8.count <= 40 else { throw ProxyError(.configuration, "column names longer than 40 bytes cannot be migrated (shadow column names)") }
        let connection = try database.connect()
        // The plaintext is read as text: in PostgreSQL's exact, ISO forms whatever the database's
        // or role's defaults (fewer float digits would seal a rounded value).
        _ = try connection.operationsExecute("SET extra_float_digits = 3")
        _ = try connection.operationsExecute("SET DateStyle = 'ISO, YMD'")
        _ = try connection.operationsExecute("SET IntervalStyle = 'postgres'")
        let key = try primaryKey(connection)
        let record = try existingRecord(connection)
        let current = try columnType(connection, column)
        var report = Report(table: "\(table.schema).\(table.name)", column: column, direction: direction.rawValue, rowsMigrated: 0, rowsInTable: 0,
                            seconds: 0, rowsPerSecond: 0, resumed: false, finished: false, alreadyDone: false, secondsWaitingForReplicas: 0)

        // Where the column stands.
        if let record, record.direction == direction.rawValue, record.phase == "done" {
            report.alreadyDone = true
            report.finished = true
            return report
        }
        if let record, record.phase == "backfill", record.direction != direction.rawValue {
            throw ProxyError(.configuration, "\(table).\(column) is being \(record.direction)ed by another migration; finish it first")
        }
        let sealedNow = current == "bytea" && spec.type != .bytea
        if record == nil || record?.phase == "done" {
            switch direction {
            case .encrypt where sealedNow || (spec.type == .bytea && record?.direction == "encrypt"):
                report.alreadyDone = true
                report.finished = true
                return report
            case .decrypt where !sealedNow && !(spec.type == .bytea && record?.direction == "encrypt"):
                report.alreadyDone = true
                report.finished = true
                return report
            default: break
            }
            if direction == .encrypt {
                guard Self.sqlTypes(spec.type).contains(current) else {
                    throw ProxyError(.configuration, "\(table).\(column) is \(current), but the configuration says \(spec.type.rawValue): "
                                     + "a column is encrypted as the type it holds")
                }
            }
        } else {
            report.resumed = true
        }
        report.rowsInTable = Int(try connection.operationsExecute("SELECT count(*) FROM \(quotedTable)").string(row: 0, column: 0) ?? "0") ?? 0
        if options.dryRun {
            let pending = report.resumed ? "continue the migration" : "add \(shadow)\(spec.search == .equality ? " and \(shadowIndex)" : "") and migrate"
            progress("dry run: would \(pending) of \(report.rowsInTable) rows of \(table).\(column) (\(direction.rawValue)), keyed by \(key.name)\n")
            return report
        }
        if !report.resumed {
            let starting = ProgressReporter(label: "\(direction.rawValue) \(table.name).\(column)", total: 0, terminal: false, write: progress)
            try retryingExclusiveLock(reporter: starting, done: 0) { () throws(ProxyError) in try prepare(connection, spec: spec) }
        }
        // What the library treats the column as changed: read the catalog again.
        try connection.reloadCatalog()

        let reporter = ProgressReporter(label: "\(direction.rawValue) \(table.name).\(column)", total: report.rowsInTable, terminal: terminal, write: progress)
        var resumeAfter = try existingRecord(connection)?.resumeAfter
        var migrated = try existingRecord(connection)?.rowsDone ?? 0
        var waited: Duration = .zero
        while true {
            if stop.isSet {
                reporter.finish("stopped after \(migrated.formatted()) rows; run the same command again to continue")
                report.rowsMigrated = migrated
                report.seconds = Self.seconds(ContinuousClock.now - started)
                return report
            }
            waited += try waitForReplicas(connection, reporter: reporter, done: migrated)
            let (count, last) = try batch(connection, spec: spec, key: key, after: resumeAfter)
            guard let last else { break }
            resumeAfter = last
            migrated += count
            reporter.update(done: migrated)
        }
        var swapStarted = ContinuousClock.now
        let swapped = try retryingExclusiveLock(reporter: reporter, done: migrated) { () throws(ProxyError) -> Int in
            swapStarted = ContinuousClock.now
            return try swap(connection, spec: spec, key: key)
        }
        migrated += swapped
        report.swapSeconds = Self.seconds(ContinuousClock.now - swapStarted)
        report.finished = true
        report.rowsMigrated = migrated
        report.seconds = Self.seconds(ContinuousClock.now - started)
        report.rowsPerSecond = report.seconds > 0 ? Double(migrated) / report.seconds : 0
        report.secondsWaitingForReplicas = Self.seconds(waited)
        reporter.finish("done: \(migrated.formatted()) rows in \(String(format: "%.1f", report.seconds)) s (\(Int(report.rowsPerSecond).formatted()) rows/s); "
                        + (direction == .encrypt ? "the plaintext column is dropped" : "the column holds plaintext again: remove it from the configuration"))
        return report
    }

    // MARK: Phases

    struct Record {
        let direction: String
        let phase: String
        let resumeAfter: String?
        let rowsDone: Int
    }

    func existingRecord(_ connection: EncryptedConnection) throws(ProxyError) -> Record? {
        let exists = try connection.operationsExecute("SELECT pg_catalog.to_regclass('public.mrkproxy_migrations') IS NOT NULL")
        guard exists.string(row: 0, column: 0) == "t" else { return nil }
        let rows = try connection.operationsExecute("""
            SELECT direction, phase, resume_after, rows_done FROM public.mrkproxy_migrations
            WHERE table_schema = $1 AND table_name = $2 AND column_name = $3
            """, [.text(table.schema), .text(table.name), .text(column)])
        guard rows.rowCount == 1 else { return nil }
        return Record(direction: rows.string(row: 0, column: 0) ?? "", phase: rows.string(row: 0, column: 1) ?? "",
                      resumeAfter: rows.string(row: 0, column: 2), rowsDone: Int(rows.string(row: 0, column: 3) ?? "0") ?? 0)
    }

    struct Key {
        let name: String
        /// The key's type without modifiers (`bigint`, `text`, `uuid`, `character varying`).
        let type: String
    }

    func primaryKey(_ connection: EncryptedConnection) throws(ProxyError) -> Key {
        let rows = try connection.operationsExecute("""
            SELECT a.attname, pg_catalog.format_type(a.atttypid, NULL)
            FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
            WHERE i.indrelid = pg_catalog.to_regclass($1) AND i.indisprimary
            """, [.text("\(quotedTable)")])
        guard rows.rowCount == 1, let name = rows.string(row: 0, column: 0), let type = rows.string(row: 0, column: 1) else {
            throw ProxyError(.configuration, rows.rowCount == 0
                ? "\(table) has no primary key (or does not exist): migrate walks the rows by a one-column primary key"
                : "\(table)'s primary key has \(rows.rowCount) columns: migrate walks the rows by a one-column primary key")
        }
        return Key(name: name, type: type)
    }

    func columnType(_ connection: EncryptedConnection, _ name: String) throws(ProxyError) -> String {
        let rows = try connection.operationsExecute("""
            SELECT pg_catalog.format_type(atttypid, NULL) FROM pg_catalog.pg_attribute
            WHERE attrelid = pg_catalog.to_regclass($1) AND attname = $2 AND attnum > 0 AND NOT attisdropped
            """, [.text("\(quotedTable)"), .text(name)])
        guard rows.rowCount == 1, let type = rows.string(row: 0, column: 0) else {
            throw ProxyError(.configuration, "\(table).\(name) does not exist")
        }
        return type
    }

    /// Phase 1: the shadow column(s), the record and the trigger, in one transaction.
    /// Runs `body` (a transaction whose first lock is the table's exclusive one, taken with
    /// `lock_timeout`) again while it times out: a request for `ACCESS EXCLUSIVE` that waits behind
    /// a long query on the table queues every new statement on the table behind it, so it is
    /// asked for a short while at a time.
    func retryingExclusiveLock<R>(reporter: ProgressReporter, done: Int, _ body: () throws(ProxyError) -> R) throws(ProxyError) -> R {
        var attempts = 0
        while true {
            do {
                return try body()
            } catch where (error.sqlState == "55P03" || error.sqlState == "40P01") && attempts < Self.swapAttempts && !stop.isSet {
                attempts += 1
                reporter.update(done: done, note: "waiting for an exclusive lock on \(table.name) (attempt \(attempts + 1) of "
                                + "\(Self.swapAttempts + 1): other transactions hold it)", force: true)
                Thread.sleep(forTimeInterval: 1)
            }
        }
    }

    func prepare(_ connection: EncryptedConnection, spec: EncryptedColumn) throws(ProxyError) {
        let shadowType = direction == .encrypt ? "bytea" : Self.sqlTypes(spec.type)[0]
        let indexed = direction == .encrypt && spec.search == .equality
        try connection.operationsTransaction { () throws(ProxyError) in
            _ = try connection.operationsExecute("SET LOCAL lock_timeout = '\(Self.swapLockTimeoutMilliseconds)ms'")
            _ = try connection.operationsExecute("LOCK TABLE \(quotedTable) IN ACCESS EXCLUSIVE MODE")
            _ = try connection.operationsExecute("SET LOCAL lock_timeout = 0")
            _ = try connection.operationsExecute(ColumnMigration.ddl)
            _ = try connection.operationsExecute("ALTER TABLE \(quotedTable) ADD COLUMN IF NOT EXISTS \(q(shadow)) \(shadowType)")
            if indexed { _ = try connection.operationsExecute("ALTER TABLE \(quotedTable) ADD COLUMN IF NOT EXISTS \(q(shadowIndex)) bytea") }
            let clearIndex = indexed ? " NEW.\(q(shadowIndex)) := NULL;" : ""
            // The shadow value is stale when the value changes (compared as text: `1.0` and `1.00`
            // are equal numerics, json has no `=`), or the row identity it is bound to does.
            let identity = database.configuration.tables[table]?.rowIdentity
            let watched = [column] + (identity.map { [$0] } ?? [])
            let changed = watched.map { "NEW.\(q($0))::text IS DISTINCT FROM OLD.\(q($0))::text" }.joined(separator: " OR ")
            let body = """
                BEGIN
                    IF TG_OP = 'INSERT' OR \(changed) THEN
                        NEW.\(q(shadow)) := NULL;\(clearIndex)
                    END IF;
                    RETURN NEW;
                END
                """
            guard !body.contains("$mrkproxy_body$") else {
                throw ProxyError(.configuration, "\(table).\(column): a name contains `$mrkproxy_body$`; rename it to migrate online")
            }
            _ = try connection.operationsExecute("""
                CREATE OR REPLACE FUNCTION public.\(triggerName)() RETURNS trigger LANGUAGE plpgsql AS $mrkproxy_body$
                \(body) $mrkproxy_body$
                """)
            // Fired only by writes naming the watched columns, unless another BEFORE row trigger
            // could change them without being named (then by every write).
            let others = try connection.operationsExecute("""
                SELECT count(*) FROM pg_catalog.pg_trigger
                WHERE tgrelid = pg_catalog.to_regclass($1) AND NOT tgisinternal AND tgname <> $2
                  AND (tgtype::int4 & 3) = 3
                """, [.text(quotedTable), .text(triggerName)]).string(row: 0, column: 0) ?? "0"
            let events = others == "0" ? "INSERT OR UPDATE OF \(watched.map(q).joined(separator: ", "))" : "INSERT OR UPDATE"
            _ = try connection.operationsExecute("DROP TRIGGER IF EXISTS \(triggerName) ON \(quotedTable)")
            _ = try connection.operationsExecute("""
                CREATE TRIGGER \(triggerName) BEFORE \(events) ON \(quotedTable)
                FOR EACH ROW EXECUTE FUNCTION public.\(triggerName)()
                """)
            _ = try connection.operationsExecute("""
                INSERT INTO public.mrkproxy_migrations (table_schema, table_name, column_name, direction, phase, shadow_column,
                                                        shadow_index_column, key_column)
                VALUES ($1, $2, $3, $4, 'backfill', $5, $6, 'primary key')
                ON CONFLICT (table_schema, table_name, column_name) DO UPDATE
                SET direction = EXCLUDED.direction, phase = 'backfill', shadow_column = EXCLUDED.shadow_column,
                    shadow_index_column = EXCLUDED.shadow_index_column, resume_after = NULL, rows_done = 0, started_at = now(), finished_at = NULL
                """, [.text(table.schema), .text(table.name), .text(column), .text(direction.rawValue), .text(shadow),
                      indexed ? .text(shadowIndex) : .null])
        }
    }

    /// Phase 2: one batch after `after` (a primary-key value, text form). Returns the rows
    /// migrated and the last key scanned (nil when no rows are left).
    func batch(_ connection: EncryptedConnection, spec: EncryptedColumn, key: Key, after: String?) throws(ProxyError) -> (Int, String?) {
        let pending = try pendingRows(connection, spec: spec, key: key, after: after, all: false)
        guard let last = pending.lastKey else { return (0, nil) }
        var count = 0
        try connection.operationsTransaction { () throws(ProxyError) in
            count = try write(connection, spec: spec, key: key, rows: pending.rows, compareVersions: true)
            _ = try connection.operationsExecute("""
                UPDATE public.mrkproxy_migrations SET resume_after = $4, rows_done = rows_done + $5
                WHERE table_schema = $1 AND table_name = $2 AND column_name = $3
                """, [.text(table.schema), .text(table.name), .text(column), .text(last), .int(count)])
        }
        return (count, last)
    }

    /// A row to migrate: its key, its version (`xmin`), its row identity and its value.
    struct Row {
        let key: String
        let xmin: String
        let value: SQLValue
        let identity: SQLValue?
    }

    /// The next batch of rows (`all`: every row still to do, for the swap), as values.
    func pendingRows(_ connection: EncryptedConnection, spec: EncryptedColumn, key: Key, after: String?, all: Bool) throws(ProxyError)
        -> (rows: [Row], lastKey: String?) {
        let identity = database.configuration.tables[table]?.rowIdentity
        let keyCast = "\(q(key.name))::text"
        // Ordered by the column itself (qualified: an output column named like it would sort as text).
        let limit = all ? "" : " ORDER BY \(quotedTable).\(q(key.name)) LIMIT \(options.batch)"
        let range = all ? "\(q(column)) IS NOT NULL AND \(q(shadow)) IS NULL" : "($1::text IS NULL OR \(q(key.name)) > $1::\(key.type))"
        let identityColumn = identity.map { ", \(q($0))::text" } ?? ""
        switch direction {
        case .encrypt:
            // Plaintext, read as text: the library parses it as PostgreSQL would.
            let result = try connection.operationsExecute("""
                SELECT \(keyCast) AS mrkproxy_key, xmin::text, \(q(column))::text, \(q(shadow)) IS NOT NULL\(identityColumn)
                FROM \(quotedTable) WHERE \(range)\(limit)
                """, all ? [] : [after.map { .text($0) } ?? .null])
            var rows: [Row] = []
            for index in 0..<result.rowCount {
                guard let keyValue = result.string(row: index, column: 0), let xmin = result.string(row: index, column: 1),
                      let text = result.string(row: index, column: 2), result.string(row: index, column: 3) != "t" else { continue }
                let identityValue = identity == nil ? nil : result.string(row: index, column: 4).map(SQLValue.text) ?? .null
                rows.append(Row(key: keyValue, xmin: xmin, value: .text(text), identity: identityValue))
            }
            let last = result.rowCount > 0 ? result.string(row: result.rowCount - 1, column: 0) : nil
            return (rows, last)
        case .decrypt:
            // Ciphertext, read through the library: opened and checked against its row.
            let identitySelect = identity.map { ", \(q($0))" } ?? ""
            let sql = all
                ? "SELECT \(keyCast) AS mrkproxy_key, xmin::text AS mrkproxy_xmin, \(q(column)) AS mrkproxy_value\(identitySelect) FROM \(quotedTable) WHERE \(range)"
                : "SELECT \(keyCast) AS mrkproxy_key, xmin::text AS mrkproxy_xmin, \(q(column)) AS mrkproxy_value, \(q(shadow)) IS NOT NULL AS mrkproxy_done\(identitySelect) FROM \(quotedTable) WHERE \(range)\(limit)"
            let result = try connection.query(sql, all ? [] : [after.map { .text($0) } ?? .null])
            var rows: [Row] = []
            // By position: the row identity column may have any name.
            for row in result.rows where row.values.count >= 3 && !(!all && row.values.count >= 4 && row.values[3] == .bool(true)) {
                guard let keyValue = row.values[0].postgresText, let xmin = row.values[1].postgresText, row.values[2] != .null else { continue }
                rows.append(Row(key: keyValue, xmin: xmin, value: row.values[2], identity: nil))
            }
            return (rows, result.rows.last?.values.first?.postgresText)
        }
    }

    /// Writes the rows' new values into the shadow column(s), each only if its row is unchanged
    /// since it was read. Returns the rows written.
    func write(_ connection: EncryptedConnection, spec: EncryptedColumn, key: Key, rows: [Row], compareVersions: Bool) throws(ProxyError) -> Int {
        guard !rows.isEmpty else { return 0 }
        var keys: [String?] = [], xmins: [String?] = [], values: [String?] = [], indexes: [String?] = []
        switch direction {
        case .encrypt:
            let sealer = try ColumnSealer(connection: connection, table: table, column: column)
            for row in rows {
                let sealed = try sealer.seal(row.value, rowIdentity: row.identity)
                keys.append(row.key)
                xmins.append(row.xmin)
                values.append(sealed.ciphertext.map(ByteaText.encode))
                indexes.append(sealed.blindIndex.map(ByteaText.encode))
            }
        case .decrypt:
            for row in rows {
                keys.append(row.key)
                xmins.append(row.xmin)
                values.append(row.value.postgresText)
            }
        }
        let indexed = direction == .encrypt && spec.search == .equality
        let shadowType = direction == .encrypt ? "bytea" : Self.sqlTypes(spec.type)[0]
        let set = "\(q(shadow)) = u.v::\(shadowType)" + (indexed ? ", \(q(shadowIndex)) = u.b" : "")
        let result = try connection.operationsExecute("""
            UPDATE \(quotedTable) AS t SET \(set)
            FROM unnest($1::\(key.type)[], $2::xid[], $3::text[], $4::bytea[]) AS u(k, x, v, b)
            WHERE t.\(q(key.name)) = u.k\(compareVersions ? " AND t.xmin = u.x" : "")
            """, [.text(Self.textArray(keys)), .text(Self.textArray(xmins)), .text(Self.textArray(values)),
                  .text(Self.textArray(indexes.isEmpty ? keys.map { _ in nil } : indexes))])
        return result.affectedRows ?? 0
    }

    /// Phase 3: under an exclusive lock, the rows changed since they were done, then the column
    /// swap. Returns the rows migrated in it.
    func swap(_ connection: EncryptedConnection, spec: EncryptedColumn, key: Key) throws(ProxyError) -> Int {
        let indexed = direction == .encrypt && spec.search == .equality
        if indexed {
            // Built before the lock, without blocking writes; the rename below carries it along.
            // An index left invalid by an interrupted build is dropped and built again.
            let index = objectName("bidx")
            let invalid = try connection.operationsExecute("""
                SELECT NOT i.indisvalid FROM pg_catalog.pg_index i
                WHERE i.indexrelid = pg_catalog.to_regclass($1) AND i.indrelid = pg_catalog.to_regclass($2)
                """, [.text("\(q(table.schema)).\(q(index))"), .text(quotedTable)]).string(row: 0, column: 0)
            if invalid == "t" { _ = try connection.operationsExecute("DROP INDEX CONCURRENTLY IF EXISTS \(q(table.schema)).\(q(index))") }
            _ = try connection.operationsExecute("""
                CREATE INDEX CONCURRENTLY IF NOT EXISTS \(q(index)) ON \(quotedTable) (\(q(shadowIndex)))
                """)
        }
        var count = 0
        try connection.operationsTransaction { () throws(ProxyError) in
            _ = try connection.operationsExecute("SET LOCAL lock_timeout = '\(Self.swapLockTimeoutMilliseconds)ms'")
            _ = try connection.operationsExecute("LOCK TABLE \(quotedTable) IN ACCESS EXCLUSIVE MODE")
            _ = try connection.operationsExecute("SET LOCAL lock_timeout = 0")
            let remaining = try pendingRows(connection, spec: spec, key: key, after: nil, all: true)
            count = try write(connection, spec: spec, key: key, rows: remaining.rows, compareVersions: false)
            _ = try connection.operationsExecute("DROP TRIGGER IF EXISTS \(triggerName) ON \(quotedTable)")
            _ = try connection.operationsExecute("DROP FUNCTION IF EXISTS public.\(triggerName)()")
            let sealedCheck = q(objectName("sealed"))
            switch direction {
            case .encrypt:
                _ = try connection.operationsExecute("ALTER TABLE \(quotedTable) DROP COLUMN \(q(column))")
                _ = try connection.operationsExecute("ALTER TABLE \(quotedTable) RENAME COLUMN \(q(shadow)) TO \(q(column))")
                if indexed {
                    _ = try connection.operationsExecute("ALTER TABLE \(quotedTable) DROP COLUMN IF EXISTS \(q(spec.blindIndexColumn))")
                    _ = try connection.operationsExecute("ALTER TABLE \(quotedTable) RENAME COLUMN \(q(shadowIndex)) TO \(q(spec.blindIndexColumn))")
                }
                // Only sealed values from here on: a compact value starts with its format version
                // (1) and the column's type tag and is at least 42 bytes; an ESDK message starts
                // with its version (1 or 2) and is longer than its header.
                let check = spec.format == .esdk
                    ? "pg_catalog.length(\(q(column))) >= 40 AND pg_catalog.get_byte(\(q(column)), 0) IN (1, 2)"
                    : "pg_catalog.length(\(q(column))) >= 42 AND pg_catalog.get_byte(\(q(column)), 0) = 1 "
                        + "AND pg_catalog.get_byte(\(q(column)), 1) = \(spec.type.plaintextType.rawValue)"
                _ = try connection.operationsExecute("""
                    ALTER TABLE \(quotedTable) ADD CONSTRAINT \(sealedCheck) CHECK (\(q(column)) IS NULL OR (\(check)))
                    """)
            case .decrypt:
                _ = try connection.operationsExecute("ALTER TABLE \(quotedTable) DROP CONSTRAINT IF EXISTS \(sealedCheck)")
                _ = try connection.operationsExecute("ALTER TABLE \(quotedTable) DROP COLUMN \(q(column))")
                if spec.search == .equality {
                    _ = try connection.operationsExecute("ALTER TABLE \(quotedTable) DROP COLUMN IF EXISTS \(q(spec.blindIndexColumn))")
                }
                _ = try connection.operationsExecute("ALTER TABLE \(quotedTable) RENAME COLUMN \(q(shadow)) TO \(q(column))")
            }
            _ = try connection.operationsExecute("""
                UPDATE public.mrkproxy_migrations SET phase = 'done', finished_at = now(), rows_done = rows_done + $4
                WHERE table_schema = $1 AND table_name = $2 AND column_name = $3
                """, [.text(table.schema), .text(table.name), .text(column), .int(count)])
        }
        try connection.reloadCatalog()
        return count
    }

    /// Waits while a replica is further behind than `maxLag`. Returns the time waited.
    func waitForReplicas(_ connection: EncryptedConnection, reporter: ProgressReporter, done: Int) throws(ProxyError) -> Duration {
        guard let maxLag = options.maxLag else { return .zero }
        let started = ContinuousClock.now
        while !stop.isSet {
            let lag = Double(try connection.operationsExecute("""
                SELECT coalesce(max(EXTRACT(EPOCH FROM replay_lag)), 0)::float8 FROM pg_catalog.pg_stat_replication
                """).string(row: 0, column: 0) ?? "0") ?? 0
            guard lag > Self.seconds(maxLag) else { break }
            reporter.update(done: done, note: String(format: "waiting: a replica is %.1f s behind", lag), force: true)
            Thread.sleep(forTimeInterval: 0.1)
        }
        return ContinuousClock.now - started
    }

    // MARK: Helpers

    /// The SQL type names a column of `type` may have (the first is the one migrate creates).
    static func sqlTypes(_ type: ColumnValueType) -> [String] {
        switch type {
        case .text: ["text", "character varying"]
        case .int2: ["smallint"]
        case .int4: ["integer"]
        case .int8: ["bigint"]
        case .numeric: ["numeric"]
        case .float4: ["real"]
        case .float8: ["double precision"]
        case .bool: ["boolean"]
        case .date: ["date"]
        case .timestamp: ["timestamp without time zone"]
        case .timestamptz: ["timestamp with time zone"]
        case .uuid: ["uuid"]
        case .bytea: ["bytea"]
        case .json: ["json"]
        case .jsonb: ["jsonb"]
        }
    }

    /// A PostgreSQL array literal (text form) of `items`, each quoted. Built from UTF-8 bytes
    /// (a multi-byte sequence never contains `"` or a backslash): batches hold megabytes of hex.
    static func textArray(_ items: [String?]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(items.reduce(2) { $0 + ($1?.utf8.count ?? 4) + 3 })
        out.append(UInt8(ascii: "{"))
        for (index, item) in items.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            guard let item else { out.append(contentsOf: "NULL".utf8); continue }
            out.append(UInt8(ascii: "\""))
            for byte in item.utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                out.append(byte)
            }
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
