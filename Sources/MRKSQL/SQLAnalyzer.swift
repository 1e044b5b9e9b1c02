/// A change to the statement text: replace `range` (bytes of the original SQL; empty to insert)
/// with `pieces`.
struct SQLEdit {
    enum Piece {
        case text(String)
        case parameter(PlannedParameter)
    }

    var range: Range<Int>
    var pieces: [Piece]
    /// Creation order, to keep insertions at the same offset in order.
    var sequence: Int
}

/// Walks a parsed statement against the encrypted schema: resolves column references, decides
/// what to encrypt, HMAC or lift, records the text edits, and refuses anything it cannot keep
/// correct.
final class SQLAnalyzer {
    let schema: EncryptedSchema
    let tokens: [SQLToken]
    let parameterCount: Int
    /// The statement writes rows (INSERT/UPDATE/DELETE, data-modifying CTE, locking SELECT):
    /// predicates on truncated blind indexes are refused anywhere in it.
    let statementWrites: Bool

    private(set) var edits: [SQLEdit] = []
    private(set) var touchesEncrypted = false
    private(set) var postFilters: [PostFilter] = []
    private(set) var hiddenColumns: [String] = []
    /// Where each hidden column's values come from (parallel to `hiddenColumns`).
    private(set) var hiddenOrigins: [ResultColumn] = []
    /// Instances of configured tables numbered so far (see `SQLRangeEntry.instance`).
    private var nextTableInstance = 0
    /// Unqualified names of configured tables, to be sent schema-qualified when the statement
    /// touches an encrypted column (see `finish`).
    private var qualifications: [SQLEdit] = []
    /// Where hidden columns go (byte offset) and whether the select list is empty.
    private var hiddenColumnInsertion: (offset: Int, emptyList: Bool)?
    private var cteFrames: [[String: SQLRelationShape]] = []

    /// Row-identity bookkeeping (see `checkRowIdentityInstances`). Subqueries inside expressions
    /// (WHERE, HAVING, …) are not counted: their rows do not reach the result.
    private var expressionSubqueryDepth = 0
    /// Range entries per configured table with a row identity that can reach the result (not in
    /// expression subqueries). A WITH query's entries are kept with it and added where it is
    /// referenced, once per reference (an unreferenced one adds nothing).
    private var tableInstances: [QualifiedName: Int] = [:]
    private var cteInstances: [Int: [QualifiedName: Int]] = [:]
    /// The WITH queries whose bodies are being analyzed (innermost last), by definition number.
    private var cteBodies: [Int] = []
    /// Definition numbers of the WITH queries in scope, framed like `cteFrames`.
    private var cteDefinitions: [[String: Int]] = []
    private var nextCTEDefinition = 0
    /// In `WITH RECURSIVE`, names of the items not analyzed yet (PostgreSQL lets earlier items
    /// refer to them; MRKProxy would not know their columns).
    private var pendingRecursiveCTEs: Set<String> = []
    /// Configured tables whose encrypted columns are in an output list.
    private var outputTables: Set<QualifiedName> = []

    init(schema: EncryptedSchema, tokens: [SQLToken], parameterCount: Int, statementWrites: Bool) {
        self.schema = schema
        self.tokens = tokens
        self.parameterCount = parameterCount
        self.statementWrites = statementWrites
    }

    // MARK: - Edits

    func byteRange(_ tokenRange: Range<Int>) -> Range<Int> {
        tokens[tokenRange.lowerBound].range.lowerBound..<tokens[tokenRange.upperBound - 1].range.upperBound
    }

    func replace(_ tokenRange: Range<Int>, with pieces: [SQLEdit.Piece]) {
        edits.append(SQLEdit(range: byteRange(tokenRange), pieces: pieces, sequence: edits.count))
    }

    func insert(at offset: Int, _ pieces: [SQLEdit.Piece]) {
        edits.append(SQLEdit(range: offset..<offset, pieces: pieces, sequence: edits.count))
    }

    /// Inserts right after the token at `tokenIndex`.
    func insert(after tokenIndex: Int, _ pieces: [SQLEdit.Piece]) {
        insert(at: tokens[tokenIndex].range.upperBound, pieces)
    }

    func markTouched() { touchesEncrypted = true }


    /// Analyzes a subquery that is part of an expression.
    func analyzeExpressionSubquery(_ query: SQLQuery, _ parent: SQLScope) throws(InterceptionError) -> SQLRelationShape {
        expressionSubqueryDepth += 1
        defer { expressionSubqueryDepth -= 1 }
        return try analyzeQuery(query, parent: parent, outermost: false)
    }

