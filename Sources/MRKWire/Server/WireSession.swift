import Foundation
import Logging
import MRKPostgres
import MRKProxy
import MRKWireProtocol
import MRKSQL
import NIOCore
import Synchronization

/// One client session, on an event loop of its own: the event loop reads the client's messages
/// and the session runs them through the library on a server connection of its own (the
/// library's `EncryptedConnection`, whose libpq calls block this loop — and only this one: each
/// session has its own). Everything happens on one thread, so a statement costs no thread
/// switches beyond the server round trip. While the client is slow to read, the session stops
/// pulling rows from the server (`await`), so a large result is never buffered whole.
///
/// Its async code runs as a task whose executor is the loop itself (`LoopTaskExecutor`), so
/// waiting for a message or for the client to read costs no thread switch.
///
/// `@unchecked Sendable`: everything but `canceller` (a `Mutex`) and the constants is used only
/// on the session's event loop: by the channel handler and by the session's task, which runs there.
final class WireSession: @unchecked Sendable {
    let processID: Int32
    let secretKey: Int32
    private let canceller = Mutex<PostgresCanceller?>(nil)
    private let channel: any Channel
    private let database: EncryptedDatabase
    private let parameters: [String: String]
    private let metrics: WireMetrics
    private let logger: Logger
    private let onEnd: @Sendable (WireSession) -> Void

    // Filled by the channel handler on this loop.
    private var inbox: [FrontendMessage] = []
    private var inboxHead = 0
    private var inboxBytes = 0
    private var clientGone = false
    private var readingPaused = false
    private var writable = true
    private var messageWaiter: CheckedContinuation<Void, Never>?
    private var writableWaiter: CheckedContinuation<Void, Never>?

    // The session's own state.
    private var connection: EncryptedConnection!
    private var output: ByteBuffer
    private var statements: [String: ClientStatement] = [:]
    private var portals: [String: Portal] = [:]
    private var skippingToSync = false
    private var implicitTransaction = false
    private var serverNameCounter = 0
    private var reported: [String: String] = [:]
    private var terminated = false
    private var plans: [PlanKey: WireStatement] = [:]
    private var plansVersion = 0

    /// Pause reading from the client above this many queued bytes; resume below a quarter.
    static let inboxHighWater = 4 * 1024 * 1024
    /// Write to the client once this much output has accumulated.
    static let flushThreshold = 64 * 1024

    /// Settings the server reports (ParameterStatus) that the proxy relays as they change.
    static let reportedParameters = ["application_name", "DateStyle", "default_transaction_read_only", "in_hot_standby",
                                     "integer_datetimes", "IntervalStyle", "is_superuser", "server_encoding", "server_version",
                                     "session_authorization", "standard_conforming_strings", "TimeZone"]

    final class ClientStatement: @unchecked Sendable {
        let statement: WireStatement?
        /// A `COPY … FROM STDIN` into a configured table, which the proxy loads itself.
        let copy: SQLCopyStatement?
        let declaredTypes: [UInt32]
        var prepared: WirePrepared?

        init(statement: WireStatement?, copy: SQLCopyStatement?, declaredTypes: [UInt32]) {
            self.statement = statement
            self.copy = copy
            self.declaredTypes = declaredTypes
        }
    }

    struct Portal {
        let client: ClientStatement
        let parameters: [PostgresParameter]
        let values: [SQLValue]
        let resultFormats: [Int16]
        /// RowDescription owed to a Describe, sent with the Execute that follows it.
        var describePending = false
        /// Rows of a suspended Execute (maxRows) not yet sent, and its command tag.
        var suspended: (rows: [ByteBuffer], tag: String)?
    }

    init(processID: Int32, secretKey: Int32, channel: any Channel, database: EncryptedDatabase, parameters: [String: String],
         metrics: WireMetrics, logger: Logger, onEnd: @escaping @Sendable (WireSession) -> Void) {
        self.processID = processID
        self.secretKey = secretKey
        self.channel = channel
        self.database = database
        self.parameters = parameters
        self.metrics = metrics
        self.logger = logger
        self.onEnd = onEnd
        output = channel.allocator.buffer(capacity: 16 * 1024)
    }

    // MARK: From the channel handler (on this session's loop)

