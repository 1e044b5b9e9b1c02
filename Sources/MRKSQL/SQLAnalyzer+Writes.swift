extension SQLAnalyzer {
    private static let valueOnly =
        "only a parameter, a literal, NULL or DEFAULT can be written to an encrypted column"

    // MARK: - INSERT

    func analyzeInsert(_ insert: SQLInsert, parent: SQLScope?) throws(InterceptionError) -> SQLRelationShape {
        try pushCTEs(insert.ctes, recursive: false, parent: parent)
        defer { popCTEs() }
        let target = try tableEntry(insert.table, writeTarget: true)
        let table = target.encryptedTable
        let columns = insert.columns ?? []
        for column in columns {
            for index in column.subscripts {
                try walk(index, SQLExprContext(scope: SQLScope(parent: parent)), construct: "INSERT column subscript")
            }
        }

        if let table {
            if insert.columns == nil, case .defaultValues = insert.source {
            } else if insert.columns == nil {
                throw InterceptionError(
                    .unsupportedConstruct, table: table.name, construct: "INSERT without a column list",
                    reason: "name the columns so that encrypted values can be located")
            }
            for column in columns {
                if let indexed = table.column(withBlindIndex: column.name) {
                    throw refuse(indexed, "INSERT into blind index column \(SQLIdentifier.quoted(column.name))",
                        "MRKProxy computes the blind index from the encrypted column's value", code: .blindIndexWrite)
                }
                if let encrypted = table.columns[column.name], column.hasIndirection {
                    throw refuse(encrypted, "subfield or subscript assignment")
                }
                // `(id, customers.ssn)`: PostgreSQL rejects it, but would log the statement with its values.
                if let encrypted = column.fields.lazy.compactMap({ table.columns[$0] }).first {
                    throw refuse(encrypted, "qualified column name in an INSERT column list", "name the column without a qualifier")
                }
            }
        }

        let searchable = columns.compactMap { column -> EncryptedColumn? in
            guard let encrypted = table?.columns[column.name], encrypted.search == .equality else { return nil }
            return encrypted
        }
        var singleRowIdentity: ValueSource?
        var rowCount = 0
        switch insert.source {
        case .defaultValues:
            break
        case .values(let rows):
            rowCount = rows.count
            let scope = SQLScope(parent: parent)
            for row in rows {
                let identity = try analyzeValuesRow(row, columns: columns, table: table, scope: scope)
                if rows.count == 1 { singleRowIdentity = identity }
            }
            if let table, columns.contains(where: { table.columns[$0.name] != nil }) { markTouched() }
            if !searchable.isEmpty, let end = insert.columnListEnd {
                let names = searchable.map { ", " + SQLIdentifier.quoted($0.blindIndexColumn) }.joined()
                self.insert(at: tokens[end].range.lowerBound, [.text(names)])
            }
        case .query(let query):
            if let table, let column = columns.lazy.compactMap({ table.columns[$0.name] }).first {
                markTouched()
                throw refuse(column, "INSERT … SELECT into the column",
                    "values must be parameters or literals so that MRKProxy can encrypt them", code: .insertSelect)
            }
            let shape = try analyzeQuery(query, parent: parent, outermost: false)
            if let column = shape.firstEncrypted {
                throw refuse(column, "INSERT … SELECT of the column",
                    "copying ciphertext between rows or tables is not supported", code: .insertSelect)
            }
        }

        if let onConflict = insert.onConflict {
            try analyzeOnConflict(onConflict, target: target, table: table, rowCount: rowCount,
                singleRowIdentity: singleRowIdentity, parent: parent)
        }
        return try analyzeReturning(insert.returning, scope: scopeWith([target], parent: parent))
    }

    private func scopeWith(_ entries: [SQLRangeEntry], parent: SQLScope?) -> SQLScope {
        let scope = SQLScope(parent: parent)
        scope.entries = entries
        return scope
    }

    /// One VALUES row of an INSERT; returns the row's identity value source when the table has one.
    private func analyzeValuesRow(
        _ row: SQLValuesRow, columns: [SQLAssignment.Target], table: EncryptedTable?, scope: SQLScope
    ) throws(InterceptionError) -> ValueSource? {
        guard let table else {
            for item in row.items { try walk(item, SQLExprContext(scope: scope), construct: "INSERT value") }
            return nil
        }
        guard row.items.count == columns.count else {
            throw InterceptionError(
                .unparseable, table: table.name, construct: "VALUES row with \(row.items.count) values for \(columns.count) columns",
                reason: "each VALUES row must have one value per listed column")
        }
        var identity: ValueSource?
        if let rowIdentity = table.rowIdentity, let index = columns.firstIndex(where: { $0.name == rowIdentity }) {
            if let source = try valueSource(row.items[index]), source != .null { identity = source }
        }
        var blindIndexes: [SQLEdit.Piece] = []
        for (item, column) in zip(row.items, columns) {
            guard let encrypted = table.columns[column.name] else {
                try walk(item, SQLExprContext(scope: scope), construct: "INSERT value")
                continue
            }
            let inner = item.unparenthesized
            if case .defaultValue = inner.kind {
                if encrypted.search == .equality { blindIndexes.append(.text(", DEFAULT")) }
                continue
            }
            guard let source = try valueSource(item) else {
                throw refuse(encrypted, "INSERT of an expression into the column", Self.valueOnly)
            }
            if source == .null {
                if case .null = inner.kind {} else { replace(item.range, with: [.text("NULL")]) }
                if encrypted.search == .equality { blindIndexes.append(.text(", NULL")) }
                continue
            }
            if let rowIdentity = table.rowIdentity, identity == nil {
                throw refuse(encrypted, "INSERT without a usable \(SQLIdentifier.quoted(rowIdentity)) value",
                    "ciphertexts are bound to the row_identity column; give it a parameter or literal value in the same row",
                    code: .rowIdentityUnknown)
            }
            replace(item.range, with: [.parameter(.encrypt(source, column: encrypted, rowIdentity: identity))])
            if encrypted.search == .equality {
                blindIndexes += [.text(", "), .parameter(.blindIndex(source, column: encrypted))]
            }
        }
        if !blindIndexes.isEmpty { insert(at: tokens[row.closingParenthesis].range.lowerBound, blindIndexes) }
        return identity
    }

    private func analyzeOnConflict(
        _ onConflict: SQLOnConflict, target: SQLRangeEntry, table: EncryptedTable?, rowCount: Int,
        singleRowIdentity: ValueSource?, parent: SQLScope?
    ) throws(InterceptionError) {
        let excluded = SQLRangeEntry(name: "excluded", source: target.source, aliased: true)
        let scope = scopeWith([target, excluded], parent: parent)
        // The conflict target names the target table's columns only.
        let targetScope = scopeWith([target], parent: parent)
        var targetIsRowIdentity = false
        if let expressions = onConflict.targetExpressions {
            for expression in expressions {
                let inner = expression.unparenthesized
                if case .column(let parts) = inner.kind {
                    let resolved = try resolve(parts, scope: targetScope, range: inner.range)
                    if let column = resolved.encrypted {
                        throw refuse(column, "ON CONFLICT target",
                            "a unique index over ciphertext never conflicts; use the blind index column")
                    }
                } else {
                    try walk(expression, SQLExprContext(scope: targetScope), construct: "ON CONFLICT target")
                }
            }
            if let rowIdentity = table?.rowIdentity, expressions.count == 1,
                case .column(let parts) = expressions[0].unparenthesized.kind, parts.last == rowIdentity
            {
                targetIsRowIdentity = true
            }
        }
        if let predicate = onConflict.targetWhere {
            try walk(predicate, SQLExprContext(scope: targetScope), construct: "ON CONFLICT WHERE")
        }
        guard case .update(let assignments, let whereClause) = onConflict.action else { return }
        for assignment in assignments {
            try analyzeAssignment(
                assignment, table: table, scope: scope, excluded: excluded,
                excludedAllowed: targetIsRowIdentity || table?.rowIdentity == nil
            ) { () throws(InterceptionError) -> ValueSource? in
                guard let table, let rowIdentity = table.rowIdentity else { return nil }
                guard targetIsRowIdentity, rowCount == 1, let singleRowIdentity else {
                    throw InterceptionError(
                        .rowIdentityUnknown, table: table.name, column: nil,
                        construct: "ON CONFLICT DO UPDATE SET of an encrypted column",
                        reason: "with row_identity the conflict target must be (\(SQLIdentifier.quoted(rowIdentity))) "
                            + "and VALUES must have one row, so that the row is known")
                }
                return singleRowIdentity
            }
        }
        if let whereClause {
            try walk(whereClause, SQLExprContext(scope: scope), construct: "ON CONFLICT DO UPDATE WHERE")
        }
    }

    // MARK: - SET

    /// One SET item of UPDATE or ON CONFLICT DO UPDATE.
    ///
    /// - Parameters:
    ///   - excluded: the EXCLUDED entry for ON CONFLICT, nil for UPDATE.
    ///   - excludedAllowed: whether `SET col = EXCLUDED.col` keeps the row binding.
    ///   - rowIdentity: the row identity value source for an encrypted value (nil when the table
    ///     has none); throws when it cannot be known.
    func analyzeAssignment(
        _ assignment: SQLAssignment, table: EncryptedTable?, scope: SQLScope, excluded: SQLRangeEntry?,
        excludedAllowed: Bool, rowIdentity: () throws(InterceptionError) -> ValueSource?
    ) throws(InterceptionError) {
        for target in assignment.targets {
            for index in target.subscripts {
                try walk(index, SQLExprContext(scope: scope), construct: "SET subscript")
            }
        }
        if let table {
            for target in assignment.targets {
                if let indexed = table.column(withBlindIndex: target.name) {
                    throw refuse(indexed, "SET of blind index column \(SQLIdentifier.quoted(target.name))",
                        "MRKProxy computes the blind index from the encrypted column's value", code: .blindIndexWrite)
                }
                if let identity = table.rowIdentity, target.name == identity {
                    throw InterceptionError(
                        .rowIdentityChange, table: table.name, column: identity, construct: "SET of the row_identity column",
                        reason: "the row's ciphertexts are bound to it and could no longer be decrypted")
                }
                // `SET c.ssn = …`: PostgreSQL rejects it, but would log the statement with its values.
                if let encrypted = target.fields.lazy.compactMap({ table.columns[$0] }).first {
                    throw refuse(encrypted, "qualified column name in SET", "name the column without a qualifier")
                }
                if let encrypted = table.columns[target.name], assignment.isMultiple || target.hasIndirection {
                    markTouched()
                    let construct = assignment.isMultiple ? "multiple-column SET (…) = (…)" : "subfield or subscript assignment"
                    throw refuse(encrypted, construct, Self.valueOnly)
                }
            }
        }
        guard !assignment.isMultiple, let target = assignment.targets.first,
            let encrypted = table?.columns[target.name], case .expression(let value) = assignment.value
        else {
            switch assignment.value {
            case .expression(let value):
                try walk(value, SQLExprContext(scope: scope), construct: "SET value")
            case .row(let items):
                for item in items { try walk(item, SQLExprContext(scope: scope), construct: "SET value") }
            case .query(let query):
                let shape = try analyzeQuery(query, parent: scope, outermost: false)
                if let column = shape.firstEncrypted {
                    throw refuse(column, "SET from a subquery returning the column",
                        "copying ciphertext between columns is not supported", code: .insertSelect)
                }
            }
            return
        }
        markTouched()
        let end = assignment.range.upperBound - 1
        let indexName = SQLIdentifier.quoted(encrypted.blindIndexColumn)
        let searchable = encrypted.search == .equality
        let inner = value.unparenthesized
        if case .defaultValue = inner.kind {
            if searchable { insert(after: end, [.text(", \(indexName) = DEFAULT")]) }
            return
        }
        if case .column(let parts) = inner.kind {
            let resolved = try resolve(parts, scope: scope, range: inner.range)
            if let excluded, resolved.entry === excluded, resolved.encrypted == encrypted {
                guard excludedAllowed else {
                    throw refuse(encrypted, "SET … = EXCLUDED.\(SQLIdentifier.quoted(encrypted.name))",
                        "with row_identity the conflict target must be the row_identity column so that the "
                            + "excluded row's ciphertext belongs to the updated row",
                        code: .rowIdentityUnknown)
                }
                if searchable { insert(after: end, [.text(", \(indexName) = excluded.\(indexName)")]) }
                return
            }
        }
        guard let source = try valueSource(value) else {
            let what: String
            switch inner.kind {
            case .column: what = "another column"
            case .subquery: what = "a subquery"
            default: what = "an expression"
            }
            throw refuse(encrypted, "SET from \(what)", Self.valueOnly, code: .insertSelect)
        }
        if source == .null {
            if case .null = inner.kind {} else { replace(value.range, with: [.text("NULL")]) }
            if searchable { insert(after: end, [.text(", \(indexName) = NULL")]) }
            return
        }
        let identity = try rowIdentity()
        replace(value.range, with: [.parameter(.encrypt(source, column: encrypted, rowIdentity: identity))])
        if searchable {
            insert(after: end, [.text(", \(indexName) = "), .parameter(.blindIndex(source, column: encrypted))])
        }
    }

    // MARK: - UPDATE and DELETE

    func analyzeUpdate(_ update: SQLUpdate, parent: SQLScope?) throws(InterceptionError) -> SQLRelationShape {
        try pushCTEs(update.ctes, recursive: false, parent: parent)
        defer { popCTEs() }
        let target = try tableEntry(update.table, writeTarget: true)
        let scope = SQLScope(parent: parent)
        scope.entries.append(target)
        for item in update.from { try addFromItem(item, to: scope, parent: parent) }
        let table = target.encryptedTable
        for assignment in update.assignments {
            try analyzeAssignment(assignment, table: table, scope: scope, excluded: nil, excludedAllowed: false) {
                () throws(InterceptionError) -> ValueSource? in
                guard let table, let rowIdentity = table.rowIdentity else { return nil }
                return try rowIdentityFromWhere(update, target: target, table: table, rowIdentity: rowIdentity)
            }
        }
        if let whereClause = update.whereClause {
            try walk(whereClause, SQLExprContext(scope: scope), construct: "WHERE condition")
        }
        return try analyzeReturning(update.returning, scope: scope)
    }

    /// `WHERE … AND <row_identity> = <parameter or literal> AND …` of an UPDATE.
    private func rowIdentityFromWhere(
        _ update: SQLUpdate, target: SQLRangeEntry, table: EncryptedTable, rowIdentity: String
    ) throws(InterceptionError) -> ValueSource {
        func isIdentity(_ expression: SQLExpr) -> Bool {
            guard case .column(let parts) = expression.unparenthesized.kind, parts.last == rowIdentity else {
                return false
            }
            switch parts.count {
            case 1: return true
            case 2: return parts[0] == target.name
            default:
                return !target.aliased
                    && target.tableName == QualifiedName(schema: parts[parts.count - 3], name: parts[parts.count - 2])
            }
        }
        func conjuncts(_ expression: SQLExpr) -> [SQLExpr] {
            let inner = expression.unparenthesized
            if case .binary("and", let left, let right) = inner.kind { return conjuncts(left) + conjuncts(right) }
            return [inner]
        }
        if !update.currentOf, let whereClause = update.whereClause {
            for conjunct in conjuncts(whereClause) {
                guard case .binary("=", let left, let right) = conjunct.kind else { continue }
                if isIdentity(left), let source = try valueSource(right), source != .null { return source }
                if isIdentity(right), let source = try valueSource(left), source != .null { return source }
            }
        }
        throw InterceptionError(
            .rowIdentityUnknown, table: table.name, column: nil,
            construct: "UPDATE of an encrypted column without WHERE \(SQLIdentifier.quoted(rowIdentity)) = <value>",
            reason: "ciphertexts are bound to the row_identity column; add WHERE \(SQLIdentifier.quoted(rowIdentity)) = $n "
                + "(a parameter or literal) so that the row is known")
    }

    func analyzeDelete(_ delete: SQLDelete, parent: SQLScope?) throws(InterceptionError) -> SQLRelationShape {
        try pushCTEs(delete.ctes, recursive: false, parent: parent)
        defer { popCTEs() }
        let target = try tableEntry(delete.table, writeTarget: true)
        let scope = SQLScope(parent: parent)
        scope.entries.append(target)
        for item in delete.using { try addFromItem(item, to: scope, parent: parent) }
        if let whereClause = delete.whereClause {
            try walk(whereClause, SQLExprContext(scope: scope), construct: "WHERE condition")
        }
        return try analyzeReturning(delete.returning, scope: scope)
    }

    private func analyzeReturning(_ targets: [SQLTarget]?, scope: SQLScope) throws(InterceptionError)
        -> SQLRelationShape
    {
        var shape = SQLRelationShape()
        for target in targets ?? [] {
            try analyzeTarget(target, scope: scope, into: &shape, construct: "RETURNING")
        }
        // Returned values are checked against their row's identity, which must be returned too.
        // Refuse now: found missing only after the write ran, the error would come too late.
        for column in shape.columns.compactMap(\.encrypted) {
            guard let identity = schema.tables[column.table]?.rowIdentity else { continue }
            let returnsIdentity = (targets ?? []).contains { target in
                switch target.expression.unparenthesized.kind {
                case .star: return true
                case .column(let parts):
                    guard parts.last == identity else { return false }
                    return parts.count == 1 || scope.entry(named: parts[parts.count - 2])?.0.tableName == column.table
                default: return false
                }
            }
            if !returnsIdentity {
                throw refuse(column, "RETURNING without the row identity column \(identity)",
                    "returned values are checked against their row's \(identity); add it to RETURNING")
            }
        }
        return shape
    }
}
