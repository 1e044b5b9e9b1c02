import Foundation
import MRKCrypto
import MRKPostgres
import MRKSQL

/// The configured tables as this region's database has them: OIDs and columns, checked against
/// the configuration (encrypted and blind-index columns are `bytea`, the row identity is an
/// integer, text or uuid column).
///
/// Results are verified against it (`ResultLayout`); the server's answer only locates columns
/// the statement's analysis expects, it never decides what is decrypted.
struct Catalog: Sendable {
    struct Column: Sendable, Equatable {
        let attnum: Int
        let name: String
        /// `format_type` text, e.g. `bytea`, `timestamp with time zone`.
        let type: String
        /// `pg_attribute.atttypid`.
        var typeOID: UInt32 = 0
    }

    struct Table: Sendable {
        let spec: EncryptedTable
        let oid: UInt32
        /// The live columns in attribute order (what `SELECT *` returns).
        let columns: [Column]
        /// Column name → attribute number.
        let attnums: [String: Int]
        /// How the row identity is written in associated data, when the table has one.
        let rowIdentityKind: RowIdentityEncoding.Kind?
    }

    /// Configured table → what the database has.
    let tables: [QualifiedName: Table]
    /// Columns in an online migration (`mrkproxy migrate`), by table and column name.
    var migrations: [QualifiedName: [String: ColumnMigration]] = [:]

    /// The configured tables as statements are analysed now: a column being encrypted (its
    /// values still plaintext) or already decrypted by a migration is treated as plain.
    var effectiveTables: [EncryptedTable] {
        tables.values.map { table in
            guard let migrating = migrations[table.spec.name] else { return table.spec }
            var spec = table.spec
            for (name, migration) in migrating where migration.isPlaintext { spec.columns[name] = nil }
            return spec
        }
    }

    /// Plain columns that a migration will turn into ciphertext (or did turn into plaintext):
    /// table OID → attribute → the type OID they must have, checked in every result (a result
    /// planned before the migration's last step must not be read as plaintext after it).
    var plaintextMigrating: [UInt32: [Int: UInt32]] {
        var result: [UInt32: [Int: UInt32]] = [:]
        for (name, columns) in migrations {
            guard let table = tables[name] else { continue }
            for (column, migration) in columns where migration.isPlaintext {
                if let found = table.columns.first(where: { $0.name == column }) { result[table.oid, default: [:]][found.attnum] = found.typeOID }
            }
        }
        return result
    }

    /// Whether any configured table has a migration record (then errors on it re-read the catalog).
    var hasMigrations: Bool { !migrations.isEmpty }

    /// The catalog query: every name is schema-qualified, so neither the session's search_path nor
    /// objects created in other schemas can change what it reads.
    private static let query = """
        SELECT c.oid::pg_catalog.int8, a.attnum::pg_catalog.int4, a.attname::pg_catalog.text,
               pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid::pg_catalog.int8
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
        JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid
             AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
        WHERE n.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.text AND c.relname OPERATOR(pg_catalog.=) $2::pg_catalog.text
          AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::pg_catalog.char[])
        ORDER BY a.attnum
        """

    /// Reads the catalog over `connection` and checks it against the configuration.
    ///
    /// - Throws: `.schemaMismatch` naming the table/column, what is wrong and (when known) where
    ///   the configuration says otherwise.
    static func load(from connection: PostgresConnection, configuration: ProxyConfiguration, region: String) throws(ProxyError) -> Catalog {
        // One snapshot for the migration records and the columns: read across a migration's swap
        // in two, they could disagree (a record saying plaintext beside the swapped-in bytea).
        let own = connection.transactionStatus == .idle
        if own {
            do { try connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") } catch {
                throw ProxyError(.database, "reading the \(region) catalog failed: \(error)")
            }
        }
        do {
            let catalog = try loadInSnapshot(from: connection, configuration: configuration, region: region)
            if own { _ = try? connection.execute("COMMIT") }
            return catalog
        } catch {
            if own { _ = try? connection.execute("ROLLBACK") }
            throw error
        }
    }

