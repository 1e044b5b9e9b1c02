import MRKSQL
import Foundation
import Logging
import MRKCrypto
import MRKPostgres

/// A connection through which encrypted columns are written encrypted and read decrypted.
///
/// Statements are parsed before they are sent: values for encrypted columns (parameters and
/// literals) are sealed in the app, equality searches on searchable columns are rewritten to
/// blind indexes, and statements MRKProxy cannot keep correct are refused without sending
/// anything. Result columns that come from encrypted columns (by source table and column, so
/// aliases, joins, `RETURNING` and `SELECT *` work) are decrypted back to their type.
///
/// Like the underlying libpq connection it is used by one thread at a time. From async code use
/// `EncryptedConnectionPool`.
public final class EncryptedConnection {
    /// The region's MRKProxy this connection belongs to.
    public let database: EncryptedDatabase
    let connection: PostgresConnection
    let interceptor: SQLInterceptor
    private var ciphers: [CipherKey: ColumnCipher] = [:]
    private var indexers: [ColumnKey: ColumnIndexer] = [:]
    private var sealers: [SealerKey: Sealer] = [:]
    private var active: (version: UInt32, checkedAt: ContinuousClock.Instant)?
    /// Bumped whenever the derived keys are dropped; binders prepared before must resolve again.
    private var keyGeneration: UInt64 = 0
    private let clock = ContinuousClock()
    private var preparedCount = 0
    private var savepointDepth = 0

    /// A column, for cache lookups (cheaper to hash than `EncryptedColumn`).
    struct ColumnKey: Hashable {
        let schema: String
        let table: String
        let column: String
        init(_ column: EncryptedColumn) {
            schema = column.table.schema
            table = column.table.name
            self.column = column.name
        }
    }

    private struct SealerKey: Hashable {
        let column: ColumnKey
        let version: UInt32
    }

    private struct CipherKey: Hashable {
        let column: ColumnKey
        let keyID: CompactKeyID
    }

    /// Row identity column per configured table, and the key-cache TTL (copied once: reading
    /// `database.configuration` copies the whole configuration).
    private let rowIdentities: [QualifiedName: String]
    private let cacheTTL: Duration

    init(database: EncryptedDatabase) throws {
        self.database = database
        rowIdentities = database.configuration.tables.compactMapValues(\.rowIdentity)
        cacheTTL = database.configuration.kms.cacheTTL
        do {
            connection = try PostgresConnection(database.databaseURL, logger: database.logger)
        } catch let error as PostgresError {
            throw ProxyError(.database, "cannot connect to the \(database.region) database: \(error.message)")
        }
        interceptor = SQLInterceptor(schema: database.configuration.schema)
    }

    // MARK: Statements

    /// Runs one statement and returns its rows (decrypted).
    ///
    /// - Parameters:
    ///   - sql: one statement with `$1`, `$2`… placeholders.
    ///   - values: the placeholder values.
    /// - Throws: `ProxyError` — `.refused` (nothing was sent), `.readOnlyRegion`, `.invalidValue`,
    ///   `.integrity` (a stored value failed to decrypt), `.database` (with SQLSTATE).
    @discardableResult
    public func query(_ sql: String, _ values: [SQLValue] = []) throws -> QueryResult {
        let binder = try cachedBinder(sql, values.count)
        let parameters = try bind(binder, values)
        let result = try run { try connection.execute(binder.plan.sql, parameters) }
        return try decode(result, plan: binder.plan, values: values)
    }

    /// Runs one statement and returns the number of rows it affected.
    @discardableResult
    public func execute(_ sql: String, _ values: [SQLValue] = []) throws -> Int {
        try query(sql, values).affectedRows ?? 0
    }

