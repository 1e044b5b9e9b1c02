/// A recursive-descent parser for the PostgreSQL statements MRKProxy must understand: SELECT
/// (joins, subqueries, CTEs, set operations, locking), INSERT (VALUES, SELECT, ON CONFLICT,
/// RETURNING), UPDATE (FROM, RETURNING), DELETE (USING, RETURNING) and EXPLAIN of those. Any
/// other statement is returned as `.utility` with its first keyword.
///
/// The parser is strict: anything it does not recognise throws, and the interceptor refuses a
/// statement it cannot parse when it mentions a configured table (fail closed).
struct SQLParser {
    /// Where parsing stopped. Carries a token index and what was expected, never text.
    struct Failure: Error, Sendable {
        var tokenIndex: Int
        var expected: String
    }

    let tokens: [SQLToken]
    var position: Int
    let end: Int
    /// Inside `position(a IN b)` / `substring(a SIMILAR b)`: `IN` and `SIMILAR` end the argument.
    var specialArgumentsFlag = false
    /// Current nesting of expressions, queries and FROM items, bounded by `maximumDepth` so that
    /// hostile input cannot overflow the stack.
    var depth = 0
    static let maximumDepth = 100
    /// Tokens consumed so far, counting re-parses after backtracking; bounded by `workBudget` so
    /// that input built to make backtracking exponential fails fast instead of stalling.
    var work = 0
    let workBudget: Int

    /// Parses the statement made of `tokens[range]` (without its trailing semicolon).
    static func parse(tokens: [SQLToken], range: Range<Int>) throws(Failure) -> SQLStatement {
        var parser = SQLParser(tokens: tokens, position: range.lowerBound, end: range.upperBound)
        let statement = try parser.parseStatementBody()
        guard parser.position == parser.end else { throw parser.failure("end of statement") }
        return statement
    }

    private init(tokens: [SQLToken], position: Int, end: Int) {
        self.tokens = tokens
        self.position = position
        self.end = end
        workBudget = 64 * max(0, end - position) + 2_000
    }

    /// Enters one level of nesting; balance with `depth -= 1` (in a `defer`).
    mutating func enterNesting() throws(Failure) {
        depth += 1
        guard depth <= Self.maximumDepth else { throw failure("at most \(Self.maximumDepth) levels of nesting") }
        guard work <= workBudget else { throw failure("a statement that parses without this much backtracking") }
    }

    // MARK: - Token helpers

    func token(_ offset: Int = 0) -> SQLToken? {
        let index = position + offset
        return index >= 0 && index < end ? tokens[index] : nil
    }

    func isKeyword(_ word: String, _ offset: Int = 0) -> Bool { token(offset)?.isKeyword(word) ?? false }
    func isPunctuation(_ mark: String, _ offset: Int = 0) -> Bool { token(offset)?.isPunctuation(mark) ?? false }
    func isOperator(_ symbol: String, _ offset: Int = 0) -> Bool { token(offset)?.isOperator(symbol) ?? false }

    func failure(_ expected: String) -> Failure { Failure(tokenIndex: position, expected: expected) }

    mutating func advance(_ count: Int = 1) {
        position = min(position + count, end)
        work += count
    }

    mutating func acceptKeyword(_ word: String) -> Bool {
        guard isKeyword(word) else { return false }
        advance()
        return true
    }

    mutating func expectKeyword(_ word: String) throws(Failure) {
        guard acceptKeyword(word) else { throw failure(word.uppercased()) }
    }

    mutating func acceptPunctuation(_ mark: String) -> Bool {
        guard isPunctuation(mark) else { return false }
        advance()
        return true
    }

    mutating func expectPunctuation(_ mark: String) throws(Failure) {
        guard acceptPunctuation(mark) else { throw failure(mark) }
    }

    /// A column, table or alias name: a quoted identifier or an unquoted one that is not reserved.
    mutating func parseName() throws(Failure) -> String {
        guard let current = token(), current.isName,
            current.kind == .quotedIdentifier || !SQLKeywords.reserved.contains(current.text)
        else { throw failure("name") }
        advance()
        return current.text
    }

