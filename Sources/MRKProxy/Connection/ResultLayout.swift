import MRKCrypto
import MRKPostgres
import MRKSQL

/// The server's result columns laid over what the statement's analysis expects (`ResultShape`),
/// and verified column by column.
///
/// What is decrypted is decided by the analysis and the configuration: a column the statement
/// reads from an encrypted column is decrypted and authenticated whatever the server says about
/// it, and must arrive as `bytea` from exactly that table and attribute. Plaintext where ciphertext
/// belongs, a column from another relation, a table changed under the configuration — all fail
/// with `.integrity`. The server's table OIDs only *locate* the columns of a `*` over a table the
/// configuration does not know (whose width the statement does not fix).
struct ResultLayout: Sendable {
    enum Slot: Sendable {
        case plain(PostgresOID)
        case encrypted(EncryptedSlot)
    }

    /// An encrypted result column, with everything opening its values needs.
    struct EncryptedSlot: Sendable {
        let column: EncryptedColumn
        /// The result column holding the row identity the values are bound to.
        let identityIndex: Int?
        let identityKind: RowIdentityEncoding.Kind?
        /// The table and column part of the associated data.
        let context: ColumnContext
        let position: Int

        /// The error for a value that does not open.
        var failure: ProxyError {
            ProxyError(.integrity, "a value of \(column.table).\(column.name) failed to decrypt: it was altered, or copied from another row or column")
        }
    }

    /// Column names as the server sent them.
    let names: [String]
    let slots: [Slot]
    /// Whether any column is decrypted.
    let hasEncryptedColumns: Bool

    /// Why a result does not match its statement; `catalogMayBeStale` when re-reading the
    /// catalog could make it match (a table changed since it was read).
    struct Mismatch: Error {
        let reason: String
        let catalogMayBeStale: Bool
    }

    private enum Expected {
        case column(ResultColumn)
        /// A column of a configured table's `*`.
        case tableColumn(Catalog.Table, Catalog.Column, instance: Int)
        case plainRun
    }