    private func recordOutput(_ column: EncryptedColumn) {
        if expressionSubqueryDepth == 0 { outputTables.insert(column.table) }
    }

    /// Values of a table with `row_identity` are checked against the identity in the same result
    /// row, found by source table and column. With the table in the statement twice (a self-join,
    /// LATERAL, a WITH query used twice) that identity could belong to the other instance: refuse.
    func checkRowIdentityInstances() throws(InterceptionError) {
        for table in outputTables.sorted(by: { $0.description < $1.description }) {
            guard let configured = schema.tables[table], let identity = configured.rowIdentity else { continue }
            let instances = tableInstances[table, default: 0]
            guard instances > 1 else { continue }
            throw InterceptionError(
                .unsupportedConstruct, table: table,
                construct: "\(instances) instances of the table (self-join, LATERAL or a WITH query used twice) while reading its encrypted columns",
                reason: "the result could pair a value with another instance's \(identity), so it could not be checked against its row; "
                    + "read the encrypted columns from one instance")
        }
    }

    func appendHiddenColumn(_ text: String, _ column: ResultColumn) {
        hiddenColumns.append(text)
        hiddenOrigins.append(column)
    }

    func recordPostFilter(_ filter: PostFilter) { postFilters.append(filter) }

    /// Qualifies configured table names and appends the hidden trailing columns to the select
    /// list; call once after analysis.
    ///
    /// A statement that touches an encrypted column sends every configured table it names
    /// schema-qualified, so that the session's search_path (which the database controls) cannot
    /// resolve it to another relation. Others pass through as written: nothing in them is trusted.
    func finish() {
        if touchesEncrypted {
            for edit in qualifications {
                edits.append(SQLEdit(range: edit.range, pieces: edit.pieces, sequence: edits.count))
            }
        }
        guard !hiddenColumns.isEmpty, let insertion = hiddenColumnInsertion else { return }
        let list = hiddenColumns.joined(separator: ", ")
        insert(at: insertion.offset, [.text(insertion.emptyList ? " " + list : ", " + list)])
    }

    // MARK: - Errors

    static let onlySupported =
        "encrypted columns can only be selected, written with a value, counted, tested with IS [NOT] NULL "
        + "or compared with = / <> / IN against a parameter or literal"

    func refuse(_ column: EncryptedColumn, _ construct: String, _ reason: String = onlySupported,
        code: InterceptionError.Code = .unsupportedConstruct) -> InterceptionError
    {
        InterceptionError(code, column: column, construct: construct, reason: reason)
    }

    // MARK: - CTEs

    func cteShape(_ name: String) -> SQLRelationShape? {
        for frame in cteFrames.reversed() {
            if let shape = frame[name] { return shape }
        }
        return nil
    }

    /// Analyzes WITH items in order (each sees the previous ones) and pushes them; pop with
    /// `popCTEs()`.
    func pushCTEs(_ ctes: [SQLCommonTableExpr], recursive: Bool, parent: SQLScope?) throws(InterceptionError) {
        cteFrames.append([:])
        cteDefinitions.append([:])
        let savedPending = pendingRecursiveCTEs
        defer { pendingRecursiveCTEs = savedPending }
        for (index, cte) in ctes.enumerated() {
            let definition = nextCTEDefinition
            nextCTEDefinition += 1
            cteDefinitions[cteDefinitions.count - 1][cte.name] = definition
            if recursive {
                cteFrames[cteFrames.count - 1][cte.name] = SQLRelationShape(columns: [], complete: false)
                pendingRecursiveCTEs = savedPending.union(ctes[(index + 1)...].map(\.name))
            }
            cteBodies.append(definition)
            defer { cteBodies.removeLast() }
            var shape = try analyzeStatement(cte.statement, parent: parent, outermost: false)
            shape = try applyColumnAliases(cte.columns, to: shape)
            cteFrames[cteFrames.count - 1][cte.name] = shape
        }
    }

    func popCTEs() {
        cteFrames.removeLast()
        cteDefinitions.removeLast()
    }

    private func cteDefinition(_ name: String) -> Int? {
        for frame in cteDefinitions.reversed() {
            if let definition = frame[name] { return definition }
        }
        return nil
    }

    /// Counts instances of configured tables where they can reach the result (see `tableInstances`).
    private func countInstances(_ instances: [QualifiedName: Int]) {
        guard expressionSubqueryDepth == 0 else { return }
        for (table, count) in instances {
            if let body = cteBodies.last {
                cteInstances[body, default: [:]][table, default: 0] += count
            } else {
                tableInstances[table, default: 0] += count
            }
        }
    }