    /// A label after AS: any identifier, keywords included.
    mutating func parseLabel() throws(Failure) -> String {
        guard let current = token(), current.isName else { throw failure("name") }
        advance()
        return current.text
    }

    mutating func parseQualifiedName() throws(Failure) -> [String] {
        var parts = [try parseName()]
        while isPunctuation("."), let next = token(1), next.isName {
            advance()
            parts.append(try parseLabel())
        }
        guard parts.count <= 3 else { throw failure("table name") }
        return parts
    }

    mutating func parseNameList() throws(Failure) -> [String] {
        try expectPunctuation("(")
        var names: [String] = []
        repeat { names.append(try parseName()) } while acceptPunctuation(",")
        try expectPunctuation(")")
        return names
    }

    /// Whether the tokens at `index` (after any number of `(`) start a query.
    func startsQuery(at index: Int) -> Bool {
        var probe = index
        while probe < end && tokens[probe].isPunctuation("(") { probe += 1 }
        guard probe < end else { return false }
        let current = tokens[probe]
        return current.isKeyword("select") || current.isKeyword("values") || current.isKeyword("with")
            || current.isKeyword("table")
    }

    /// `(n)` or `(n, m)` with integer constants only (type modifiers, precisions).
    mutating func skipNumericModifier() throws(Failure) {
        try expectPunctuation("(")
        repeat {
            guard token()?.kind == .number else { throw failure("integer") }
            advance()
        } while acceptPunctuation(",")
        try expectPunctuation(")")
    }

    /// Skips a balanced parenthesised group starting at `(`.
    mutating func skipParenthesized() throws(Failure) {
        try expectPunctuation("(")
        var depth = 1
        while depth > 0 {
            guard let current = token() else { throw failure(")") }
            if current.isPunctuation("(") { depth += 1 }
            if current.isPunctuation(")") { depth -= 1 }
            advance()
        }
    }

    // MARK: - Statements

    mutating func parseStatementBody() throws(Failure) -> SQLStatement {
        if isKeyword("with") {
            let (ctes, recursive) = try parseWith()
            switch try parseDataStatement() {
            case .query(let query):
                query.ctes = ctes + query.ctes
                query.recursive = query.recursive || recursive
                return .query(query)
            case .insert(let insert):
                insert.ctes = ctes
                return .insert(insert)
            case .update(let update):
                update.ctes = ctes
                return .update(update)
            case .delete(let delete):
                delete.ctes = ctes
                return .delete(delete)
            default:
                throw failure("SELECT, INSERT, UPDATE or DELETE")
            }
        }
        if isKeyword("select") || isKeyword("values") || isKeyword("table") || isPunctuation("(")
            || isKeyword("insert") || isKeyword("update") || isKeyword("delete")
        {
            return try parseDataStatement()
        }
        if acceptKeyword("explain") {
            if isPunctuation("(") {
                try skipParenthesized()
            } else {
                while acceptKeyword("analyze") || acceptKeyword("analyse") || acceptKeyword("verbose") {}
            }
            return .explain(try parseStatementBody())
        }
        let keyword = token()?.kind == .identifier ? token()?.text ?? "" : ""
        position = end
        return .utility(keyword)
    }

    /// SELECT / VALUES / TABLE / ( query ) / INSERT / UPDATE / DELETE.
    mutating func parseDataStatement() throws(Failure) -> SQLStatement {
        if isKeyword("insert") { return .insert(try parseInsert()) }
        if isKeyword("update") { return .update(try parseUpdate()) }
        if isKeyword("delete") { return .delete(try parseDelete()) }
        if isKeyword("select") || isKeyword("values") || isKeyword("table") || isPunctuation("(") {
            return .query(try parseQuery())
        }
        throw failure("SELECT, INSERT, UPDATE or DELETE")
    }

