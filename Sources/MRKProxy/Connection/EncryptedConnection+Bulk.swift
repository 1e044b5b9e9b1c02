import MRKPostgres
import MRKSQL

extension EncryptedConnection {
    /// Runs `sql` once per element of `rows`, pipelined (one round trip for the batch), as one
    /// transaction unless a transaction is already open (then in a savepoint). Values are
    /// encrypted on the fly; a value failing half-way commits nothing.
    ///
    /// - Returns: the total number of rows affected.
    @discardableResult
    public func batch(_ sql: String, _ rows: [[SQLValue]]) throws(ProxyError) -> Int {
        guard let first = rows.first else { return 0 }
        if let index = rows.firstIndex(where: { $0.count != first.count }) {
            throw ProxyError(.invalidValue, "batch row \(index) has \(rows[index].count) values; the first row has \(first.count)")
        }
        let statement = try prepare(sql, parameterCount: first.count)
        defer { _ = try? connection.execute("DEALLOCATE \(statement.name)") }
        let binder = statement.binder
        let session = try bindingSession()
        var failure: ProxyError?
        let statements = rows.lazy.compactMap { values -> PostgresStatement? in
            guard failure == nil else { return nil }
            do throws(ProxyError) {
                return PostgresStatement(prepared: statement.name, try binder.bind(values, session: session))
            } catch {
                failure = error
                return nil
            }
        }
        // Rows are encrypted while earlier ones are already on the wire; so that a value failing
        // to encrypt half-way commits nothing, the batch is atomic.
        return try withMigrationGuard(statement.plan) { () throws(ProxyError) -> Int in
            try atomically("mrkproxy_batch") { () throws(ProxyError) -> Int in
                let results = try run { try connection.pipeline(statements) }
                if let failure { throw failure }
                return results.reduce(0) { $0 + ($1.affectedRows ?? 0) }
            }
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
    public func copyIn(into table: String, columns: [String], rows: some Sequence<[SQLValue]>) throws(ProxyError) -> Int {
        var iterator = rows.makeIterator()
        return try copyIn(into: table, columns: columns) { () throws(ProxyError) -> [SQLValue]? in iterator.next() }
    }

    /// `copyIn` pulling rows from `next` until it returns nil; when `next` throws, the COPY is
    /// abandoned (nothing is loaded) and its error rethrown.
    package func copyIn(into table: String, columns: [String], next: () throws(ProxyError) -> [SQLValue]?) throws(ProxyError) -> Int {
        let loader = try CopyLoader(connection: self, table: table, columns: columns)
        do {
            while let values = try next() { try loader.add(values) }
        } catch {
            loader.abort("aborted by client")
            throw error
        }
        return try loader.finish()
    }
}

/// A `COPY … FROM STDIN` into a table, fed one row at a time as rows come (the wire proxy
/// pushes its client's rows as they arrive): configured columns are sealed (bound to the row's
/// identity) and their blind indexes computed on the fly. Ends with `finish()` (loaded) or
/// `abort(_:)` (nothing loaded); any error from `add` has already abandoned the COPY.
package final class CopyLoader {
    private let connection: EncryptedConnection
    private let copy: CopyPlan
    private let columnCount: Int
    private let session: BindingSession
    private var sealers: [Int: Sealer] = [:]
    private var indexers: [Int: Indexer] = [:]
    private var writer: CopyInWriter
    private var ended = false
    /// The loader began the transaction its migration guard runs in (and ends it).
    private let ownTransaction: Bool

    package init(connection: EncryptedConnection, table: String, columns: [String]) throws(ProxyError) {
        guard !connection.database.isReadOnly else { throw connection.readOnlyError() }
        self.connection = connection
        // Which columns are sealed follows the analysis in force (a column a migration has not
        // encrypted yet is plain); on a table with a `migrating: true` column, the COPY runs in a
        // transaction holding ACCESS SHARE on it (the guard's probe), planned after the columns
        // were checked, so a migration's swap cannot happen under it.
        let configured = try CopyPlan(table: table, columns: columns, schema: connection.database.configuration.schema)
        var ownTransaction = false
        if connection.database.migratingTables.contains(configured.table) {
            ownTransaction = connection.connection.transactionStatus == .idle
            do {
                if ownTransaction { try connection.run { try connection.connection.execute("BEGIN") } }
                var probe = StatementPlan.probe(tables: [configured.table])
                probe.schemaVersion = -1
                do {
                    try connection.checkMigratingColumns([configured.table], plan: probe)
                } catch where error.stalePlan {}
            } catch {
                if ownTransaction { _ = try? connection.connection.execute("ROLLBACK") }
                throw error
            }
        }
        self.ownTransaction = ownTransaction
        do {
            copy = try CopyPlan(table: table, columns: columns, schema: connection.database.interceptor.schema)
        } catch {
            if ownTransaction { _ = try? connection.connection.execute("ROLLBACK") }
            throw error
        }
        columnCount = columns.count
        session = try connection.bindingSession()
        for (position, output) in copy.output.enumerated() {
            switch output {
            case .plain: break
            case .encrypt(_, let column, _): sealers[position] = try Sealer(column: column, session: session)
            case .blindIndex(_, let column): indexers[position] = Indexer(column: column, indexer: try connection.ciphers.indexer(for: column))
            }
        }
        let sql = copy.sql
        do {
            writer = try connection.run { try connection.connection.beginCopyIn(sql) }
        } catch {
            if ownTransaction { _ = try? connection.connection.execute("ROLLBACK") }
            throw error
        }
    }

    deinit { if !ended { abort("abandoned") } }

    /// Seals and writes one row.
    package func add(_ values: [SQLValue]) throws(ProxyError) {
        guard values.count == columnCount else {
            abort("bad row")
            throw ProxyError(.invalidValue, "COPY: a row has \(values.count) values for \(columnCount) columns")
        }
        var fields: [String?] = []
        fields.reserveCapacity(copy.output.count)
        do throws(ProxyError) {
            for (position, output) in copy.output.enumerated() {
                switch output {
                case .plain(let i): fields.append(values[i].postgresText)
                case .encrypt(let i, _, let identity):
                    let parameter = try sealers[position]!.seal(values[i], rowIdentity: identity.map { values[$0] }, context: session.context)
                    fields.append(parameter.bytes.map { ByteaText.encode($0) })
                case .blindIndex(let i, _):
                    fields.append(try indexers[position]!.index(values[i], context: session.context).map { ByteaText.encode($0) })
                }
            }
        } catch {
            abort("a value could not be sealed")
            throw error
        }
        do {
            try writer.appendTextRow(fields)
        } catch {
            abort("the COPY data could not be sent")
            throw ProxyError.from(error)
        }
    }

    /// Loads what was added. Returns the number of rows.
    package func finish() throws(ProxyError) -> Int {
        ended = true
        do {
            let count = try connection.run { try connection.connection.finishCopyIn(&writer) }
            if ownTransaction { try connection.run { try connection.connection.execute("COMMIT") } }
            return count
        } catch {
            if ownTransaction { _ = try? connection.connection.execute("ROLLBACK") }
            throw error
        }
    }

    /// Abandons the COPY: nothing is loaded.
    package func abort(_ reason: String) {
        guard !ended else { return }
        ended = true
        connection.connection.abortCopyIn(&writer, reason: reason)
        if ownTransaction { _ = try? connection.connection.execute("ROLLBACK") }
    }
}