    // MARK: - Statements

    /// Analyzes any data statement; returns the shape of what it produces (rows for a query,
    /// RETURNING for a write).
    @discardableResult
    func analyzeStatement(_ statement: SQLStatement, parent: SQLScope?, outermost: Bool)
        throws(InterceptionError) -> SQLRelationShape
    {
        switch statement {
        case .query(let query): return try analyzeQuery(query, parent: parent, outermost: outermost)
        case .insert(let insert): return try analyzeInsert(insert, parent: parent)
        case .update(let update): return try analyzeUpdate(update, parent: parent)
        case .delete(let delete): return try analyzeDelete(delete, parent: parent)
        case .explain(let inner): return try analyzeStatement(inner, parent: parent, outermost: false)
        case .utility: return SQLRelationShape()
        }
    }

    // MARK: - Queries

    func analyzeQuery(_ query: SQLQuery, parent: SQLScope?, outermost: Bool) throws(InterceptionError)
        -> SQLRelationShape
    {
        try pushCTEs(query.ctes, recursive: query.recursive, parent: parent)
        defer { popCTEs() }
        var postFilterEligible = outermost && !query.hasLimit && !query.locks && !statementWrites
        if case .select(let select) = query.body {
            postFilterEligible = postFilterEligible && isPlainSelect(select)
                && !query.orderBy.contains { containsAggregate($0.expression) }
            let (shape, scope) = try analyzeSimpleSelect(select, parent: parent, postFilterEligible: postFilterEligible)
            for item in query.orderBy {
                try checkOrderingItem(item.expression, shape: shape, scope: scope, construct: "ORDER BY", outputFirst: true)
            }
            try walkLimits(query, parent: parent)
            return shape
        }
        let shape = try analyzeSetExpression(query.body, parent: parent)
        let outputScope = SQLScope(parent: parent)
        outputScope.entries.append(SQLRangeEntry(name: nil, source: .derived(shape), aliased: false))
        for item in query.orderBy {
            try checkOrderingItem(item.expression, shape: shape, scope: outputScope, construct: "ORDER BY", outputFirst: true)
        }
        try walkLimits(query, parent: parent)
        return shape
    }

    private func walkLimits(_ query: SQLQuery, parent: SQLScope?) throws(InterceptionError) {
        let scope = SQLScope(parent: parent)
        for expression in query.limitExpressions {
            try walk(expression, SQLExprContext(scope: scope), construct: "LIMIT/OFFSET")
        }
    }

    private func analyzeSetExpression(_ body: SQLSetExpr, parent: SQLScope?) throws(InterceptionError)
        -> SQLRelationShape
    {
        switch body {
        case .select(let select):
            return try analyzeSimpleSelect(select, parent: parent, postFilterEligible: false).0
        case .values(let rows):
            let scope = SQLScope(parent: parent)
            var shape = SQLRelationShape()
            for (rowIndex, row) in rows.enumerated() {
                for item in row.items {
                    try walk(item, SQLExprContext(scope: scope), construct: "VALUES")
                    if rowIndex == 0 {
                        shape.columns.append(SQLOutputColumn(name: nil, encrypted: nil))
                        shape.segments.append(.column(ResultColumn(name: nil, origin: .other)))
                    }
                }
            }
            return shape
        case .table(let ref):
            let scope = SQLScope(parent: parent)
            try addFromItem(.table(ref), to: scope, parent: parent)
            var shape = SQLRelationShape()
            try expandStar([], scope: scope, into: &shape)
            return shape
        case .setOperation(let operation, let left, let right):
            let leftShape = try analyzeSetExpression(left, parent: parent)
            let rightShape = try analyzeSetExpression(right, parent: parent)
            if let column = leftShape.firstEncrypted ?? rightShape.firstEncrypted {
                throw refuse(
                    column, operation,
                    "the result of a set operation loses the column's origin, so it could not be decrypted, "
                        + "and duplicate elimination does not work on ciphertext")
            }
            // The columns lose their origin (and are never encrypted here).
            var shape = SQLRelationShape(complete: leftShape.complete && rightShape.complete)
            shape.columns = leftShape.columns.map { SQLOutputColumn(name: $0.name, encrypted: nil) }
            shape.segments = leftShape.segments.map { segment in
                if case .column(let column) = segment { return .column(ResultColumn(name: column.name, origin: .other)) }
                return .plainStar
            }
            return shape
        case .nested(let query):
            return try analyzeQuery(query, parent: parent, outermost: false)
        }
    }

