import Foundation
import Logging
import MRKCrypto
import MRKPostgres
import MRKSQL

/// A connection through which encrypted columns are written encrypted and read decrypted.
///
/// Statements are parsed before they are sent: values for encrypted columns (parameters and
/// literals) are sealed in the app, equality searches on searchable columns are rewritten to
/// blind indexes, configured tables are sent schema-qualified, and statements MRKProxy cannot keep
/// correct are refused without sending anything. Which result columns are decrypted is decided by
/// that analysis — never by the server's answer — and every such column is verified to arrive as
/// `bytea` from exactly the table and column the statement reads.
///
/// Like the underlying libpq connection it is used by one thread at a time. From async code use
/// `EncryptedConnectionPool`.
public final class EncryptedConnection {
    /// The region's MRKProxy this connection belongs to.
    public let database: EncryptedDatabase
    let connection: PostgresConnection
    /// Ciphers and blind indexers for this connection's thread.
    let ciphers: CipherCache
    var plans = PlanCache()
    var preparedCount = 0
    var savepointDepth = 0
    /// The settings checked before every statement (and the session's time-zone context).
    var session = SessionGuard()

    init(database: EncryptedDatabase, parameters: [String: String] = [:]) throws(ProxyError) {
        self.database = database
        let overrides = parameters.merging(PostgresConnection.libraryParameters) { _, library in library }
        connection = try postgres("cannot connect to the \(database.region) database") {
            try PostgresConnection(database.databaseURL, overrides: overrides, logger: database.logger)
        }
        ciphers = CipherCache(keys: database.keys)
    }

    // MARK: Statements

    /// Runs one statement and returns its rows (decrypted).
    ///
    /// - Parameters:
    ///   - sql: one statement with `$1`, `$2`… placeholders.
    ///   - values: the placeholder values.
    /// - Throws: `ProxyError` — `.refused` (nothing was sent), `.readOnlyRegion`, `.invalidValue`,
    ///   `.integrity` (a stored value failed to decrypt, or the result is not what the statement
    ///   reads), `.database` (with SQLSTATE).
    @discardableResult
    public func query(_ sql: String, _ values: [SQLValue] = []) throws(ProxyError) -> QueryResult {
        do {
            return try queryOnce(sql, values)
        } catch where error.stalePlan {
            // A read planned before a migration's last step: planned and run again, once.
            return try queryOnce(sql, values)
        }
    }

    func queryOnce(_ sql: String, _ values: [SQLValue]) throws(ProxyError) -> QueryResult {
        let binder = try cachedBinder(sql, values.count)
        let parameters = try bind(binder, values)
        do {
            let result = try withMigrationGuard(binder.plan) { () throws(ProxyError) in
                try run { try connection.execute(binder.plan.sql, parameters) }
            }
            return try decode(result, plan: binder.plan, values: values)
        } catch {
            noticeMigrationError(error)
            throw error
        }
    }

    /// Runs one statement and returns the number of rows it affected.
    @discardableResult
    public func execute(_ sql: String, _ values: [SQLValue] = []) throws(ProxyError) -> Int {
        try query(sql, values).affectedRows ?? 0
    }

    /// Runs a query and hands rows to `body` one at a time, in constant memory.
    ///
    /// - Returns: the number of rows delivered.
    @discardableResult
    public func stream(_ sql: String, _ values: [SQLValue] = [], _ body: (Row) throws(ProxyError) -> Void) throws(ProxyError) -> Int {
        do {
            return try streamOnce(sql, values, body)
        } catch where error.stalePlan {
            // Refused at the first row, before any was delivered: planned and run again, once.
            return try streamOnce(sql, values, body)
        }
    }

    func streamOnce(_ sql: String, _ values: [SQLValue], _ body: (Row) throws(ProxyError) -> Void) throws(ProxyError) -> Int {
        let binder = try cachedBinder(sql, values.count)
        let plan = binder.plan
        let parameters = try bind(binder, values)
        var decoder: ResultDecoder?
        var delivered = 0
        var failure: ProxyError?
        do {
            try withMigrationGuard(plan) { () throws(ProxyError) in
            try run {
                _ = try connection.stream(plan.sql, parameters) { row in
                guard failure == nil else { return }
                do throws(ProxyError) {
                    if decoder == nil {
                        decoder = try ResultDecoder(layout: try layout(for: plan, columns: row.result.columns), plan: plan, values: values,
                                                    ciphers: ciphers, esdk: database.esdk, context: session.context)
                    }
                    if let decoded = try decoder!.decodeRow(row.result, 0) {
                        try body(decoded)
                        delivered += 1
                    }
                } catch {
                    // Stop decoding; the rest of the result is drained by libpq.
                    failure = error
                }
                }
            }
            }
        } catch {
            noticeMigrationError(error)
            throw error
        }
        if let failure {
            noticeMigrationError(failure)
            throw failure
        }
        return delivered
    }

