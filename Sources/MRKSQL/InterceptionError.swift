/// Why the SQL interceptor refused a statement. Nothing is sent when this is thrown.
///
/// It names the table, the column and the construct, never a literal value nor any part of
/// the SQL text (which may hold plaintext), so it is safe to log and show. `description` is one
/// line: `refused: LIKE on encrypted column public.customers.ssn (only =, <>, IN and IS [NOT] NULL
/// are supported on search: equality columns)`.
package struct InterceptionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of refusal; extensible.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        package let name: String
        private init(_ name: String) { self.name = name }
        package var description: String { name }

        /// The construct cannot be kept correct over an encrypted column (LIKE, ordering, range
        /// comparison, functions, comparison with a column or expression…).
        package static let unsupportedConstruct = Code("unsupportedConstruct")
        /// More than one statement in one string that mentions a configured table.
        package static let multipleStatements = Code("multipleStatements")
        /// The statement mentions a configured table but could not be parsed completely.
        package static let unparseable = Code("unparseable")
        /// An encrypted value must be bound to its row, but the row identity value is unknown.
        package static let rowIdentityUnknown = Code("rowIdentityUnknown")
        /// The statement changes the row identity column, which would orphan bound ciphertexts.
        package static let rowIdentityChange = Code("rowIdentityChange")
        /// A comparison on an encrypted column that is not `search: equality`.
        package static let notSearchable = Code("notSearchable")
        /// `INSERT … SELECT` (or `SET col = <column, subquery>`) would write an encrypted column from
        /// something that is not a value, or copy ciphertext.
        package static let insertSelect = Code("insertSelect")
        /// The statement writes a blind index column directly.
        package static let blindIndexWrite = Code("blindIndexWrite")
        /// A write filters on a truncated blind index and could touch false-positive rows.
        package static let truncatedIndexWrite = Code("truncatedIndexWrite")
        /// An unqualified column name could be an encrypted column of an outer query or of another
        /// relation; qualify it.
        package static let ambiguousColumn = Code("ambiguousColumn")
        /// The statement uses `$n` beyond the values supplied.
        package static let parameterCount = Code("parameterCount")
        /// COPY to or from a configured table.
        package static let copy = Code("copy")
    }

    package let code: Code
    /// The configured table concerned, if known.
    package let table: QualifiedName?
    /// The encrypted column concerned, if any.
    package let column: String?
    /// The construct refused, e.g. `LIKE`, `function lower()`, `ORDER BY` (fixed text and
    /// identifiers only, never values).
    package let construct: String
    /// Why, or what to do instead (fixed text).
    package let reason: String

    init(_ code: Code, table: QualifiedName? = nil, column: String? = nil, construct: String, reason: String) {
        self.code = code
        self.table = table
        self.column = column
        self.construct = construct
        self.reason = reason
    }

    init(_ code: Code, column: EncryptedColumn, construct: String, reason: String) {
        self.init(code, table: column.table, column: column.name, construct: construct, reason: reason)
    }

    package var description: String { "refused: " + summary }

    /// The description without its `refused: ` prefix.
    package var summary: String {
        if let table, let column {
            return "\(construct) on encrypted column \(table).\(SQLIdentifier.quoted(column)) (\(reason))"
        }
        if let table {
            return "\(construct) mentioning configured table \(table) (\(reason))"
        }
        return "\(construct) (\(reason))"
    }
}