    /// Aggregates known to PostgreSQL (user-defined aggregates cannot be recognised: see docs).
    static let aggregateFunctions: Set<String> = [
        "count", "sum", "avg", "min", "max", "array_agg", "string_agg", "bool_and", "bool_or", "every",
        "bit_and", "bit_or", "bit_xor", "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg",
        "xmlagg", "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp", "corr",
        "covar_pop", "covar_samp", "regr_avgx", "regr_avgy", "regr_count", "regr_intercept", "regr_r2",
        "regr_slope", "regr_sxx", "regr_sxy", "regr_syy", "mode", "percentile_cont", "percentile_disc",
        "rank", "dense_rank", "percent_rank", "cume_dist", "range_agg", "range_intersect_agg", "any_value",
        "json_arrayagg", "json_objectagg",
    ]

    private func isPlainSelect(_ select: SQLSimpleSelect) -> Bool {
        if case .none = select.distinct {} else { return false }
        return select.groupBy.isEmpty && select.having == nil && select.windows.isEmpty && !select.into
            && !select.targets.contains { containsAggregate($0.expression) }
    }

    func containsAggregate(_ expression: SQLExpr) -> Bool {
        if case .function(let call) = expression.kind,
            call.isAggregateSyntax || Self.aggregateFunctions.contains(call.lastName)
        {
            return true
        }
        // Iterative (an explicit stack): expression chains can be thousands of levels deep.
        var pending = SQLExpr.children(of: expression)
        while let next = pending.popLast() {
            if case .function(let call) = next.kind, call.isAggregateSyntax || Self.aggregateFunctions.contains(call.lastName) { return true }
            pending.append(contentsOf: SQLExpr.children(of: next))
        }
        return false
    }

    private func analyzeSimpleSelect(_ select: SQLSimpleSelect, parent: SQLScope?, postFilterEligible: Bool)
        throws(InterceptionError) -> (SQLRelationShape, SQLScope)
    {
        let scope = SQLScope(parent: parent)
        for item in select.from { try addFromItem(item, to: scope, parent: parent) }
        var shape = SQLRelationShape()
        for target in select.targets {
            try analyzeTarget(target, scope: scope, into: &shape, construct: "select list")
        }
        if let whereClause = select.whereClause {
            var context = SQLExprContext(scope: scope)
            if postFilterEligible {
                context.postFilter = true
                let end = select.targetsEnd
                hiddenColumnInsertion = (tokens[end - 1].range.upperBound, select.targets.isEmpty)
            }
            try walk(whereClause, context, construct: "WHERE condition")
        }
        for item in select.groupBy {
            try checkGroupingItem(item, shape: shape, scope: scope)
        }
        if let having = select.having {
            try walk(having, SQLExprContext(scope: scope), construct: "HAVING condition")
        }
        for window in select.windows { try checkWindow(window, shape: shape, scope: scope) }
        switch select.distinct {
        case .none: break
        case .distinct:
            if let column = shape.firstEncrypted {
                throw refuse(column, "SELECT DISTINCT", "ciphertexts of equal values differ, so duplicates would not be removed")
            }
        case .on(let expressions):
            for expression in expressions {
                try checkOrderingItem(expression, shape: shape, scope: scope, construct: "DISTINCT ON", outputFirst: false)
            }
        }
        if select.into, let column = shape.firstEncrypted {
            throw refuse(column, "SELECT … INTO", "copying ciphertext into a new table is not supported",
                code: .insertSelect)
        }
        return (shape, scope)
    }

    private func checkGroupingItem(_ item: SQLGroupingItem, shape: SQLRelationShape, scope: SQLScope)
        throws(InterceptionError)
    {
        switch item {
        case .empty: break
        case .expression(let expression):
            try checkOrderingItem(expression, shape: shape, scope: scope, construct: "GROUP BY", outputFirst: false)
        case .sets(let items):
            for inner in items { try checkGroupingItem(inner, shape: shape, scope: scope) }
        }
    }

    private func checkWindow(_ window: SQLWindowSpec, shape: SQLRelationShape, scope: SQLScope) throws(InterceptionError) {
        for expression in window.partitionBy {
            try checkOrderingItem(expression, shape: shape, scope: scope, construct: "PARTITION BY", outputFirst: false)
        }
        for item in window.orderBy {
            try checkOrderingItem(item.expression, shape: shape, scope: scope, construct: "window ORDER BY", outputFirst: false)
        }
        for expression in window.frameExpressions {
            try walk(expression, SQLExprContext(scope: scope), construct: "window frame")
        }
    }

