import Foundation
import MRKPostgres
import MRKCrypto
import MRKSQL

// What `mrkproxy serve` (the PostgreSQL wire-protocol proxy) runs a client's statements with.
// The proxy is a client of the library: the same analysis, binding, sealing, result checks and
// decoding as `query`, with values kept in the client's wire forms where they pass through.

/// A client's statement: the library's plan and binder, and what the client's parameters are.
package final class WireStatement {
    package let sql: String
    let binder: Binder
    package var plan: StatementPlan { binder.plan }
    /// The client's `$n` count.
    package let parameterCount: Int
    /// What each client parameter is used for.
    package let parameterUses: [ParameterUse]
    /// Whether the statement goes to the server exactly as written, every parameter passed
    /// through in order (nothing encrypted, nothing lifted).
    package let isUnchanged: Bool
    /// Whether the plan holds values lifted from the SQL text (then it is not cached).
    package var holdsLiterals: Bool { plan.holdsLiterals }

    /// How a client parameter is used by the plan.
    package enum ParameterUse: Equatable {
        /// Passed to the server as the client sent it (`passthroughIndex`: its server parameter).
        case passthrough(passthroughIndex: Int?)
        /// Sealed or blind-indexed for a column of this type (maybe also passed through).
        case encrypted(ColumnValueType, passthroughIndex: Int?)
        /// A row identity bound into ciphertexts (and passed through).
        case rowIdentity(RowIdentityEncoding.Kind, passthroughIndex: Int?)

        package var passthroughIndex: Int? {
            switch self {
            case .passthrough(let index), .encrypted(_, let index), .rowIdentity(_, let index): index
            }
        }
    }

    init(sql: String, binder: Binder, parameterCount: Int, catalog: Catalog) {
        self.sql = sql
        self.binder = binder
        self.parameterCount = parameterCount
        let plan = binder.plan
        var passthrough = [Int?](repeating: nil, count: parameterCount)
        var types = [ColumnValueType?](repeating: nil, count: parameterCount)
        var identities = [RowIdentityEncoding.Kind?](repeating: nil, count: parameterCount)
        for (index, parameter) in plan.parameters.enumerated() {
            switch parameter {
            case .passthrough(.parameter(let i)) where i < parameterCount:
                passthrough[i] = passthrough[i] ?? index
            case .encrypt(.parameter(let i), let column, let identity):
                if i < parameterCount { types[i] = column.type }
                if case .parameter(let j)? = identity, j < parameterCount {
                    identities[j] = catalog.tables[column.table]?.rowIdentityKind ?? .text
                }
            case .encrypt(_, let column, let identity):
                if case .parameter(let j)? = identity, j < parameterCount {
                    identities[j] = catalog.tables[column.table]?.rowIdentityKind ?? .text
                }
            case .blindIndex(.parameter(let i), let column) where i < parameterCount:
                types[i] = column.type
            default: break
            }
        }
        for filter in plan.postFilters {
            for case .parameter(let i) in filter.acceptedValues where i < parameterCount { types[i] = filter.column.type }
        }
        parameterUses = (0..<parameterCount).map { i in
            if let type = types[i] { return .encrypted(type, passthroughIndex: passthrough[i]) }
            if let kind = identities[i] { return .rowIdentity(kind, passthroughIndex: passthrough[i]) }
            return .passthrough(passthroughIndex: passthrough[i])
        }
        isUnchanged = plan.sql == sql && plan.parameters.enumerated().allSatisfy { index, parameter in
            if case .passthrough(.parameter(index)) = parameter { return true }
            return false
        }
    }
}

/// One result column as the client sees it: encrypted columns with their plaintext type.
package struct WireColumn: Sendable {
    package var name: String
    package var tableOID: UInt32
    package var attributeNumber: Int16
    package var typeOID: UInt32
    package var typeSize: Int16
    package var typeModifier: Int32
    /// Set for a decrypted column: the configured plaintext type.
    package var plaintextType: ColumnValueType?
}

/// A parameter value as a client sent it.
package struct WireParameter: Sendable {
    package var bytes: [UInt8]?
    package var format: PostgresFormat
    /// The type the client declared (Parse), 0 when unspecified.
    package var typeOID: UInt32

    package init(bytes: [UInt8]?, format: PostgresFormat, typeOID: UInt32) {
        self.bytes = bytes
        self.format = format
        self.typeOID = typeOID
    }
}

