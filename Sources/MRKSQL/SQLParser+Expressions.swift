/// Operator precedence, lowest first, as in PostgreSQL's documentation (section 4.1.6).
enum Precedence {
    static let or = 1
    static let and = 2
    static let not = 3
    static let isTest = 4
    static let comparison = 5
    static let patternInBetween = 6
    static let otherOperator = 7
    static let additive = 8
    static let multiplicative = 9
    static let exponent = 10
    static let atTimeZone = 11
    static let collate = 12
    static let unary = 13
    static let postfix = 14
}

extension SQLParser {
    private static let comparisonOperators: Set<String> = ["=", "<", ">", "<=", ">=", "<>", "!="]
    private static let nonPrefixOperators: Set<String> = [
        "=", "<", ">", "<=", ">=", "<>", "!=", "*", "/", "%", "^", "=>", ":=",
    ]

    /// Keyword-valued expressions (no column involved).
    private static let keywordValues: Set<String> = [
        "current_date", "current_time", "current_timestamp", "localtime", "localtimestamp", "current_user",
        "session_user", "user", "current_role", "current_catalog", "current_schema", "system_user",
    ]

    /// Type names that may prefix a string constant (`DATE '2024-01-01'`).
    static let literalTypeNames: Set<String> = [
        "date", "time", "timestamp", "timestamptz", "timetz", "interval", "int2", "int4", "int8", "int", "integer",
        "smallint", "bigint", "numeric", "decimal", "real", "float", "float4", "float8", "double", "bool",
        "boolean", "text", "varchar", "char", "character", "bpchar", "nchar", "national", "uuid", "bytea", "json",
        "jsonb", "inet", "cidr", "macaddr", "macaddr8", "money", "xml", "bit", "varbit", "name", "oid",
        "regclass", "regtype", "point", "tsquery", "tsvector", "jsonpath",
    ]

    /// Functions with SQL-standard argument syntax (`extract(year FROM d)`, `trim(BOTH FROM s)`).
    private static let specialSyntaxFunctions: Set<String> = [
        "extract", "position", "substring", "trim", "overlay", "normalize",
    ]

    mutating func parseExpression() throws(Failure) -> SQLExpr {
        try parseExpression(minimumPrecedence: 0)
    }

    mutating func parseExpressionList() throws(Failure) -> [SQLExpr] {
        var items: [SQLExpr] = []
        repeat { items.append(try parseExpression()) } while acceptPunctuation(",")
        return items
    }