    /// Runs a query and hands rows to `body` one at a time, in constant memory.
    ///
    /// - Returns: the number of rows.
    @discardableResult
    public func stream(_ sql: String, _ values: [SQLValue] = [], _ body: (Row) throws -> Void) throws -> Int {
        let binder = try cachedBinder(sql, values.count)
        let plan = binder.plan
        let parameters = try bind(binder, values)
        var decoder: ResultDecoder?
        var delivered = 0
        try run {
            _ = try connection.stream(plan.sql, parameters) { row in
                if decoder == nil { decoder = try ResultDecoder(columns: row.result.columns, plan: plan, values: values, connection: self) }
                if let decoded = try decoder!.decodeRow(row.result, 0) {
                    try body(decoded)
                    delivered += 1
                }
            }
        }
        return delivered
    }

    /// Runs `body` in a transaction: committed if it returns, rolled back if it throws.
    ///
    /// Inside an open transaction it runs in a savepoint instead: released if `body` returns, rolled
    /// back to (and released) if it throws, leaving the outer transaction to its owner.
    ///
    /// - Throws: what `body` throws; `.database` when the server rolled the transaction back
    ///   instead of committing it (a statement in it failed and the error was caught).
    public func transaction<R>(_ body: (EncryptedConnection) throws -> R) throws -> R {
        if connection.transactionStatus != .idle {
            savepointDepth += 1
            defer { savepointDepth -= 1 }
            let savepoint = "mrkproxy_savepoint_\(savepointDepth)"
            try run { try connection.execute("SAVEPOINT \(savepoint)") }
            do {
                let value = try body(self)
                try run { try connection.execute("RELEASE SAVEPOINT \(savepoint)") }
                return value
            } catch {
                _ = try? connection.execute("ROLLBACK TO SAVEPOINT \(savepoint)")
                _ = try? connection.execute("RELEASE SAVEPOINT \(savepoint)")
                throw error
            }
        }
        try run { try connection.execute("BEGIN") }
        let value: R
        do {
            value = try body(self)
        } catch {
            if connection.transactionStatus != .idle { _ = try? connection.execute("ROLLBACK") }
            throw error
        }
        // COMMIT of a transaction an earlier error aborted is a ROLLBACK (tag ROLLBACK, no error).
        let commit = try run { try connection.execute("COMMIT") }
        guard commit.commandTag == "COMMIT" else {
            throw ProxyError(.database, "the transaction was rolled back, not committed: a statement in it failed")
        }
        return value
    }

    /// Parses and prepares `sql` once; execute it many times with `PreparedStatement.query`.
    public func prepare(_ sql: String, parameterCount: Int) throws -> PreparedStatement {
        let plan = try planned(sql, parameterCount)
        preparedCount += 1
        let name = "\(SQLInterceptor.libraryStatementPrefix)\(preparedCount)"
        try run { try connection.prepare(name: name, sql: plan.sql, parameterTypes: plan.parameters.map(\.wireType)) }
        return PreparedStatement(connection: self, name: name, plan: plan, parameterCount: parameterCount)
    }

    /// Runs `sql` once per element of `rows`, pipelined (one round trip for the batch), as one
    /// transaction unless a transaction is already open. Values are encrypted on the fly.
    ///
    /// - Returns: the total number of rows affected.
    @discardableResult
    public func batch(_ sql: String, _ rows: [[SQLValue]]) throws -> Int {
        guard let first = rows.first else { return 0 }
        if let index = rows.firstIndex(where: { $0.count != first.count }) {
            throw ProxyError(.invalidValue, "batch row \(index) has \(rows[index].count) values; the first row has \(first.count)")
        }
        let statement = try prepare(sql, parameterCount: first.count)
        defer { _ = try? connection.execute("DEALLOCATE \(statement.name)") }
        let binder = Binder(plan: statement.plan)
        var failure: Error?
        let statements = rows.lazy.compactMap { values -> PostgresStatement? in
            guard failure == nil else { return nil }
            do {
                return PostgresStatement(prepared: statement.name, try self.bind(binder, values))
            } catch {
                failure = error
                return nil
            }
        }
        // Rows are encrypted while earlier ones are already on the wire; so that a value failing
        // to encrypt half-way commits nothing, the batch runs in a transaction of its own (or a
        // savepoint in the caller's).
        // Inside the caller's transaction, a savepoint: a failing batch leaves none of its rows
        // while the caller's earlier work stays.
        let ownTransaction = connection.transactionStatus == .idle
        try run { try connection.execute(ownTransaction ? "BEGIN" : "SAVEPOINT mrkproxy_batch") }
        do {
            let results = try run { try connection.pipeline(statements) }
            if let failure { throw failure }
            try run { try connection.execute(ownTransaction ? "COMMIT" : "RELEASE SAVEPOINT mrkproxy_batch") }
            return results.reduce(0) { $0 + ($1.affectedRows ?? 0) }
        } catch {
            if ownTransaction {
                if connection.transactionStatus != .idle { _ = try? connection.execute("ROLLBACK") }
            } else {
                _ = try? connection.execute("ROLLBACK TO SAVEPOINT mrkproxy_batch")
                _ = try? connection.execute("RELEASE SAVEPOINT mrkproxy_batch")
            }
            throw error
        }
    }