    /// Parses and prepares `sql` once; run it many times with `PreparedStatement.query(_:)`.
    ///
    /// - Parameters:
    ///   - sql: one statement, with `$1`, `$2`, … for the values each execution gives.
    ///   - parameterCount: how many `$n` values each execution gives.
    public func prepare(_ sql: String, parameterCount: Int) throws(ProxyError) -> PreparedStatement {
        let plan = try planned(sql, parameterCount)
        preparedCount += 1
        let name = "\(SQLInterceptor.libraryStatementPrefix)\(preparedCount)"
        try run { try connection.prepare(name: name, sql: plan.sql, parameterTypes: plan.parameters.map(\.wireType)) }
        return PreparedStatement(connection: self, name: name, plan: plan, parameterCount: parameterCount)
    }

    /// The primary's current WAL position, to pass to `EncryptedDatabase.waitForReplication(of:)`
    /// in another region after writing (read-your-writes).
    public func currentWALPosition() throws(ProxyError) -> LSN {
        try run { try connection.currentWALPosition() }
    }

    /// Readies the connection for its next user (the pool calls it when a connection comes
    /// back): rolls back a transaction left open. Returns false when it cannot be reused.
    func resetForReuse() -> Bool {
        guard connection.isConnected else { return false }
        if connection.transactionStatus != .idle { _ = try? connection.execute("ROLLBACK") }
        return connection.isConnected && connection.transactionStatus == .idle
    }

    // MARK: Planning and binding

    /// The binder of `sql`'s plan, from the cache or planned now.
    func cachedBinder(_ sql: String, _ parameterCount: Int) throws(ProxyError) -> Binder {
        try session.check(connection)
        let schemaVersion = database.catalogs.interceptor.schemaVersion
        if plans.schemaVersion != schemaVersion { plans = PlanCache(schemaVersion: schemaVersion) }
        if let binder = plans.binder(sql, parameterCount) { return binder }
        let binder = Binder(plan: try planned(sql, parameterCount))
        plans.keep(binder, sql: sql, parameterCount: parameterCount)
        return binder
    }

    package func planned(_ sql: String, _ parameterCount: Int) throws(ProxyError) -> StatementPlan {
        try session.check(connection)
        var plan: StatementPlan
        let (interceptor, schemaVersion) = database.catalogs.interceptor
        do {
            plan = try interceptor.plan(sql, parameterCount: parameterCount)
        } catch {
            throw ProxyError(refusal: error)
        }
        plan.schemaVersion = schemaVersion
        if plan.isWrite && database.isReadOnly { throw readOnlyError() }
        return plan
    }

    /// Refuses a plan made under another analysis than the one in force (a migration finished
    /// since): the statement is retryable, and is planned afresh when run again.
    func checkCurrent(_ plan: StatementPlan) throws(ProxyError) {
        guard plan.schemaVersion == database.catalogs.interceptor.schemaVersion else {
            var error = ProxyError(.schemaMismatch, "a column of a table this statement uses was encrypted or decrypted by a migration "
                                   + "while the statement was being prepared or run; run it again")
            error.stalePlan = !plan.isWrite
            throw error
        }
    }

    /// After a server error on a database with migrations in progress, the catalog is read again:
    /// the error may be a stale plan meeting a migration's last step (a plaintext value refused by
    /// the ciphertext column's check), and the next statement must be planned with what is there now.
    func noticeMigrationError(_ error: ProxyError) {
        guard error.code == .database || error.code == .integrity else { return }
        let (catalog, generation) = database.catalogs.catalog
        guard catalog.hasMigrations else { return }
        _ = try? database.catalogs.reload(after: generation)
    }

    func readOnlyError() -> ProxyError {
        ProxyError(.readOnlyRegion, "\(database.region) is a read-only replica region; write through the primary region "
                   + "\(database.configuration.primaryRegion)")
    }

    /// Binds `values` for `binder`'s plan, sealing and indexing as it says.
    package func bind(_ binder: Binder, _ values: [SQLValue]) throws(ProxyError) -> [PostgresParameter] {
        let seals = binder.plan.parameters.contains { if case .encrypt = $0 { return true } else { return false } }
        return try binder.bind(values, session: try bindingSession(sealing: seals))
    }

    /// What binding needs now. Keys derived more than a TTL ago are dropped first.
    func bindingSession(sealing: Bool = true) throws(ProxyError) -> BindingSession {
        let generation = database.keys.refreshIfDue()
        ciphers.synchronize(generation: generation)
        let version = sealing && !database.isReadOnly ? try database.sealingVersion() : 0
        return BindingSession(version: version, generation: generation, ciphers: ciphers, esdk: database.esdk,
                              catalog: database.catalogs.catalog.catalog, context: session.context)
    }

    // MARK: Results

