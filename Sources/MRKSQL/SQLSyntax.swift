// The syntax tree the parser builds. Every node remembers the token range it was parsed from
// (indices into the statement's token array, half-open) so that the analyzer can rewrite exactly
// those bytes and leave everything else as written.

/// A literal value as written in SQL.
struct SQLLiteral {
    enum Kind {
        case string
        case number
        case boolean
        /// `B'…'` / `X'…'`.
        case bitString
    }

    var kind: Kind
    /// Decoded string, number text or `true`/`false`.
    var text: String
}

/// An expression.
struct SQLExpr {
    indirect enum Kind {
        /// A column reference: one to four name parts.
        case column([String])
        /// `*` or `qualifier.*`.
        case star([String])
        /// `$n` (1-based as written).
        case parameter(Int)
        case literal(SQLLiteral)
        /// `DATE '…'`, `INTERVAL '…' DAY`, `timestamp with time zone '…'`.
        case typedLiteral(type: String, SQLLiteral)
        case null
        /// `DEFAULT` (in VALUES and SET).
        case defaultValue
        /// `CURRENT_DATE`, `CURRENT_USER`, … (no column involved).
        case keywordValue(String)
        case parenthesized(SQLExpr)
        /// `x::type`, `CAST(x AS type)`.
        case cast(SQLExpr, type: String)
        /// Prefix operator: `-`, `+`, `not`, `~`, …
        case unary(String, SQLExpr)
        /// Infix operator, keywords lower-cased: `and`, `or`, `=`, `<>`, `||`, `operator(…)`…
        case binary(String, SQLExpr, SQLExpr)
        /// `[NOT] LIKE | ILIKE | SIMILAR TO` (`name` upper-case as written, e.g. `NOT ILIKE`).
        case patternMatch(name: String, SQLExpr, SQLExpr, escape: SQLExpr?)
        case between(name: String, SQLExpr, SQLExpr, SQLExpr)
        case inList(negated: Bool, SQLExpr, [SQLExpr])
        case inQuery(negated: Bool, SQLExpr, SQLQuery)
        /// `x op ANY|ALL|SOME (array or subquery)`.
        case quantified(op: String, quantifier: String, SQLExpr, SQLQuantifiedOperand)
        /// `IS [NOT] NULL`, `ISNULL`, `NOTNULL`.
        case isNull(negated: Bool, SQLExpr)
        case isDistinctFrom(negated: Bool, SQLExpr, SQLExpr)
        /// `IS [NOT] TRUE | FALSE | UNKNOWN | DOCUMENT | NORMALIZED | JSON…`.
        case isPredicate(String, SQLExpr)
        case function(SQLFunctionCall)
        /// `(SELECT …)` used as a value.
        case subquery(SQLQuery)
        case exists(SQLQuery)
        /// `ARRAY(SELECT …)`.
        case arrayQuery(SQLQuery)
        /// `ARRAY[…]`.
        case array([SQLExpr])
        /// `ROW(…)` or `(a, b, …)`.
        case row([SQLExpr])
        case caseWhen(operand: SQLExpr?, whens: [(condition: SQLExpr, result: SQLExpr)], otherwise: SQLExpr?)
        case subscripted(SQLExpr, [SQLExpr])
        case fieldSelection(SQLExpr, String)
        case collate(SQLExpr, String)
        case atTimeZone(SQLExpr, SQLExpr)
    }

    var kind: Kind
    var range: Range<Int>

    /// The expression without enclosing parentheses.
    var unparenthesized: SQLExpr {
        var expression = self
        while case .parenthesized(let inner) = expression.kind { expression = inner }
        return expression
    }
}

/// The right-hand side of `op ANY (…)`.
enum SQLQuantifiedOperand {
    case expression(SQLExpr)
    case query(SQLQuery)
}

struct SQLFunctionCall {
    var name: [String]
    var arguments: [SQLExpr]
    /// `f(*)`.
    var star: Bool
    var distinct: Bool
    /// `ORDER BY` inside the argument list, or `WITHIN GROUP (ORDER BY …)`.
    var orderBy: [SQLSortItem]
    var filter: SQLExpr?
    var window: SQLWindowSpec?
    /// Whether `OVER`, `FILTER` or `WITHIN GROUP` was given (an aggregate or window call).
    var isAggregateSyntax: Bool
    var lastName: String { name.last ?? "" }
}

struct SQLWindowSpec {
    var partitionBy: [SQLExpr]
    var orderBy: [SQLSortItem]
    /// Offsets in the frame clause (`3 PRECEDING`).
    var frameExpressions: [SQLExpr]
}

struct SQLSortItem {
    var expression: SQLExpr
}

/// A grouping element: an expression or `()`, `ROLLUP(…)`, `CUBE(…)`, `GROUPING SETS (…)`.
indirect enum SQLGroupingItem {
    case expression(SQLExpr)
    case empty
    case sets([SQLGroupingItem])
}

/// `[AS] alias [(column, …)]`.
struct SQLAlias {
    var name: String
    var columns: [String]
}

/// A table name in FROM, INSERT INTO, UPDATE, DELETE FROM.
struct SQLTableRef {
    /// `[catalog.][schema.]name` as written (case-folded).
    var nameParts: [String]
    var alias: SQLAlias?
    var range: Range<Int>
}

