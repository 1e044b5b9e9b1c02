/// Where an expression is being walked.
struct SQLExprContext {
    var scope: SQLScope
    /// True only along the AND-chain of the outermost plain SELECT's WHERE clause: a predicate on
    /// a truncated blind index found here can have its false positives removed after decryption.
    var postFilter = false

    init(scope: SQLScope) { self.scope = scope }

    var nested: SQLExprContext {
        var context = self
        context.postFilter = false
        return context
    }
}

extension SQLExpr {
    /// Direct sub-expressions (not those inside subqueries).
    static func children(of expression: SQLExpr) -> [SQLExpr] {
        switch expression.kind {
        case .column, .star, .parameter, .literal, .typedLiteral, .null, .defaultValue, .keywordValue, .subquery,
            .exists, .arrayQuery:
            return []
        case .parenthesized(let inner), .cast(let inner, _), .unary(_, let inner), .isNull(_, let inner),
            .isPredicate(_, let inner), .fieldSelection(let inner, _), .collate(let inner, _), .inQuery(_, let inner, _):
            return [inner]
        case .binary(_, let left, let right), .isDistinctFrom(_, let left, let right), .atTimeZone(let left, let right):
            return [left, right]
        case .patternMatch(_, let left, let pattern, let escape):
            return [left, pattern] + (escape.map { [$0] } ?? [])
        case .between(_, let value, let low, let high):
            return [value, low, high]
        case .inList(_, let left, let items):
            return [left] + items
        case .quantified(_, _, let left, let operand):
            if case .expression(let right) = operand { return [left, right] }
            return [left]
        case .function(let call):
            return call.arguments + call.orderBy.map(\.expression) + (call.filter.map { [$0] } ?? [])
                + (call.window.map { $0.partitionBy + $0.orderBy.map(\.expression) + $0.frameExpressions } ?? [])
        case .array(let items), .row(let items):
            return items
        case .caseWhen(let operand, let whens, let otherwise):
            return (operand.map { [$0] } ?? []) + whens.flatMap { [$0.condition, $0.result] }
                + (otherwise.map { [$0] } ?? [])
        case .subscripted(let base, let indexes):
            return [base] + indexes
        }
    }
}

extension SQLAnalyzer {
    private static let comparisonOperators: Set<String> = ["=", "<>", "!=", "<", ">", "<=", ">="]

    /// A human name for an operator in messages.
    private static func operatorConstruct(_ symbol: String) -> String {
        switch symbol {
        case "~", "~*", "!~", "!~*": "regular expression match (\(symbol))"
        case "~~", "~~*", "!~~", "!~~*": "LIKE operator (\(symbol))"
        case "||": "concatenation (||)"
        case "and", "or": "\(symbol.uppercased()) operand"
        default: "operator \(symbol)"
        }
    }