/// A statement prepared on the server for a client's named statement.
package struct WirePrepared {
    package let statement: WireStatement
    /// The server-side name (`mrkproxy_…`).
    package let serverName: String
    /// The parameter types the client sees (plaintext types for encrypted values).
    package let parameterTypes: [UInt32]
    /// The result columns the client sees; nil when the statement returns no rows.
    package let columns: [WireColumn]?
    /// The server's parameter types, for binding.
    let serverParameterTypes: [PostgresOID]
}

/// What running a statement produces, for relaying to the client.
package enum WireEvent {
    /// A result set begins (hidden columns removed, encrypted columns with plaintext types).
    case columns([WireColumn])
    /// One row: `WireExecution.cells` holds its cells, plain ones by reference into `row`,
    /// encrypted ones decrypted.
    case row(PostgresRow)
    /// A statement finished (the tag counts the rows delivered when rows were filtered).
    case complete(commandTag: String)
    case emptyQuery
    case copyIn(CopyInFeed)
    case copyOut(binary: Bool, columnFormats: [PostgresFormat])
    case copyOutData(UnsafeRawBufferPointer)
}

extension EncryptedConnection {
    /// The session's settings that the wire proxy relays (`ParameterStatus`).
    package func serverParameter(_ name: String) -> String? { connection.parameterStatus(name) }

    /// The server's transaction state, for `ReadyForQuery`.
    package var wireTransactionStatus: PostgresConnection.TransactionStatus { connection.transactionStatus }

    /// Where server notices go while statements run (the proxy relays them).
    package var noticeHandler: ((PostgresNotice) -> Void)? {
        get { connection.noticeHandler }
        set { connection.noticeHandler = newValue }
    }

    /// A handle that cancels the statement in progress from any thread (make it on this
    /// connection's thread).
    package func makeCanceller() -> PostgresCanceller { connection.makeCanceller() }

    /// The `COPY … FROM STDIN` into a configured table in `sql`, which the proxy loads itself.
    package func wireCopyStatement(_ sql: String) throws(ProxyError) -> SQLCopyStatement? {
        do {
            return try database.interceptor.copyFromStdin(sql)
        } catch {
            throw ProxyError(.refused, error.reason)
        }
    }

    /// The statement kind, for metrics (`select`, `insert`, …, `other`).
    package func kindName(_ statement: WireStatement) -> String { statement.plan.kindName }

    /// Whether the server connection is still up.
    package var isServerConnected: Bool { connection.isConnected }

    /// The session's time zone, for rendering decrypted `timestamptz` as the server would.
    package var sessionTimeZone: TimeZone? {
        connection.parameterStatus("TimeZone").flatMap { TimeZone(identifier: $0) } ?? TimeZone(identifier: "UTC")
    }

    /// Which analysis is in force (it changes when a migration finishes): plans kept across
    /// statements are dropped when it does.
    package var analysisVersion: Int { database.catalogs.interceptor.schemaVersion }

    /// The highest `$n` in `sql`.
    package func highestParameter(in sql: String) -> Int { database.interceptor.highestParameter(in: sql) }

    /// Plans a client's statement (from the plan cache when it was run before).
    ///
    /// - Throws: `.refused` (nothing may be sent), `.readOnlyRegion`.
    package func wirePlan(_ sql: String, parameterCount: Int) throws(ProxyError) -> WireStatement {
        let binder = try cachedBinder(sql, parameterCount)
        return WireStatement(sql: sql, binder: binder, parameterCount: parameterCount, catalog: database.catalogs.catalog.catalog)
    }