    mutating func parseWith() throws(Failure) -> ([SQLCommonTableExpr], Bool) {
        try expectKeyword("with")
        let recursive = acceptKeyword("recursive")
        var ctes: [SQLCommonTableExpr] = []
        repeat {
            let name = try parseName()
            let columns = isPunctuation("(") ? try parseNameList() : []
            try expectKeyword("as")
            if acceptKeyword("not") {
                try expectKeyword("materialized")
            } else {
                _ = acceptKeyword("materialized")
            }
            try expectPunctuation("(")
            let statement = try parseDataStatement()
            try expectPunctuation(")")
            if isKeyword("search") || isKeyword("cycle") { throw failure("no SEARCH/CYCLE clause") }
            ctes.append(SQLCommonTableExpr(name: name, columns: columns, statement: statement))
        } while acceptPunctuation(",")
        return (ctes, recursive)
    }

    // MARK: - Queries

    mutating func parseQuery() throws(Failure) -> SQLQuery {
        try enterNesting()
        defer { depth -= 1 }
        var ctes: [SQLCommonTableExpr] = []
        var recursive = false
        if isKeyword("with") { (ctes, recursive) = try parseWith() }
        let query = SQLQuery(body: try parseSetExpression())
        query.ctes = ctes
        query.recursive = recursive
        try parseQueryTail(query)
        return query
    }

    private mutating func parseQueryTail(_ query: SQLQuery) throws(Failure) {
        while true {
            if isKeyword("order") && isKeyword("by", 1) {
                advance(2)
                query.orderBy += try parseSortList()
            } else if acceptKeyword("limit") {
                query.hasLimit = true
                if !acceptKeyword("all") { query.limitExpressions.append(try parseExpression()) }
            } else if acceptKeyword("offset") {
                query.hasLimit = true
                query.limitExpressions.append(try parseExpression())
                _ = acceptKeyword("row") || acceptKeyword("rows")
            } else if acceptKeyword("fetch") {
                query.hasLimit = true
                guard acceptKeyword("first") || acceptKeyword("next") else { throw failure("FIRST or NEXT") }
                if !(isKeyword("row") || isKeyword("rows")) { query.limitExpressions.append(try parseExpression()) }
                guard acceptKeyword("row") || acceptKeyword("rows") else { throw failure("ROWS") }
                if acceptKeyword("with") {
                    try expectKeyword("ties")
                } else {
                    try expectKeyword("only")
                }
            } else if isKeyword("for") {
                advance()
                if acceptKeyword("read") {
                    try expectKeyword("only")
                    continue
                }
                if acceptKeyword("update") {
                } else if acceptKeyword("share") {
                } else if acceptKeyword("no") {
                    try expectKeyword("key")
                    try expectKeyword("update")
                } else if acceptKeyword("key") {
                    try expectKeyword("share")
                } else {
                    throw failure("UPDATE or SHARE")
                }
                query.locks = true
                if acceptKeyword("of") {
                    repeat { _ = try parseQualifiedName() } while acceptPunctuation(",")
                }
                if acceptKeyword("nowait") {
                } else if acceptKeyword("skip") {
                    try expectKeyword("locked")
                }
            } else {
                return
            }
        }
    }

    /// Longest run of set operations or joins in one query. They are parsed in a loop but build
    /// a tree as deep as the run, which the analysis then walks recursively.
    static let maximumChain = 200

    mutating func parseSetExpression() throws(Failure) -> SQLSetExpr {
        var left = try parseIntersectTerm()
        var chain = 0
        while isKeyword("union") || isKeyword("except") {
            chain += 1
            guard chain <= Self.maximumChain else { throw failure("at most \(Self.maximumChain) set operations in a row") }
            let operation = token()?.text.uppercased() ?? ""
            advance()
            _ = acceptKeyword("all") || acceptKeyword("distinct")
            left = .setOperation(operation, left, try parseIntersectTerm())
        }
        return left
    }

    private mutating func parseIntersectTerm() throws(Failure) -> SQLSetExpr {
        var left = try parseSetPrimary()
        var chain = 0
        while acceptKeyword("intersect") {
            chain += 1
            guard chain <= Self.maximumChain else { throw failure("at most \(Self.maximumChain) set operations in a row") }
            _ = acceptKeyword("all") || acceptKeyword("distinct")
            left = .setOperation("INTERSECT", left, try parseSetPrimary())
        }
        return left
    }