    /// Bulk-loads rows into a table with `COPY … FROM STDIN`, encrypting configured columns (and
    /// computing their blind indexes) on the fly.
    ///
    /// - Parameters:
    ///   - table: the table (`name` or `schema.name`).
    ///   - columns: the columns given in each row, in order. For a table with `row_identity`, the
    ///     identity column must be among them.
    ///   - rows: the values.
    /// - Returns: the number of rows loaded.
    @discardableResult
    public func copyIn(into table: String, columns: [String], rows: some Sequence<[SQLValue]>) throws -> Int {
        guard !database.isReadOnly else { throw readOnlyError() }
        _ = try currentActiveVersion()  // drops derived keys past their TTL before the load
        let copy = try CopyPlan(table: table, columns: columns, schema: database.configuration.schema)
        return try run {
            try connection.copyIn(copy.sql) { writer in
                for values in rows {
                    guard values.count == columns.count else {
                        throw ProxyError(.invalidValue, "copyIn: a row has \(values.count) values for \(columns.count) columns")
                    }
                    var fields: [String?] = []
                    fields.reserveCapacity(copy.output.count)
                    for output in copy.output {
                        switch output {
                        case .plain(let i): fields.append(values[i].postgresText)
                        case .encrypt(let i, let column, let identity):
                            let parameter = try seal(values[i], column: column, rowIdentity: identity.map { values[$0] })
                            fields.append(parameter.bytes.map { ByteaText.encode($0) })
                        case .blindIndex(let i, let column):
                            fields.append(try blindIndex(values[i], column: column).map { ByteaText.encode($0) })
                        }
                    }
                    try writer.appendTextRow(fields)
                }
            }
        }
    }

    /// Readies the connection for its next user (the pool calls it when a connection comes
    /// back): rolls back a transaction left open. Returns false when it cannot be reused.
    func resetForReuse() -> Bool {
        guard connection.isConnected else { return false }
        if connection.transactionStatus != .idle { _ = try? connection.execute("ROLLBACK") }
        return connection.isConnected && connection.transactionStatus == .idle
    }

    /// The primary's current WAL position, to pass to `EncryptedDatabase.waitForReplication(of:)`
    /// in another region after writing (read-your-writes).
    public func currentWALPosition() throws -> LSN {
        try run { try connection.currentWALPosition() }
    }

    // MARK: Planning and binding

    /// Plans of recently run statements with their binders, so a statement run again is neither
    /// parsed nor resolved again. Plans holding values from the SQL text are not kept.
    private var plans: [PlanKey: Binder] = [:]
    /// The number of plans kept (for tests).
    var cachedPlanCount: Int { plans.count }
    /// Statements whose plans are kept; past this the cache starts over.
    static let planCacheCapacity = 256

    private struct PlanKey: Hashable {
        let sql: String
        let parameterCount: Int
    }

    /// The binder of `sql`'s plan, from the cache or planned now.
    func cachedBinder(_ sql: String, _ parameterCount: Int) throws -> Binder {
        try requireStandardStrings()
        let key = PlanKey(sql: sql, parameterCount: parameterCount)
        if let binder = plans[key] { return binder }
        let plan = try planned(sql, parameterCount)
        let binder = Binder(plan: plan)
        if !plan.holdsLiterals {
            if plans.count >= Self.planCacheCapacity { plans.removeAll(keepingCapacity: true) }
            plans[key] = binder
        }
        return binder
    }

