/// Plans how a SQL statement is sent when some columns are encrypted: which values to encrypt or
/// blind-index, which literals to lift out of the text, how to rewrite predicates on searchable
/// columns, and what to refuse.
///
/// Pure Swift and independent of libpq: the same planner serves the library's connection and a
/// wire-protocol proxy. See docs/SQL.md for what is supported, rewritten and refused.
///
/// ```swift
/// let plan = try SQLInterceptor(schema: schema).plan("SELECT * FROM customers WHERE ssn = $1", parameterCount: 1)
/// // plan.sql == "SELECT * FROM customers WHERE customers.ssn_bidx = $1"
/// // plan.parameters == [.blindIndex(.parameter(0), column: ssn)]
/// ```
package struct SQLInterceptor: Sendable {
    package let schema: EncryptedSchema
    /// The server's lexical rules (numbers changed in PostgreSQL 16).
    let dialect: SQLTokenizer.Dialect

    package init(schema: EncryptedSchema, dialect: SQLTokenizer.Dialect = .latest) {
        self.schema = schema
        self.dialect = dialect
    }

    /// Plans one statement.
    ///
    /// - Parameters:
    ///   - sql: the statement as the application wrote it (one statement; a trailing `;` is fine).
    ///   - parameterCount: how many `$n` values the caller supplies.
    /// - Returns: the text to send (byte for byte `sql` when nothing encrypted is involved), one
    ///   planned parameter per `$n` of that text, and what to check after decryption.
    /// - Throws: `InterceptionError` when the statement uses an encrypted column in a way that
    ///   cannot be kept correct, mentions a configured table but cannot be parsed, holds several
    ///   statements one of which mentions a configured table, or uses `$n` beyond
    ///   `parameterCount`. Nothing may be sent then. The error never contains SQL text or values.
    /// The highest `$n` in `sql` (0 when none, or when it cannot be tokenized: `plan` then says why).
    package func highestParameter(in sql: String) -> Int {
        guard let tokens = try? SQLTokenizer.tokenize(sql, dialect: dialect) else { return 0 }
        var highest = 0
        for token in tokens {
            if case .parameter(let n) = token.kind { highest = max(highest, n) }
        }
        return highest
    }

    package func plan(_ sql: String, parameterCount: Int) throws(InterceptionError) -> StatementPlan {
        var tables: [QualifiedName] = []
        var plan = try plan(sql, parameterCount: parameterCount, mentioned: &tables)
        plan.tables = tables
        return plan
    }

    private func plan(_ sql: String, parameterCount: Int, mentioned names: inout [QualifiedName]) throws(InterceptionError) -> StatementPlan {
        // libpq sends text up to its first NUL: the server would run another statement than this.
        guard !sql.utf8.contains(0) else {
            throw InterceptionError(
                .unparseable, construct: "a NUL character in the statement text",
                reason: "libpq sends statement text only up to a NUL, so the server would run a different statement")
        }
        let tokens: [SQLToken]
        do {
            tokens = try SQLTokenizer.tokenize(sql, dialect: dialect)
        } catch {
            // PostgreSQL rejects such text too; but which tables it names cannot be known (a name
            // can be spelt many ways), so it is never sent.
            throw InterceptionError(
                .unparseable, table: tableNamedInRawText(sql),
                construct: "statement that cannot be tokenized (\(error.reason) at byte \(error.offset))",
                reason: "PostgreSQL would reject it too, and a statement that cannot be analysed is never sent")
        }

        let statements = splitStatements(tokens)
        guard statements.count <= 1 else {
            if let table = statements.lazy.compactMap({ mentionedTables(tokens, $0).first }).first {
                throw InterceptionError(
                    .multipleStatements, table: table, construct: "\(statements.count) statements in one string",
                    reason: "send statements that mention a configured table one at a time")
            }
            let isWrite = statements.contains { SQLStatementClassifier.classify(tokens, $0).isWrite }
            return passThrough(sql, parameterCount: parameterCount, kind: .other, isWrite: isWrite)
        }
        guard let range = statements.first else {
            return passThrough(sql, parameterCount: parameterCount, kind: .other, isWrite: false)
        }
        let (kind, isWrite) = SQLStatementClassifier.classify(tokens, range)
        try refuseStringSettingChanges(tokens, range)
        try refuseExecuteOfLibraryStatements(tokens, range)
        try refuseSQLInStrings(tokens, range)
        let mentioned = mentionedTables(tokens, range)
        names = mentioned
        guard let firstTable = mentioned.first else {
            return passThrough(sql, parameterCount: parameterCount, kind: kind, isWrite: isWrite)
        }

        for index in range {
            if case .parameter(let number) = tokens[index].kind, number < 1 || number > parameterCount {
                throw InterceptionError(
                    .parameterCount, table: firstTable, construct: "parameter $\(number)",
                    reason: "\(parameterCount) parameter value(s) were supplied")
            }
        }

        let statement: SQLStatement
        do {
            statement = try SQLParser.parse(tokens: tokens, range: range)
        } catch {
            throw InterceptionError(
                .unparseable, table: firstTable,
                construct: "statement not understood near byte \(tokens[safe: error.tokenIndex]?.range.lowerBound ?? sql.utf8.count) "
                    + "(expected \(error.expected))",
                reason: "statements that mention a configured table must be parsed completely")
        }

        if case .utility(let keyword) = statement {
            try checkUtility(keyword, tokens: tokens, range: range, mentioned: mentioned)
            return passThrough(sql, parameterCount: parameterCount, kind: kind, isWrite: isWrite)
        }
        if case .explain(let inner) = statement, case .utility(let keyword) = inner {
            // What EXPLAIN wraps is checked as if it stood alone (EXPLAIN ANALYZE runs it).
            try checkUtility(keyword, tokens: tokens, range: range, mentioned: mentioned)
            try checkUtility("explain", tokens: tokens, range: range, mentioned: mentioned)
            return passThrough(sql, parameterCount: parameterCount, kind: kind, isWrite: isWrite)
        }

        let analyzer = SQLAnalyzer(schema: schema, tokens: tokens, parameterCount: parameterCount, statementWrites: isWrite)
        let shape = try analyzer.analyzeStatement(statement, parent: nil, outermost: true)
        try analyzer.checkRowIdentityInstances()
        analyzer.finish()
        if !analyzer.postFilters.isEmpty { try refuseCallsUnderPostFilter(tokens, range, analyzer.postFilters[0].column) }
        // What the result holds: EXPLAIN returns its plan as text; otherwise the statement's
        // columns, then the hidden ones the rewrite appended for post-filters.
        var result = ResultShape(segments: [.plainStar])
        if case .explain = statement {} else {
            result = ResultShape(segments: shape.segments + analyzer.hiddenOrigins.map { .column($0) })
        }
        guard !analyzer.edits.isEmpty else {
            var plan = passThrough(sql, parameterCount: parameterCount, kind: kind, isWrite: isWrite)
            plan.touchesEncryptedColumns = analyzer.touchesEncrypted
            plan.result = result
            return plan
        }
        let (text, parameters) = try assemble(sql, tokens: tokens, range: range, edits: analyzer.edits, firstTable: firstTable)
        return StatementPlan(
            sql: text, parameters: parameters, kind: kind, touchesEncryptedColumns: analyzer.touchesEncrypted, isWrite: isWrite,
            postFilters: analyzer.postFilters, hiddenTrailingColumns: analyzer.hiddenColumns.count, result: result)
    }

    /// Words that may stand before `(` in a statement whose rows are filtered after decryption:
    /// SQL syntax, type names with modifiers, and built-in functions without side effects.
    /// Anything else (a user function, `nextval`, `pg_advisory_lock`…) could act on the rows a
    /// truncated blind index matched only by chance, before they are dropped.
    static let callsAllowedUnderPostFilter: Set<String> = [
        // syntax
        "in", "exists", "values", "any", "some", "all", "cast", "row", "array", "select", "from", "where", "and", "or", "not",
        "on", "using", "as", "over", "filter", "within", "lateral", "is", "then", "else", "when", "case", "distinct", "by",
        // types with modifiers
        "numeric", "decimal", "varchar", "char", "character", "varying", "bit", "varbit", "timestamp", "timestamptz", "time",
        "timetz", "interval", "float",
        // built-ins without side effects
        "coalesce", "nullif", "greatest", "least", "extract", "position", "substring", "substr", "overlay", "trim", "btrim",
        "ltrim", "rtrim", "lower", "upper", "initcap", "length", "char_length", "character_length", "octet_length",
        "bit_length", "abs", "round", "trunc", "ceil", "ceiling", "floor", "sign", "mod", "power", "sqrt", "concat",
        "concat_ws", "left", "right", "lpad", "rpad", "replace", "split_part", "strpos", "reverse", "repeat", "format",
        "to_char", "to_date", "to_timestamp", "to_number", "date_trunc", "date_part", "age", "make_date", "make_time",
        "make_timestamp", "make_timestamptz", "make_interval", "now", "md5", "encode", "decode", "jsonb_build_object",
        "json_build_object", "jsonb_build_array", "json_build_array", "jsonb_extract_path", "jsonb_extract_path_text",
        "json_extract_path", "json_extract_path_text", "jsonb_array_length", "json_array_length", "jsonb_typeof",
        "json_typeof", "array_length", "array_position", "cardinality", "string_to_array", "array_to_string",
    ]

    /// A statement whose rows are filtered after decryption (a truncated blind index) runs its
    /// function calls on every candidate row, including the false positives it later drops: refuse
    /// calls that could have side effects.
    private func refuseCallsUnderPostFilter(_ tokens: [SQLToken], _ range: Range<Int>, _ column: EncryptedColumn) throws(InterceptionError) {
        for index in range.dropLast() where tokens[index].isName && tokens[index + 1].isPunctuation("(") {
            let name = tokens[index].text.lowercased()
            // A qualified call (`s.f(`) is judged by its last part; `pg_catalog.lower(` is fine.
            guard !Self.callsAllowedUnderPostFilter.contains(name) || tokens[index].kind == .quotedIdentifier else { continue }
            throw InterceptionError(
                .unsupportedConstruct, column: column, construct: "call of \(SQLIdentifier.quoted(name))() in a statement filtered on a truncated blind index",
                reason: "the statement also runs on rows that match the truncated index only by chance, which MRKProxy drops after decryption; "
                    + "a function with side effects would act on them. Call only built-in functions without side effects, or use a 256-bit index")
        }
    }

    private func passThrough(_ sql: String, parameterCount: Int, kind: StatementKind, isWrite: Bool) -> StatementPlan {
        StatementPlan(
            sql: sql, parameters: (0..<max(parameterCount, 0)).map { .passthrough(.parameter($0)) }, kind: kind,
            touchesEncryptedColumns: false, isWrite: isWrite, postFilters: [], hiddenTrailingColumns: 0,
            result: ResultShape(segments: [.plainStar]))
    }

    // MARK: - Statements and tables

    /// Token ranges of the statements, split at `;` (empty statements dropped).
    private func splitStatements(_ tokens: [SQLToken]) -> [Range<Int>] {
        var statements: [Range<Int>] = []
        var start = 0
        for (index, token) in tokens.enumerated() where token.isPunctuation(";") {
            if index > start { statements.append(start..<index) }
            start = index + 1
        }
        if tokens.count > start { statements.append(start..<tokens.count) }
        return statements
    }

    /// Configured tables whose name appears as an identifier in the statement, in order.
    func mentionedTables(_ tokens: [SQLToken], _ range: Range<Int>) -> [QualifiedName] {
        let names = schema.configuredTableNames
        var found: [QualifiedName] = []
        for index in range where tokens[index].isName && names.contains(tokens[index].text) {
            let name = tokens[index].text
            var candidates = schema.tables.keys.filter { $0.name == name }.sorted { $0.schema < $1.schema }
            if let preferred = schema.table(named: [name])?.name, let position = candidates.firstIndex(of: preferred) {
                candidates.swapAt(0, position)
            }
            for candidate in candidates where !found.contains(candidate) { found.append(candidate) }
        }
        return found
    }

    /// For a message about text that cannot be tokenized: a configured table whose name appears in
    /// it (the refusal does not depend on it; a name can be spelt in ways this would not find).
    private func tableNamedInRawText(_ sql: String) -> QualifiedName? {
        let lowered = sql.lowercased()
        return schema.tables.keys.sorted { $0.description < $1.description }.first { lowered.contains($0.name.lowercased()) }
    }

    private static let queryKeywords: Set<String> = ["select", "insert", "update", "delete", "merge", "values", "atomic"]

    /// Functions that run SQL given to them as a string.
    private static let sqlStringFunctions: Set<String> = [
        "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "table_to_xml", "table_to_xmlschema",
        "table_to_xml_and_xmlschema", "cursor_to_xml", "dblink", "dblink_exec", "dblink_open", "dblink_send_query",
        "ts_stat", "ts_rewrite", "crosstab", "crosstab2", "crosstab3", "crosstab4", "connectby", "xpath_table",
    ]
    private static let dmlWords: Set<String> = ["select", "insert", "update", "delete", "merge", "copy", "with", "table", "values"]

    /// SQL inside strings runs on the server without being analyzed, so its values would not be
    /// encrypted. Refused: a string naming a configured table (as a word) in a DO block, a
    /// function or procedure body, or an argument of a function that runs SQL from a string; and
    /// in any statement, a string naming a configured table next to a DML keyword.
    private func refuseSQLInStrings(_ tokens: [SQLToken], _ range: Range<Int>) throws(InterceptionError) {
        guard let first = range.first else { return }
        var runner: String?
        if tokens[first].isKeyword("do") {
            runner = "a DO block"
        } else if tokens[first].isKeyword("create"),
                  let kind = tokens[range].prefix(6).first(where: { $0.isKeyword("function") || $0.isKeyword("procedure") }) {
            runner = "a CREATE \(kind.text.uppercased()) body"
        } else {
            for index in range where tokens[index].isName && Self.sqlStringFunctions.contains(tokens[index].text.lowercased())
                && index + 1 < range.upperBound && tokens[index + 1].isPunctuation("(") {
                runner = "\(tokens[index].text.lowercased())()"
                break
            }
        }
        for index in range {
            guard case .string = tokens[index].kind, let table = tableNamedAsWord(in: tokens[index].text) else { continue }
            // Outside those, only a string that reads like a statement (it starts with a DML
            // keyword) counts: prose that mentions a table is data.
            let firstWord = tokens[index].text.drop { $0.isWhitespace || $0 == "(" }.prefix { $0.isLetter }.lowercased()
            guard runner != nil || Self.dmlWords.contains(firstWord) else { continue }
            throw InterceptionError(
                .unsupportedConstruct, table: table, construct: "SQL in a string" + (runner.map { " run by \($0)" } ?? ""),
                reason: "SQL inside strings runs on the server unanalyzed, so its values would not be encrypted")
        }
    }

    /// The configured table whose name appears in `text` as a whole word (case-insensitive).
    private func tableNamedAsWord(in text: String) -> QualifiedName? {
        let lowered = Array(text.lowercased().utf8)
        return schema.tables.keys.sorted(by: { $0.description < $1.description }).first {
            Self.containsWord(lowered, Array($0.name.lowercased().utf8))
        }
    }

    /// Whether `word` occurs in `text` between non-identifier characters.
    private static func containsWord(_ text: [UInt8], _ word: [UInt8]) -> Bool {
        func isWordByte(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: "_") || byte == UInt8(ascii: "$") || byte >= 0x80
                || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
        }
        guard !word.isEmpty, text.count >= word.count else { return false }
        for start in 0...(text.count - word.count) where text[start..<(start + word.count)].elementsEqual(word) {
            let before = start == 0 || !isWordByte(text[start - 1])
            let after = start + word.count == text.count || !isWordByte(text[start + word.count])
            if before && after { return true }
        }
        return false
    }

    /// The tokenizer reads `'…'` as PostgreSQL does with `standard_conforming_strings = on`; a
    /// statement that could change it (SET, set_config, ALTER … SET) is refused. (Connections also
    /// check the setting the server reports before every statement.)
    private func refuseStringSettingChanges(_ tokens: [SQLToken], _ range: Range<Int>) throws(InterceptionError) {
        guard let first = range.first, !tokens[first].isKeyword("show") else { return }
        let changes = tokens[range].contains { $0.isKeyword("set") || $0.isKeyword("reset") || $0.isKeyword("alter")
            || ($0.isName && $0.text.lowercased() == "set_config") }
        guard changes else { return }
        for index in range where tokens[index].text.lowercased().contains("standard_conforming_strings") {
            throw InterceptionError(
                .unsupportedConstruct, construct: "a statement changing standard_conforming_strings",
                reason: "MRKProxy reads SQL string literals as PostgreSQL does with it on (the default)")
        }
    }

    /// Names of the statements the library prepares (`EncryptedConnection.prepare`) start with this.
    package static let libraryStatementPrefix = "mrkproxy_"

    /// Whether `text` contains a library statement name (`mrkproxy_` and a digit).
    private static func namesLibraryStatement(_ text: String) -> Bool {
        let lowered = Array(text.lowercased().utf8), prefix = Array(libraryStatementPrefix.utf8)
        guard lowered.count > prefix.count else { return false }
        for start in 0..<(lowered.count - prefix.count) where lowered[start..<(start + prefix.count)].elementsEqual(prefix) {
            let next = lowered[start + prefix.count]
            if next >= UInt8(ascii: "0") && next <= UInt8(ascii: "9") { return true }
        }
        return false
    }

    /// `EXECUTE mrkproxy_1(…)` in SQL text would hand values to a statement the library prepared
    /// for encrypted columns, unencrypted: those take their values through the library only.
    private func refuseExecuteOfLibraryStatements(_ tokens: [SQLToken], _ range: Range<Int>) throws(InterceptionError) {
        // Also inside strings: dynamic SQL in a DO block or function body.
        for index in range {
            guard case .string = tokens[index].kind, Self.namesLibraryStatement(tokens[index].text) else { continue }
            throw InterceptionError(
                .unsupportedConstruct, construct: "a string naming a statement prepared by MRKProxy",
                reason: "its values must go through the library's prepared statement, which encrypts them")
        }
        for index in range where tokens[index].isKeyword("execute") {
            guard index + 1 < range.upperBound, tokens[index + 1].isName,
                  tokens[index + 1].text.lowercased().hasPrefix(Self.libraryStatementPrefix) else { continue }
            throw InterceptionError(
                .unsupportedConstruct, construct: "EXECUTE of a statement prepared by MRKProxy",
                reason: "its values must go through the library's prepared statement, which encrypts them")
        }
    }

    /// A statement that is not DML but mentions a configured table: refuse COPY, MERGE, PREPARE,
    /// DECLARE and anything that names an encrypted column or embeds a query with literals;
    /// pass the rest (ALTER, DROP, TRUNCATE, GRANT, CREATE INDEX on the blind index, …).
    private func checkUtility(_ keyword: String, tokens: [SQLToken], range: Range<Int>, mentioned: [QualifiedName])
        throws(InterceptionError)
    {
        let table = mentioned[0]
        switch keyword {
        case "copy":
            throw InterceptionError(
                .copy, table: table, construct: "COPY",
                reason: "COPY would move values without encryption; use the library's bulk insert")
        case "merge":
            throw InterceptionError(
                .unsupportedConstruct, table: table, construct: "MERGE",
                reason: "not supported on configured tables; use INSERT … ON CONFLICT")
        case "prepare", "declare", "execute", "create", "do", "call", "explain":
            break
        default:
            break
        }
        if keyword == "create" {
            // A view or CREATE TABLE AS over a configured table makes an unconfigured copy (or
            // window) of its ciphertext columns, which later statements would not recognise.
            let head = tokens[range].prefix(8)
            let isView = head.contains { $0.isKeyword("view") }
            let isTableAs = head.contains { $0.isKeyword("table") } && range.contains { index in
                tokens[index].isKeyword("as") && index + 1 < range.upperBound
                    && ["select", "table", "values", "with", "execute"].contains { tokens[index + 1].isKeyword($0) || tokens[index + 1].isPunctuation("(") }
            }
            if isView || isTableAs {
                throw InterceptionError(
                    .unsupportedConstruct, table: table, construct: isView ? "CREATE VIEW over the table" : "CREATE TABLE AS over the table",
                    reason: "the copy's columns would not be configured, so values compared or written through it would not be encrypted")
            }
        }
        if keyword == "prepare" || keyword == "declare" {
            throw InterceptionError(
                .unsupportedConstruct, table: table, construct: keyword.uppercased(),
                reason: "the statement inside is not analyzed; use the library's prepared statements and cursors")
        }
        var hasLiteral = false
        var hasQuery = false
        for index in range {
            let token = tokens[index]
            switch token.kind {
            case .string, .number: hasLiteral = true
            case .identifier where Self.queryKeywords.contains(token.text): hasQuery = true
            default: break
            }
            guard token.isName else { continue }
            for name in mentioned {
                if let column = schema.tables[name]?.columns[token.text] {
                    throw InterceptionError(
                        .unsupportedConstruct, column: column, construct: "\(keyword.uppercased()) statement naming the column",
                        reason: "schema changes and server-side code over encrypted columns are not analyzed; "
                            + "run them outside the application path")
                }
            }
        }
        if hasLiteral && hasQuery {
            throw InterceptionError(
                .unsupportedConstruct, table: table, construct: "\(keyword.uppercased()) statement with an embedded query and literals",
                reason: "queries inside views, rules and function bodies are not analyzed, and their literals could be plaintext")
        }
    }

    // MARK: - Output

    private static func isIdentifierByte(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39)
            || byte == 0x5F || byte == 0x24 || byte >= 0x80
    }

    /// Applies the edits and numbers the parameters in order of appearance.
    private func assemble(
        _ sql: String, tokens: [SQLToken], range: Range<Int>, edits: [SQLEdit], firstTable: QualifiedName
    ) throws(InterceptionError) -> (String, [PlannedParameter]) {
        var all = edits
        for index in range {
            guard case .parameter(let number) = tokens[index].kind else { continue }
            let span = tokens[index].range
            let covered = edits.contains {
                !$0.range.isEmpty && $0.range.lowerBound <= span.lowerBound && span.upperBound <= $0.range.upperBound
            }
            if covered { continue }
            all.append(SQLEdit(range: span, pieces: [.parameter(.passthrough(.parameter(number - 1)))], sequence: all.count))
        }
        all.sort { ($0.range.lowerBound, $0.sequence) < ($1.range.lowerBound, $1.sequence) }
        let bytes = Array(sql.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count + 64)
        var cursor = 0
        var parameters: [PlannedParameter] = []
        var numbers: [PlannedParameter: Int] = [:]
        for edit in all {
            guard edit.range.lowerBound >= cursor else {
                throw InterceptionError(
                    .unsupportedConstruct, table: firstTable, construct: "overlapping rewrites",
                    reason: "the statement could not be rewritten safely")
            }
            output += bytes[cursor..<edit.range.lowerBound]
            for piece in edit.pieces {
                switch piece {
                case .text(let text):
                    output += Array(text.utf8)
                case .parameter(let parameter):
                    let number: Int
                    switch parameter {
                    case .passthrough, .blindIndex:
                        if let existing = numbers[parameter] {
                            number = existing
                        } else {
                            parameters.append(parameter)
                            number = parameters.count
                            numbers[parameter] = number
                        }
                    case .encrypt:
                        parameters.append(parameter)
                        number = parameters.count
                    }
                    output += Array("$\(number)".utf8)
                }
            }
            cursor = edit.range.upperBound
            // `$3` directly followed by a letter or digit would lex differently: separate them.
            if let last = output.last, last >= UInt8(ascii: "0"), last <= UInt8(ascii: "9"), cursor < bytes.count,
                Self.isIdentifierByte(bytes[cursor])
            {
                output.append(UInt8(ascii: " "))
            }
        }
        output += bytes[cursor...]
        return (String(decoding: output, as: UTF8.self), parameters)
    }
}

extension Array {
    fileprivate subscript(safe index: Int) -> Element? { index >= 0 && index < count ? self[index] : nil }
}