    mutating func parseExpression(minimumPrecedence: Int) throws(Failure) -> SQLExpr {
        try enterNesting()
        defer { depth -= 1 }
        let start = position
        var left = try parsePrefix()
        while let current = token() {
            func make(_ kind: SQLExpr.Kind) -> SQLExpr { SQLExpr(kind: kind, range: start..<position) }
            if current.kind == .identifier {
                switch current.text {
                case "or":
                    guard Precedence.or >= minimumPrecedence else { return left }
                    advance()
                    let right = try parseExpression(minimumPrecedence: Precedence.or + 1)
                    left = make(.binary("or", left, right))
                    continue
                case "and":
                    guard Precedence.and >= minimumPrecedence else { return left }
                    advance()
                    let right = try parseExpression(minimumPrecedence: Precedence.and + 1)
                    left = make(.binary("and", left, right))
                    continue
                case "is":
                    guard Precedence.isTest >= minimumPrecedence else { return left }
                    advance()
                    left = try parseIsTest(left, start: start)
                    continue
                case "isnull", "notnull":
                    guard Precedence.isTest >= minimumPrecedence else { return left }
                    advance()
                    left = make(.isNull(negated: current.text == "notnull", left))
                    continue
                case "not", "in", "like", "ilike", "similar", "between":
                    var negated = false
                    var keyword = current.text
                    if keyword == "not" {
                        guard let next = token(1), next.kind == .identifier,
                            ["in", "like", "ilike", "similar", "between"].contains(next.text)
                        else { return left }
                        negated = true
                        keyword = next.text
                    }
                    if specialArgumentsFlag && (keyword == "in" || keyword == "similar") { return left }
                    guard Precedence.patternInBetween >= minimumPrecedence else { return left }
                    advance(negated ? 2 : 1)
                    left = try parsePatternInBetween(keyword, negated: negated, left, start: start)
                    continue
                case "at" where isKeyword("time", 1) && isKeyword("zone", 2):
                    guard Precedence.atTimeZone >= minimumPrecedence else { return left }
                    advance(3)
                    let zone = try parseExpression(minimumPrecedence: Precedence.atTimeZone + 1)
                    left = make(.atTimeZone(left, zone))
                    continue
                case "collate":
                    guard Precedence.collate >= minimumPrecedence else { return left }
                    advance()
                    let collation = try parseQualifiedName().joined(separator: ".")
                    left = make(.collate(left, collation))
                    continue
                case "operator" where isPunctuation("(", 1):
                    guard Precedence.otherOperator >= minimumPrecedence else { return left }
                    let name = try parseOperatorConstruct()
                    let right = try parseExpression(minimumPrecedence: Precedence.otherOperator + 1)
                    left = make(.binary(name, left, right))
                    continue
                default:
                    return left
                }
            }
            guard current.kind == .op else { return left }
            let symbol = current.text
            let precedence: Int
            switch symbol {
            case _ where Self.comparisonOperators.contains(symbol): precedence = Precedence.comparison
            case "+", "-": precedence = Precedence.additive
            case "*", "/", "%": precedence = Precedence.multiplicative
            case "^": precedence = Precedence.exponent
            case "=>", ":=": return left
            default: precedence = Precedence.otherOperator
            }
            guard precedence >= minimumPrecedence else { return left }
            advance()
            if (isKeyword("any") || isKeyword("all") || isKeyword("some")) && isPunctuation("(", 1) {
                let quantifier = token()?.text.uppercased() ?? ""
                advance(2)
                let operand: SQLQuantifiedOperand
                if startsQuery(at: position) {
                    operand = .query(try parseQuery())
                } else {
                    operand = .expression(try parseExpression())
                }
                try expectPunctuation(")")
                left = make(.quantified(op: symbol, quantifier: quantifier, left, operand))
                continue
            }
            let right = try parseExpression(minimumPrecedence: precedence + 1)
            left = make(.binary(symbol, left, right))
        }
        return left
    }

    /// `OPERATOR(schema.op)`.
    private mutating func parseOperatorConstruct() throws(Failure) -> String {
        advance(2)
        var name = ""
        while let current = token(), !current.isPunctuation(")") {
            name += current.text
            advance()
        }
        try expectPunctuation(")")
        return "operator(\(name))"
    }

    private mutating func parseIsTest(_ operand: SQLExpr, start: Int) throws(Failure) -> SQLExpr {
        let negated = acceptKeyword("not")
        let prefix = negated ? "IS NOT " : "IS "
        func make(_ kind: SQLExpr.Kind) -> SQLExpr { SQLExpr(kind: kind, range: start..<position) }
        if acceptKeyword("null") { return make(.isNull(negated: negated, operand)) }
        if acceptKeyword("distinct") {
            try expectKeyword("from")
            let right = try parseExpression(minimumPrecedence: Precedence.isTest + 1)
            return make(.isDistinctFrom(negated: negated, operand, right))
        }
        for word in ["true", "false", "unknown", "document"] where acceptKeyword(word) {
            return make(.isPredicate(prefix + word.uppercased(), operand))
        }
        if acceptKeyword("nfc") || acceptKeyword("nfd") || acceptKeyword("nfkc") || acceptKeyword("nfkd") {
            try expectKeyword("normalized")
            return make(.isPredicate(prefix + "NORMALIZED", operand))
        }
        if acceptKeyword("normalized") { return make(.isPredicate(prefix + "NORMALIZED", operand)) }
        if acceptKeyword("json") {
            _ = acceptKeyword("value") || acceptKeyword("array") || acceptKeyword("object") || acceptKeyword("scalar")
            if acceptKeyword("with") || acceptKeyword("without") {
                try expectKeyword("unique")
                _ = acceptKeyword("keys")
            }
            return make(.isPredicate(prefix + "JSON", operand))
        }
        if acceptKeyword("of") {
            try skipParenthesized()
            return make(.isPredicate(prefix + "OF", operand))
        }
        throw failure("NULL, TRUE, FALSE, UNKNOWN or DISTINCT FROM")
    }