    /// The SQL tokenizer reads `'…'` as PostgreSQL does with `standard_conforming_strings = on`
    /// (the default); with it off, a backslash could hide SQL inside what looks like a string.
    private func requireStandardStrings() throws {
        guard connection.parameterStatus("standard_conforming_strings") == "on" else {
            throw ProxyError(.refused, "standard_conforming_strings is not on for this connection; MRKProxy reads SQL string literals "
                             + "as PostgreSQL does only with it on, so it sends nothing until it is turned back on")
        }
    }

    package func planned(_ sql: String, _ parameterCount: Int) throws -> StatementPlan {
        try requireStandardStrings()
        let plan: StatementPlan
        do {
            plan = try interceptor.plan(sql, parameterCount: parameterCount)
        } catch {
            let text = error.description
            throw ProxyError(.refused, text.hasPrefix("refused: ") ? String(text.dropFirst(9)) : text)
        }
        if plan.isWrite && database.isReadOnly { throw readOnlyError() }
        return plan
    }

    private func readOnlyError() -> ProxyError {
        ProxyError(.readOnlyRegion, "\(database.region) is a read-only replica region; write through the primary region "
                   + "\(database.configuration.primaryRegion)")
    }

    package func bind(_ plan: StatementPlan, _ values: [SQLValue]) throws -> [PostgresParameter] {
        try bind(Binder(plan: plan), values)
    }

    /// Binds `values` with the per-parameter state `binder` holds (ciphers, blind indexers and
    /// names resolved once per plan, so a batch pays for the lookups once, not per row).
    package func bind(_ binder: Binder, _ values: [SQLValue]) throws -> [PostgresParameter] {
        let version = try currentActiveVersion()
        if binder.steps == nil || binder.version != version || binder.keyGeneration != keyGeneration {
            try prepareSteps(binder, version: version)
        }
        func resolve(_ source: ValueSource) throws -> SQLValue {
            switch source {
            case .null: return .null
            case .literal(let literal): return literal.value
            case .parameter(let index):
                guard index < values.count else {
                    throw ProxyError(.invalidValue, "the statement uses $\(index + 1) but \(values.count) values were given")
                }
                return values[index]
            }
        }
        let steps = binder.steps!
        var parameters: [PostgresParameter] = []
        parameters.reserveCapacity(steps.count)
        for step in steps {
            switch step {
            case .passthrough(let source):
                parameters.append(try resolve(source).parameter)
            case .seal(let source, let identity, let sealer):
                parameters.append(try seal(resolve(source), sealer: sealer, rowIdentity: identity.map(resolve)))
            case .index(let source, let indexer):
                parameters.append(try indexer.index(resolve(source)).map(PostgresParameter.bytea) ?? .null)
            }
        }
        return parameters
    }

    /// How to bind a plan's parameters, resolved once per plan and active key version.
    package final class Binder {
        enum Step {
            case passthrough(ValueSource)
            case seal(ValueSource, identity: ValueSource?, Sealer)
            case index(ValueSource, ColumnIndexer)
        }
        let plan: StatementPlan
        var steps: [Step]?
        var version: UInt32?
        var keyGeneration: UInt64?
        package init(plan: StatementPlan) { self.plan = plan }
    }

    /// Everything needed to seal values of one column under one key version, computed once.
    final class Sealer {
        let column: EncryptedColumn
        /// `schema.table.column`, for errors (never values).
        let name: String
        /// The table and column part of the associated data.
        let context: ColumnContext
        let identityColumn: String?
        let identityKind: RowIdentity.Kind
        /// nil for `format: esdk` columns.
        let cipher: ColumnCipher?

        init(column: EncryptedColumn, identityColumn: String?, identityKind: RowIdentity.Kind, cipher: ColumnCipher?) {
            self.column = column
            name = "\(column.table).\(column.name)"
            context = ColumnContext(table: column.table.aadName, column: column.name)
            self.identityColumn = identityColumn
            self.identityKind = identityKind
            self.cipher = cipher
        }
    }