    private mutating func parseSetPrimary() throws(Failure) -> SQLSetExpr {
        if isKeyword("select") { return .select(try parseSimpleSelect()) }
        if acceptKeyword("values") { return .values(try parseValuesRows()) }
        if acceptKeyword("table") {
            let start = position
            _ = acceptKeyword("only")
            let parts = try parseQualifiedName()
            if isOperator("*") { advance() }
            return .table(SQLTableRef(nameParts: parts, alias: nil, range: start..<position))
        }
        if acceptPunctuation("(") {
            let query = try parseQuery()
            try expectPunctuation(")")
            return .nested(query)
        }
        throw failure("SELECT")
    }

    /// The rows after VALUES.
    mutating func parseValuesRows() throws(Failure) -> [SQLValuesRow] {
        var rows: [SQLValuesRow] = []
        repeat {
            try expectPunctuation("(")
            var items: [SQLExpr] = []
            repeat { items.append(try parseExpression()) } while acceptPunctuation(",")
            guard isPunctuation(")") else { throw failure(")") }
            rows.append(SQLValuesRow(items: items, closingParenthesis: position))
            advance()
        } while acceptPunctuation(",")
        return rows
    }

    private static let selectListEnd: Set<String> = [
        "from", "where", "group", "having", "window", "union", "intersect", "except", "order", "limit",
        "offset", "fetch", "for", "into",
    ]

    private mutating func parseSimpleSelect() throws(Failure) -> SQLSimpleSelect {
        try expectKeyword("select")
        let select = SQLSimpleSelect()
        if acceptKeyword("all") {
        } else if acceptKeyword("distinct") {
            if acceptKeyword("on") {
                try expectPunctuation("(")
                var expressions: [SQLExpr] = []
                repeat { expressions.append(try parseExpression()) } while acceptPunctuation(",")
                try expectPunctuation(")")
                select.distinct = .on(expressions)
            } else {
                select.distinct = .distinct
            }
        }
        select.targetsEnd = position
        if let current = token(), !current.isPunctuation(")"), !current.isPunctuation(";"),
            !(current.kind == .identifier && Self.selectListEnd.contains(current.text))
        {
            select.targets = try parseTargetList()
            select.targetsEnd = position
        }
        if acceptKeyword("into") {
            select.into = true
            _ = acceptKeyword("temporary") || acceptKeyword("temp") || acceptKeyword("unlogged")
            _ = acceptKeyword("table")
            _ = try parseQualifiedName()
        }
        if acceptKeyword("from") { select.from = try parseFromList() }
        if acceptKeyword("where") { select.whereClause = try parseExpression() }
        if isKeyword("group") && isKeyword("by", 1) {
            advance(2)
            _ = acceptKeyword("all") || acceptKeyword("distinct")
            repeat { select.groupBy.append(try parseGroupingItem()) } while acceptPunctuation(",")
        }
        if acceptKeyword("having") { select.having = try parseExpression() }
        if acceptKeyword("window") {
            repeat {
                _ = try parseName()
                try expectKeyword("as")
                select.windows.append(try parseWindowSpec())
            } while acceptPunctuation(",")
        }
        return select
    }

    mutating func parseTargetList() throws(Failure) -> [SQLTarget] {
        var targets: [SQLTarget] = []
        repeat {
            let start = position
            let expression: SQLExpr
            if isOperator("*") {
                advance()
                expression = SQLExpr(kind: .star([]), range: start..<position)
            } else {
                expression = try parseExpression()
            }
            var alias: String?
            if acceptKeyword("as") {
                alias = try parseLabel()
            } else if let current = token(),
                current.kind == .quotedIdentifier
                    || (current.kind == .identifier && !SQLKeywords.notAlias.contains(current.text))
            {
                alias = current.text
                advance()
            }
            targets.append(SQLTarget(expression: expression, alias: alias))
        } while acceptPunctuation(",")
        return targets
    }

