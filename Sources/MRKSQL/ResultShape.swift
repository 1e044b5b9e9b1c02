/// What the analysis knows about the columns a statement returns: which come from encrypted
/// columns (and must be decrypted, whatever the server says about them), which carry a row
/// identity, and which are plain.
///
/// The reader lays the server's result columns over these segments and verifies each one against
/// it (see `ResultLayout` in MRKProxy); the server's answer never decides what is decrypted.
package struct ResultShape: Sendable, Hashable {
    /// The segments, in column order.
    package var segments: [ResultSegment]

    package init(segments: [ResultSegment] = []) { self.segments = segments }

    /// Whether any column must be decrypted.
    package var hasEncryptedColumns: Bool {
        segments.contains { segment in
            switch segment {
            case .column(let column): if case .encrypted = column.origin { return true }
            case .tableStar(let table, _): return !table.columns.isEmpty
            case .plainStar: break
            }
            return false
        }
    }

    /// Names of the encrypted columns the result holds (their output names).
    package var encryptedNames: Set<String> {
        var names: Set<String> = []
        for segment in segments {
            switch segment {
            case .column(let column): if case .encrypted = column.origin, let name = column.name { names.insert(name) }
            case .tableStar(let table, _): names.formUnion(table.columns.keys)
            case .plainStar: break
            }
        }
        return names
    }
}

/// A run of result columns.
package enum ResultSegment: Sendable, Hashable {
    /// One column.
    case column(ResultColumn)
    /// Every column of a configured table (`*`, `t.*`), in the table's column order: as many as
    /// the table has, named as its columns, the encrypted ones decrypted.
    case tableStar(EncryptedTable, instance: Int)
    /// Columns from sources that have no encrypted columns (an unconfigured table's `*`, a
    /// set-returning function): any number, all plain.
    case plainStar
}

/// One result column as the analysis sees it.
package struct ResultColumn: Sendable, Hashable {
    /// The output name when the statement fixes it (an alias, or a column reference); nil when
    /// PostgreSQL derives it (`?column?`, a function's name).
    package var name: String?
    package var origin: ResultOrigin

    package init(name: String?, origin: ResultOrigin) {
        self.name = name
        self.origin = origin
    }
}

/// Where a result column's values come from.
package enum ResultOrigin: Sendable, Hashable {
    /// An encrypted column of one instance of its table in the statement (instances tell a
    /// self-join's two sides apart).
    case encrypted(EncryptedColumn, instance: Int)
    /// A column of a configured table that is not encrypted (its row identity, say).
    case tableColumn(QualifiedName, column: String, instance: Int)
    /// Anything else: an expression, a column of an unconfigured table.
    case other
}

extension EncryptedTable: Hashable {
    public static func == (a: EncryptedTable, b: EncryptedTable) -> Bool {
        a.name == b.name && a.rowIdentity == b.rowIdentity && a.columns == b.columns
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(rowIdentity)
    }
}