    /// The blind index of one searchable column.
    final class ColumnIndexer {
        let column: EncryptedColumn
        let name: String
        let indexer: BlindIndexer

        init(column: EncryptedColumn, indexer: BlindIndexer) {
            self.column = column
            name = "\(column.table).\(column.name)"
            self.indexer = indexer
        }

        /// The index of `value`; nil for NULL.
        func index(_ value: SQLValue) throws -> [UInt8]? {
            if value.isNull { return nil }
            var plaintext = try ColumnCodec.encode(value, as: column.type, column: name)
            defer { zeroize(&plaintext) }
            return try indexer.index(tag: column.type.plaintextType.rawValue, value: plaintext, byteCount: column.blindIndexBits / 8)
        }
    }

    private func prepareSteps(_ binder: Binder, version: UInt32) throws {
        binder.steps = try binder.plan.parameters.map { planned -> Binder.Step in
            switch planned {
            case .passthrough(let source):
                return .passthrough(source)
            case .encrypt(let source, let column, let identity):
                return .seal(source, identity: identity, try sealer(for: column, version: version))
            case .blindIndex(let source, let column):
                return .index(source, try indexer(for: column))
            }
        }
        binder.version = version
        binder.keyGeneration = keyGeneration
    }

    private func sealer(for column: EncryptedColumn, version: UInt32) throws -> Sealer {
        let cacheKey = SealerKey(column: ColumnKey(column), version: version)
        if let sealer = sealers[cacheKey] { return sealer }
        let cipher = column.format == .esdk ? nil
            : try self.cipher(for: column, keyID: CompactKeyID(keyspace: database.keyspaceID, version: version))
        let kind = database.catalog.tables.values.first { $0.spec.name == column.table }?.rowIdentityKind ?? .text
        let sealer = Sealer(column: column, identityColumn: rowIdentities[column.table], identityKind: kind, cipher: cipher)
        sealers[cacheKey] = sealer
        return sealer
    }

    /// Seals `value` for `column` under the active branch key.
    func seal(_ value: SQLValue, column: EncryptedColumn, rowIdentity: SQLValue?) throws -> PostgresParameter {
        try seal(value, sealer: sealer(for: column, version: try currentActiveVersion()), rowIdentity: rowIdentity)
    }

    private func seal(_ value: SQLValue, sealer: Sealer, rowIdentity: SQLValue?) throws -> PostgresParameter {
        if value.isNull { return .null }
        let column = sealer.column
        var identity: String?
        if let identityColumn = sealer.identityColumn {
            guard let rowIdentity, let text = RowIdentity.canonicalText(rowIdentity, kind: sealer.identityKind) else {
                throw ProxyError(.invalidValue, "\(sealer.name) is bound to its row: the row's \(identityColumn) must be given (a non-NULL \(sealer.identityKind.rawValue) value)")
            }
            identity = text
        }
        var plaintext = try ColumnCodec.encode(value, as: column.type, column: sealer.name)
        defer { zeroize(&plaintext) }
        guard let cipher = sealer.cipher else {
            var text = try ColumnCodec.text(of: plaintext, as: column.type)
            defer { zeroize(&text) }
            let esdk = try database.esdkColumns()
            return .bytea(try esdk.seal(text, column: column) { try database.blocking($0) })
        }
        let type = column.type.plaintextType
        let sealed = try plaintext.withUnsafeBytes { plaintext in
            guard var identity else { return try cipher.seal(plaintext, type: type, context: sealer.context, rowIdentity: nil) }
            return try identity.withUTF8 { try cipher.seal(plaintext, type: type, context: sealer.context, rowIdentity: UnsafeRawBufferPointer($0)) }
        }
        return .bytea(sealed)
    }

    /// The blind index of `value` for a searchable column; nil for NULL.
    func blindIndex(_ value: SQLValue, column: EncryptedColumn) throws -> [UInt8]? {
        try indexer(for: column).index(value)
    }

    // MARK: Keys