    private mutating func parseGroupingItem() throws(Failure) -> SQLGroupingItem {
        if isPunctuation("(") && isPunctuation(")", 1) {
            advance(2)
            return .empty
        }
        if (isKeyword("rollup") || isKeyword("cube")) && isPunctuation("(", 1) {
            advance(2)
            var items: [SQLGroupingItem] = []
            repeat { items.append(.expression(try parseExpression())) } while acceptPunctuation(",")
            try expectPunctuation(")")
            return .sets(items)
        }
        if isKeyword("grouping") && isKeyword("sets", 1) {
            advance(2)
            try expectPunctuation("(")
            var items: [SQLGroupingItem] = []
            repeat { items.append(try parseGroupingItem()) } while acceptPunctuation(",")
            try expectPunctuation(")")
            return .sets(items)
        }
        return .expression(try parseExpression())
    }

    mutating func parseSortList() throws(Failure) -> [SQLSortItem] {
        var items: [SQLSortItem] = []
        repeat {
            let expression = try parseExpression()
            if acceptKeyword("asc") || acceptKeyword("desc") {
            } else if acceptKeyword("using") {
                guard token()?.kind == .op else { throw failure("operator") }
                advance()
            }
            if acceptKeyword("nulls") {
                guard acceptKeyword("first") || acceptKeyword("last") else { throw failure("FIRST or LAST") }
            }
            items.append(SQLSortItem(expression: expression))
        } while acceptPunctuation(",")
        return items
    }

    mutating func parseWindowSpec() throws(Failure) -> SQLWindowSpec {
        try expectPunctuation("(")
        var spec = SQLWindowSpec(partitionBy: [], orderBy: [], frameExpressions: [])
        if let current = token(), current.isName, !current.isKeyword("partition"), !current.isKeyword("order"),
            !current.isKeyword("rows"), !current.isKeyword("range"), !current.isKeyword("groups")
        {
            advance()
        }
        if isKeyword("partition") && isKeyword("by", 1) {
            advance(2)
            repeat { spec.partitionBy.append(try parseExpression()) } while acceptPunctuation(",")
        }
        if isKeyword("order") && isKeyword("by", 1) {
            advance(2)
            spec.orderBy = try parseSortList()
        }
        if acceptKeyword("rows") || acceptKeyword("range") || acceptKeyword("groups") {
            if acceptKeyword("between") {
                try parseFrameBound(into: &spec)
                try expectKeyword("and")
                try parseFrameBound(into: &spec)
            } else {
                try parseFrameBound(into: &spec)
            }
            if acceptKeyword("exclude") {
                if acceptKeyword("current") {
                    try expectKeyword("row")
                } else if acceptKeyword("no") {
                    try expectKeyword("others")
                } else if !(acceptKeyword("group") || acceptKeyword("ties")) {
                    throw failure("EXCLUDE option")
                }
            }
        }
        try expectPunctuation(")")
        return spec
    }

    private mutating func parseFrameBound(into spec: inout SQLWindowSpec) throws(Failure) {
        if acceptKeyword("unbounded") {
            guard acceptKeyword("preceding") || acceptKeyword("following") else { throw failure("PRECEDING") }
        } else if acceptKeyword("current") {
            try expectKeyword("row")
        } else {
            spec.frameExpressions.append(try parseExpression(minimumPrecedence: Precedence.and + 1))
            guard acceptKeyword("preceding") || acceptKeyword("following") else { throw failure("PRECEDING") }
        }
    }

    // MARK: - FROM

    mutating func parseFromList() throws(Failure) -> [SQLFromItem] {
        var items: [SQLFromItem] = []
        repeat { items.append(try parseFromItem()) } while acceptPunctuation(",")
        return items
    }