    private mutating func parsePatternInBetween(
        _ keyword: String, negated: Bool, _ left: SQLExpr, start: Int
    ) throws(Failure) -> SQLExpr {
        func make(_ kind: SQLExpr.Kind) -> SQLExpr { SQLExpr(kind: kind, range: start..<position) }
        let prefix = negated ? "NOT " : ""
        switch keyword {
        case "in":
            guard isPunctuation("(") else { throw failure("(") }
            if startsQuery(at: position + 1) {
                let saved = position
                do {
                    advance()
                    let query = try parseQuery()
                    try expectPunctuation(")")
                    return make(.inQuery(negated: negated, left, query))
                } catch {
                    position = saved
                }
            }
            advance()
            let items = try withoutSpecialArguments { (parser: inout SQLParser) throws(Failure) in
                try parser.parseExpressionList()
            }
            try expectPunctuation(")")
            return make(.inList(negated: negated, left, items))
        case "between":
            var name = prefix + "BETWEEN"
            if acceptKeyword("symmetric") {
                name += " SYMMETRIC"
            } else {
                _ = acceptKeyword("asymmetric")
            }
            let low = try parseExpression(minimumPrecedence: Precedence.otherOperator)
            try expectKeyword("and")
            let high = try parseExpression(minimumPrecedence: Precedence.otherOperator)
            return make(.between(name: name, left, low, high))
        default:
            var name = prefix + keyword.uppercased()
            if keyword == "similar" {
                try expectKeyword("to")
                name += " TO"
            }
            let pattern = try parseExpression(minimumPrecedence: Precedence.otherOperator)
            var escape: SQLExpr?
            if acceptKeyword("escape") { escape = try parseExpression(minimumPrecedence: Precedence.otherOperator) }
            return make(.patternMatch(name: name, left, pattern, escape: escape))
        }
    }

    private mutating func withoutSpecialArguments<T>(
        _ body: (inout SQLParser) throws(Failure) -> T
    ) throws(Failure) -> T {
        let saved = specialArgumentsFlag
        specialArgumentsFlag = false
        defer { specialArgumentsFlag = saved }
        return try body(&self)
    }

    // MARK: - Prefix and postfix

    private mutating func parsePrefix() throws(Failure) -> SQLExpr {
        let start = position
        if acceptKeyword("not") {
            let operand = try parseExpression(minimumPrecedence: Precedence.not + 1)
            return SQLExpr(kind: .unary("not", operand), range: start..<position)
        }
        if let current = token(), current.kind == .op, !Self.nonPrefixOperators.contains(current.text) {
            advance()
            let minimum = current.text == "-" || current.text == "+" ? Precedence.postfix : Precedence.additive
            let operand = try parseExpression(minimumPrecedence: minimum)
            return SQLExpr(kind: .unary(current.text, operand), range: start..<position)
        }
        var expression = try parsePrimary()
        while true {
            if acceptPunctuation("::") {
                let type = try parseTypeName()
                expression = SQLExpr(kind: .cast(expression, type: type), range: start..<position)
            } else if acceptPunctuation("[") {
                var indexes: [SQLExpr] = []
                try withoutSpecialArguments { (parser: inout SQLParser) throws(Failure) in
                    if !parser.isPunctuation(":") { indexes.append(try parser.parseExpression()) }
                    if parser.acceptPunctuation(":") && !parser.isPunctuation("]") {
                        indexes.append(try parser.parseExpression())
                    }
                }
                try expectPunctuation("]")
                expression = SQLExpr(kind: .subscripted(expression, indexes), range: start..<position)
            } else if isPunctuation("."), let next = token(1), next.isName || next.isOperator("*") {
                advance(2)
                expression = SQLExpr(kind: .fieldSelection(expression, next.text), range: start..<position)
            } else {
                return expression
            }
        }
    }