    /// The active branch-key version, re-read from the keystore once per key-cache TTL. Keys this
    /// connection derived are dropped at the same time, so they are fetched again through the
    /// keystore's cache: losing KMS access (a disabled key, a denying policy) stops this connection
    /// too once the cache's TTL and stale window have passed.
    private func currentActiveVersion() throws -> UInt32 {
        if let active, clock.now - active.checkedAt < cacheTTL { return active.version }
        if active != nil {
            ciphers.removeAll()
            indexers.removeAll()
            sealers.removeAll()
            keyGeneration &+= 1
        }
        let version = try database.activeVersion()
        active = (version, clock.now)
        return version
    }

    func cipher(for column: EncryptedColumn, keyID: CompactKeyID) throws -> ColumnCipher {
        let cacheKey = CipherKey(column: ColumnKey(column), keyID: keyID)
        if let cipher = ciphers[cacheKey] { return cipher }
        let cipher = try makeCipher(for: column, keyID: keyID)
        ciphers[cacheKey] = cipher
        return cipher
    }

    private func indexer(for column: EncryptedColumn) throws -> ColumnIndexer {
        let key = ColumnKey(column)
        if let indexer = indexers[key] { return indexer }
        let beacon = try BranchKeyStore.beaconKey(fromFirstVersion: try database.branchKey(version: 1, keyspaceID: database.keyspaceID))
        let blindIndexer = try BlindIndexer(key: try KeyDerivation.blindIndexKey(beaconKey: beacon, table: column.table.aadName, column: column.name))
        let indexer = ColumnIndexer(column: column, indexer: blindIndexer)
        indexers[key] = indexer
        return indexer
    }

    // MARK: Results

    /// Results at least this large are decrypted on several threads.
    static let parallelDecodeThreshold = 4096
    /// Threads that decrypt a large result. Read once: Foundation reads cgroup files from /proc
    /// for every `activeProcessorCount`, which cost ~30 µs per query.
    static let decodeWorkers = min(ProcessInfo.processInfo.activeProcessorCount, 4)

    private func decode(_ result: PostgresResult, plan: StatementPlan, values: [SQLValue]) throws -> QueryResult {
        let decoder = try ResultDecoder(columns: result.columns, plan: plan, values: values, connection: self)
        let workers = Self.decodeWorkers
        let rows: [Row]
        if decoder.hasEncryptedColumns && result.rowCount >= Self.parallelDecodeThreshold && workers > 1 {
            rows = try decodeInParallel(result, plan: plan, values: values, workers: workers)
        } else {
            var decoded: [Row] = []
            decoded.reserveCapacity(result.rowCount)
            for index in 0..<result.rowCount {
                if let row = try decoder.decodeRow(result, index) { decoded.append(row) }
            }
            rows = decoded
        }
        return QueryResult(columns: decoder.names, rows: rows, commandTag: result.commandTag,
                           affectedRows: plan.postFilters.isEmpty ? result.affectedRows : rows.count)
    }

