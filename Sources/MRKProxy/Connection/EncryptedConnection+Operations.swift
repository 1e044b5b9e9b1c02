import MRKCrypto
import MRKPostgres
import MRKSQL

/// Sealing one configured column's values outside a statement, for `mrkproxy migrate` and
/// `mrkproxy reencrypt`: the same sealer and blind indexer statements use, under the version
/// new values are sealed under. Used by one thread at a time (it holds its connection's ciphers).
package final class ColumnSealer {
    package let column: EncryptedColumn
    /// The configured table's row identity column, when it has one.
    package let rowIdentity: String?
    private let sealer: Sealer
    private let indexer: Indexer?
    private let context: ColumnCodec.Context
    /// The branch-key version values are sealed under.
    package let version: UInt32

    /// - Parameter connection: a connection of the primary region (it provides the keys).
    package init(connection: EncryptedConnection, table: QualifiedName, column name: String) throws(ProxyError) {
        guard let table = connection.database.configuration.tables[table], let column = table.columns[name] else {
            throw ProxyError(.configuration, "\(table).\(name) is not configured as an encrypted column in \(connection.database.configuration.source)")
        }
        guard !connection.database.isReadOnly else { throw connection.readOnlyError() }
        let session = try connection.bindingSession(sealing: true)
        self.column = column
        rowIdentity = table.rowIdentity
        sealer = try Sealer(column: column, session: session)
        indexer = column.search == .equality ? Indexer(column: column, indexer: try connection.ciphers.indexer(for: column)) : nil
        context = session.context
        version = session.version
    }

    /// `value` sealed for the column (bound to `rowIdentity` when the table has one) and its blind
    /// index when the column is searchable; nil for NULL.
    package func seal(_ value: SQLValue, rowIdentity: SQLValue?) throws(ProxyError) -> (ciphertext: [UInt8]?, blindIndex: [UInt8]?) {
        let sealed = try sealer.seal(value, rowIdentity: rowIdentity, context: context)
        return (sealed.bytes, try indexer?.index(value, context: context))
    }
}

extension EncryptedConnection {
    /// Runs SQL of the operations tools directly on the server connection (DDL, batches they
    /// build themselves), without analysis: never with values of encrypted columns in the text.
    package func operationsExecute(_ sql: String, _ parameters: [PostgresParameter] = [], resultFormat: PostgresFormat = .text) throws(ProxyError) -> PostgresResult {
        try run { try connection.execute(sql, parameters, resultFormat: resultFormat) }
    }

    /// Runs `body` in a transaction on the server connection (for the tools' batches).
    package func operationsTransaction<R>(_ body: () throws(ProxyError) -> R) throws(ProxyError) -> R {
        try withOwnTransaction(body)
    }

    /// Reads the catalog again now (after a tool changed a configured table).
    package func reloadCatalog() throws(ProxyError) {
        _ = try database.catalogs.reload(after: database.catalogs.catalog.generation)
    }
}