    private mutating func parseFromItem() throws(Failure) -> SQLFromItem {
        try enterNesting()
        defer { depth -= 1 }
        var left = try parseFromPrimary()
        var chain = 0
        while true {
            if case .join = left {
                chain += 1
                guard chain <= Self.maximumChain else { throw failure("at most \(Self.maximumChain) joins in a row") }
            }
            if isKeyword("cross") && isKeyword("join", 1) {
                advance(2)
                let right = try parseFromPrimary()
                left = .join(SQLJoin(left: left, right: right, natural: false, on: nil, using: []))
                continue
            }
            let joinStart = position
            let natural = acceptKeyword("natural")
            if acceptKeyword("inner") {
            } else if acceptKeyword("left") || acceptKeyword("right") || acceptKeyword("full") {
                _ = acceptKeyword("outer")
            }
            if !acceptKeyword("join") {
                if position != joinStart { throw failure("JOIN") }
                return left
            }
            let right = try parseFromPrimary()
            if natural {
                left = .join(SQLJoin(left: left, right: right, natural: true, on: nil, using: []))
            } else if acceptKeyword("on") {
                left = .join(SQLJoin(left: left, right: right, natural: false, on: try parseExpression(), using: []))
            } else if isKeyword("using") {
                advance()
                let columns = try parseNameList()
                if acceptKeyword("as") { _ = try parseName() }
                left = .join(SQLJoin(left: left, right: right, natural: false, on: nil, using: columns))
            } else {
                throw failure("ON or USING")
            }
        }
    }

    private mutating func parseFromPrimary() throws(Failure) -> SQLFromItem {
        let lateral = acceptKeyword("lateral")
        if isPunctuation("(") {
            if startsQuery(at: position + 1) {
                let saved = position
                do {
                    advance()
                    let query = try parseQuery()
                    try expectPunctuation(")")
                    return .subquery(query, alias: try parseOptionalAlias(allowColumns: true), lateral: lateral)
                } catch {
                    position = saved
                }
            }
            advance()
            let inner = try parseFromItem()
            try expectPunctuation(")")
            return .nested(inner, alias: try parseOptionalAlias(allowColumns: true))
        }
        if isKeyword("rows") && isKeyword("from", 1) {
            advance(2)
            try expectPunctuation("(")
            var calls: [SQLExpr] = []
            repeat {
                calls.append(try parseExpression())
                if acceptKeyword("as") { try skipParenthesized() }
            } while acceptPunctuation(",")
            try expectPunctuation(")")
            if acceptKeyword("with") { try expectKeyword("ordinality") }
            return .function(calls, alias: try parseOptionalAlias(allowColumns: true), lateral: lateral)
        }
        let start = position
        let only = acceptKeyword("only")
        let parts = try parseQualifiedName()
        if isPunctuation("(") && !only {
            position = start
            let call = try parseExpression(minimumPrecedence: Precedence.postfix)
            guard case .function = call.kind else { throw failure("function call") }
            if acceptKeyword("with") { try expectKeyword("ordinality") }
            return .function([call], alias: try parseOptionalAlias(allowColumns: true), lateral: lateral)
        }
        if lateral { throw failure("subquery or function after LATERAL") }
        if isOperator("*") { advance() }
        let nameEnd = position
        let alias = try parseOptionalAlias(allowColumns: true)
        if acceptKeyword("tablesample") {
            // The arguments are not kept in the tree, so only values that cannot hide a column or
            // a subquery are accepted: numbers and parameters (anything else fails closed).
            func sampleArgument() throws(Failure) {
                let argument = try parseExpression()
                var inner = argument
                while case .parenthesized(let wrapped) = inner.kind { inner = wrapped }
                if case .unary(_, let operand) = inner.kind { inner = operand }
                switch inner.kind {
                case .parameter, .literal: return
                default: throw failure("a number or a parameter as a TABLESAMPLE argument")
                }
            }
            _ = try parseQualifiedName()
            try expectPunctuation("(")
            repeat { try sampleArgument() } while acceptPunctuation(",")
            try expectPunctuation(")")
            if acceptKeyword("repeatable") {
                try expectPunctuation("(")
                try sampleArgument()
                try expectPunctuation(")")
            }
        }
        return .table(SQLTableRef(nameParts: parts, alias: alias, range: start..<nameEnd))
    }