    /// Prepares a client's statement on the server and describes it as the client sees it.
    package func wirePrepare(_ statement: WireStatement, serverName: String, declaredTypes: [UInt32]) throws(ProxyError) -> WirePrepared {
        let plan = statement.plan
        var serverTypes = plan.parameters.map(\.wireType)
        for (i, use) in statement.parameterUses.enumerated() {
            if let index = use.passthroughIndex, i < declaredTypes.count, declaredTypes[i] != 0 {
                serverTypes[index] = PostgresOID(declaredTypes[i])
            }
        }
        try run { try connection.prepare(name: serverName, sql: plan.sql, parameterTypes: serverTypes) }
        let described = try run { try connection.describePrepared(name: serverName) }
        let parameterTypes: [UInt32] = statement.parameterUses.enumerated().map { i, use in
            switch use {
            case .encrypted(let type, _): return WireValueCodec.oid(type)
            case .passthrough(let index), .rowIdentity(_, let index):
                if let index, index < described.parameterTypes.count { return described.parameterTypes[index].rawValue }
                return i < declaredTypes.count && declaredTypes[i] != 0 ? declaredTypes[i] : 25
            }
        }
        let columns: [WireColumn]? = described.columns.isEmpty && plan.result.segments.isEmpty ? nil
            : try wireColumns(plan: plan, columns: described.columns)
        return WirePrepared(statement: statement, serverName: serverName, parameterTypes: parameterTypes, columns: columns,
                            serverParameterTypes: described.parameterTypes)
    }

    /// Removes a statement `wirePrepare` made.
    package func wireDeallocate(serverName: String) {
        _ = try? connection.deallocate(name: serverName)
    }

    /// The server parameters for a client's values: sealed and indexed as the plan says, the
    /// others passed through exactly as the client sent them.
    ///
    /// - Throws: `.invalidValue` (a value is not valid for its encrypted column's type, never
    ///   quoting it), key errors.
    package func wireBind(_ statement: WireStatement, _ parameters: [WireParameter]) throws(ProxyError) -> (parameters: [PostgresParameter], values: [SQLValue]) {
        guard parameters.count >= statement.parameterCount else {
            throw ProxyError(.invalidValue, "the statement uses $\(statement.parameterCount) but \(parameters.count) values were given")
        }
        var values = [SQLValue](repeating: .null, count: statement.parameterCount)
        var raw = [PostgresParameter](repeating: .null, count: statement.parameterCount)
        for (i, use) in statement.parameterUses.enumerated() {
            let parameter = parameters[i]
            raw[i] = PostgresParameter(bytes: parameter.bytes, format: parameter.format, type: PostgresOID(parameter.typeOID))
            guard let bytes = parameter.bytes else { continue }
            switch use {
            case .passthrough: continue
            case .encrypted(let type, _):
                if parameter.format == .binary {
                    values[i] = try WireValueCodec.value(binary: bytes, as: type, column: "$\(i + 1)")
                } else {
                    guard let text = String(validating: bytes, as: UTF8.self) else {
                        throw ProxyError(.invalidValue, "$\(i + 1) is not valid UTF-8 text")
                    }
                    values[i] = .text(text)
                }
            case .rowIdentity(let kind, _):
                values[i] = try Self.identityValue(bytes, format: parameter.format, kind: kind, position: i + 1)
            }
        }
        let seals = statement.plan.parameters.contains { if case .encrypt = $0 { return true } else { return false } }
        return (try statement.binder.bind(values, raw: raw, session: try bindingSession(sealing: seals)), values)
    }

    /// Runs a statement of the proxy's own (`BEGIN`, `COMMIT`, `ROLLBACK` around a client's
    /// batch) directly, without analysis. Returns its command tag.
    @discardableResult
    package func wireCommand(_ sql: String) throws(ProxyError) -> String {
        try run { try connection.execute(sql).commandTag }
    }

    private static func identityValue(_ bytes: [UInt8], format: PostgresFormat, kind: RowIdentityEncoding.Kind,
                                      position: Int) throws(ProxyError) -> SQLValue {
        func invalid() -> ProxyError { ProxyError(.invalidValue, "$\(position) is not a valid row identity (\(kind.rawValue))") }
        guard format == .binary else {
            guard let text = String(validating: bytes, as: UTF8.self) else { throw invalid() }
            return .text(text)
        }
        switch kind {
        case .integer:
            guard [2, 4, 8].contains(bytes.count) else { throw invalid() }
            var value: Int64 = bytes[0] >= 0x80 ? -1 : 0
            for byte in bytes { value = value << 8 | Int64(byte) }
            return .int(Int(value))
        case .text:
            guard let text = String(validating: bytes, as: UTF8.self) else { throw invalid() }
            return .text(text)
        case .uuid:
            return try WireValueCodec.value(binary: bytes, as: .uuid, column: "$\(position)")
        }
    }