    /// Decrypts a large result in contiguous chunks on `workers` threads. A `PGresult` is
    /// read-only, so threads may read it together; each chunk has its own decoder with its own
    /// ciphers (a `ColumnCipher` is single-threaded).
    private func decodeInParallel(_ result: PostgresResult, plan: StatementPlan, values: [SQLValue], workers: Int) throws -> [Row] {
        let count = result.rowCount
        let chunk = (count + workers - 1) / workers
        var parts = [[Row]](repeating: [], count: workers)
        var failures = [Error?](repeating: nil, count: workers)
        // Shared with the workers (UncheckedBox): the PGresult is only read; from the connection the
        // workers only read immutable state (`database`, its catalog and keystore, which locks);
        // each worker writes only its own slot of `parts` and `failures`.
        let shared = UncheckedBox((result: result, connection: self))
        parts.withUnsafeMutableBufferPointer { partsBuffer in
            failures.withUnsafeMutableBufferPointer { failureBuffer in
                let output = UncheckedBox((parts: partsBuffer, failures: failureBuffer))
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    let (result, connection) = shared.value
                    let (partsBuffer, failureBuffer) = output.value
                    do {
                        let decoder = try ResultDecoder(columns: result.columns, plan: plan, values: values, connection: connection,
                                                        ownCiphers: true)
                        var rows: [Row] = []
                        let range = (worker * chunk)..<min(count, (worker + 1) * chunk)
                        rows.reserveCapacity(range.count)
                        for index in range {
                            if let row = try decoder.decodeRow(result, index) { rows.append(row) }
                        }
                        partsBuffer[worker] = rows
                    } catch {
                        failureBuffer[worker] = error
                    }
                }
            }
        }
        if let failure = failures.compactMap({ $0 }).first { throw failure }
        return parts.flatMap { $0 }
    }

    /// A new cipher for `column` under `keyID`, not shared with this connection's cache (for
    /// decoding on other threads).
    func makeCipher(for column: EncryptedColumn, keyID: CompactKeyID) throws -> ColumnCipher {
        guard keyID.keyspace == database.keyspaceID else {
            throw ProxyError(.integrity, "a value of \(column.table).\(column.name) was sealed under keyspace \(keyID.keyspace), not the configured keyspace \(database.keyspaceID)")
        }
        let branch = try database.branchKey(version: keyID.version, keyspaceID: keyID.keyspace)
        return try ColumnCipher(dataKey: try KeyDerivation.columnKey(branchKey: branch, table: column.table.aadName, column: column.name),
                                keyID: keyID)
    }

    /// Runs a libpq call, turning its errors into `ProxyError`s.
    @discardableResult
    func run<R>(_ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let error as PostgresError {
            var reason = error.message
            if let index = error.statementIndex { reason += " (batch row \(index))" }
            throw ProxyError(.database, reason, sqlState: error.sqlState)
        }
    }
}

/// A statement parsed and prepared once (`EncryptedConnection.prepare`).
public final class PreparedStatement {
    /// Strong: a statement keeps its connection alive (the connection does not hold its statements).
    let connection: EncryptedConnection
    let name: String
    let plan: StatementPlan
    let parameterCount: Int
    let binder: EncryptedConnection.Binder

    init(connection: EncryptedConnection, name: String, plan: StatementPlan, parameterCount: Int) {
        binder = EncryptedConnection.Binder(plan: plan)
        self.connection = connection
        self.name = name
        self.plan = plan
        self.parameterCount = parameterCount
    }

    /// Executes the statement with `values`.
    @discardableResult
    public func query(_ values: [SQLValue]) throws -> QueryResult {
        let parameters = try connection.bind(binder, values)
        let result = try connection.run { try connection.connection.executePrepared(name: name, parameters) }
        let decoder = try ResultDecoder(columns: result.columns, plan: plan, values: values, connection: connection)
        var rows: [Row] = []
        for index in 0..<result.rowCount {
            if let row = try decoder.decodeRow(result, index) { rows.append(row) }
        }
        return QueryResult(columns: decoder.names, rows: rows, commandTag: result.commandTag,
                           affectedRows: plan.postFilters.isEmpty ? result.affectedRows : rows.count)
    }
}

/// Key derivation below the branch keys (HKDF-SHA256, distinct labels per purpose and column).
enum KeyDerivation {
    /// The data key of one column under one branch-key version.
    static func columnKey(branchKey: SecretBytes, table: String, column: String) throws -> SecretBytes {
        try derive(branchKey, label: "mrkproxy/v1/column-key", table: table, column: column)
    }

    /// The blind-index (HMAC) key of one column, from the keyspace's beacon key.
    static func blindIndexKey(beaconKey: SecretBytes, table: String, column: String) throws -> SecretBytes {
        try derive(beaconKey, label: "mrkproxy/v1/blind-index", table: table, column: column)
    }

    private static func derive(_ key: SecretBytes, label: String, table: String, column: String) throws -> SecretBytes {
        let info = Array(label.utf8) + [0] + Array(table.utf8) + [0] + Array(column.utf8)
        return try key.withUnsafeBytes { ikm in
            try HKDF.deriveKey(.sha256, ikm: ikm, salt: [UInt8](), info: info, length: 32)
        }
    }
}
