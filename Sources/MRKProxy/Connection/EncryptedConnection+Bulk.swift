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
        return try atomically("mrkproxy_batch") { () throws(ProxyError) -> Int in
            let results = try run { try connection.pipeline(statements) }
            if let failure { throw failure }
            return results.reduce(0) { $0 + ($1.affectedRows ?? 0) }
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
        guard !database.isReadOnly else { throw readOnlyError() }
        let copy = try CopyPlan(table: table, columns: columns, schema: database.configuration.schema)
        let session = try bindingSession()
        var sealers: [Int: Sealer] = [:]
        var indexers: [Int: Indexer] = [:]
        for (position, output) in copy.output.enumerated() {
            switch output {
            case .plain: break
            case .encrypt(_, let column, _): sealers[position] = try Sealer(column: column, session: session)
            case .blindIndex(_, let column): indexers[position] = Indexer(column: column, indexer: try ciphers.indexer(for: column))
            }
        }
        var failure: ProxyError?
        let loaded: Int
        do {
            loaded = try connection.copyIn(copy.sql) { writer in
                for values in rows {
                    guard values.count == columns.count else {
                        failure = ProxyError(.invalidValue, "copyIn: a row has \(values.count) values for \(columns.count) columns")
                        throw CopyAborted()
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
                        failure = error
                        throw CopyAborted()
                    }
                    try writer.appendTextRow(fields)
                }
            }
        } catch {
            // The COPY was aborted: nothing was loaded.
            if let failure { throw failure }
            throw ProxyError.from(error)
        }
        return loaded
    }
}

/// Ends a COPY early (the reason is kept aside as a `ProxyError`).
private struct CopyAborted: Error {}
