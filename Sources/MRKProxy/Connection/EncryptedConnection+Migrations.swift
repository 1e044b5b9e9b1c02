import MRKPostgres
import MRKSQL

extension EncryptedConnection {
    /// Runs `body` (which sends `plan`) so that it cannot meet the last step of an online
    /// migration it was not planned for.
    ///
    /// Statements on a table with a `migrating: true` column run in a transaction (the caller's,
    /// or one of their own) that first takes `ACCESS SHARE` on those tables — the migration's
    /// swap needs `ACCESS EXCLUSIVE`, so it cannot happen until the transaction ends — and then
    /// compares the tables' columns with the catalog the plan was made from. A swap that happened
    /// before shows as changed columns: the catalog is read again, and when the analysis changed
    /// the statement is refused as a stale plan before it is sent (`query`, `execute` and `stream`
    /// plan it again and run it once more). Without the guard, a stale plan could send plaintext
    /// that the server converts on assignment, or compare a plaintext parameter with ciphertext and
    /// match nothing, without an error.
    func withMigrationGuard<R>(_ plan: StatementPlan, _ body: () throws(ProxyError) -> R) throws(ProxyError) -> R {
        let guarded = plan.tables.filter { database.migratingTables.contains($0) }
        guard !guarded.isEmpty else { return try body() }
        let own = connection.transactionStatus == .idle
        if own { try run { try connection.execute("BEGIN") } }
        do {
            try run { try connection.execute("LOCK TABLE \(guarded.map(\.description).joined(separator: ", ")) IN ACCESS SHARE MODE") }
            try checkMigratingColumns(guarded, plan: plan)
            let result = try body()
            if own { try run { try connection.execute("COMMIT") } }
            return result
        } catch {
            if own && connection.isConnected && connection.transactionStatus != .idle { _ = try? connection.execute("ROLLBACK") }
            throw error
        }
    }

    /// Refuses `plan` as stale when `tables`' columns are no longer those of the catalog it was
    /// planned with and re-reading the catalog changed the analysis.
    func checkMigratingColumns(_ tables: [QualifiedName], plan: StatementPlan) throws(ProxyError) {
        let (catalog, generation) = database.catalogs.catalog
        var expected: Set<String> = []
        var oids: [String] = []
        for name in tables {
            guard let table = catalog.tables[name] else { continue }
            oids.append(String(table.oid))
            for column in table.columns { expected.insert("\(table.oid)/\(column.attnum)/\(column.name)/\(column.typeOID)") }
        }
        let rows = try run {
            try connection.execute("""
                SELECT a.attrelid::pg_catalog.int8, a.attnum::pg_catalog.int4, a.attname::pg_catalog.text, a.atttypid::pg_catalog.int8
                FROM pg_catalog.pg_attribute a
                WHERE a.attrelid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[]) AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
                """, [.text("{" + oids.joined(separator: ",") + "}")])
        }
        var found: Set<String> = []
        for index in 0..<rows.rowCount {
            found.insert([0, 1, 2, 3].map { rows.string(row: index, column: $0) ?? "" }.joined(separator: "/"))
        }
        guard found != expected else { return }
        do {
            _ = try database.catalogs.reload(after: generation)
        } catch where error.code == .schemaMismatch {
            throw ProxyError(.integrity, "the \(database.region) database no longer matches the configuration: \(error.reason)")
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
        statement.plan.tables.contains { database.migratingTables.contains($0) }
    }

    /// The wire proxy's form of the guard: in a transaction (the client's, or the one the session
    /// opened because `wireNeedsMigrationGuard`) it takes the lock, held to the transaction's end,
    /// and checks; outside one it checks only.
    func wireMigrationCheck(_ plan: StatementPlan) throws(ProxyError) {
        let guarded = plan.tables.filter { database.migratingTables.contains($0) }
        guard !guarded.isEmpty else { return }
        if connection.transactionStatus == .inTransaction {
            try run { try connection.execute("LOCK TABLE \(guarded.map(\.description).joined(separator: ", ")) IN ACCESS SHARE MODE") }
        }
        try checkMigratingColumns(guarded, plan: plan)
    }
}
