/// A table or type name with its schema, both already case-folded the way PostgreSQL folds
/// identifiers (unquoted names lower-cased, quoted names kept as written).
public struct QualifiedName: Hashable, Sendable, CustomStringConvertible {
    public var schema: String
    public var name: String

    public init(schema: String, name: String) {
        self.schema = schema
        self.name = name
    }

    /// `schema.name`, each part double-quoted when PostgreSQL would need it.
    public var description: String { "\(SQLIdentifier.quoted(schema)).\(SQLIdentifier.quoted(name))" }
}

/// The PostgreSQL type of an encrypted column's plaintext (the column itself is `bytea`).
///
/// Adding a type: docs/SQL.md, "Adding a column type", lists every place; the compiler finds all
/// but the tests.
public enum ColumnValueType: String, Hashable, Sendable, CaseIterable {
    case text, int2, int4, int8, numeric, float4, float8, bool, date, timestamp, timestamptz, uuid, bytea,
        json, jsonb

    /// The other names PostgreSQL accepts for the type, which a configuration may use too.
    public var aliases: [String] {
        switch self {
        case .text: ["varchar", "character varying"]
        case .int2: ["smallint"]
        case .int4: ["integer", "int"]
        case .int8: ["bigint"]
        case .numeric: ["decimal"]
        case .float4: ["real"]
        case .float8: ["double precision", "double"]
        case .bool: ["boolean"]
        case .date, .uuid, .bytea, .json, .jsonb: []
        case .timestamp: ["timestamp without time zone"]
        case .timestamptz: ["timestamp with time zone"]
        }
    }

    /// The type a configuration names, by its name or one of its aliases.
    public init?(configName: String) {
        guard let type = Self.allCases.first(where: { $0.rawValue == configName || $0.aliases.contains(configName) }) else {
            return nil
        }
        self = type
    }
}

/// Which predicates an encrypted column supports.
public enum SearchMode: Hashable, Sendable {
    /// None: the column can be written, read and tested with `IS [NOT] NULL`, nothing else.
    case none
    /// Equality through a blind index column (`=`, `<>`, `IN`, `NOT IN`).
    case equality
}

/// How a column's values are sealed.
public enum CipherFormat: Hashable, Sendable {
    /// The compact column envelope.
    case compact
    /// An AWS Encryption SDK message.
    case esdk
}

/// One encrypted column of a configured table.
public struct EncryptedColumn: Hashable, Sendable {
    /// The table the column belongs to.
    public var table: QualifiedName
    /// The column name (case-folded).
    public var name: String
    /// The plaintext type.
    public var type: ColumnValueType
    /// Which predicates are supported.
    public var search: SearchMode
    /// How values are sealed.
    public var format: CipherFormat
    /// The `bytea` column holding the blind index when `search == .equality`.
    public var blindIndexColumn: String
    /// Width of the blind index in bits; 256 is the full HMAC-SHA256. A narrower index has false
    /// positives that are removed after decryption (see `PostFilter`).
    public var blindIndexBits: Int
    /// The configuration allows the column to hold plaintext while `mrkproxy migrate` encrypts
    /// it (or after it decrypted it): only then does the library follow what the database says
    /// the column holds. Without it a plain column where ciphertext is configured is refused.
    public var migrating: Bool = false

    /// Creates a column description.
    ///
    /// - Parameters:
    ///   - blindIndexColumn: defaults to `<name>_bidx`.
    ///   - blindIndexBits: defaults to 256 (the full HMAC).
    package init(
        table: QualifiedName, name: String, type: ColumnValueType, search: SearchMode = .none,
        format: CipherFormat = .compact, blindIndexColumn: String? = nil, blindIndexBits: Int = 256
    ) {
        self.table = table
        self.name = name
        self.type = type
        self.search = search
        self.format = format
        self.blindIndexColumn = blindIndexColumn ?? "\(name)_bidx"
        self.blindIndexBits = blindIndexBits
    }

    /// Whether the blind index is narrower than the full HMAC (and so has false positives).
    public var hasTruncatedBlindIndex: Bool { search == .equality && blindIndexBits < 256 }

    /// `schema.table.column`, for messages.
    public var qualifiedDescription: String { "\(table).\(SQLIdentifier.quoted(name))" }
}

/// A configured table: its encrypted columns and, optionally, the column whose value every
/// ciphertext of a row is bound to.
public struct EncryptedTable: Sendable {
    public var name: QualifiedName
    /// When set, ciphertexts are bound to this column's value so that they cannot be moved to
    /// another row; the column can then not be changed by an UPDATE.
    public var rowIdentity: String?
    /// Encrypted columns by (case-folded) name.
    public var columns: [String: EncryptedColumn]

    package init(name: QualifiedName, rowIdentity: String? = nil, columns: [EncryptedColumn]) {
        self.name = name
        self.rowIdentity = rowIdentity
        self.columns = Dictionary(columns.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The encrypted column whose blind index is stored in `column`, if any.
    func column(withBlindIndex column: String) -> EncryptedColumn? {
        columns.values.first { $0.search == .equality && $0.blindIndexColumn == column }
    }
}

/// Everything the SQL interceptor needs to know about the database: the configured tables and
/// the session's `search_path`.
package struct EncryptedSchema: Sendable {
    package var tables: [QualifiedName: EncryptedTable]
    /// Schemas searched for unqualified table names, in order; keep it equal to the session's
    /// `search_path`.
    package var searchPath: [String] = ["public"]

    package init(tables: [EncryptedTable], searchPath: [String] = ["public"]) {
        self.tables = Dictionary(tables.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.searchPath = searchPath
    }

    package init(tables: [QualifiedName: EncryptedTable], searchPath: [String] = ["public"]) {
        self.tables = tables
        self.searchPath = searchPath
    }

    /// Resolves a table name as written (one to three parts: `[catalog.][schema.]table`) to a
    /// configured table; unqualified names are looked up along `searchPath`.
    func table(named parts: [String]) -> EncryptedTable? {
        switch parts.count {
        case 1:
            for schemaName in searchPath {
                if let table = tables[QualifiedName(schema: schemaName, name: parts[0])] { return table }
            }
            return nil
        case 2: return tables[QualifiedName(schema: parts[0], name: parts[1])]
        case 3: return tables[QualifiedName(schema: parts[1], name: parts[2])]
        default: return nil
        }
    }

    /// The qualified name a table reference resolves to: the configured table when there is one,
    /// otherwise the name as written (first `searchPath` schema for unqualified names).
    func qualifiedName(for parts: [String]) -> QualifiedName {
        if let table = table(named: parts) { return table.name }
        switch parts.count {
        case 0: return QualifiedName(schema: "", name: "")
        case 1: return QualifiedName(schema: searchPath.first ?? "public", name: parts[0])
        default: return QualifiedName(schema: parts[parts.count - 2], name: parts[parts.count - 1])
        }
    }

    /// All (case-folded) bare table names that are configured, for a quick "does this statement
    /// mention a configured table" check.
    var configuredTableNames: Set<String> { Set(tables.keys.map(\.name)) }
}