/// An item of a FROM list.
indirect enum SQLFromItem {
    case table(SQLTableRef)
    case subquery(SQLQuery, alias: SQLAlias?, lateral: Bool)
    /// A set-returning function (or `ROWS FROM (…)`).
    case function([SQLExpr], alias: SQLAlias?, lateral: Bool)
    case join(SQLJoin)
    /// `(a JOIN b …) [AS alias]`.
    case nested(SQLFromItem, alias: SQLAlias?)
}

final class SQLJoin {
    let left: SQLFromItem
    let right: SQLFromItem
    let natural: Bool
    let on: SQLExpr?
    let using: [String]

    init(left: SQLFromItem, right: SQLFromItem, natural: Bool, on: SQLExpr?, using: [String]) {
        self.left = left
        self.right = right
        self.natural = natural
        self.on = on
        self.using = using
    }
}

/// A select-list or RETURNING item.
struct SQLTarget {
    var expression: SQLExpr
    var alias: String?
}

enum SQLDistinct {
    case none
    case distinct
    case on([SQLExpr])
}

final class SQLSimpleSelect {
    var distinct: SQLDistinct = .none
    var targets: [SQLTarget] = []
    /// Token index where the select list ends (after the last target, or after SELECT/DISTINCT
    /// when the list is empty): where hidden columns are appended.
    var targetsEnd = 0
    var into = false
    var from: [SQLFromItem] = []
    var whereClause: SQLExpr?
    var groupBy: [SQLGroupingItem] = []
    var having: SQLExpr?
    var windows: [SQLWindowSpec] = []
}

/// The body of a query: a SELECT, VALUES, TABLE, a set operation or a parenthesised query.
indirect enum SQLSetExpr {
    case select(SQLSimpleSelect)
    case values([SQLValuesRow])
    case table(SQLTableRef)
    case setOperation(String, SQLSetExpr, SQLSetExpr)
    case nested(SQLQuery)
}

/// A WITH item.
struct SQLCommonTableExpr {
    var name: String
    var columns: [String]
    var statement: SQLStatement
}

final class SQLQuery {
    var ctes: [SQLCommonTableExpr] = []
    var recursive = false
    var body: SQLSetExpr
    var orderBy: [SQLSortItem] = []
    /// LIMIT / OFFSET / FETCH expressions.
    var limitExpressions: [SQLExpr] = []
    var hasLimit = false
    /// `FOR UPDATE | NO KEY UPDATE | SHARE | KEY SHARE`.
    var locks = false

    init(body: SQLSetExpr) { self.body = body }
}

/// One `SET` item of UPDATE or ON CONFLICT DO UPDATE.
struct SQLAssignment {
    struct Target {
        var name: String
        /// `col.field` or `col[i]`.
        var hasIndirection: Bool
        /// Expressions inside `[…]`.
        var subscripts: [SQLExpr]
        var range: Range<Int>
        /// Names after dots (`col.field`); PostgreSQL reads `c.ssn` here as field `ssn` of column `c`.
        var fields: [String] = []
    }

    enum Value {
        case expression(SQLExpr)
        /// `(a, b) = (x, y)` or `= ROW(x, y)`.
        case row([SQLExpr])
        /// `(a, b) = (SELECT …)`.
        case query(SQLQuery)
    }

    var targets: [Target]
    var value: Value
    /// Whether written as `(a, b) = …`.
    var isMultiple: Bool
    var range: Range<Int>
}

struct SQLOnConflict {
    enum Action {
        case nothing
        case update([SQLAssignment], whereClause: SQLExpr?)
    }

    /// The conflict target's index expressions, nil for `ON CONSTRAINT` or no target.
    var targetExpressions: [SQLExpr]?
    var targetWhere: SQLExpr?
    var action: Action
}

/// One row of `INSERT … VALUES`.
struct SQLValuesRow {
    var items: [SQLExpr]
    /// Token index of the row's closing parenthesis.
    var closingParenthesis: Int
}

final class SQLInsert {
    enum Source {
        case defaultValues
        case values([SQLValuesRow])
        case query(SQLQuery)
    }

    var ctes: [SQLCommonTableExpr] = []
    var table: SQLTableRef
    var columns: [SQLAssignment.Target]?
    /// Token index of the column list's closing parenthesis.
    var columnListEnd: Int?
    var source: Source
    var onConflict: SQLOnConflict?
    var returning: [SQLTarget]?

    init(table: SQLTableRef, source: Source) {
        self.table = table
        self.source = source
    }
}

final class SQLUpdate {
    var ctes: [SQLCommonTableExpr] = []
    var table: SQLTableRef
    var assignments: [SQLAssignment]
    var from: [SQLFromItem] = []
    var whereClause: SQLExpr?
    var currentOf = false
    var returning: [SQLTarget]?

    init(table: SQLTableRef, assignments: [SQLAssignment]) {
        self.table = table
        self.assignments = assignments
    }
}

final class SQLDelete {
    var ctes: [SQLCommonTableExpr] = []
    var table: SQLTableRef
    var using: [SQLFromItem] = []
    var whereClause: SQLExpr?
    var currentOf = false
    var returning: [SQLTarget]?

    init(table: SQLTableRef) { self.table = table }
}

/// A parsed statement.
indirect enum SQLStatement {
    case query(SQLQuery)
    case insert(SQLInsert)
    case update(SQLUpdate)
    case delete(SQLDelete)
    /// `EXPLAIN [options] statement`.
    case explain(SQLStatement)
    /// Anything else (DDL, SET, COPY, MERGE, …): only its first keyword is known.
    case utility(String)
}
