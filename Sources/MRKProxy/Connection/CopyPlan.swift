/// How `EncryptedConnection.copyIn` maps the caller's columns to the COPY columns: plain
/// columns pass through, encrypted ones are sealed (bound to the row's identity value) and
/// searchable ones also get their blind index column.
struct CopyPlan {
    enum Output {
        case plain(Int)
        case encrypt(Int, EncryptedColumn, identity: Int?)
        case blindIndex(Int, EncryptedColumn)
    }

    let sql: String
    let output: [Output]
    /// The table, resolved.
    let table: QualifiedName

    init(table: String, columns: [String], schema: EncryptedSchema) throws(ProxyError) {
        let parts = table.split(separator: ".").map { $0.lowercased() }
        guard (1...2).contains(parts.count), parts.allSatisfy(isPlainIdentifier) else {
            throw ProxyError(.invalidValue, "copyIn: table must be name or schema.name in lower case")
        }
        let name = QualifiedName(schema: parts.count == 2 ? parts[0] : (schema.searchPath.first ?? "public"), name: parts[parts.count - 1])
        guard columns.allSatisfy(isPlainIdentifier), Set(columns).count == columns.count else {
            throw ProxyError(.invalidValue, "copyIn: columns must be distinct lower-case names")
        }
        let spec = schema.tables[name]
        var sqlColumns: [String] = []
        var output: [Output] = []
        let identityIndex = spec?.rowIdentity.flatMap { columns.firstIndex(of: $0) }
        for (index, column) in columns.enumerated() {
            if let encrypted = spec?.columns[column] {
                if spec?.rowIdentity != nil && identityIndex == nil {
                    throw ProxyError(.invalidValue, "copyIn: \(name).\(column) is bound to its row: include the row identity column \(spec!.rowIdentity!)")
                }
                sqlColumns.append(column)
                output.append(.encrypt(index, encrypted, identity: identityIndex))
                if encrypted.search == .equality {
                    sqlColumns.append(encrypted.blindIndexColumn)
                    output.append(.blindIndex(index, encrypted))
                }
            } else {
                if let spec, spec.columns.values.contains(where: { $0.blindIndexColumn == column }) {
                    throw ProxyError(.invalidValue, "copyIn: \(name).\(column) is a blind index column; MRKProxy computes it")
                }
                sqlColumns.append(column)
                output.append(.plain(index))
            }
        }
        self.table = name
        sql = "COPY \(name.schema).\(name.name) (\(sqlColumns.joined(separator: ", "))) FROM STDIN"
        self.output = output
    }
}