    /// ORDER BY / GROUP BY / DISTINCT ON / PARTITION BY item: refuse an encrypted column whether
    /// named directly, by output name or by position.
    func checkOrderingItem(
        _ expression: SQLExpr, shape: SQLRelationShape, scope: SQLScope, construct: String, outputFirst: Bool
    ) throws(InterceptionError) {
        let reason = "ciphertext has no useful order and equal values have different ciphertexts"
        let inner = expression.unparenthesized
        if case .literal(let literal) = inner.kind, literal.kind == .number, let position = Int(literal.text) {
            if position >= 1 && position <= shape.columns.count, let column = shape.columns[position - 1].encrypted {
                throw refuse(column, construct, reason)
            }
            if !shape.complete, let column = shape.firstEncrypted {
                throw refuse(column, "\(construct) by position over *", reason)
            }
            return
        }
        if outputFirst, case .column(let parts) = inner.kind, parts.count == 1,
            let output = shape.columns.first(where: { $0.name == parts[0] })
        {
            if let column = output.encrypted { throw refuse(column, construct, reason) }
            return
        }
        if case .column(let parts) = inner.kind {
            let resolved = try resolve(parts, scope: scope, range: inner.range)
            if let column = resolved.encrypted { throw refuse(column, construct, reason) }
            if case .plain = resolved.kind, !outputFirst, parts.count == 1,
                let output = shape.columns.first(where: { $0.name == parts[0] }), let column = output.encrypted
            {
                throw refuse(column, construct, reason)
            }
            return
        }
        try walk(expression, SQLExprContext(scope: scope), construct: construct)
    }

    /// A select-list or RETURNING item.
    func analyzeTarget(_ target: SQLTarget, scope: SQLScope, into shape: inout SQLRelationShape, construct: String)
        throws(InterceptionError)
    {
        let inner = target.expression.unparenthesized
        switch inner.kind {
        case .star(let qualifier):
            try expandStar(qualifier, scope: scope, into: &shape)
        case .column(let parts):
            let resolved = try resolve(parts, scope: scope, range: inner.range)
            let name = target.alias ?? parts.last
            let origin = resolved.origin
            if let column = resolved.encrypted {
                markTouched()
                recordOutput(column)
                shape.columns.append(SQLOutputColumn(name: name, encrypted: column, origin: origin))
            } else {
                shape.columns.append(SQLOutputColumn(name: name, encrypted: nil, origin: origin))
            }
            shape.segments.append(.column(ResultColumn(name: name, origin: origin)))
        default:
            try walk(target.expression, SQLExprContext(scope: scope), construct: construct)
            var name = target.alias
            if name == nil, case .function(let call) = inner.kind { name = call.lastName }
            shape.columns.append(SQLOutputColumn(name: name, encrypted: nil))
            // Only an alias fixes the output name; PostgreSQL derives the others.
            shape.segments.append(.column(ResultColumn(name: target.alias, origin: .other)))
        }
    }

    func expandStar(_ qualifier: [String], scope: SQLScope, into shape: inout SQLRelationShape) throws(InterceptionError) {
        var entries: [SQLRangeEntry] = []
        if qualifier.isEmpty {
            entries = scope.entries
        } else if let found = starEntry(qualifier, scope: scope) {
            entries = [found]
        } else {
            // `composite_column.*`.
            let resolved = try resolve(qualifier, scope: scope, range: nil)
            if let column = resolved.encrypted { throw refuse(column, "field selection (.*)") }
            shape.complete = false
            shape.segments.append(.plainStar)
            return
        }
        for entry in entries {
            switch entry.source {
            case .table(_, let table):
                if let table, !table.columns.isEmpty {
                    markTouched()
                    for column in table.columns.values.sorted(by: { $0.name < $1.name }) {
                        recordOutput(column)
                        shape.columns.append(SQLOutputColumn(name: column.name, encrypted: column,
                                                             origin: .encrypted(column, instance: entry.instance)))
                    }
                    shape.segments.append(.tableStar(table, instance: entry.instance))
                } else {
                    shape.segments.append(.plainStar)
                }
                shape.complete = false
            case .derived(let derived):
                if derived.containsEncrypted { markTouched() }
                for column in derived.columns { if let encrypted = column.encrypted { recordOutput(encrypted) } }
                shape.columns += derived.columns
                shape.segments += derived.segments
                shape.complete = shape.complete && derived.complete
            case .opaque:
                shape.complete = false
                shape.segments.append(.plainStar)
            }
        }
    }