    /// Lays `columns` over `shape`.
    ///
    /// - Throws: `Mismatch` when the server's columns are not what the statement reads;
    ///   `ProxyError` `.refused` when an encrypted column's row identity is missing from the result.
    static func build(shape: ResultShape, columns: [PostgresColumn], catalog: Catalog) throws -> ResultLayout {
        let names = columns.map(\.name)
        // A column a migration is encrypting must still arrive as its plaintext type: after the
        // migration's last step it holds ciphertext, and a statement planned before must not
        // hand that out as a plain value.
        let migrating = catalog.plaintextMigrating
        if !migrating.isEmpty {
            for column in columns {
                if let expected = migrating[column.tableOID]?[column.tableColumn], column.type.rawValue != expected {
                    throw Mismatch(reason: "\(describe(column)) changed type (a migration finished)", catalogMayBeStale: true)
                }
            }
        }
        guard shape.hasEncryptedColumns else {
            return ResultLayout(names: names, slots: columns.map { .plain($0.type) }, hasEncryptedColumns: false)
        }
        // The expectations, with `*` over configured tables expanded from the catalog.
        var expected: [Expected] = []
        for segment in shape.segments {
            switch segment {
            case .column(let column):
                expected.append(.column(column))
            case .tableStar(let table, let instance):
                guard let found = catalog.tables[table.name] else {
                    throw Mismatch(reason: "\(table.name) is not in the catalog", catalogMayBeStale: true)
                }
                expected += found.columns.map { .tableColumn(found, $0, instance: instance) }
            case .plainStar:
                if case .plainRun = expected.last {} else { expected.append(.plainRun) }
            }
        }
        let fixed = expected.filter { if case .plainRun = $0 { return false } else { return true } }.count
        let runs = expected.count - fixed
        var extra = columns.count - fixed
        guard extra >= 0, runs > 0 || extra == 0 else {
            throw Mismatch(reason: "the result has \(columns.count) columns where the statement reads \(fixed)\(runs > 0 ? " or more" : "")",
                           catalogMayBeStale: true)
        }

        // Assign each expectation its result column; a run of unknown width takes the columns up
        // to where the next locatable expectation is found.
        var assigned: [(Expected, Int)] = []
        var position = 0
        for (index, expectation) in expected.enumerated() {
            guard case .plainRun = expectation else {
                assigned.append((expectation, position))
                position += 1
                continue
            }
            let remainingRuns = expected[(index + 1)...].filter { if case .plainRun = $0 { return true } else { return false } }.count
            var width = extra
            if remainingRuns > 0 {
                // Find the next expectation whose origin the server reports, `skip` fixed columns on.
                var skip = 0
                var target: (oid: UInt32, attnum: Int)?
                for later in expected[(index + 1)...] {
                    if case .plainRun = later { break }
                    if let origin = location(of: later, catalog: catalog) { target = origin; break }
                    skip += 1
                }
                if let target {
                    width = 0
                    while width <= extra, position + width + skip < columns.count {
                        let candidate = columns[position + width + skip]
                        if candidate.tableOID == target.oid && candidate.tableColumn == target.attnum { break }
                        width += 1
                    }
                    if width > extra { width = extra }
                }
            }
            for offset in 0..<width { assigned.append((.plainRun, position + offset)) }
            position += width
            extra -= width
        }
        guard position == columns.count else {
            throw Mismatch(reason: "the result's columns do not line up with the statement's", catalogMayBeStale: true)
        }

        // Row identities: for each encrypted column's table instance, the result column holding it.
        func identityIndex(table: QualifiedName, column: String, instance: Int) -> Int? {
            for (expectation, index) in assigned {
                switch expectation {
                case .column(let c):
                    if case .tableColumn(let t, let name, let i) = c.origin, t == table, name == column, i == instance { return index }
                case .tableColumn(let t, let c, let i):
                    if t.spec.name == table, c.name == column, i == instance { return index }
                case .plainRun:
                    continue
                }
            }
            return nil
        }

        var slots: [Slot] = columns.map { .plain($0.type) }
        var verifiedIdentities: Set<Int> = []
        for (expectation, index) in assigned {
            let server = columns[index]
            let column: EncryptedColumn
            let instance: Int
            let expectedName: String?
            switch expectation {
            case .plainRun:
                continue
            case .column(let c):
                guard case .encrypted(let encrypted, let i) = c.origin else { continue }
                (column, instance, expectedName) = (encrypted, i, c.name)
            case .tableColumn(let table, let c, let i):
                guard let encrypted = table.spec.columns[c.name] else {
                    // A plain column of the table's `*`: it must be the column the catalog lists there.
                    guard server.tableOID == table.oid, server.tableColumn == c.attnum, server.name == c.name else {
                        throw Mismatch(reason: "result column \(index + 1) should be \(table.spec.name).\(c.name) (from *) but the server sent \(describe(server))",
                                       catalogMayBeStale: true)
                    }
                    continue
                }
                (column, instance, expectedName) = (encrypted, i, c.name)
            }
            guard let table = catalog.tables[column.table], let attnum = table.attnums[column.name] else {
                throw Mismatch(reason: "\(column.table) is not in the catalog", catalogMayBeStale: true)
            }
            guard server.type == .bytea, server.tableOID == table.oid, server.tableColumn == attnum,
                  expectedName == nil || server.name == expectedName else {
                throw Mismatch(reason: "result column \(index + 1) should be \(column.table).\(column.name), a bytea column, but the server sent \(describe(server))",
                               catalogMayBeStale: true)
            }
            var identity: Int?
            if let identityColumn = table.spec.rowIdentity {
                guard let found = identityIndex(table: column.table, column: identityColumn, instance: instance) else {
                    throw ProxyError(.refused, "reading \(column.table).\(column.name) needs the row identity column \(identityColumn) in the same result (row_identity is configured)")
                }
                if !verifiedIdentities.contains(found) {
                    let source = columns[found]
                    guard source.tableOID == table.oid, source.tableColumn == table.attnums[identityColumn] else {
                        throw Mismatch(reason: "result column \(found + 1) should be the row identity \(column.table).\(identityColumn) but the server sent \(describe(source))",
                                       catalogMayBeStale: true)
                    }
                    verifiedIdentities.insert(found)
                }
                identity = found
            }
            slots[index] = .encrypted(EncryptedSlot(column: column, identityIndex: identity, identityKind: table.rowIdentityKind,
                                                    context: ColumnContext(table: column.table.aadName, column: column.name),
                                                    position: index))
        }
        return ResultLayout(names: names, slots: slots, hasEncryptedColumns: true)
    }

    /// Where the server should report an expectation's values from (table OID, attribute).
    private static func location(of expectation: Expected, catalog: Catalog) -> (oid: UInt32, attnum: Int)? {
        switch expectation {
        case .tableColumn(let table, let column, _):
            return (table.oid, column.attnum)
        case .column(let column):
            switch column.origin {
            case .encrypted(let encrypted, _):
                guard let table = catalog.tables[encrypted.table], let attnum = table.attnums[encrypted.name] else { return nil }
                return (table.oid, attnum)
            case .tableColumn(let name, let columnName, _):
                guard let table = catalog.tables[name], let attnum = table.attnums[columnName] else { return nil }
                return (table.oid, attnum)
            case .other:
                return nil
            }
        case .plainRun:
            return nil
        }
    }

    /// What the server said a column is (names and type OIDs only, never values).
    private static func describe(_ column: PostgresColumn) -> String {
        let origin = column.tableOID == 0 ? "no table" : "table OID \(column.tableOID) attribute \(column.tableColumn)"
        return "column \"\(column.name)\" of type OID \(column.type.rawValue) from \(origin)"
    }
}
