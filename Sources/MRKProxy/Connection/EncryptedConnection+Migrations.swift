import MRKPostgres
import MRKSQL

extension EncryptedConnection {
    /// The configured tables `plan` names that have a `migrating: true` column; none for
    /// statements other than queries and DML (VACUUM and the like cannot run in a transaction).
    func migrationGuarded(_ plan: StatementPlan) -> [QualifiedName] {
        guard !database.migratingTables.isEmpty, plan.kindName != "other" else { return [] }
        return plan.tables.filter { database.migratingTables.contains($0) }
    }

    /// Runs `body` (which sends `plan`) so that it cannot meet the last step of an online
    /// migration it was not planned for.
    ///
    /// Queries and DML on a table with a `migrating: true` column run in a transaction (the
    /// caller's, or one of their own) that first has the server parse `SELECT * FROM` those tables:
    /// parsing takes `ACCESS SHARE` on them until the transaction ends — the migration's swap needs
    /// `ACCESS EXCLUSIVE`, so it cannot happen until then — and describes their columns as the
    /// server sees them now (the parser reads the current catalog, whatever the transaction's
    /// snapshot; no privilege beyond the statement's own is needed, as nothing is executed). Those
    /// are compared with the catalog the plan was made from; when they differ the catalog is read
    /// again, and a plan made under another analysis is refused before it is sent (`query`,
    /// `execute` and `stream` plan it again and run it once more). Without the guard, a stale plan
    /// could send plaintext that the server converts on assignment, or compare a plaintext
    /// parameter with ciphertext and match nothing, without an error.
    func withMigrationGuard<R>(_ plan: StatementPlan, _ body: () throws(ProxyError) -> R) throws(ProxyError) -> R {
        let guarded = migrationGuarded(plan)
        guard !guarded.isEmpty else { return try body() }
        let own = connection.transactionStatus == .idle
        if own { try run { try connection.execute("BEGIN") } }
        do {
            try checkMigratingColumns(guarded, plan: plan)
            let result = try body()
            if own { try run { try connection.execute("COMMIT") } }
            return result
        } catch {
            if own && connection.isConnected && connection.transactionStatus != .idle { _ = try? connection.execute("ROLLBACK") }
            throw error
        }
    }

    /// Locks `tables` (ACCESS SHARE, to the transaction's end) by having the server parse a query
    /// over them, and refuses `plan` as stale when it was made under another analysis than the one
    /// their columns call for now.
    func checkMigratingColumns(_ tables: [QualifiedName], plan: StatementPlan) throws(ProxyError) {
        let probe = "SELECT * FROM " + tables.map(\.description).joined(separator: ", ") + " LIMIT 0"
        let columns = try run { () throws -> [PostgresColumn] in
            try connection.prepare(name: "", sql: probe)
            return try connection.describePrepared(name: "").columns
        }
        var found: Set<String> = []
        for column in columns { found.insert("\(column.tableOID)/\(column.tableColumn)/\(column.name)/\(column.type.rawValue)") }
        // Re-read the catalog until it has these columns (a reload another caller started earlier
        // may have read before the change).
        for _ in 0..<3 {
            let (catalog, generation) = database.catalogs.catalog
            var expected: Set<String> = []
            for name in tables {
                guard let table = catalog.tables[name] else { continue }
                for column in table.columns { expected.insert("\(table.oid)/\(column.attnum)/\(column.name)/\(column.typeOID)") }
            }
            if found == expected { break }
            do {
                _ = try database.catalogs.reload(after: generation)
            } catch where error.code == .schemaMismatch {
                throw ProxyError(.integrity, "the \(database.region) database no longer matches the configuration: \(error.reason)")
            }
        }
        guard plan.schemaVersion == database.catalogs.interceptor.schemaVersion else {
            var error = ProxyError(.schemaMismatch, "a column of a table this statement uses was encrypted or decrypted by a migration "
                                   + "since the statement was planned; run it again")
            // Nothing of it was sent: safe to plan and run again, for writes too.
            error.stalePlan = true
            throw error
        }
    }

    /// Whether `statement` must run in a transaction for the migration guard (the wire proxy
    /// opens one around it when the client has none: its results are pulled after `wireStart`).
    package func wireNeedsMigrationGuard(_ statement: WireStatement) -> Bool {
        !migrationGuarded(statement.plan).isEmpty
    }

    /// The wire proxy's form of the guard, in the transaction the session made sure of (the
    /// client's, or its own because `wireNeedsMigrationGuard`).
    func wireMigrationCheck(_ plan: StatementPlan) throws(ProxyError) {
        let guarded = migrationGuarded(plan)
        guard !guarded.isEmpty else { return }
        try checkMigratingColumns(guarded, plan: plan)
    }
}
