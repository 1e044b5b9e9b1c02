import MRKSQL
import Foundation
import MRKPostgres

/// Where the configured tables and columns live in this region's database: table OIDs and
/// column numbers, so result columns can be recognised by `PQftable`/`PQftablecol` whatever
/// their alias, join or `SELECT *`.
struct Catalog: Sendable {
    struct Table: Sendable {
        let spec: EncryptedTable
        /// Attribute number → encrypted column.
        let encrypted: [Int: EncryptedColumn]
        /// Attribute number of the row identity column.
        let rowIdentity: Int?
        /// How row identity values are written in canonical text (the server's output form).
        let rowIdentityKind: RowIdentity.Kind
        /// Attribute number → column name, for every column.
        let columnNames: [Int: String]
    }

    /// Table OID → table.
    let tables: [UInt32: Table]

    /// The encrypted column a result column comes from, if any.
    func encryptedColumn(_ column: PostgresColumn) -> (table: Table, column: EncryptedColumn)? {
        guard column.tableOID != 0, let table = tables[column.tableOID], let spec = table.encrypted[column.tableColumn] else { return nil }
        return (table, spec)
    }

    /// Reads the catalog and checks it against the configuration.
    ///
    /// - Throws: `ProxyError` `.schemaMismatch` naming the table/column and what is wrong.
    static func load(url: String, tables: [QualifiedName: EncryptedTable], region: String) throws -> Catalog {
        let conn: PostgresConnection
        do {
            conn = try PostgresConnection(url)
        } catch let error as PostgresError {
            throw ProxyError(.database, "cannot connect to the \(region) database: \(error.message)")
        }
        var result: [UInt32: Table] = [:]
        for spec in tables.values.sorted(by: { "\($0.name)" < "\($1.name)" }) {
            let rows = try conn.execute("""
                SELECT c.oid::int8, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod)
                FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
                JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
                """, [.text(spec.name.schema), .text(spec.name.name)])
            guard rows.rowCount > 0, let oid = UInt32(rows.string(row: 0, column: 0) ?? "") else {
                throw ProxyError(.schemaMismatch, "table \(spec.name) is configured but does not exist in the \(region) database")
            }
            var byName: [String: (attnum: Int, type: String)] = [:]
            var names: [Int: String] = [:]
            for row in rows.rows {
                let attnum = Int(row.string(1) ?? "") ?? 0
                byName[row.string(2) ?? ""] = (attnum, row.string(3) ?? "")
                names[attnum] = row.string(2) ?? ""
            }
            var encrypted: [Int: EncryptedColumn] = [:]
            for column in spec.columns.values.sorted(by: { $0.name < $1.name }) {
                guard let found = byName[column.name] else {
                    throw ProxyError(.schemaMismatch, "column \(spec.name).\(column.name) is configured as encrypted but does not exist")
                }
                guard found.type == "bytea" else {
                    throw ProxyError(.schemaMismatch, "column \(spec.name).\(column.name) is \(found.type); encrypted columns must be bytea (ALTER TABLE \(spec.name) ALTER COLUMN \(column.name) TYPE bytea …)")
                }
                if column.search == .equality {
                    guard let index = byName[column.blindIndexColumn] else {
                        throw ProxyError(.schemaMismatch, "column \(spec.name).\(column.name) has search: equality but its blind index column \(column.blindIndexColumn) does not exist (ALTER TABLE \(spec.name) ADD COLUMN \(column.blindIndexColumn) bytea)")
                    }
                    guard index.type == "bytea" else {
                        throw ProxyError(.schemaMismatch, "blind index column \(spec.name).\(column.blindIndexColumn) is \(index.type); it must be bytea")
                    }
                }
                encrypted[found.attnum] = column
            }
            var identity: Int?
            var identityKind = RowIdentity.Kind.text
            if let rowIdentity = spec.rowIdentity {
                guard let found = byName[rowIdentity] else {
                    throw ProxyError(.schemaMismatch, "row_identity column \(spec.name).\(rowIdentity) does not exist")
                }
                guard let kind = RowIdentity.Kind(postgresType: found.type) else {
                    throw ProxyError(.schemaMismatch, "row_identity column \(spec.name).\(rowIdentity) is \(found.type); it must be an integer, text or uuid column")
                }
                identity = found.attnum
                identityKind = kind
            }
            result[oid] = Table(spec: spec, encrypted: encrypted, rowIdentity: identity, rowIdentityKind: identityKind, columnNames: names)
        }
        return Catalog(tables: result)
    }
}

extension QualifiedName {
    /// `schema.name`, unquoted: the stable name bound into ciphertexts and key derivations.
    var aadName: String { schema + "." + name }
}

/// The row identity bound into ciphertexts, in the form PostgreSQL outputs it, so that the value a
/// write binds is byte for byte what a later read gets back from the server.
enum RowIdentity {
    enum Kind: String, Sendable {
        case integer, text, uuid

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

    /// The canonical text of `value` for an identity column of `kind`; nil when it has none.
    static func canonicalText(_ value: SQLValue, kind: Kind) -> String? {
        switch (kind, value) {
        case (_, .null): return nil
        case (.integer, .int(let i)): return String(i)
        case (.integer, .text(let s)): return Int(trimmedForParsing(s)).map { String($0) }
        case (.uuid, .uuid(let u)): return u.uuidString.lowercased()
        case (.uuid, .text(let s)): return UUID(uuidString: s).map { $0.uuidString.lowercased() }
        case (.text, .text(let s)): return s
        default: return nil
        }
    }
}
