import MRKPostgres
import MRKSQL

/// A statement parsed and prepared once (`EncryptedConnection.prepare(_:parameterCount:)`).
public final class PreparedStatement {
    /// Strong: a statement keeps its connection alive (the connection does not hold its statements).
    let connection: EncryptedConnection
    let name: String
    let plan: StatementPlan
    /// How many values each execution takes.
    public let parameterCount: Int
    let binder: Binder

    init(connection: EncryptedConnection, name: String, plan: StatementPlan, parameterCount: Int) {
        binder = Binder(plan: plan)
        self.connection = connection
        self.name = name
        self.plan = plan
        self.parameterCount = parameterCount
    }

    /// Executes the statement with `values` and returns its rows (decrypted).
    @discardableResult
    ///
    /// - Throws: as `EncryptedConnection.query`; `.schemaMismatch` when a migration encrypted or
    ///   decrypted a column since the statement was prepared (prepare it again).
    public func query(_ values: [SQLValue]) throws(ProxyError) -> QueryResult {
        try connection.checkCurrent(plan)
        let parameters = try connection.bind(binder, values)
        do {
            let result = try connection.withMigrationGuard(plan) { () throws(ProxyError) in
                try connection.run { try connection.connection.executePrepared(name: name, parameters) }
            }
            return try connection.decode(result, plan: plan, values: values)
        } catch {
            connection.noticeMigrationError(error)
            throw error
        }
    }

    /// Executes the statement with `values` and returns the number of rows it affected.
    @discardableResult
    public func execute(_ values: [SQLValue]) throws(ProxyError) -> Int {
        try query(values).affectedRows ?? 0
    }
}