    private mutating func parsePrimary() throws(Failure) -> SQLExpr {
        let start = position
        guard let current = token() else { throw failure("expression") }
        func make(_ kind: SQLExpr.Kind) -> SQLExpr { SQLExpr(kind: kind, range: start..<position) }
        switch current.kind {
        case .parameter(let number):
            advance()
            return make(.parameter(number))
        case .string(let style):
            advance()
            return make(.literal(SQLLiteral(kind: style == .bit ? .bitString : .string, text: current.text)))
        case .number:
            advance()
            return make(.literal(SQLLiteral(kind: .number, text: current.text)))
        case .punctuation where current.text == "(":
            if startsQuery(at: position + 1) {
                let saved = position
                do {
                    advance()
                    let query = try parseQuery()
                    try expectPunctuation(")")
                    return make(.subquery(query))
                } catch {
                    position = saved
                }
            }
            advance()
            let items = try withoutSpecialArguments { (parser: inout SQLParser) throws(Failure) in
                try parser.parseExpressionList()
            }
            try expectPunctuation(")")
            return items.count == 1 ? make(.parenthesized(items[0])) : make(.row(items))
        case .identifier:
            return try parseKeywordOrName(current, start: start)
        case .quotedIdentifier:
            return try parseNamePrimary(start: start)
        default:
            throw failure("expression")
        }
    }

    private mutating func parseKeywordOrName(_ current: SQLToken, start: Int) throws(Failure) -> SQLExpr {
        func make(_ kind: SQLExpr.Kind) -> SQLExpr { SQLExpr(kind: kind, range: start..<position) }
        switch current.text {
        case "null":
            advance()
            return make(.null)
        case "true", "false":
            advance()
            return make(.literal(SQLLiteral(kind: .boolean, text: current.text)))
        case "default":
            advance()
            return make(.defaultValue)
        case "exists":
            advance()
            try expectPunctuation("(")
            let query = try parseQuery()
            try expectPunctuation(")")
            return make(.exists(query))
        case "case":
            return try parseCase(start: start)
        case "cast":
            advance()
            try expectPunctuation("(")
            let operand = try withoutSpecialArguments { (parser: inout SQLParser) throws(Failure) in
                try parser.parseExpression()
            }
            try expectKeyword("as")
            let type = try parseTypeName()
            try expectPunctuation(")")
            return make(.cast(operand, type: type))
        case "array":
            advance()
            if isPunctuation("[") { return try parseArrayBrackets(start: start) }
            try expectPunctuation("(")
            let query = try parseQuery()
            try expectPunctuation(")")
            return make(.arrayQuery(query))
        case "row" where isPunctuation("(", 1):
            advance()
            return make(.row(try withoutSpecialArguments { (parser: inout SQLParser) throws(Failure) in
                try parser.parseParenthesizedExpressions()
            }))
        case _ where Self.keywordValues.contains(current.text):
            advance()
            if isPunctuation("(") && isPunctuation(")", 1) {
                advance(2)
            } else if isPunctuation("(") {
                try skipNumericModifier()
            }
            return make(.keywordValue(current.text))
        case _ where Self.specialSyntaxFunctions.contains(current.text) && isPunctuation("(", 1):
            return try parseSpecialFunction(current.text, start: start)
        default:
            if Self.literalTypeNames.contains(current.text), let typed = try parseTypedLiteral(start: start) {
                return typed
            }
            return try parseNamePrimary(start: start)
        }
    }