    /// Walks an expression, refusing any use of an encrypted column other than the supported
    /// ones and rewriting equality predicates to blind indexes.
    ///
    /// - Parameters:
    ///   - construct: what a bare encrypted column found directly here would be used in.
    func walk(_ expression: SQLExpr, _ context: SQLExprContext, construct: String) throws(InterceptionError) {
        let nested = context.nested
        switch expression.kind {
        case .column(let parts):
            let resolved = try resolve(parts, scope: context.scope, range: expression.range)
            if let column = resolved.encrypted {
                markTouched()
                throw refuse(column, construct)
            }
        case .star(let qualifier):
            var shape = SQLRelationShape()
            try expandStar(qualifier, scope: context.scope, into: &shape)
            if let column = shape.firstEncrypted { throw refuse(column, "whole-row value in \(construct)") }
        case .parameter, .literal, .typedLiteral, .null, .defaultValue, .keywordValue:
            break
        case .parenthesized(let inner):
            try walk(inner, context, construct: construct)
        case .cast(let inner, let type):
            try walk(inner, nested, construct: "cast to \(type)")
        case .unary(let symbol, let inner):
            try walk(inner, nested, construct: symbol == "not" ? "NOT" : "operator \(symbol)")
        case .binary(let symbol, let left, let right):
            if Self.comparisonOperators.contains(symbol) {
                try comparison(symbol, left, right, context)
            } else {
                // `a OR b OR c …` parses as a left-leaning chain as long as the list: walk its
                // operands in a loop, not by recursion, so that a 10,000-term OR cannot exhaust the stack.
                var operands = [right]
                var spine = left
                while case .binary(let inner, let innerLeft, let innerRight) = spine.kind, inner == symbol {
                    operands.append(innerRight)
                    spine = innerLeft
                }
                operands.append(spine)
                let operandContext = symbol == "and" ? context : nested
                let operandConstruct = symbol == "and" ? "AND operand" : Self.operatorConstruct(symbol)
                for operand in operands.reversed() { try walk(operand, operandContext, construct: operandConstruct) }
            }
        case .isDistinctFrom(let negated, let left, let right):
            try comparison(negated ? "IS NOT DISTINCT FROM" : "IS DISTINCT FROM", left, right, context)
        case .patternMatch(let name, let left, let pattern, let escape):
            try walk(left, nested, construct: name)
            try walk(pattern, nested, construct: name)
            if let escape { try walk(escape, nested, construct: name) }
        case .between(let name, let value, let low, let high):
            for part in [value, low, high] { try walk(part, nested, construct: name) }
        case .inList(let negated, let left, let items):
            try inList(negated: negated, left, items, context)
        case .inQuery(let negated, let left, let query):
            let name = negated ? "NOT IN (subquery)" : "IN (subquery)"
            try walk(left, nested, construct: name)
            let shape = try analyzeExpressionSubquery(query, context.scope)
            if let column = shape.firstEncrypted { throw refuse(column, "\(name) returning the column") }
        case .quantified(let symbol, let quantifier, let left, let operand):
            let name = "\(symbol) \(quantifier)"
            try walk(left, nested, construct: name + (Self.comparisonOperators.contains(symbol) ? " (use IN with values)" : ""))
            switch operand {
            case .expression(let right): try walk(right, nested, construct: name)
            case .query(let query):
                let shape = try analyzeExpressionSubquery(query, context.scope)
                if let column = shape.firstEncrypted { throw refuse(column, "\(name) (subquery) returning the column") }
            }
        case .isNull(_, let inner):
            let operand = inner.unparenthesized
            if case .column(let parts) = operand.kind {
                if try resolve(parts, scope: context.scope, range: operand.range).encrypted != nil { markTouched() }
            } else {
                try walk(inner, nested, construct: "IS NULL operand")
            }
        case .isPredicate(let name, let inner):
            try walk(inner, nested, construct: name)
        case .function(let call):
            try walkFunction(call, context)
        case .subquery(let query):
            let shape = try analyzeExpressionSubquery(query, context.scope)
            if let column = shape.firstEncrypted { throw refuse(column, "scalar subquery returning the column") }
        case .exists(let query):
            _ = try analyzeExpressionSubquery(query, context.scope)
        case .arrayQuery(let query):
            let shape = try analyzeExpressionSubquery(query, context.scope)
            if let column = shape.firstEncrypted { throw refuse(column, "ARRAY(subquery) of the column") }
        case .array(let items):
            for item in items { try walk(item, nested, construct: "ARRAY[…]") }
        case .row(let items):
            for item in items { try walk(item, nested, construct: "row constructor") }
        case .caseWhen(let operand, let whens, let otherwise):
            if let operand { try walk(operand, nested, construct: "CASE operand") }
            for when in whens {
                try walk(when.condition, nested, construct: "CASE WHEN condition")
                try walk(when.result, nested, construct: "CASE result")
            }
            if let otherwise { try walk(otherwise, nested, construct: "CASE result") }
        case .subscripted(let base, let indexes):
            try walk(base, nested, construct: "subscript")
            for index in indexes { try walk(index, nested, construct: "subscript") }
        case .fieldSelection(let base, _):
            try walk(base, nested, construct: "field selection")
        case .collate(let base, _):
            try walk(base, nested, construct: "COLLATE")
        case .atTimeZone(let left, let right):
            try walk(left, nested, construct: "AT TIME ZONE")
            try walk(right, nested, construct: "AT TIME ZONE")
        }
    }

    private func walkFunction(_ call: SQLFunctionCall, _ context: SQLExprContext) throws(InterceptionError) {
        let nested = context.nested
        let name = call.lastName
        // count(col) counts non-NULL values: correct on ciphertext.
        if name == "count" && call.name.count <= 2 && (call.name.count == 1 || call.name[0] == "pg_catalog")
            && call.arguments.count == 1 && call.orderBy.isEmpty,
            case .column(let parts) = call.arguments[0].unparenthesized.kind
        {
            let resolved = try resolve(parts, scope: context.scope, range: call.arguments[0].range)
            if let column = resolved.encrypted {
                markTouched()
                if call.distinct {
                    throw refuse(column, "count(DISTINCT …)", "equal values have different ciphertexts")
                }
            }
        } else {
            let construct = call.distinct ? "\(name)(DISTINCT …)" : "function \(name)()"
            for argument in call.arguments { try walk(argument, nested, construct: construct) }
        }
        for item in call.orderBy {
            try walk(item.expression, nested, construct: "ORDER BY in \(name)()")
        }
        if let filter = call.filter { try walk(filter, nested, construct: "FILTER condition") }
        if let window = call.window {
            for expression in window.partitionBy { try walk(expression, nested, construct: "PARTITION BY") }
            for item in window.orderBy { try walk(item.expression, nested, construct: "window ORDER BY") }
            for expression in window.frameExpressions { try walk(expression, nested, construct: "window frame") }
        }
    }

