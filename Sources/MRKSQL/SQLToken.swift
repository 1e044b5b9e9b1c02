/// One lexical token of PostgreSQL SQL. Comments and whitespace are not tokens.
package struct SQLToken: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// An unquoted identifier or keyword; `text` is folded to lower case (ASCII only, as
        /// PostgreSQL does for UTF-8) and truncated to 63 bytes.
        case identifier
        /// `"…"` or `U&"…"`; `text` is the decoded name, case kept.
        case quotedIdentifier
        /// A string constant; `text` is the decoded value.
        case string(StringStyle)
        /// A numeric constant; `text` is as written without `_` separators.
        case number
        /// `$n`.
        case parameter(Int)
        /// An operator (`=`, `<>`, `||`, `~*`, `->>`, …); `text` as written.
        case op
        /// `(` `)` `[` `]` `,` `;` `:` `.` or `::`.
        case punctuation
        /// A character PostgreSQL does not accept where it stands (e.g. `\`, `{`, a lone `$`).
        case other
    }

    /// How a string constant was written.
    enum StringStyle: Sendable, Equatable {
        /// `'…'` (standard_conforming_strings on) or `N'…'`.
        case standard
        /// `E'…'` with backslash escapes.
        case escape
        /// `U&'…'` with Unicode escapes (and an optional `UESCAPE`).
        case unicode
        /// `$tag$…$tag$`.
        case dollar
        /// `B'…'` / `X'…'` bit strings; `text` is the digits as written.
        case bit
    }

    var kind: Kind
    var text: String
    /// Byte offsets of the whole token (prefixes, quotes, `UESCAPE` clause included) in the UTF-8
    /// source.
    var range: Range<Int>

    /// Whether this is the unquoted keyword (or identifier) `word`, given in lower case.
    func isKeyword(_ word: String) -> Bool { kind == .identifier && text == word }

    /// Whether this is the punctuation `mark`.
    func isPunctuation(_ mark: String) -> Bool { kind == .punctuation && text == mark }

    /// Whether this is the operator `symbol`.
    func isOperator(_ symbol: String) -> Bool { kind == .op && text == symbol }

    /// Whether this names something (identifier or quoted identifier).
    var isName: Bool { kind == .identifier || kind == .quotedIdentifier }

    var isString: Bool {
        if case .string = kind { return true }
        return false
    }
}

/// Identifier quoting as PostgreSQL's `quote_ident`.
package enum SQLIdentifier {
    /// `name` as it must be written in SQL: bare when it is lower-case, starts with a letter or
    /// `_`, has only letters, digits, `_` and `$`, and is not a reserved word; double-quoted (with
    /// `"` doubled) otherwise.
    package static func quoted(_ name: String) -> String {
        var safe = !name.isEmpty
        for (index, byte) in name.utf8.enumerated() {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "_"): continue
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "$"): if index == 0 { safe = false }
            default: safe = false
            }
            if !safe { break }
        }
        if safe && !SQLKeywords.reserved.contains(name) { return name }
        var quoted = "\""
        for character in name {
            quoted.append(character)
            if character == "\"" { quoted.append(character) }
        }
        return quoted + "\""
    }
}

/// Keyword sets used by the parser.
enum SQLKeywords {
    /// PostgreSQL's reserved and type/function-name keywords, plus clause words that can never be
    /// a bare alias here. A name in this set must be quoted to be used as an identifier.
    static let reserved: Set<String> = coreReserved.union(typeFunctionName)

    /// PostgreSQL's fully reserved keywords: never a column, table or function name unquoted.
    static let coreReserved: Set<String> = [
        "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "both", "case",
        "cast", "check", "collate", "column", "constraint", "create", "current_catalog", "current_date",
        "current_role", "current_time", "current_timestamp", "current_user", "default", "deferrable",
        "desc", "distinct", "do", "else", "end", "except", "false", "fetch", "for", "foreign", "from",
        "grant", "group", "having", "in", "initially", "intersect", "into", "lateral", "leading", "limit",
        "localtime", "localtimestamp", "not", "null", "offset", "on", "only", "or", "order", "placing",
        "primary", "references", "returning", "select", "session_user", "some", "symmetric",
        "system_user", "table", "then", "to", "trailing", "true", "union", "unique", "user", "using",
        "variadic", "when", "where", "window", "with",
    ]

    /// Keywords that can name a function (`left(…)`) but not a column or table unquoted.
    static let typeFunctionName: Set<String> = [
        "authorization", "binary", "collation", "concurrently", "cross", "current_schema", "freeze",
        "full", "ilike", "inner", "is", "isnull", "join", "left", "like", "natural", "notnull", "outer",
        "overlaps", "right", "similar", "tablesample", "verbose",
    ]

    /// Words that end an expression or a FROM item and so are never taken as a bare alias.
    static let notAlias: Set<String> = reserved.union([
        "set", "values", "nothing", "conflict", "overriding", "escape", "over", "filter", "within",
        "partition", "rows", "range", "groups", "preceding", "following", "unbounded", "exclude",
        "nulls", "first", "last", "ordinality", "repeatable",
    ])
}