    private func starEntry(_ qualifier: [String], scope: SQLScope) -> SQLRangeEntry? {
        if qualifier.count == 1 { return scope.entry(named: qualifier[0])?.0 }
        let tableName = QualifiedName(schema: qualifier[qualifier.count - 2], name: qualifier[qualifier.count - 1])
        var current: SQLScope? = scope
        while let level = current {
            if let found = level.entries.first(where: { !$0.aliased && $0.tableName == tableName }) { return found }
            current = level.parent
        }
        return nil
    }

    // MARK: - FROM

    /// The range entry for a table reference. The target of an INSERT, UPDATE or DELETE
    /// (`writeTarget`) is always a real table in PostgreSQL, never a WITH query of the same name.
    func tableEntry(_ ref: SQLTableRef, writeTarget: Bool = false) throws(InterceptionError) -> SQLRangeEntry {
        let visibleName = ref.alias?.name ?? ref.nameParts.last ?? ""
        if !writeTarget, ref.nameParts.count == 1, pendingRecursiveCTEs.contains(ref.nameParts[0]) {
            throw InterceptionError(
                .unsupportedConstruct, construct: "reference to a later WITH RECURSIVE item \(SQLIdentifier.quoted(ref.nameParts[0]))",
                reason: "define WITH items before the ones that use them (only an item's own recursive reference is supported)")
        }
        if !writeTarget, ref.nameParts.count == 1, let shape = cteShape(ref.nameParts[0]) {
            if let definition = cteDefinition(ref.nameParts[0]) { countInstances(cteInstances[definition] ?? [:]) }
            let renamed = try applyColumnAliases(ref.alias?.columns ?? [], to: shape)
            return SQLRangeEntry(name: visibleName, source: .derived(renamed), aliased: ref.alias != nil)
        }
        let configured = schema.table(named: ref.nameParts)
        if configured == nil, ref.nameParts.count == 1,
           let other = schema.tables.keys.sorted(by: { $0.description < $1.description }).first(where: { $0.name == ref.nameParts[0] }) {
            // The session's search_path (which MRKProxy does not follow) could resolve it there.
            throw InterceptionError(
                .unsupportedConstruct, table: other, construct: "unqualified table name \(SQLIdentifier.quoted(ref.nameParts[0])) outside the configured search path",
                reason: "the session's search_path could resolve it to the configured table; qualify it as \(other)")
        }
        if let configured, configured.rowIdentity != nil { countInstances([configured.name: 1]) }
        if let configured, !configured.columns.isEmpty, let alias = ref.alias, !alias.columns.isEmpty,
            let column = configured.columns.values.sorted(by: { $0.name < $1.name }).first
        {
            throw refuse(column, "column alias list on a configured table",
                "renaming columns by position hides which column is encrypted; alias columns in the select list")
        }
        var instance = 0
        if let configured {
            nextTableInstance += 1
            instance = nextTableInstance
            // Send the name schema-qualified, so that the session's search_path (which the
            // database controls) cannot resolve it to another relation.
            if ref.nameParts.count == 1, !ref.range.isEmpty {
                qualifications.append(SQLEdit(range: byteRange(ref.range),
                                              pieces: [.text("\(SQLIdentifier.quoted(configured.name.schema)).\(SQLIdentifier.quoted(configured.name.name))")],
                                              sequence: 0))
            }
        }
        return SQLRangeEntry(
            name: visibleName, source: .table(schema.qualifiedName(for: ref.nameParts), configured),
            aliased: ref.alias != nil, instance: instance)
    }

    func applyColumnAliases(_ aliases: [String], to shape: SQLRelationShape) throws(InterceptionError)
        -> SQLRelationShape
    {
        guard !aliases.isEmpty else { return shape }
        if !shape.complete, let column = shape.firstEncrypted {
            throw refuse(column, "column alias list over *",
                "renaming columns by position hides which column is encrypted; list the columns")
        }
        var renamed = shape
        for index in 0..<min(aliases.count, renamed.columns.count) { renamed.columns[index].name = aliases[index] }
        // The layout is renamed by position too while it is known column by column.
        var position = 0
        for (index, segment) in renamed.segments.enumerated() {
            guard case .column(var column) = segment else { break }
            if position < aliases.count {
                column.name = aliases[position]
                renamed.segments[index] = .column(column)
            }
            position += 1
        }
        return renamed
    }