    // MARK: - Equality on encrypted columns

    /// The encrypted column an operand names directly (parentheses allowed), if any.
    private func encryptedOperand(_ expression: SQLExpr, _ context: SQLExprContext) throws(InterceptionError)
        -> (SQLResolvedColumn, EncryptedColumn, SQLExpr)?
    {
        let inner = expression.unparenthesized
        guard case .column(let parts) = inner.kind else { return nil }
        let resolved = try resolve(parts, scope: context.scope, range: inner.range)
        guard let column = resolved.encrypted else { return nil }
        markTouched()
        return (resolved, column, inner)
    }

    private func comparison(_ symbol: String, _ left: SQLExpr, _ right: SQLExpr, _ context: SQLExprContext)
        throws(InterceptionError)
    {
        let leftColumn = try encryptedOperand(left, context)
        let rightColumn = try encryptedOperand(right, context)
        guard let (resolved, column, reference) = leftColumn ?? rightColumn else {
            try walk(left, context.nested, construct: "operand of \(symbol)")
            try walk(right, context.nested, construct: "operand of \(symbol)")
            return
        }
        if let other = rightColumn, leftColumn != nil {
            throw refuse(column, "\(symbol) with encrypted column \(other.1.qualifiedDescription)",
                "two encrypted columns cannot be compared")
        }
        let value = leftColumn != nil ? right : left
        let isEquality = ["=", "<>", "!=", "IS DISTINCT FROM", "IS NOT DISTINCT FROM"].contains(symbol)
        guard isEquality else {
            throw refuse(column, "range comparison (\(symbol))",
                "encryption does not preserve order; only =, <>, IN and IS [NOT] NULL are supported")
        }
        try checkSearchable(column, resolved, construct: "\(symbol) comparison")
        guard let source = try valueSource(value) else {
            throw refuse(column, "\(symbol) with \(describeNonValue(value, context))",
                "an encrypted column can only be compared with a parameter or a literal")
        }
        try checkTruncated(column, symbol: symbol, equality: symbol == "=", context: context)
        rewriteToBlindIndex(reference, resolved, column)
        replaceValue(value, source, column)
        if column.hasTruncatedBlindIndex && source != .null {
            addPostFilter(column, resolved, [source])
        }
    }

    private func inList(negated: Bool, _ left: SQLExpr, _ items: [SQLExpr], _ context: SQLExprContext)
        throws(InterceptionError)
    {
        let name = negated ? "NOT IN" : "IN"
        guard let (resolved, column, reference) = try encryptedOperand(left, context) else {
            try walk(left, context.nested, construct: name)
            for item in items { try walk(item, context.nested, construct: "\(name) list") }
            return
        }
        try checkSearchable(column, resolved, construct: name)
        var sources: [ValueSource] = []
        for item in items {
            guard let source = try valueSource(item) else {
                throw refuse(column, "\(name) list with \(describeNonValue(item, context))",
                    "an encrypted column can only be compared with parameters or literals")
            }
            sources.append(source)
        }
        try checkTruncated(column, symbol: name, equality: !negated, context: context)
        rewriteToBlindIndex(reference, resolved, column)
        for (item, source) in zip(items, sources) { replaceValue(item, source, column) }
        let accepted = sources.filter { $0 != .null }
        if column.hasTruncatedBlindIndex && !accepted.isEmpty {
            addPostFilter(column, resolved, accepted)
        }
    }

    private func describeNonValue(_ expression: SQLExpr, _ context: SQLExprContext) -> String {
        switch expression.unparenthesized.kind {
        case .column: "another column"
        case .subquery: "a subquery"
        default: "an expression"
        }
    }

    private func checkSearchable(_ column: EncryptedColumn, _ resolved: SQLResolvedColumn, construct: String)
        throws(InterceptionError)
    {
        guard column.search == .equality else {
            throw refuse(column, construct, "the column is not searchable; configure search: equality",
                code: .notSearchable)
        }
        guard !resolved.viaDerived else {
            throw refuse(column, "\(construct) through a subquery or CTE column",
                "compare the column where it is read from its table")
        }
    }

