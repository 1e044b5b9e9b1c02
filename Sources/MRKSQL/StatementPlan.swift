/// What the SQL interceptor decided for one statement: the text to send, how to produce each
/// parameter value, and what to check after decryption.
///
/// A plan holds plaintext lifted from SQL literals (in `LiftedLiteral`); never log a plan's
/// parameters. `description` is redacted.
package struct StatementPlan: Sendable, CustomStringConvertible {
    /// The text to send to PostgreSQL. Byte for byte the input when nothing was rewritten.
    package var sql: String
    /// Exactly one entry per `$n` of `sql`, in order `$1…$N`. For a statement passed through
    /// unchanged: one `.passthrough(.parameter(i))` per caller value.
    package var parameters: [PlannedParameter]
    /// What kind of statement this is.
    var kind: StatementKind
    /// Whether an encrypted column is read, written, compared or may appear in the result.
    var touchesEncryptedColumns: Bool
    /// Whether a read-only replica must refuse the statement (INSERT, UPDATE, DELETE, MERGE,
    /// COPY … FROM, DDL, SELECT … FOR UPDATE/SHARE, SELECT … INTO, data-modifying CTEs…).
    package var isWrite: Bool
    /// Rows to drop after decryption because they matched a truncated blind index only by chance.
    package var postFilters: [PostFilter]
    /// How many columns were appended to the select list for `postFilters`; drop that many
    /// trailing columns from every row before handing it to the caller.
    package var hiddenTrailingColumns: Int
    /// The result's columns as the analysis sees them (hidden columns included): which to
    /// decrypt and check, decided here and never by the server's answer.
    package var result: ResultShape
    /// Which analysis made the plan (its schema changes when a migration finishes); set by the
    /// caller. A plan is not used under another.
    package var schemaVersion = 0
    /// The configured tables the statement names (any spelling; conservative).
    package var tables: [QualifiedName] = []

    /// The kind's name (`select`, `insert`, `update`, `delete`, `merge`, `other`).
    package var kindName: String { kind.rawValue }

    /// A plan that stands for a statement the SQL analysis does not plan (a COPY), naming its tables.
    package static func probe(tables: [QualifiedName]) -> StatementPlan {
        var plan = StatementPlan(sql: "", parameters: [], kind: .insert, touchesEncryptedColumns: false, isWrite: true, postFilters: [],
                                 hiddenTrailingColumns: 0, result: ResultShape(segments: [.plainStar]))
        plan.tables = tables
        return plan
    }

    package var description: String {
        "StatementPlan(kind: \(kind), parameters: \(parameters.count), touchesEncryptedColumns: "
            + "\(touchesEncryptedColumns), isWrite: \(isWrite), postFilters: \(postFilters.count), "
            + "hiddenTrailingColumns: \(hiddenTrailingColumns))"
    }
}

/// The kind of a statement.
package enum StatementKind: String, Sendable, Hashable {
    case select, insert, update, delete, merge
    /// DDL, SET, BEGIN, EXPLAIN, COPY…
    case other
}

/// Where a parameter value comes from.
package enum ValueSource: Sendable, Hashable, CustomStringConvertible {
    /// The caller's value at this 0-based index (`$n` is index `n - 1`).
    case parameter(Int)
    /// A literal that was written in the SQL text and lifted out of it.
    case literal(LiftedLiteral)
    /// SQL NULL.
    case null

    package var description: String {
        switch self {
        case .parameter(let index): "parameter(\(index))"
        case .literal(let literal): "literal(\(literal))"
        case .null: "null"
        }
    }
}

/// A literal lifted out of the SQL text because it sat in an encrypted-column position.
///
/// `text` is plaintext: it must be encrypted or HMACed, never logged. `description` is redacted.
package struct LiftedLiteral: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// How the literal was written.
    package enum Kind: Sendable, Hashable {
        /// `'…'`, `E'…'`, `U&'…'`, `$$…$$`: `text` is the decoded string.
        case string
        /// `42`, `-5`, `1.5`, `1e3`: `text` is the number in decimal (hex/octal/binary integer
        /// literals are converted, `_` separators removed).
        case number
        /// `TRUE` / `FALSE`: `text` is `true` or `false`.
        case boolean
        /// `DATE '…'`, `'…'::date`, `CAST('…' AS date)`, `42::int8`: the type name as written,
        /// lower-cased with common aliases normalised (`timestamptz`, `int4`, `float8`, …).
        case typed(String)
    }

    /// The literal's value (decoded; plaintext).
    package var text: String
    package var kind: Kind

    init(text: String, kind: Kind) {
        self.text = text
        self.kind = kind
    }

    package var description: String { "<redacted \(kindName) literal>" }
    package var debugDescription: String { description }

    private var kindName: String {
        switch kind {
        case .string: "string"
        case .number: "number"
        case .boolean: "boolean"
        case .typed(let type): type
        }
    }
}

/// How to produce one parameter value of `StatementPlan.sql`.
package enum PlannedParameter: Sendable, Hashable {
    /// Send the value as it is.
    case passthrough(ValueSource)
    /// Encrypt the value for `column`. When the table has a row identity, `rowIdentity` is where
    /// that row's identity value comes from (bind it into the ciphertext); nil otherwise. A `.null`
    /// source is never produced here (NULL stays NULL in the SQL text).
    case encrypt(ValueSource, column: EncryptedColumn, rowIdentity: ValueSource?)
    /// Compute the blind index (HMAC, truncated to `column.blindIndexBits`) of the value.
    case blindIndex(ValueSource, column: EncryptedColumn)
}

package extension StatementPlan {
    /// Whether a value written in the SQL text was lifted into the plan. Such plans hold those
    /// values (possibly plaintext of an encrypted column), so they are not kept in plan caches.
    var holdsLiterals: Bool {
        func isLiteral(_ source: ValueSource?) -> Bool {
            if case .literal = source { return true }
            return false
        }
        let inParameters = parameters.contains { parameter in
            switch parameter {
            case .passthrough(let source), .blindIndex(let source, _): isLiteral(source)
            case .encrypt(let source, _, let identity): isLiteral(source) || isLiteral(identity)
            }
        }
        return inParameters || postFilters.contains { $0.acceptedValues.contains(where: isLiteral) }
    }
}

/// A check to apply to each result row after decryption, removing rows that matched a truncated
/// blind index only by chance (a false positive).
package struct PostFilter: Sendable, Hashable {
    /// The encrypted column compared.
    package var column: EncryptedColumn
    /// Index of the result column holding that column's ciphertext, counted among the hidden
    /// trailing columns: the result column is `fieldCount - plan.hiddenTrailingColumns + hiddenColumn`.
    package var hiddenColumn: Int
    /// Keep the row only when the decrypted value equals one of these (compared as values of
    /// `column.type`). Rows where the column is NULL are dropped.
    package var acceptedValues: [ValueSource]
}