    /// `columns` laid over what `plan` reads; when they do not match, the catalog is read again
    /// once (a table may have changed legitimately) before the result is refused.
    func layout(for plan: StatementPlan, columns: [PostgresColumn]) throws(ProxyError) -> ResultLayout {
        // A write has been applied by now (the server checked its values against the columns as
        // they are); a read planned before a migration's last step is refused before any row.
        if !plan.isWrite { try checkCurrent(plan) }
        let (catalog, generation) = database.catalogs.catalog
        do {
            return try ResultLayout.build(shape: plan.result, columns: columns, catalog: catalog)
        } catch let error as ProxyError {
            throw error
        } catch let mismatch as ResultLayout.Mismatch where mismatch.catalogMayBeStale {
            let fresh: Catalog
            do {
                fresh = try database.catalogs.reload(after: generation)
            } catch where error.code == .schemaMismatch {
                throw ProxyError(.integrity, "the \(database.region) database no longer matches the configuration: \(error.reason)")
            }
            if !plan.isWrite { try checkCurrent(plan) }
            do {
                return try ResultLayout.build(shape: plan.result, columns: columns, catalog: fresh)
            } catch let error as ProxyError {
                throw error
            } catch let mismatch as ResultLayout.Mismatch {
                throw ProxyError(.integrity, mismatch.reason)
            } catch {
                throw ProxyError(.integrity, "the result is not what the statement reads")
            }
        } catch let mismatch as ResultLayout.Mismatch {
            throw ProxyError(.integrity, mismatch.reason)
        } catch {
            throw ProxyError(.integrity, "the result is not what the statement reads")
        }
    }

    func decode(_ result: PostgresResult, plan: StatementPlan, values: [SQLValue]) throws(ProxyError) -> QueryResult {
        let layout = try layout(for: plan, columns: result.columns)
        let (schema, rows) = try ResultDecoder.decodeAll(result, layout: layout, plan: plan, values: values, ciphers: ciphers,
                                                        esdk: database.esdk, context: session.context)
        return QueryResult(columns: schema.names, rows: rows, commandTag: result.commandTag,
                           affectedRows: plan.postFilters.isEmpty ? result.affectedRows : rows.count)
    }

    /// Runs a libpq call, turning its errors into `ProxyError`s.
    @discardableResult
    func run<R>(_ body: () throws -> R) throws(ProxyError) -> R {
        do {
            return try postgres(nil, body)
        } catch {
            if error.code == .readOnlyRegion || !connection.isConnected { database.noticeServerChange() }
            throw error
        }
    }
}

/// What MRKProxy checks about the session before every statement: the settings that decide how
/// the server reads the statement text the SQL analysis read, and the time zone `timestamptz`
/// text without an offset is read in. The server reports them (ParameterStatus) whenever they
/// change — also when a trigger or function changes them.
struct SessionGuard {
    private var timeZone: String?
    private(set) var context = ColumnCodec.Context(sessionOffset: nil)

    mutating func check(_ connection: PostgresConnection) throws(ProxyError) {
        guard connection.parameterStatus("standard_conforming_strings") == "on" else {
            throw ProxyError(.refused, "standard_conforming_strings is not on for this connection; MRKProxy reads SQL string literals "
                             + "as PostgreSQL does only with it on, so it sends nothing until it is turned back on")
        }
        guard connection.parameterStatus("client_encoding")?.uppercased() == "UTF8" else {
            throw ProxyError(.refused, "client_encoding is not UTF8 for this connection; MRKProxy reads SQL text as UTF-8 only "
                             + "(in other encodings a multibyte character can hide a quote or backslash), so it sends nothing")
        }
        let zone = connection.parameterStatus("TimeZone")
        if zone != timeZone {
            timeZone = zone
            context = ColumnCodec.Context(timeZone: zone)
        }
    }
}

/// Plans of recently run statements with their binders, so a statement run again is neither
/// parsed nor resolved again. Plans holding values from the SQL text are not kept.
struct PlanCache {
    /// Statements whose plans are kept; past this the cache starts over.
    static let capacity = 256
    /// The analysis the plans were made under.
    var schemaVersion = 0

    init(schemaVersion: Int = 0) { self.schemaVersion = schemaVersion }

    private struct Key: Hashable {
        let sql: String
        let parameterCount: Int
    }

    private var binders: [Key: Binder] = [:]

    /// The number of plans kept.
    var count: Int { binders.count }

    func binder(_ sql: String, _ parameterCount: Int) -> Binder? {
        binders[Key(sql: sql, parameterCount: parameterCount)]
    }

    mutating func keep(_ binder: Binder, sql: String, parameterCount: Int) {
        guard !binder.plan.holdsLiterals else { return }
        if binders.count >= Self.capacity { binders.removeAll(keepingCapacity: true) }
        binders[Key(sql: sql, parameterCount: parameterCount)] = binder
    }
}