    func addFromItem(_ item: SQLFromItem, to scope: SQLScope, parent: SQLScope?) throws(InterceptionError) {
        switch item {
        case .table(let ref):
            scope.entries.append(try tableEntry(ref))
        case .subquery(let query, let alias, let lateral):
            var shape = try analyzeQuery(query, parent: lateral ? scope : parent, outermost: false)
            shape = try applyColumnAliases(alias?.columns ?? [], to: shape)
            scope.entries.append(SQLRangeEntry(name: alias?.name, source: .derived(shape), aliased: true))
        case .function(let calls, let alias, _):
            var name = alias?.name
            for call in calls {
                try walk(call, SQLExprContext(scope: scope), construct: "function in FROM")
                if name == nil, case .function(let function) = call.kind { name = function.lastName }
            }
            scope.entries.append(SQLRangeEntry(name: name, source: .opaque, aliased: alias != nil))
        case .join(let join):
            let before = scope.entries.count
            try addFromItem(join.left, to: scope, parent: parent)
            try addFromItem(join.right, to: scope, parent: parent)
            let joined = scope.entries[before...]
            if join.natural, let column = joined.lazy.compactMap(\.firstEncrypted).first {
                throw refuse(column, "NATURAL JOIN",
                    "the join columns are not named, so an encrypted column could be compared; use JOIN … ON")
            }
            for name in join.using {
                for entry in scope.entries[before..<scope.entries.count] {
                    if case .encrypted(let column) = entry.match(name) {
                        throw refuse(column, "JOIN … USING", "comparing two encrypted columns is not supported")
                    }
                }
            }
            if let condition = join.on {
                try walk(condition, SQLExprContext(scope: scope), construct: "JOIN condition")
            }
        case .nested(let inner, let alias):
            guard let alias else {
                try addFromItem(inner, to: scope, parent: parent)
                return
            }
            let innerScope = SQLScope(parent: parent)
            try addFromItem(inner, to: innerScope, parent: parent)
            var shape = SQLRelationShape()
            try expandStar([], scope: innerScope, into: &shape)
            shape = try applyColumnAliases(alias.columns, to: shape)
            scope.entries.append(SQLRangeEntry(name: alias.name, source: .derived(shape), aliased: true))
        }
    }

    // MARK: - Column resolution

    /// Resolves a column reference as PostgreSQL would, as far as the configuration tells.
    ///
    /// - Throws: `.ambiguousColumn` when an unqualified name could be an encrypted column but also
    ///   a column we do not know; `.unsupportedConstruct` for a field selection on an encrypted
    ///   column or a whole-row reference to a configured table.
    func resolve(_ parts: [String], scope: SQLScope, range: Range<Int>?) throws(InterceptionError) -> SQLResolvedColumn {
        switch parts.count {
        case 1:
            return try resolveUnqualified(parts[0], scope: scope)
        case 2:
            if let (entry, _) = scope.entry(named: parts[0]) {
                return resolved(entry.match(parts[1]), entry: entry, column: parts[1], qualifier: SQLIdentifier.quoted(parts[0]))
            }
            let base = try resolveUnqualified(parts[0], scope: scope)
            if let column = base.encrypted { throw refuse(column, "field selection") }
            try refuseUnresolvedTableReference(parts)
            return .plain
        case 3, 4:
            let tableName = QualifiedName(schema: parts[parts.count - 3], name: parts[parts.count - 2])
            var current: SQLScope? = scope
            while let level = current {
                if let entry = level.entries.first(where: { !$0.aliased && $0.tableName == tableName }) {
                    return resolved(
                        entry.match(parts[parts.count - 1]), entry: entry, column: parts[parts.count - 1],
                        qualifier: "\(SQLIdentifier.quoted(tableName.schema)).\(SQLIdentifier.quoted(tableName.name))")
                }
                current = level.parent
            }
            if parts.count == 3, let (entry, _) = scope.entry(named: parts[0]),
                case .encrypted(let column) = entry.match(parts[1])
            {
                throw refuse(column, "field selection")
            }
            try refuseUnresolvedTableReference(parts)
            return .plain
        default:
            return .plain
        }
    }

    private func resolved(_ match: SQLRangeEntry.Match, entry: SQLRangeEntry, column: String, qualifier: String?) -> SQLResolvedColumn {
        var viaDerived = false
        if case .derived = entry.source { viaDerived = true }
        switch match {
        case .encrypted(let encrypted):
            return SQLResolvedColumn(kind: .encrypted(encrypted), entry: entry, viaDerived: viaDerived, columnName: column, qualifier: qualifier)
        case .blindIndex(let encrypted):
            return SQLResolvedColumn(kind: .blindIndex(encrypted), entry: entry, viaDerived: viaDerived, columnName: column, qualifier: qualifier)
        case .plain, .none:
            return SQLResolvedColumn(kind: .plain, entry: entry, viaDerived: viaDerived, columnName: column, qualifier: qualifier)
        }
    }