    private static func loadInSnapshot(from connection: PostgresConnection, configuration: ProxyConfiguration, region: String) throws(ProxyError) -> Catalog {
        var result: [QualifiedName: Table] = [:]
        var contradicted: Set<String> = []
        let migrations = try ColumnMigration.load(from: connection, region: region)
        var pending: [QualifiedName: [String: ColumnMigration]] = [:]
        for spec in configuration.tables.values.sorted(by: { "\($0.name)" < "\($1.name)" }) {
            let rows: PostgresResult
            do {
                rows = try connection.execute(query, [.text(spec.name.schema), .text(spec.name.name)])
            } catch let error as PostgresError {
                throw ProxyError(error, context: "reading the \(region) catalog")
            } catch {
                throw ProxyError(.database, "reading the \(region) catalog failed")
            }
            let place = configuration.location(of: spec.name)
            guard rows.rowCount > 0, let oid = UInt32(rows.string(row: 0, column: 0) ?? "") else {
                throw ProxyError(.schemaMismatch, "\(place)table \(spec.name) is configured but does not exist in the \(region) database")
            }
            var columns: [Column] = []
            for row in rows.rows {
                guard let attnum = Int(row.string(1) ?? ""), let name = row.string(2), let type = row.string(3),
                      let typeOID = UInt32(row.string(4) ?? "") else {
                    throw ProxyError(.schemaMismatch, "the \(region) catalog returned an unreadable row for \(spec.name)")
                }
                columns.append(Column(attnum: attnum, name: name, type: type, typeOID: typeOID))
            }
            let byName = Dictionary(columns.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            for column in spec.columns.values.sorted(by: { $0.name < $1.name }) {
                let place = configuration.location(of: column)
                guard let found = byName[column.name] else {
                    throw ProxyError(.schemaMismatch, "\(place)column \(spec.name).\(column.name) is configured as encrypted but does not exist in the \(region) database")
                }
                let recorded = migrations[spec.name]?[column.name]
                if column.migrating {
                    // Plaintext is allowed here by the configuration: the column is plain while a
                    // migration says so, or (none recorded yet) while its type is not bytea. A
                    // record saying plaintext beside a bytea column is not believed (ciphertext).
                    if recorded?.isPlaintext == true && found.type == "bytea" {
                        contradicted.insert("\(spec.name)/\(column.name)")
                    } else if recorded?.isPlaintext ?? (found.type != "bytea") {
                        if recorded == nil { pending[spec.name, default: [:]][column.name] = ColumnMigration(direction: .encrypt, phase: .backfill) }
                        continue
                    }
                } else if recorded?.isPlaintext == true {
                    // The database says plaintext; only the configuration can allow that.
                    throw ProxyError(.schemaMismatch, "\(place)the \(region) database records a migration that leaves \(spec.name).\(column.name) plaintext, "
                                     + "but the configuration does not allow plaintext there (migrating: true); refused")
                }
                guard found.type == "bytea" else {
                    throw ProxyError(.schemaMismatch, "\(place)column \(spec.name).\(column.name) is \(found.type); encrypted columns must be bytea "
                                     + "(to encrypt the values it holds: add migrating: true to the column, then mrkproxy migrate encrypt --table \(spec.name.schema).\(spec.name.name) --column \(column.name))")
                }
                if column.search == .equality {
                    guard let index = byName[column.blindIndexColumn] else {
                        throw ProxyError(.schemaMismatch, "\(place)column \(spec.name).\(column.name) has search: equality but its blind index column \(column.blindIndexColumn) does not exist (ALTER TABLE \(spec.name) ADD COLUMN \(column.blindIndexColumn) bytea)")
                    }
                    guard index.type == "bytea" else {
                        throw ProxyError(.schemaMismatch, "\(place)blind index column \(spec.name).\(column.blindIndexColumn) is \(index.type); it must be bytea")
                    }
                }
            }
            var identityKind: RowIdentityEncoding.Kind?
            if let rowIdentity = spec.rowIdentity {
                guard let found = byName[rowIdentity] else {
                    throw ProxyError(.schemaMismatch, "\(place)row_identity column \(spec.name).\(rowIdentity) does not exist")
                }
                guard let kind = RowIdentityEncoding.Kind(postgresType: found.type) else {
                    throw ProxyError(.schemaMismatch, "\(place)row_identity column \(spec.name).\(rowIdentity) is \(found.type); it must be an integer, text or uuid column")
                }
                identityKind = kind
            }
            result[spec.name] = Table(spec: spec, oid: oid, columns: columns,
                                      attnums: Dictionary(columns.map { ($0.name, $0.attnum) }, uniquingKeysWith: { first, _ in first }),
                                      rowIdentityKind: identityKind)
        }
        var catalog = Catalog(tables: result)
        // Recorded migrations count only for columns whose configuration allows plaintext.
        for (name, columns) in migrations {
            guard let spec = configuration.tables[name] else { continue }
            for (column, migration) in columns where spec.columns[column]?.migrating == true && !contradicted.contains("\(name)/\(column)") {
                pending[name, default: [:]][column] = migration
            }
        }
        catalog.migrations = pending
        return catalog
    }
}

/// A column's online migration, as `mrkproxy migrate` records it in `mrkproxy_migrations`.
package struct ColumnMigration: Sendable, Equatable {
    package enum Direction: String, Sendable { case encrypt, decrypt }
    package enum Phase: String, Sendable { case backfill, done }

    package let direction: Direction
    package let phase: Phase

    /// Whether the column holds plaintext now: being encrypted, or decrypted.
    package var isPlaintext: Bool {
        (direction == .encrypt && phase == .backfill) || (direction == .decrypt && phase == .done)
    }

    /// The migrations table: one row per migrated column.
    package static let table = "public.mrkproxy_migrations"

    package static let ddl = """
        CREATE TABLE IF NOT EXISTS public.mrkproxy_migrations (
            table_schema        text        NOT NULL,
            table_name          text        NOT NULL,
            column_name         text        NOT NULL,
            direction           text        NOT NULL CHECK (direction IN ('encrypt', 'decrypt')),
            phase               text        NOT NULL CHECK (phase IN ('backfill', 'done')),
            shadow_column       text        NOT NULL,
            shadow_index_column text,
            key_column          text        NOT NULL,
            resume_after        text,
            rows_done           bigint      NOT NULL DEFAULT 0,
            started_at          timestamptz NOT NULL DEFAULT now(),
            finished_at         timestamptz,
            PRIMARY KEY (table_schema, table_name, column_name)
        )
        """

    /// Every recorded migration (none when the table does not exist).
    static func load(from connection: PostgresConnection, region: String) throws(ProxyError) -> [QualifiedName: [String: ColumnMigration]] {
        do {
            let exists = try connection.execute("SELECT pg_catalog.to_regclass('public.mrkproxy_migrations') IS NOT NULL")
            guard exists.string(row: 0, column: 0) == "t" else { return [:] }
            let rows = try connection.execute("SELECT table_schema, table_name, column_name, direction, phase FROM public.mrkproxy_migrations")
            var result: [QualifiedName: [String: ColumnMigration]] = [:]
            for row in rows.rows {
                guard let schema = row.string(0), let name = row.string(1), let column = row.string(2),
                      let direction = row.string(3).flatMap(Direction.init(rawValue:)), let phase = row.string(4).flatMap(Phase.init(rawValue:)) else {
                    throw ProxyError(.schemaMismatch, "the \(region) database's mrkproxy_migrations holds an unreadable row")
                }
                result[QualifiedName(schema: schema, name: name), default: [:]][column] = ColumnMigration(direction: direction, phase: phase)
            }
            return result
        } catch let error as ProxyError {
            throw error
        } catch let error as PostgresError {
            throw ProxyError(error, context: "reading the \(region) migrations")
        } catch {
            throw ProxyError(.database, "reading the \(region) migrations failed")
        }
    }
}

/// The catalog in force for a database, re-read when a result shows it changed.
///
/// `@unchecked Sendable`: `current` and `generation` are guarded by `lock`; reloads are serialised
/// by `reloadLock` and run on a connection of their own.
final class CatalogStore: @unchecked Sendable {
    private let lock = NSLock()
    private let reloadLock = NSLock()
    private var current: Catalog
    private(set) var generation = 0
    private let configuration: ProxyConfiguration
    private let region: String
    private let connection: SerializedConnection
    private let dialect: SQLTokenizer.Dialect
    private var analysis: SQLInterceptor
    /// Counts changes of what statements are analysed with (a migration's last step); plans
    /// made under an older one are not used again.
    private var schemaVersion = 0