    /// `[AS] name [(columns)]`. Column definitions (`AS t(a int)`) are reduced to their names.
    mutating func parseOptionalAlias(allowColumns: Bool) throws(Failure) -> SQLAlias? {
        let name: String
        if acceptKeyword("as") {
            name = try parseLabel()
        } else if let current = token(),
            current.kind == .quotedIdentifier
                || (current.kind == .identifier && !SQLKeywords.notAlias.contains(current.text))
        {
            name = current.text
            advance()
        } else {
            return nil
        }
        var columns: [String] = []
        if allowColumns && acceptPunctuation("(") {
            repeat {
                columns.append(try parseName())
                // Column definition list (`AS t(a int, b varchar(10))`): parse the type, so that
                // nothing but a type (numeric modifiers only) can hide there.
                if !(isPunctuation(",") || isPunctuation(")")) { _ = try parseTypeName() }
            } while acceptPunctuation(",")
            try expectPunctuation(")")
        }
        return SQLAlias(name: name, columns: columns)
    }

    // MARK: - INSERT, UPDATE, DELETE

    private mutating func parseTableTarget(allowBareAlias: Bool) throws(Failure) -> SQLTableRef {
        let start = position
        _ = acceptKeyword("only")
        let parts = try parseQualifiedName()
        if isOperator("*") { advance() }
        let nameEnd = position
        var alias: SQLAlias?
        if allowBareAlias {
            alias = try parseOptionalAlias(allowColumns: false)
        } else if acceptKeyword("as") {
            alias = SQLAlias(name: try parseName(), columns: [])
        }
        return SQLTableRef(nameParts: parts, alias: alias, range: start..<nameEnd)
    }

    private mutating func parseAssignmentTarget() throws(Failure) -> SQLAssignment.Target {
        let start = position
        let name = try parseName()
        var indirection = false
        var subscripts: [SQLExpr] = []
        var fields: [String] = []
        while true {
            if isPunctuation("."), let next = token(1), next.isName {
                fields.append(next.text)
                advance(2)
                indirection = true
            } else if acceptPunctuation("[") {
                if !isPunctuation(":") { subscripts.append(try parseExpression()) }
                if acceptPunctuation(":") && !isPunctuation("]") { subscripts.append(try parseExpression()) }
                try expectPunctuation("]")
                indirection = true
            } else {
                break
            }
        }
        return SQLAssignment.Target(name: name, hasIndirection: indirection, subscripts: subscripts, range: start..<position, fields: fields)
    }

    private mutating func parseAssignments() throws(Failure) -> [SQLAssignment] {
        var assignments: [SQLAssignment] = []
        repeat {
            let start = position
            if acceptPunctuation("(") {
                var targets: [SQLAssignment.Target] = []
                repeat { targets.append(try parseAssignmentTarget()) } while acceptPunctuation(",")
                try expectPunctuation(")")
                guard isOperator("=") else { throw failure("=") }
                advance()
                let value: SQLAssignment.Value
                if isKeyword("row") && isPunctuation("(", 1) {
                    advance()
                    value = .row(try parseParenthesizedList())
                } else if isPunctuation("(") && startsQuery(at: position + 1) {
                    advance()
                    let query = try parseQuery()
                    try expectPunctuation(")")
                    value = .query(query)
                } else if isPunctuation("(") {
                    value = .row(try parseParenthesizedList())
                } else {
                    throw failure("(")
                }
                assignments.append(
                    SQLAssignment(targets: targets, value: value, isMultiple: true, range: start..<position))
            } else {
                let target = try parseAssignmentTarget()
                guard isOperator("=") else { throw failure("=") }
                advance()
                let value = try parseExpression()
                assignments.append(
                    SQLAssignment(targets: [target], value: .expression(value), isMultiple: false, range: start..<position))
            }
        } while acceptPunctuation(",")
        return assignments
    }

    private mutating func parseParenthesizedList() throws(Failure) -> [SQLExpr] {
        try expectPunctuation("(")
        var items: [SQLExpr] = []
        if !isPunctuation(")") {
            repeat { items.append(try parseExpression()) } while acceptPunctuation(",")
        }
        try expectPunctuation(")")
        return items
    }

    private mutating func parseReturning() throws(Failure) -> [SQLTarget]? {
        guard acceptKeyword("returning") else { return nil }
        return try parseTargetList()
    }