    private func resolveUnqualified(_ name: String, scope: SQLScope) throws(InterceptionError) -> SQLResolvedColumn {
        var current: SQLScope? = scope
        var innerLevels: [SQLScope] = []
        while let level = current {
            var found: [(SQLRangeEntry, SQLRangeEntry.Match)] = []
            var mayExist = false
            for entry in level.entries {
                let match = entry.match(name)
                switch match {
                case .encrypted, .blindIndex, .plain: found.append((entry, match))
                case .none(let may): mayExist = mayExist || may
                }
            }
            if found.count > 1, let column = found.lazy.compactMap({ (_, match) -> EncryptedColumn? in
                if case .encrypted(let column) = match { return column }
                return nil
            }).first {
                throw refuse(column, "unqualified column reference",
                    "the name matches columns of several tables; qualify it", code: .ambiguousColumn)
            }
            if let (entry, match) = found.first {
                var qualifier = entry.name.map(SQLIdentifier.quoted)
                if let name = entry.name {
                    let shadowed = innerLevels.contains { $0.entries.contains { $0.name == name } }
                        || level.entries.filter({ $0.name == name }).count > 1
                    if shadowed {
                        if !entry.aliased, let table = entry.tableName {
                            qualifier = "\(SQLIdentifier.quoted(table.schema)).\(SQLIdentifier.quoted(table.name))"
                            if innerLevels.contains(where: { $0.entries.contains { !$0.aliased && $0.tableName == table } }) {
                                qualifier = nil
                            }
                        } else {
                            qualifier = nil
                        }
                    }
                }
                return resolved(match, entry: entry, column: name, qualifier: qualifier)
            }
            // A whole-row reference to a configured table (`SELECT c FROM customers c`).
            if let entry = level.entries.first(where: { $0.name == name }), let column = entry.firstEncrypted {
                throw refuse(column, "whole-row reference \(SQLIdentifier.quoted(name))")
            }
            if mayExist {
                if let outer = level.parent, let column = firstEncryptedMatch(name, from: outer) {
                    throw refuse(column, "unqualified column reference in a subquery",
                        "the name could be a column of the subquery's own tables or the outer encrypted column; qualify it",
                        code: .ambiguousColumn)
                }
                // A configured table's row identity: that table has the column, so PostgreSQL resolves
                // the name to it (or reports it ambiguous). Its origin pairs values with their rows.
                let owners = level.entries.filter { entry in
                    switch entry.source {
                    case .table(_, let table?): return table.rowIdentity == name
                    case .derived(let shape):
                        guard case .tableColumn(let table, _, _)? = shape.unlistedOrigin(name) else { return false }
                        return schema.tables[table]?.rowIdentity == name
                    default: return false
                    }
                }
                if owners.count == 1 {
                    return resolved(.plain, entry: owners[0], column: name, qualifier: owners[0].name.map(SQLIdentifier.quoted))
                }
                // `(c).ssn` or `ssn(c)` inside a subquery over tables we do not know: `c` may be an
                // outer configured table's whole row.
                var outer = level.parent
                while let outerLevel = outer {
                    if let entry = outerLevel.entries.first(where: { $0.name == name }), let column = entry.firstEncrypted {
                        throw refuse(column, "whole-row reference \(SQLIdentifier.quoted(name))")
                    }
                    outer = outerLevel.parent
                }
                return .plain
            }
            innerLevels.append(level)
            current = level.parent
        }
        return .plain
    }

    /// `customers.ssn` where `customers` is not (or no longer, being aliased) in scope: PostgreSQL
    /// rejects it, but it would have sent any literal next to it; refuse instead.
    private func refuseUnresolvedTableReference(_ parts: [String]) throws(InterceptionError) {
        let tableParts = Array(parts.dropLast())
        guard let table = schema.table(named: tableParts), let column = table.columns[parts[parts.count - 1]] else {
            return
        }
        throw refuse(column, "reference to a table that is not in FROM (or is aliased)",
            "qualify the column with the alias its table has in FROM")
    }

    private func firstEncryptedMatch(_ name: String, from scope: SQLScope) -> EncryptedColumn? {
        var current: SQLScope? = scope
        while let level = current {
            for entry in level.entries {
                if case .encrypted(let column) = entry.match(name) { return column }
            }
            current = level.parent
        }
        return nil
    }
}