    /// Starts a client's planned statement (`query` is its plan's text, bound parameters or its
    /// prepared name; a string of several statements none of which touches a configured table
    /// runs whole with the simple protocol) and returns its results, pulled one step at a time:
    /// checked and decrypted exactly as for `query`.
    ///
    /// - Parameter values: the client's parameters as values, for truncated-index post-filters.
    package func wireStart(_ statement: WireStatement, query: PostgresConnection.Query, resultFormat: PostgresFormat,
                           values: [SQLValue] = []) throws(ProxyError) -> WireExecution {
        try session.check(connection)
        try checkCurrent(statement.plan)
        try wireMigrationCheck(statement.plan)
        let cursor = try run { try connection.start(query, resultFormat: resultFormat) }
        return WireExecution(connection: self, plan: statement.plan, values: values, cursor: cursor)
    }
    /// The columns the client sees for `columns` of `plan`'s result.
    func wireColumns(plan: StatementPlan, columns: [PostgresColumn], layout known: ResultLayout? = nil) throws(ProxyError) -> [WireColumn] {
        let layout: ResultLayout
        if let known { layout = known } else { layout = try self.layout(for: plan, columns: columns) }
        let visible = columns.count - min(plan.hiddenTrailingColumns, columns.count)
        return (0..<visible).map { index in
            let column = columns[index]
            var wire = WireColumn(name: column.name, tableOID: column.tableOID, attributeNumber: Int16(truncatingIfNeeded: column.tableColumn),
                                  typeOID: column.type.rawValue, typeSize: column.typeSize, typeModifier: column.typeModifier)
            if case .encrypted(let slot) = layout.slots[index] {
                wire.plaintextType = slot.column.type
                wire.typeOID = WireValueCodec.oid(slot.column.type)
                wire.typeSize = WireValueCodec.size(slot.column.type)
                wire.typeModifier = -1
            }
            return wire
        }
    }
}


/// A client's statement running on the server, its results pulled one step at a time (so the
/// proxy can stop pulling while its client is slow to read). Use it on the connection's thread
/// and pull it to its end, or `abandon()` it, before running anything else.
package final class WireExecution {
    private let connection: EncryptedConnection
    private let plan: StatementPlan
    private let values: [SQLValue]
    private let cursor: PostgresQueryCursor
    private var decoder: ResultDecoder?
    private var delivered = 0
    /// The cells of the row the last `.row` event stands for.
    package private(set) var cells: [ResultDecoder.WireCell] = []

    init(connection: EncryptedConnection, plan: StatementPlan, values: [SQLValue], cursor: PostgresQueryCursor) {
        self.connection = connection
        self.plan = plan
        self.values = values
        self.cursor = cursor
    }

    /// The next step; nil when the statement is done.
    ///
    /// - Throws: `.integrity` (a result that is not what the statement reads, a value that does
    ///   not open), `.database` (the server's error, with its fields in `server`).
    package func next() throws(ProxyError) -> WireEvent? {
        while true {
            let event: PostgresQueryEvent?
            do {
                event = try cursor.next()
            } catch {
                let failure = ProxyError.from(error)
                connection.noticeMigrationError(failure)
                throw failure
            }
            guard let event else { return nil }
            switch event {
            case .columns(let columns):
                do throws(ProxyError) {
                    let layout = try connection.layout(for: plan, columns: columns)
                    decoder = try ResultDecoder(layout: layout, plan: plan, values: values, ciphers: connection.ciphers,
                                                esdk: connection.database.esdk, context: connection.session.context)
                    delivered = 0
                    return .columns(try connection.wireColumns(plan: plan, columns: columns, layout: layout))
                } catch {
                    cursor.abandon()
                    throw error
                }
            case .row(let row):
                guard let decoder else { continue }
                do throws(ProxyError) {
                    guard try decoder.decodeWireRow(row.result, row.index, into: &cells) else { continue }
                } catch {
                    cursor.abandon()
                    throw error
                }
                delivered += 1
                return .row(row)
            case .complete(let tag):
                if !plan.postFilters.isEmpty, tag.hasPrefix("SELECT ") { return .complete(commandTag: "SELECT \(delivered)") }
                return .complete(commandTag: tag)
            case .emptyQuery: return .emptyQuery
            case .copyIn(let feed): return .copyIn(feed)
            case .copyOut(let binary, let formats): return .copyOut(binary: binary, columnFormats: formats)
            case .copyOutData(let data): return .copyOutData(data)
            }
        }
    }

    /// Cancels the statement and drains its results.
    package func abandon() { cursor.abandon() }
}