    private mutating func parseInsert() throws(Failure) -> SQLInsert {
        try expectKeyword("insert")
        try expectKeyword("into")
        let table = try parseTableTarget(allowBareAlias: false)
        var columns: [SQLAssignment.Target]?
        var columnListEnd: Int?
        if isPunctuation("(") && !startsQuery(at: position + 1) {
            advance()
            var list: [SQLAssignment.Target] = []
            repeat { list.append(try parseAssignmentTarget()) } while acceptPunctuation(",")
            guard isPunctuation(")") else { throw failure(")") }
            columnListEnd = position
            advance()
            columns = list
        }
        if acceptKeyword("overriding") {
            guard acceptKeyword("system") || acceptKeyword("user") else { throw failure("SYSTEM or USER") }
            try expectKeyword("value")
        }
        let source: SQLInsert.Source
        if isKeyword("default") && isKeyword("values", 1) {
            advance(2)
            source = .defaultValues
        } else {
            let query = try parseQuery()
            if case .values(let rows) = query.body, query.ctes.isEmpty, query.orderBy.isEmpty, !query.hasLimit,
                !query.locks
            {
                source = .values(rows)
            } else {
                source = .query(query)
            }
        }
        let insert = SQLInsert(table: table, source: source)
        insert.columns = columns
        insert.columnListEnd = columnListEnd
        if isKeyword("on") && isKeyword("conflict", 1) {
            advance(2)
            insert.onConflict = try parseOnConflict()
        }
        insert.returning = try parseReturning()
        return insert
    }

    private mutating func parseOnConflict() throws(Failure) -> SQLOnConflict {
        var targetExpressions: [SQLExpr]?
        var targetWhere: SQLExpr?
        if acceptPunctuation("(") {
            var expressions: [SQLExpr] = []
            repeat {
                expressions.append(try parseExpression())
                // Optional operator class name.
                if let current = token(), current.isName, !current.isKeyword("asc"), !current.isKeyword("desc"),
                    !current.isKeyword("nulls")
                {
                    advance()
                }
                _ = acceptKeyword("asc") || acceptKeyword("desc")
                if acceptKeyword("nulls") {
                    guard acceptKeyword("first") || acceptKeyword("last") else { throw failure("FIRST or LAST") }
                }
            } while acceptPunctuation(",")
            try expectPunctuation(")")
            targetExpressions = expressions
            if acceptKeyword("where") { targetWhere = try parseExpression() }
        } else if isKeyword("on") && isKeyword("constraint", 1) {
            advance(2)
            _ = try parseName()
        }
        try expectKeyword("do")
        if acceptKeyword("nothing") {
            return SQLOnConflict(targetExpressions: targetExpressions, targetWhere: targetWhere, action: .nothing)
        }
        try expectKeyword("update")
        try expectKeyword("set")
        let assignments = try parseAssignments()
        let whereClause = acceptKeyword("where") ? try parseExpression() : nil
        return SQLOnConflict(
            targetExpressions: targetExpressions, targetWhere: targetWhere,
            action: .update(assignments, whereClause: whereClause))
    }

    private mutating func parseWhereOrCurrentOf() throws(Failure) -> (SQLExpr?, Bool) {
        guard acceptKeyword("where") else { return (nil, false) }
        if isKeyword("current") && isKeyword("of", 1) {
            advance(2)
            _ = try parseName()
            return (nil, true)
        }
        return (try parseExpression(), false)
    }

    private mutating func parseUpdate() throws(Failure) -> SQLUpdate {
        try expectKeyword("update")
        let table = try parseTableTarget(allowBareAlias: true)
        try expectKeyword("set")
        let update = SQLUpdate(table: table, assignments: try parseAssignments())
        if acceptKeyword("from") { update.from = try parseFromList() }
        (update.whereClause, update.currentOf) = try parseWhereOrCurrentOf()
        update.returning = try parseReturning()
        return update
    }

    private mutating func parseDelete() throws(Failure) -> SQLDelete {
        try expectKeyword("delete")
        try expectKeyword("from")
        let delete = SQLDelete(table: try parseTableTarget(allowBareAlias: true))
        if acceptKeyword("using") { delete.using = try parseFromList() }
        (delete.whereClause, delete.currentOf) = try parseWhereOrCurrentOf()
        delete.returning = try parseReturning()
        return delete
    }
}