    /// `(a, b, …)` possibly empty.
    mutating func parseParenthesizedExpressions() throws(Failure) -> [SQLExpr] {
        try expectPunctuation("(")
        var items: [SQLExpr] = []
        if !isPunctuation(")") { items = try parseExpressionList() }
        try expectPunctuation(")")
        return items
    }

    /// `type 'string'` (with `INTERVAL '…' field` qualifiers); nil (position unchanged) when the
    /// tokens are not a typed literal.
    private mutating func parseTypedLiteral(start: Int) throws(Failure) -> SQLExpr? {
        let saved = position
        let type: String
        do { type = try parseTypeName() } catch {
            position = saved
            return nil
        }
        guard let literal = token(), case .string(let style) = literal.kind, style != .bit else {
            position = saved
            return nil
        }
        advance()
        if type == "interval" { try skipIntervalFields() }
        return SQLExpr(
            kind: .typedLiteral(type: type, SQLLiteral(kind: .string, text: literal.text)), range: start..<position)
    }

    private static let intervalFields: Set<String> = ["year", "month", "day", "hour", "minute", "second"]

    private mutating func skipIntervalFields() throws(Failure) {
        guard let current = token(), current.kind == .identifier, Self.intervalFields.contains(current.text) else {
            if isPunctuation("(") { try skipNumericModifier() }
            return
        }
        advance()
        if isPunctuation("(") { try skipNumericModifier() }
        if acceptKeyword("to") {
            guard let field = token(), field.kind == .identifier, Self.intervalFields.contains(field.text) else {
                throw failure("interval field")
            }
            advance()
            if isPunctuation("(") { try skipNumericModifier() }
        }
    }

    private mutating func parseNamePrimary(start: Int) throws(Failure) -> SQLExpr {
        guard let first = token(), first.isName else { throw failure("expression") }
        func make(_ kind: SQLExpr.Kind) -> SQLExpr { SQLExpr(kind: kind, range: start..<position) }
        if first.kind == .identifier {
            if SQLKeywords.coreReserved.contains(first.text) { throw failure("expression") }
            if SQLKeywords.typeFunctionName.contains(first.text) && !isPunctuation("(", 1) {
                throw failure("expression")
            }
        }
        advance()
        var parts = [first.text]
        while isPunctuation("."), let next = token(1) {
            if next.isName {
                advance(2)
                parts.append(next.text)
            } else if next.isOperator("*") {
                advance(2)
                return make(.star(parts))
            } else {
                break
            }
        }
        guard parts.count <= 4 else { throw failure("column reference") }
        if isPunctuation("(") { return try parseFunctionCall(parts, start: start) }
        if parts.count == 2, parts[0] == "pg_catalog", Self.literalTypeNames.contains(parts[1]),
            let literal = token(), case .string(let style) = literal.kind, style != .bit
        {
            advance()
            return make(.typedLiteral(type: Self.normalizedType(parts[1]), SQLLiteral(kind: .string, text: literal.text)))
        }
        return make(.column(parts))
    }