    init(catalog: Catalog, configuration: ProxyConfiguration, region: String, connection: SerializedConnection, dialect: SQLTokenizer.Dialect) {
        current = catalog
        self.configuration = configuration
        self.region = region
        self.connection = connection
        self.dialect = dialect
        analysis = SQLInterceptor(schema: EncryptedSchema(tables: catalog.effectiveTables), dialect: dialect)
    }

    var catalog: (catalog: Catalog, generation: Int) { lock.withLock { (current, generation) } }

    /// The SQL analysis in force and its schema version.
    var interceptor: (interceptor: SQLInterceptor, schemaVersion: Int) { lock.withLock { (analysis, schemaVersion) } }

    /// Reads the catalog again (once for any number of callers that saw the same generation).
    ///
    /// - Returns: the catalog now in force.
    func reload(after seen: Int) throws(ProxyError) -> Catalog {
        reloadLock.lock()
        defer { reloadLock.unlock() }
        let (catalog, generation) = self.catalog
        if generation != seen { return catalog }
        let fresh = try connection.reading { connection throws(ProxyError) in
            try Catalog.load(from: connection, configuration: configuration, region: region)
        }
        lock.withLock {
            if fresh.migrations != current.migrations {
                analysis = SQLInterceptor(schema: EncryptedSchema(tables: fresh.effectiveTables), dialect: dialect)
                schemaVersion += 1
            }
            current = fresh
            self.generation += 1
        }
        return fresh
    }
}

extension RowIdentityEncoding.Kind {
    init?(postgresType: String) {
        switch postgresType {
        case "smallint", "integer", "bigint": self = .integer
        case "uuid": self = .uuid
        case "text": self = .text
        default:
            // Not character(n): the server pads it with spaces, so the bound value would differ from the stored one.
            guard postgresType.hasPrefix("character varying") else { return nil }
            self = .text
        }
    }
}

/// The row identity bound into ciphertexts, from a value given for it.
enum RowIdentity {
    /// The bytes `value` is bound as for an identity column of `kind`; nil when it has none.
    static func bytes(_ value: SQLValue, kind: RowIdentityEncoding.Kind) -> [UInt8]? {
        switch (kind, value) {
        case (_, .null): return nil
        case (.integer, .int(let i)): return RowIdentityEncoding.bytes(integer: Int64(i))
        case (.integer, .text(let s)): return PostgresText.parseInteger(s, in: Int64.min...Int64.max).map(RowIdentityEncoding.bytes(integer:))
        case (.uuid, .uuid(let u)): return RowIdentityEncoding.bytes(uuid: u.uuid)
        case (.uuid, .text(let s)): return PostgresText.parseUUID(s).map { RowIdentityEncoding.bytes(uuid: $0.uuid) }
        case (.text, .text(let s)): return s.utf8.contains(0) ? nil : RowIdentityEncoding.bytes(text: s)
        default: return nil
        }
    }
}

extension QualifiedName {
    /// `schema.name`, unquoted: the name bound into ciphertexts and key derivations.
    var aadName: String { CompactKeyHierarchy.tableName(schema: schema, table: name) }
}
