/// A column of a derived relation (subquery, CTE, RETURNING) as far as it is known.
struct SQLOutputColumn {
    var name: String?
    /// The encrypted column it passes through unchanged, if any.
    var encrypted: EncryptedColumn?
    /// Where its values come from.
    var origin: ResultOrigin = .other
}

/// What is known of the columns a query or RETURNING list produces.
struct SQLRelationShape {
    /// The columns known by name (for resolving references; after a `*` positions are unknown).
    var columns: [SQLOutputColumn] = []
    /// False when a `*` over a table (whose plain columns are unknown) contributed: names not
    /// listed may exist, and positions after the `*` are unknown.
    var complete = true
    /// The result's layout, `*` included: what a reader verifies the server's columns against.
    var segments: [ResultSegment] = []

    var firstEncrypted: EncryptedColumn? { columns.lazy.compactMap(\.encrypted).first }
    var containsEncrypted: Bool { firstEncrypted != nil }

    /// The origin of a column named `name` that is not listed: a plain column of the configured
    /// table whose `*` the shape holds, when there is exactly one such `*` (nil otherwise).
    func unlistedOrigin(_ name: String) -> ResultOrigin? {
        var found: ResultOrigin?
        for segment in segments {
            switch segment {
            case .tableStar(let table, let instance):
                guard found == nil else { return nil }
                found = .tableColumn(table.name, column: name, instance: instance)
            case .plainStar: return nil
            case .column: continue
            }
        }
        return found
    }
}

/// One FROM-clause entry visible to column references.
final class SQLRangeEntry {
    enum Source {
        /// A table (configured or not), with its resolved name.
        case table(QualifiedName, EncryptedTable?)
        /// A subquery, CTE or aliased join.
        case derived(SQLRelationShape)
        /// A set-returning function: columns unknown, never encrypted.
        case opaque
    }

    /// The name column references use (alias, or table name when not aliased); nil for an
    /// unaliased subquery.
    let name: String?
    let source: Source
    let aliased: Bool
    /// For a configured table: which instance of it in the statement this entry is.
    let instance: Int

    init(name: String?, source: Source, aliased: Bool, instance: Int = 0) {
        self.name = name
        self.source = source
        self.aliased = aliased
        self.instance = instance
    }

    /// Where the values of this entry's column `column` come from.
    func origin(of column: String) -> ResultOrigin {
        switch source {
        case .table(let name, let table?):
            if let encrypted = table.columns[column] { return .encrypted(encrypted, instance: instance) }
            return .tableColumn(name, column: column, instance: instance)
        case .table(_, nil), .opaque:
            return .other
        case .derived(let shape):
            if let found = shape.columns.first(where: { $0.name == column }) { return found.origin }
            return shape.unlistedOrigin(column) ?? .other
        }
    }

    /// The configured table when this entry is one with encrypted columns.
    var encryptedTable: EncryptedTable? {
        if case .table(_, let table?) = source, !table.columns.isEmpty { return table }
        return nil
    }

    var tableName: QualifiedName? {
        if case .table(let name, _) = source { return name }
        return nil
    }

    /// The first encrypted column reachable through this entry (for `*`, NATURAL JOIN checks).
    var firstEncrypted: EncryptedColumn? {
        switch source {
        case .table(_, let table?): table.columns.values.sorted { $0.name < $1.name }.first
        case .table(_, nil), .opaque: nil
        case .derived(let shape): shape.firstEncrypted
        }
    }

    enum Match {
        case encrypted(EncryptedColumn)
        case blindIndex(EncryptedColumn)
        /// A known plain column.
        case plain
        /// Not known; `mayExist` when the entry has columns we do not know.
        case none(mayExist: Bool)
    }

    func match(_ column: String) -> Match {
        switch source {
        case .table(_, let table?):
            if let encrypted = table.columns[column] { return .encrypted(encrypted) }
            if let indexed = table.column(withBlindIndex: column) { return .blindIndex(indexed) }
            return .none(mayExist: true)
        case .table(_, nil), .opaque:
            return .none(mayExist: true)
        case .derived(let shape):
            if let found = shape.columns.first(where: { $0.name == column }) {
                return found.encrypted.map { .encrypted($0) } ?? .plain
            }
            return .none(mayExist: !shape.complete)
        }
    }
}

/// The FROM-clause entries of one query level, chained to the enclosing levels.
final class SQLScope {
    let parent: SQLScope?
    var entries: [SQLRangeEntry] = []

    init(parent: SQLScope?) { self.parent = parent }

    /// The innermost entry named `name`, with the scope holding it.
    func entry(named name: String) -> (SQLRangeEntry, SQLScope)? {
        var scope: SQLScope? = self
        while let current = scope {
            if let found = current.entries.first(where: { $0.name == name }) { return (found, current) }
            scope = current.parent
        }
        return nil
    }
}

/// How a column reference resolved.
struct SQLResolvedColumn {
    enum Kind {
        case plain
        case encrypted(EncryptedColumn)
        case blindIndex(EncryptedColumn)
    }

    var kind: Kind
    var entry: SQLRangeEntry?
    /// Reached through a subquery or CTE (so no blind index column is at hand).
    var viaDerived: Bool
    /// The column name the reference ends with, to find its origin in `entry`.
    var columnName: String? = nil

    /// Where the column's values come from.
    var origin: ResultOrigin {
        guard let entry, let columnName else { return .other }
        return entry.origin(of: columnName)
    }
    /// How to qualify a rewritten reference to the same table (`c`, `public.customers`), nil to
    /// leave it unqualified.
    var qualifier: String?

    static var plain: SQLResolvedColumn { SQLResolvedColumn(kind: .plain, entry: nil, viaDerived: false, qualifier: nil) }

    var encrypted: EncryptedColumn? {
        if case .encrypted(let column) = kind { return column }
        return nil
    }
}