    func deliver(_ message: FrontendMessage, size: Int) {
        inbox.append(message)
        inboxBytes += size
        if !readingPaused && inboxBytes > Self.inboxHighWater {
            readingPaused = true
            channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        }
        messageWaiter?.resume()
        messageWaiter = nil
    }

    func clientClosed() {
        clientGone = true
        messageWaiter?.resume()
        messageWaiter = nil
        writableWaiter?.resume()
        writableWaiter = nil
    }

    func writabilityChanged(_ isWritable: Bool) {
        writable = isWritable
        if isWritable {
            writableWaiter?.resume()
            writableWaiter = nil
        }
    }

    /// Ends the session from outside (server shutdown): the connection closes, then the session.
    func closeConnection() { channel.close(promise: nil) }

    /// A client's CancelRequest for this session (from another connection's loop).
    func cancel() {
        canceller.withLock { $0 }?.cancelRunningStatement()
    }

    // MARK: The session

    /// Starts the session's task on its loop.
    func start() {
        Task(executorPreference: LoopTaskExecutor(channel.eventLoop)) { await self.run() }
    }

    private func run() async {
        metrics.sessionStarted()
        defer {
            connection = nil
            metrics.sessionEnded()
            onEnd(self)
            channel.close(promise: nil)
        }
        do {
            connection = try database.connect(parameters: parameters)
        } catch {
            metrics.upstreamError()
            writeError(error, fatal: true)
            await flush()
            return
        }
        let made = connection.makeCanceller()
        canceller.withLock { $0 = made }
        connection.noticeHandler = { [unowned self] notice in
            output.writeFields(UInt8(ascii: "N"), notice.fields.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        }
        output.writeAuthenticationOK()
        output.writeParameterStatus("client_encoding", "UTF8")
        for name in Self.reportedParameters {
            if let value = connection.serverParameter(name) {
                reported[name] = value
                output.writeParameterStatus(name, value)
            }
        }
        output.writeBackendKeyData(processID: processID, secretKey: secretKey)
        output.writeReadyForQuery(UInt8(ascii: "I"))
        while !terminated, let message = await nextMessage() {
            await handle(message)
            if !connection.isServerConnected {
                // The server went away (restart, failover): end the session so the client reconnects.
                metrics.upstreamError()
                break
            }
        }
        await flush()
    }

    /// The next message, sending what was written before waiting; nil when the client is gone.
    private func nextMessage() async -> FrontendMessage? {
        while inboxHead == inbox.count && !clientGone {
            await flush()
            if inboxHead < inbox.count || clientGone { break }
            await withCheckedContinuation { messageWaiter = $0 }
        }
        guard inboxHead < inbox.count else { return nil }
        let message = inbox[inboxHead]
        inboxHead += 1
        inboxBytes -= message.approximateSize
        if inboxHead == inbox.count {
            inbox.removeAll(keepingCapacity: true)
            inboxHead = 0
        }
        if readingPaused && inboxBytes < Self.inboxHighWater / 4 {
            readingPaused = false
            channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        }
        return message
    }

    /// Whether an Execute of `portal` is queued before the next Sync (sent in the same batch).
    private func executeQueued(portal: String) -> Bool {
        for message in inbox[inboxHead...] {
            switch message {
            case .execute(let name, _): return name == portal
            case .sync, .flush, .query: return false
            default: continue
            }
        }
        return false
    }

    /// Whether another Execute is queued before the next Sync.
    private func anotherExecuteQueued() -> Bool {
        for message in inbox[inboxHead...] {
            switch message {
            case .execute: return true
            case .sync, .query: return false
            default: continue
            }
        }
        return false
    }

    /// Sends what was written; while the client is not reading it, waits (without blocking the
    /// loop) before anything more is produced.
    private func flush() async {
        guard output.readableBytes > 0 else { return }
        guard !clientGone else {
            output.clear()
            return
        }
        let buffer = output
        output = channel.allocator.buffer(capacity: 16 * 1024)
        channel.writeAndFlush(buffer, promise: nil)
        while !writable && !clientGone {
            await withCheckedContinuation { writableWaiter = $0 }
        }
    }

    private var isClientGone: Bool { clientGone }

    // MARK: Messages

    private func handle(_ message: FrontendMessage) async {
        if skippingToSync {
            switch message {
            case .sync: break
            case .terminate: terminated = true; return
            default: return
            }
        }
        switch message {
        case .query(let sql):
            await simpleQuery(sql)
            reportParameterChanges()
            output.writeReadyForQuery(readyStatus)
        case .parse(let name, let sql, let types):
            extended { try parse(name: name, sql: sql, types: types) }
        case .bind(let portal, let statement, let formats, let values, let resultFormats):
            extended { try bind(portal: portal, statement: statement, formats: formats, values: values, resultFormats: resultFormats) }
        case .describe(let kind, let name):
            extended { try describe(kind: kind, name: name) }
        case .execute(let portal, let maxRows):
            do {
                try await execute(portal: portal, maxRows: maxRows)
            } catch {
                writeError(error)
                skippingToSync = true
            }
            reportParameterChanges()
        case .sync:
            // An error since the last Sync (the server's, or one the proxy raised itself, e.g. a
            // value refused at Bind) fails the implicit transaction as a whole, as on the server.
            let errored = skippingToSync
            skippingToSync = false
            if implicitTransaction {
                implicitTransaction = false
                let failed = errored || connection.wireTransactionStatus == .failedTransaction
                do {
                    let tag = try connection.wireCommand(failed ? "ROLLBACK" : "COMMIT")
                    if !failed && tag != "COMMIT" { throw ProxyError.rollback("the batch was rolled back") }
                } catch {
                    writeError(error)
                }
            }
            if connection.wireTransactionStatus == .idle { portals.removeAll() }
            output.writeReadyForQuery(readyStatus)
            await flush()
        case .flush:
            await flush()
        case .close(let kind, let name):
            if kind == UInt8(ascii: "S") {
                if let removed = statements.removeValue(forKey: name), let prepared = removed.prepared {
                    connection.wireDeallocate(serverName: prepared.serverName)
                }
            } else {
                portals.removeValue(forKey: name)
            }
            output.writeCloseComplete()
        case .terminate:
            terminated = true
        case .copyData, .copyDone, .copyFail:
            break  // outside a COPY: ignored, as the server does
        case .functionCall:
            extended { throw WireFailure(code: "0A000", message: "the fast-path function call interface is not supported through MRKProxy") }
        case .authenticationResponse:
            extended { throw WireFailure(code: "08P01", message: "unexpected authentication message") }
        }
    }

    /// Runs an extended-protocol step; after an error, messages are skipped until Sync.
    private func extended(_ body: () throws -> Void) {
        do {
            try body()
        } catch {
            writeError(error)
            skippingToSync = true
        }
    }

    private var readyStatus: UInt8 {
        switch connection.wireTransactionStatus {
        case .inTransaction, .active: UInt8(ascii: "T")
        case .failedTransaction: UInt8(ascii: "E")
        default: UInt8(ascii: "I")
        }
    }

    private func reportParameterChanges() {
        for name in Self.reportedParameters {
            let value = connection.serverParameter(name)
            if let value, reported[name] != value {
                reported[name] = value
                output.writeParameterStatus(name, value)
            }
        }
    }

    // MARK: Simple query

    private func simpleQuery(_ sql: String) async {
        guard sql.contains(where: { !$0.isWhitespace && $0 != ";" }) else {
            output.writeEmptyQueryResponse()
            return
        }
        do {
            if let copy = try connection.wireCopyStatement(sql) {
                metrics.statement(kind: "copy")
                try await loadCopy(copy)
                return
            }
            for attempt in 0..<2 {
                let planned: Result<WireStatement, ProxyError> = Result { () throws(ProxyError) in try connection.wirePlan(sql, parameterCount: 0) }
                let statement: WireStatement
                switch planned {
                case .success(let plan): statement = plan
                case .failure(let error):
                    guard error.refusalCode == "multipleStatements" else { throw error }
                    try await runScript(sql)
                    return
                }
                // A table with a `migrating: true` column: in a transaction, so that the migration
                // guard's lock is held while the results are pulled.
                let guarded = connection.wireNeedsMigrationGuard(statement) && connection.wireTransactionStatus == .idle
                if guarded { try connection.wireCommand("BEGIN") }
                do {
                    try await run(statement, simple: true, parameters: nil, values: [], formats: [], describe: true, maxRows: 0, portal: nil)
                    if guarded {
                        guard try connection.wireCommand("COMMIT") == "COMMIT" else { throw ProxyError.rollback("the statement was rolled back") }
                    }
                    return
                } catch let error as ProxyError where error.stalePlan && guarded && attempt == 0 {
                    // Planned before a migration's swap, refused before anything was sent: planned again.
                    _ = try? connection.wireCommand("ROLLBACK")
                } catch {
                    if guarded { _ = try? connection.wireCommand("ROLLBACK") }
                    throw error
                }
            }
        } catch {
            writeError(error)
        }
    }

    /// Several statements in one Query where one touches a configured table: each planned first
    /// (nothing runs if one is refused), then run one at a time — in one transaction, as the
    /// server runs a multi-statement Query, unless the string has its own transaction control.
    private func runScript(_ sql: String) async throws {
        let parts: [String]
        do { parts = try SQLScript.statements(sql) } catch {
            throw WireFailure(code: "42601", message: error.description)
        }
        var planned: [WireStatement] = []
        for part in parts {
            if try connection.wireCopyStatement(part) != nil {
                throw WireFailure(code: "0A000", message: "send COPY into a configured table as a statement of its own")
            }
            planned.append(try connection.wirePlan(part, parameterCount: 0))
        }
        let control = parts.contains { Self.isTransactionControl($0) }
        let wrap = !control && connection.wireTransactionStatus == .idle
        if wrap { try connection.wireCommand("BEGIN") }
        do {
            for statement in planned {
                try await run(statement, simple: true, parameters: nil, values: [], formats: [], describe: true, maxRows: 0, portal: nil)
            }
            if wrap {
                guard try connection.wireCommand("COMMIT") == "COMMIT" else { throw ProxyError.rollback("the statements were rolled back") }
            }
        } catch {
            if wrap { _ = try? connection.wireCommand("ROLLBACK") }
            throw error
        }
    }

    static func isTransactionControl(_ sql: String) -> Bool {
        let word = sql.prefix { $0.isLetter }.lowercased()
        return ["begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release", "prepare"].contains(word)
    }

    // MARK: Extended query

    private func parse(name: String, sql: String, types: [UInt32]) throws {
        if !name.isEmpty, statements[name] != nil {
            throw WireFailure(code: "42P05", message: "prepared statement \"\(name)\" already exists")
        }
        let client: ClientStatement
        if let copy = try connection.wireCopyStatement(sql) {
            client = ClientStatement(statement: nil, copy: copy, declaredTypes: types)
        } else {
            let statement = try plan(sql, types: types)
            client = ClientStatement(statement: statement, copy: nil, declaredTypes: types)
            if !name.isEmpty {
                client.prepared = try connection.wirePrepare(statement, serverName: nextServerName(), declaredTypes: types)
            }
        }
        if name.isEmpty, let old = statements[""]?.prepared { connection.wireDeallocate(serverName: old.serverName) }
        statements[name] = client
        output.writeParseComplete()
    }

    /// The plan of a Parse's statement: from this session's cache when the same text was parsed
    /// before (drivers parse the same statements again and again), unless it holds lifted literals.
    private func plan(_ sql: String, types: [UInt32]) throws -> WireStatement {
        let key = PlanKey(sql: sql, types: types)
        if plansVersion != connection.analysisVersion {
            plans.removeAll()
            plansVersion = connection.analysisVersion
        }
        if let cached = plans[key] { return cached }
        let count = max(types.count, connection.highestParameter(in: sql))
        let statement = try connection.wirePlan(sql, parameterCount: count)
        if !statement.holdsLiterals {
            if plans.count >= 256 { plans.removeAll(keepingCapacity: true) }
            plans[key] = statement
        }
        return statement
    }

    private struct PlanKey: Hashable {
        let sql: String
        let types: [UInt32]
    }

    private func nextServerName() -> String {
        serverNameCounter += 1
        return "mrkproxy_wire_\(serverNameCounter)"
    }

    private func bind(portal: String, statement name: String, formats: [Int16], values: [[UInt8]?], resultFormats: [Int16]) throws {
        guard let client = statements[name] else {
            throw WireFailure(code: "26000", message: "prepared statement \"\(name)\" does not exist")
        }
        guard let statement = client.statement else {
            guard values.isEmpty else { throw WireFailure(code: "08P01", message: "COPY takes no parameters") }
            portals[portal] = Portal(client: client, parameters: [], values: [], resultFormats: resultFormats)
            output.writeBindComplete()
            return
        }
        guard values.count == statement.parameterCount else {
            throw WireFailure(code: "08P01", message: "bind message supplies \(values.count) parameters, but prepared statement "
                              + "\"\(name)\" requires \(statement.parameterCount)")
        }
        let parameters = values.enumerated().map { index, bytes in
            let format: Int16 = formats.isEmpty ? 0 : formats.count == 1 ? formats[0] : formats[index]
            let declared = index < client.declaredTypes.count ? client.declaredTypes[index] : 0
            return WireParameter(bytes: bytes, format: format == 1 ? .binary : .text, typeOID: declared)
        }
        let bound = try connection.wireBind(statement, parameters)
        portals[portal] = Portal(client: client, parameters: bound.parameters, values: bound.values, resultFormats: resultFormats)
        output.writeBindComplete()
    }

    private func describe(kind: UInt8, name: String) throws {
        if kind == UInt8(ascii: "S") {
            guard let client = statements[name] else {
                throw WireFailure(code: "26000", message: "prepared statement \"\(name)\" does not exist")
            }
            guard client.statement != nil else {
                output.writeParameterDescription([])
                output.writeNoData()
                return
            }
            let prepared = try preparedOnServer(client)
            output.writeParameterDescription(prepared.parameterTypes)
            if let columns = prepared.columns {
                output.writeRowDescription(columns, formats: [])
            } else {
                output.writeNoData()
            }
            return
        }
        guard var portal = portals[name] else { throw WireFailure(code: "34000", message: "portal \"\(name)\" does not exist") }
        guard portal.client.statement != nil else {
            output.writeNoData()
            return
        }
        if portal.client.prepared == nil && executeQueued(portal: name) {
            // Answered with the Execute's first result (its columns), saving a round trip.
            portal.describePending = true
            portals[name] = portal
            return
        }
        let prepared = try preparedOnServer(portal.client)
        if let columns = prepared.columns {
            output.writeRowDescription(columns, formats: Self.formats(portal.resultFormats, count: columns.count))
        } else {
            output.writeNoData()
        }
    }

    /// The statement prepared on the server (prepared now if it was not).
    private func preparedOnServer(_ client: ClientStatement) throws -> WirePrepared {
        if let prepared = client.prepared { return prepared }
        guard let statement = client.statement else { throw WireFailure(code: "08P01", message: "not a statement") }
        let prepared = try connection.wirePrepare(statement, serverName: nextServerName(), declaredTypes: client.declaredTypes)
        client.prepared = prepared
        return prepared
    }

    private func execute(portal name: String, maxRows: Int32) async throws {
        guard var portal = portals[name] else { throw WireFailure(code: "34000", message: "portal \"\(name)\" does not exist") }
        if var suspended = portal.suspended {
            let count = maxRows > 0 ? min(Int(maxRows), suspended.rows.count) : suspended.rows.count
            for var row in suspended.rows.prefix(count) { output.writeBuffer(&row) }
            suspended.rows.removeFirst(count)
            if suspended.rows.isEmpty {
                output.writeCommandComplete(suspended.tag)
                portal.suspended = nil
            } else {
                output.writePortalSuspended()
                portal.suspended = suspended
            }
            portals[name] = portal
            return
        }
        if let copy = portal.client.copy {
            metrics.statement(kind: "copy")
            try await loadCopy(copy)
            return
        }
        guard let statement = portal.client.statement else { return }
        if !implicitTransaction && connection.wireTransactionStatus == .idle
            && (anotherExecuteQueued() || connection.wireNeedsMigrationGuard(statement)) {
            // Several Executes before a Sync run as one implicit transaction, as on the server;
            // so does one on a table with a `migrating: true` column (the migration guard's lock
            // is then held until Sync).
            try connection.wireCommand("BEGIN")
            implicitTransaction = true
        }
        let describe = portal.describePending
        portal.describePending = false
        portals[name] = portal
        let suspended = try await run(statement, simple: false, parameters: portal.parameters, values: portal.values,
                                formats: portal.resultFormats, describe: describe, maxRows: Int(maxRows), portal: portal)
        if let suspended {
            portal.suspended = suspended
            portals[name] = portal
        }
    }

    // MARK: Running a statement

    /// Runs a planned statement and writes its results. Returns the rows kept back by `maxRows`.
    @discardableResult
    private func run(_ statement: WireStatement, simple: Bool, parameters: [PostgresParameter]?, values: [SQLValue], formats requested: [Int16],
                     describe: Bool, maxRows: Int, portal: Portal?) async throws -> (rows: [ByteBuffer], tag: String)? {
        metrics.statement(kind: connection.kindName(statement))
        let query: PostgresConnection.Query
        var values = values
        if let portal, let prepared = portal.client.prepared {
            query = .prepared(name: prepared.serverName, parameters ?? [])
        } else if simple && statement.isUnchanged {
            query = .simple(statement.sql)
        } else if let parameters {
            query = .parameters(statement.plan.sql, parameters)
        } else {
            let bound = try connection.wireBind(statement, [])
            values = bound.values
            query = .parameters(statement.plan.sql, bound.parameters)
        }
        let allBinary = !requested.isEmpty && requested.allSatisfy { $0 == 1 }
        let serverFormat: PostgresFormat = simple ? .text : (allBinary ? .binary : .text)
        let timeZone = connection.sessionTimeZone
        var columns: [WireColumn] = []
        var formats: [Int16] = []
        var sent = 0
        var keptBack: [ByteBuffer] = []
        var keptTag: String?
        var inCopyOut = false
        var describedColumns = false
        let execution = try connection.wireStart(statement, query: query, resultFormat: serverFormat, values: values)
        do {
            while let event = try execution.next() {
                switch event {
                case .columns(let described):
                    columns = described
                    formats = simple ? [] : Self.formats(requested, count: described.count)
                    if describe || simple {
                        output.writeRowDescription(described, formats: formats)
                        describedColumns = true
                    }
                case .row(let row):
                    if maxRows > 0 && sent >= maxRows {
                        var buffer = channel.allocator.buffer(capacity: 64)
                        try Self.writeDataRow(&buffer, row: row, cells: execution.cells, columns: columns, formats: formats,
                                              serverFormat: serverFormat, timeZone: timeZone)
                        keptBack.append(buffer)
                        continue
                    }
                    try Self.writeDataRow(&output, row: row, cells: execution.cells, columns: columns, formats: formats,
                                          serverFormat: serverFormat, timeZone: timeZone)
                    sent += 1
                    if output.readableBytes >= Self.flushThreshold {
                        await flush()
                        if clientGone { throw WireFailure(code: "08006", message: "the client went away") }
                    }
                case .complete(let tag):
                    if inCopyOut {
                        output.writeCopyDone()
                        inCopyOut = false
                    }
                    if describe && !describedColumns {
                        output.writeNoData()
                        describedColumns = true
                    }
                    if !keptBack.isEmpty {
                        keptTag = tag
                        output.writePortalSuspended()
                    } else {
                        output.writeCommandComplete(tag)
                    }
                    if !simple && implicitTransaction && ["BEGIN", "COMMIT", "ROLLBACK"].contains(tag) {
                        implicitTransaction = false  // the client's own transaction control takes over
                    }
                case .emptyQuery:
                    output.writeEmptyQueryResponse()
                case .copyIn(let feed):
                    try await relayCopyIn(feed)
                case .copyOut(let binary, let columnFormats):
                    output.writeCopyOutResponse(binary: binary, columnFormats: columnFormats.map { $0 == .binary ? 1 : 0 })
                    inCopyOut = true
                case .copyOutData(let data):
                    output.writeCopyData(data)
                    if output.readableBytes >= Self.flushThreshold {
                        await flush()
                        if clientGone { throw WireFailure(code: "08006", message: "the client went away") }
                    }
                }
            }
        } catch {
            execution.abandon()
            throw error
        }
        if let keptTag { return (keptBack, keptTag) }
        return nil
    }

    /// The format of each of `count` result columns from a Bind's result format codes.
    static func formats(_ codes: [Int16], count: Int) -> [Int16] {
        switch codes.count {
        case 0: [Int16](repeating: 0, count: count)
        case 1: [Int16](repeating: codes[0], count: count)
        default: (0..<count).map { $0 < codes.count ? codes[$0] : 0 }
        }
    }

    static func writeDataRow(_ buffer: inout ByteBuffer, row: PostgresRow, cells: [ResultDecoder.WireCell], columns: [WireColumn],
                             formats: [Int16], serverFormat: PostgresFormat, timeZone: TimeZone?) throws {
        var failure: Error?
        buffer.writeMessage(UInt8(ascii: "D")) { body in
            body.writeInteger(Int16(truncatingIfNeeded: cells.count))
            for (index, cell) in cells.enumerated() {
                let binary = index < formats.count && formats[index] == 1
                switch cell {
                case .passthrough(let column):
                    guard let bytes = row.result.valueBytes(row: row.index, column: column) else {
                        body.writeInteger(Int32(-1))
                        continue
                    }
                    if binary == (serverFormat == .binary) {
                        body.writeInteger(Int32(bytes.count))
                        body.writeBytes(bytes)
                    } else if let converted = PassthroughBinary.binary(fromText: bytes, type: columns[index].typeOID) {
                        body.writeInteger(Int32(converted.count))
                        body.writeBytes(converted)
                    } else {
                        failure = WireFailure(code: "0A000", message: "binary results of type \(columns[index].typeOID) mixed with text results "
                                              + "are not supported through MRKProxy; ask for one format for all columns")
                        body.writeInteger(Int32(-1))
                    }
                case .decrypted(let value):
                    if value.isNull {
                        body.writeInteger(Int32(-1))
                        continue
                    }
                    let bytes: [UInt8]
                    if binary, let type = columns[index].plaintextType {
                        do { bytes = try WireValueCodec.binary(value, as: type) } catch {
                            failure = error
                            bytes = []
                        }
                    } else {
                        bytes = Array((WireValueCodec.text(value, timeZone: timeZone) ?? "").utf8)
                    }
                    body.writeInteger(Int32(bytes.count))
                    body.writeBytes(bytes)
                }
            }
        }
        if let failure { throw failure }
    }

    // MARK: COPY

    /// A client's COPY FROM STDIN passed through (a table without encrypted columns).
    private func relayCopyIn(_ feed: CopyInFeed) async throws {
        output.writeCopyInResponse(binary: feed.binary, columnFormats: feed.columnFormats.map { $0 == .binary ? 1 : 0 })
        await flush()
        while true {
            guard let message = await nextMessage() else {
                feed.fail("the client went away")
                throw WireFailure(code: "08006", message: "the client went away during COPY")
            }
            switch message {
            case .copyData(let bytes):
                try bytes.withUnsafeBytes { try feed.send($0) }
            case .copyDone:
                try feed.finish()
                return
            case .copyFail(let reason):
                feed.fail("COPY from the client failed: \(reason)")
                return
            case .flush, .sync:
                continue
            default:
                feed.fail("unexpected message during COPY")
                throw WireFailure(code: "08P01", message: "unexpected message type during COPY from stdin")
            }
        }
    }

    /// A client's COPY FROM STDIN into a configured table: rows parsed as they arrive and loaded
    /// through the library, which encrypts the configured columns.
    private func loadCopy(_ copy: SQLCopyStatement) async throws {
        let loader = try CopyLoader(connection: connection, table: "\(copy.table.name.schema).\(copy.table.name.name)", columns: copy.columns)
        output.writeCopyInResponse(binary: false, columnFormats: [Int16](repeating: 0, count: copy.columns.count))
        await flush()
        var parser = CopyRowParser(copy)
        func add(_ row: [String?]) throws {
            try loader.add(row.map { $0.map(SQLValue.text) ?? .null })
        }
        do {
            while true {
                guard let message = await nextMessage() else {
                    loader.abort("the client went away")
                    throw WireFailure(code: "08006", message: "the client went away during COPY")
                }
                switch message {
                case .copyData(let bytes):
                    parser.append(bytes)
                    while let row = try parser.nextRow() { try add(row) }
                case .copyDone:
                    while let row = try parser.nextRow() { try add(row) }
                    if let row = try parser.finish() { try add(row) }
                    output.writeCommandComplete("COPY \(try loader.finish())")
                    return
                case .copyFail(let reason):
                    loader.abort("COPY from the client failed")
                    throw WireFailure(code: "57014", message: "COPY from stdin failed: \(reason)")
                case .flush, .sync:
                    continue
                default:
                    loader.abort("unexpected message")
                    throw WireFailure(code: "08P01", message: "unexpected message type during COPY from stdin")
                }
            }
        } catch let failure as CopyRowParser.Failure {
            loader.abort("bad COPY data")
            await skipCopyData()
            throw WireFailure(code: "22P04", message: failure.message)
        } catch let error as ProxyError {
            loader.abort("COPY failed")
            await skipCopyData()
            throw error
        }
    }

    /// After a failed COPY: the client's remaining data, up to CopyDone or CopyFail, is dropped.
    private func skipCopyData() async {
        while let message = await nextMessage() {
            switch message {
            case .copyDone, .copyFail: return
            case .copyData: continue
            default:
                // Not COPY data: keep it for after the error (put back at the front).
                if inboxHead > 0 {
                    inboxHead -= 1
                    inbox[inboxHead] = message
                } else {
                    inbox.insert(message, at: 0)
                }
                inboxBytes += message.approximateSize
                return
            }
        }
    }

    // MARK: Errors

    private func writeError(_ error: Error, fatal: Bool = false) {
        let severity = fatal ? "FATAL" : "ERROR"
        var fields: [(UInt8, String)] = [(UInt8(ascii: "S"), severity), (UInt8(ascii: "V"), severity)]
        switch error {
        case let failure as WireFailure:
            fields += [(UInt8(ascii: "C"), failure.code), (UInt8(ascii: "M"), failure.message)]
        case let error as ProxyError:
            if error.code == .refused { metrics.refusal(code: error.refusalCode ?? "refused") }
            if let server = error.server, error.code == .database || error.code == .readOnlyRegion {
                metrics.upstreamError()
                // Relayed as the server sent it, but for positions (in the text the server saw,
                // which may not be the client's).
                let skipped: Set<UInt8> = [UInt8(ascii: "S"), UInt8(ascii: "V"), UInt8(ascii: "P"), UInt8(ascii: "p"), UInt8(ascii: "q")]
                fields += server.fields.filter { !skipped.contains($0.key) }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
                if server.fields[UInt8(ascii: "C")] == nil { fields.append((UInt8(ascii: "C"), server.sqlState ?? "XX000")) }
                if server.fields[UInt8(ascii: "M")] == nil { fields.append((UInt8(ascii: "M"), server.message)) }
            } else {
                fields += [(UInt8(ascii: "C"), Self.sqlState(error)), (UInt8(ascii: "M"), Self.message(error))]
                if error.code == .refused {
                    fields.append((UInt8(ascii: "H"), "MRKProxy refused the statement before sending it: nothing reached the database"))
                }
            }
        case let violation as ProtocolViolation:
            fields += [(UInt8(ascii: "C"), "08P01"), (UInt8(ascii: "M"), violation.message)]
        default:
            fields += [(UInt8(ascii: "C"), "XX000"), (UInt8(ascii: "M"), "internal error in MRKProxy")]
        }
        output.writeFields(UInt8(ascii: "E"), fields)
    }

    /// The SQLSTATE a client sees for a library error. MRKProxy's own conditions use class `MK`.
    static func sqlState(_ error: ProxyError) -> String {
        switch error.code {
        case .refused: "MK001"
        case .integrity: "MK002"
        case .kms, .kmsKey: "MK003"
        case .keystore: "MK004"
        case .configuration, .schemaMismatch: "MK005"
        case .invalidValue: "22P02"
        case .readOnlyRegion: "25006"
        case .cancelled: "57014"
        default: error.sqlState ?? "XX000"
        }
    }

    static func message(_ error: ProxyError) -> String {
        error.code == .refused ? "refused: \(error.reason)" : error.reason
    }
}

/// An error the proxy itself raises, with its SQLSTATE.
struct WireFailure: Error {
    let code: String
    let message: String
}

extension FrontendMessage {
    /// Roughly how many bytes the message held (for the inbox's limit).
    var approximateSize: Int {
        switch self {
        case .query(let sql): sql.utf8.count + 5
        case .parse(_, let sql, let types): sql.utf8.count + 4 * types.count + 16
        case .bind(_, _, _, let values, _): values.reduce(32) { $0 + ($1?.count ?? 0) + 4 }
        case .copyData(let bytes): bytes.count + 5
        case .authenticationResponse(let bytes): bytes.count + 5
        default: 16
        }
    }
}

/// Runs a task's jobs on an event loop (the session's), so its awaits resume there without a
/// thread switch.
final class LoopTaskExecutor: TaskExecutor {
    private let loop: any EventLoop

    init(_ loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