    private mutating func parseFunctionCall(_ name: [String], start: Int) throws(Failure) -> SQLExpr {
        try expectPunctuation("(")
        var call = SQLFunctionCall(
            name: name, arguments: [], star: false, distinct: false, orderBy: [], filter: nil, window: nil,
            isAggregateSyntax: false)
        if isOperator("*") && isPunctuation(")", 1) {
            advance()
            call.star = true
        } else if !isPunctuation(")") {
            if acceptKeyword("distinct") {
                call.distinct = true
                call.isAggregateSyntax = true
            } else {
                _ = acceptKeyword("all")
            }
            try withoutSpecialArguments { (parser: inout SQLParser) throws(Failure) in
                repeat {
                    _ = parser.acceptKeyword("variadic")
                    if let current = parser.token(), current.isName,
                        parser.isOperator("=>", 1) || parser.isOperator(":=", 1)
                    {
                        parser.advance(2)
                    }
                    call.arguments.append(try parser.parseExpression())
                } while parser.acceptPunctuation(",")
                if parser.isKeyword("order") && parser.isKeyword("by", 1) {
                    parser.advance(2)
                    call.orderBy = try parser.parseSortList()
                    call.isAggregateSyntax = true
                }
            }
        }
        try expectPunctuation(")")
        if isKeyword("within") && isKeyword("group", 1) {
            advance(2)
            try expectPunctuation("(")
            try expectKeyword("order")
            try expectKeyword("by")
            call.orderBy += try parseSortList()
            try expectPunctuation(")")
            call.isAggregateSyntax = true
        }
        if isKeyword("filter") && isPunctuation("(", 1) {
            advance(2)
            try expectKeyword("where")
            call.filter = try parseExpression()
            try expectPunctuation(")")
            call.isAggregateSyntax = true
        }
        if acceptKeyword("over") {
            call.isAggregateSyntax = true
            if isPunctuation("(") {
                call.window = try parseWindowSpec()
            } else {
                _ = try parseName()
            }
        }
        return SQLExpr(kind: .function(call), range: start..<position)
    }

    /// `extract(field FROM x)`, `position(a IN b)`, `substring(x FROM a FOR b)`,
    /// `trim([BOTH|LEADING|TRAILING] [chars] FROM s)`, `overlay(x PLACING y FROM a FOR b)`,
    /// `normalize(x, form)`, and the plain comma forms of the same functions.
    private mutating func parseSpecialFunction(_ name: String, start: Int) throws(Failure) -> SQLExpr {
        advance(2)
        var arguments: [SQLExpr] = []
        if name == "extract" {
            guard let field = token(), field.isName || field.isString else { throw failure("field") }
            advance()
            try expectKeyword("from")
        }
        if name == "trim" { _ = acceptKeyword("both") || acceptKeyword("leading") || acceptKeyword("trailing") }
        if !isPunctuation(")") {
            let saved = specialArgumentsFlag
            specialArgumentsFlag = name == "position" || name == "substring"
            defer { specialArgumentsFlag = saved }
            while true {
                if name == "trim" && acceptKeyword("from") { continue }
                arguments.append(try parseExpression())
                if acceptPunctuation(",") || acceptKeyword("from") || acceptKeyword("for") || acceptKeyword("placing")
                    || acceptKeyword("escape") || (name == "substring" && acceptKeyword("similar"))
                    || (name == "position" && acceptKeyword("in"))
                {
                    continue
                }
                break
            }
        }
        try expectPunctuation(")")
        let call = SQLFunctionCall(
            name: [name], arguments: arguments, star: false, distinct: false, orderBy: [], filter: nil, window: nil,
            isAggregateSyntax: false)
        return SQLExpr(kind: .function(call), range: start..<position)
    }

    private mutating func parseCase(start: Int) throws(Failure) -> SQLExpr {
        try expectKeyword("case")
        return try withoutSpecialArguments { (parser: inout SQLParser) throws(Failure) in
            let operand = parser.isKeyword("when") ? nil : try parser.parseExpression()
            var whens: [(condition: SQLExpr, result: SQLExpr)] = []
            while parser.acceptKeyword("when") {
                let condition = try parser.parseExpression()
                try parser.expectKeyword("then")
                whens.append((condition, try parser.parseExpression()))
            }
            guard !whens.isEmpty else { throw parser.failure("WHEN") }
            let otherwise = parser.acceptKeyword("else") ? try parser.parseExpression() : nil
            try parser.expectKeyword("end")
            return SQLExpr(
                kind: .caseWhen(operand: operand, whens: whens, otherwise: otherwise), range: start..<parser.position)
        }
    }