    private func checkTruncated(_ column: EncryptedColumn, symbol: String, equality: Bool, context: SQLExprContext)
        throws(InterceptionError)
    {
        guard column.hasTruncatedBlindIndex else { return }
        guard equality else {
            throw refuse(column, "\(symbol) on a truncated blind index",
                "a truncated index has false positives, so matching rows would be wrongly excluded; use = or IN, or a 256-bit index")
        }
        if statementWrites {
            throw refuse(column, "\(symbol) on a truncated blind index in a statement that writes",
                "a truncated index has false positives, so rows that do not match could be changed",
                code: .truncatedIndexWrite)
        }
        guard context.postFilter else {
            throw refuse(column, "\(symbol) on a truncated blind index here",
                "false positives can only be removed for a top-level WHERE condition (ANDed) of a plain SELECT "
                    + "without LIMIT, aggregates, DISTINCT, GROUP BY or set operations")
        }
    }

    /// `col` → `qualifier.col_bidx`.
    private func rewriteToBlindIndex(_ reference: SQLExpr, _ resolved: SQLResolvedColumn, _ column: EncryptedColumn) {
        let name = SQLIdentifier.quoted(column.blindIndexColumn)
        replace(reference.range, with: [.text(resolved.qualifier.map { "\($0).\(name)" } ?? name)])
    }

    /// A value compared with a blind-indexed column → a blind index parameter.
    private func replaceValue(_ value: SQLExpr, _ source: ValueSource, _ column: EncryptedColumn) {
        if source == .null {
            replace(value.range, with: [.text("NULL")])
        } else {
            replace(value.range, with: [.parameter(.blindIndex(source, column: column))])
        }
    }

    private func addPostFilter(_ column: EncryptedColumn, _ resolved: SQLResolvedColumn, _ values: [ValueSource]) {
        let name = SQLIdentifier.quoted(column.name)
        let text = resolved.qualifier.map { "\($0).\(name)" } ?? name
        let index: Int
        if let existing = hiddenColumns.firstIndex(of: text) {
            index = existing
        } else {
            index = hiddenColumns.count
            appendHiddenColumn(text, ResultColumn(name: column.name, origin: resolved.origin))
        }
        recordPostFilter(PostFilter(column: column, hiddenColumn: index, acceptedValues: values))
    }

    // MARK: - Values

    /// Where the value of a parameter, literal or NULL (possibly cast or signed) comes from; nil
    /// for anything else.
    ///
    /// - Throws: `.parameterCount` for `$n` beyond the supplied values.
    func valueSource(_ expression: SQLExpr) throws(InterceptionError) -> ValueSource? {
        let inner = expression.unparenthesized
        switch inner.kind {
        case .parameter(let number):
            return .parameter(number - 1)
        case .null:
            return .null
        case .literal(let literal):
            return lifted(literal, type: nil).map { .literal($0) }
        case .typedLiteral(let type, let literal):
            return .literal(LiftedLiteral(text: literal.text, kind: .typed(type)))
        case .unary(let symbol, let operand) where symbol == "-" || symbol == "+":
            guard case .literal(let literal) = operand.unparenthesized.kind, literal.kind == .number,
                let number = Self.decimalNumber(literal.text)
            else { return nil }
            return .literal(LiftedLiteral(text: symbol == "-" ? "-" + number : number, kind: .number))
        case .cast(let operand, let type):
            guard let source = try valueSource(operand) else { return nil }
            if case .literal(let literal) = source {
                return .literal(LiftedLiteral(text: literal.text, kind: .typed(type)))
            }
            return source
        default:
            return nil
        }
    }

    private func lifted(_ literal: SQLLiteral, type: String?) -> LiftedLiteral? {
        switch literal.kind {
        case .string: return LiftedLiteral(text: literal.text, kind: type.map { .typed($0) } ?? .string)
        case .boolean: return LiftedLiteral(text: literal.text, kind: type.map { .typed($0) } ?? .boolean)
        case .number:
            guard let number = Self.decimalNumber(literal.text) else { return nil }
            return LiftedLiteral(text: number, kind: type.map { .typed($0) } ?? .number)
        case .bitString: return nil
        }
    }

    /// A numeric literal in decimal: `0x1F` → `31`; decimals and exponents unchanged.
    static func decimalNumber(_ text: String) -> String? {
        let lower = text.lowercased()
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where lower.hasPrefix(prefix) {
            return UInt64(lower.dropFirst(2), radix: radix).map { String($0) }
        }
        return text
    }
}
