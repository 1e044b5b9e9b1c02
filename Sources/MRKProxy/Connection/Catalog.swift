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

    /// The catalog query: every name is schema-qualified, so neither the session's search_path nor
    /// objects created in other schemas can change what it reads.
    private static let query = """
        SELECT c.oid::pg_catalog.int8, a.attnum::pg_catalog.int4, a.attname::pg_catalog.text,
               pg_catalog.format_type(a.atttypid, a.atttypmod)
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
        var result: [QualifiedName: Table] = [:]
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
                guard let attnum = Int(row.string(1) ?? ""), let name = row.string(2), let type = row.string(3) else {
                    throw ProxyError(.schemaMismatch, "the \(region) catalog returned an unreadable row for \(spec.name)")
                }
                columns.append(Column(attnum: attnum, name: name, type: type))
            }
            let byName = Dictionary(columns.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            for column in spec.columns.values.sorted(by: { $0.name < $1.name }) {
                let place = configuration.location(of: column)
                guard let found = byName[column.name] else {
                    throw ProxyError(.schemaMismatch, "\(place)column \(spec.name).\(column.name) is configured as encrypted but does not exist in the \(region) database")
                }
                guard found.type == "bytea" else {
                    throw ProxyError(.schemaMismatch, "\(place)column \(spec.name).\(column.name) is \(found.type); encrypted columns must be bytea (ALTER TABLE \(spec.name) ALTER COLUMN \(column.name) TYPE bytea …)")
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
        return Catalog(tables: result)
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

    init(catalog: Catalog, configuration: ProxyConfiguration, region: String, connection: SerializedConnection) {
        current = catalog
        self.configuration = configuration
        self.region = region
        self.connection = connection
    }

    var catalog: (catalog: Catalog, generation: Int) { lock.withLock { (current, generation) } }

    /// Reads the catalog again (once for any number of callers that saw the same generation).
    ///
    /// - Returns: the catalog now in force.
    func reload(after seen: Int) throws(ProxyError) -> Catalog {
        reloadLock.lock()
        defer { reloadLock.unlock() }
        let (catalog, generation) = self.catalog
        if generation != seen { return catalog }
        let fresh = try connection.withConnection { connection throws(ProxyError) in
            try Catalog.load(from: connection, configuration: configuration, region: region)
        }
        lock.withLock {
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