    private mutating func parseArrayBrackets(start: Int) throws(Failure) -> SQLExpr {
        try expectPunctuation("[")
        var items: [SQLExpr] = []
        if !isPunctuation("]") {
            repeat {
                if isPunctuation("[") {
                    items.append(try parseArrayBrackets(start: position))
                } else {
                    items.append(try withoutSpecialArguments { (parser: inout SQLParser) throws(Failure) in
                        try parser.parseExpression()
                    })
                }
            } while acceptPunctuation(",")
        }
        try expectPunctuation("]")
        return SQLExpr(kind: .array(items), range: start..<position)
    }

    // MARK: - Type names

    /// A type name as in a cast, normalised (`integer` → `int4`, `timestamp with time zone` →
    /// `timestamptz`, arrays end in `[]`).
    mutating func parseTypeName() throws(Failure) -> String {
        _ = acceptKeyword("setof")
        guard let first = token(), first.isName else { throw failure("type name") }
        var name: String
        if first.kind == .identifier {
            switch first.text {
            case "double":
                advance()
                try expectKeyword("precision")
                name = "float8"
            case "national", "character", "char", "nchar":
                advance()
                if first.text == "national" {
                    guard acceptKeyword("character") || acceptKeyword("char") else { throw failure("CHARACTER") }
                }
                name = acceptKeyword("varying") ? "varchar" : "bpchar"
                if isPunctuation("(") { try skipNumericModifier() }
            case "bit":
                advance()
                name = acceptKeyword("varying") ? "varbit" : "bit"
                if isPunctuation("(") { try skipNumericModifier() }
            case "timestamp", "time":
                advance()
                if isPunctuation("(") { try skipNumericModifier() }
                var withZone = false
                if acceptKeyword("with") {
                    try expectKeyword("time")
                    try expectKeyword("zone")
                    withZone = true
                } else if acceptKeyword("without") {
                    try expectKeyword("time")
                    try expectKeyword("zone")
                }
                name = first.text == "timestamp" ? (withZone ? "timestamptz" : "timestamp") : (withZone ? "timetz" : "time")
            case "interval":
                advance()
                try skipIntervalFields()
                name = "interval"
            default:
                if SQLKeywords.coreReserved.contains(first.text) { throw failure("type name") }
                var parts = [first.text]
                advance()
                while isPunctuation("."), let next = token(1), next.isName {
                    advance(2)
                    parts.append(next.text)
                }
                if parts.count == 2 && parts[0] == "pg_catalog" { parts.removeFirst() }
                name = parts.count == 1 ? Self.normalizedType(parts[0]) : parts.joined(separator: ".")
                if isPunctuation("(") {
                    // Type modifiers are constants (numbers, or names for some extension types).
                    advance()
                    repeat {
                        guard let modifier = token(), modifier.kind == .number || modifier.isString || modifier.isName else {
                            throw failure("type modifier")
                        }
                        advance()
                    } while acceptPunctuation(",")
                    try expectPunctuation(")")
                }
            }
        } else {
            advance()
            name = first.text
            while isPunctuation("."), let next = token(1), next.isName {
                advance(2)
                name += "." + next.text
            }
        }
        while true {
            if acceptPunctuation("[") {
                if token()?.kind == .number { advance() }
                try expectPunctuation("]")
                name += "[]"
            } else if acceptKeyword("array") {
                if acceptPunctuation("[") {
                    if token()?.kind == .number { advance() }
                    try expectPunctuation("]")
                }
                name += "[]"
            } else {
                return name
            }
        }
    }

    static func normalizedType(_ name: String) -> String {
        switch name {
        case "int", "integer", "int4": "int4"
        case "smallint", "int2": "int2"
        case "bigint", "int8": "int8"
        case "real", "float4": "float4"
        case "float", "float8": "float8"
        case "boolean", "bool": "bool"
        case "decimal", "numeric": "numeric"
        case "character", "char", "bpchar": "bpchar"
        default: name
        }
    }
}
