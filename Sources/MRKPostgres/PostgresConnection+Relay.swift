internal import CLibPQ

/// A notice (or warning) the server sent while a statement ran, with every field by its
/// protocol code (`S`, `V`, `C`, `M`, `D`, `H`, …).
public struct PostgresNotice: Sendable {
    public var fields: [UInt8: String]

    public init(fields: [UInt8: String]) { self.fields = fields }

    /// The field codes libpq exposes (`PG_DIAG_*`).
    static let codes: [UInt8] = Array("SVCMDHPpqWstcdnFLR".utf8)

    static func fields(of result: OpaquePointer) -> [UInt8: String] {
        var fields: [UInt8: String] = [:]
        for code in codes {
            if let value = PQresultErrorField(result, Int32(code)) { fields[code] = String(cString: value) }
        }
        return fields
    }
}

/// What a statement produces, one step at a time, for a caller that relays it (the wire proxy):
/// result sets with their columns and rows, completions, COPY.
public enum PostgresQueryEvent {
    /// A result set begins: its columns (also for a result set without rows).
    case columns([PostgresColumn])
    /// One row of the current result set; valid only during the call.
    case row(PostgresRow)
    /// A statement finished, with its command tag (`SELECT 3`, `INSERT 0 1`, …).
    case complete(commandTag: String)
    /// The query string was empty.
    case emptyQuery
    /// `COPY … FROM STDIN` began: the handler sends the data with `CopyInFeed` and ends it.
    case copyIn(CopyInFeed)
    /// `COPY … TO STDOUT` began: its format, then `.copyOutData` chunks follow.
    case copyOut(binary: Bool, columnFormats: [PostgresFormat])
    /// One chunk (row) of a `COPY … TO STDOUT`.
    case copyOutData(UnsafeRawBufferPointer)
}

/// Feeds a `COPY … FROM STDIN` that the server is waiting for.
public struct CopyInFeed {
    let connection: PostgresConnection
    /// Whether the server expects the binary COPY format.
    public let binary: Bool
    /// The format of each column.
    public let columnFormats: [PostgresFormat]

    /// Sends one chunk of COPY data.
    public func send(_ bytes: UnsafeRawBufferPointer) throws {
        let ok = bytes.withMemoryRebound(to: CChar.self) { PQputCopyData(connection.handle, $0.baseAddress, Int32($0.count)) }
        guard ok == 1 else { throw PostgresError(.client, message: libpqMessage(connection.handle)) }
    }

    /// Ends the data: the server loads it (or reports an error).
    public func finish() throws {
        guard PQputCopyEnd(connection.handle, nil) == 1 else { throw PostgresError(.client, message: libpqMessage(connection.handle)) }
    }

    /// Abandons the COPY: the server loads nothing and reports `message` as the error.
    public func fail(_ message: String) {
        _ = PQputCopyEnd(connection.handle, message)
    }
}

extension PostgresConnection {
    /// What to run: a simple-protocol query string (any number of statements, no parameters), a
    /// statement with parameters, or a prepared statement.
    public enum Query {
        case simple(String)
        case parameters(String, [PostgresParameter])
        case prepared(name: String, [PostgresParameter])
    }

    /// Runs `query` and hands every step of its results to `handler` (`PostgresQueryCursor`
    /// driven to its end). If `handler` throws, the statement is cancelled, the remaining results
    /// are drained and the error is rethrown.
    public func relay(_ query: Query, resultFormat: PostgresFormat = .text, _ handler: (PostgresQueryEvent) throws -> Void) throws {
        let cursor = try start(query, resultFormat: resultFormat)
        do {
            while let event = try cursor.next() { try handler(event) }
        } catch {
            cursor.abandon()
            throw error
        }
    }

    /// Sends `query` and returns a cursor over its results, read as the caller pulls them
    /// (single-row mode: nothing is buffered beyond one row, so a caller that stops pulling holds
    /// the server back).
    public func start(_ query: Query, resultFormat: PostgresFormat = .text) throws -> PostgresQueryCursor {
        let sent: Int32
        switch query {
        case .simple(let sql):
            sent = PQsendQuery(handle, sql)
        case .parameters(let sql, let parameters):
            sent = try ParameterArrays(checking: parameters).withArrays { types, values, lengths, formats in
                PQsendQueryParams(handle, sql, Int32(parameters.count), types, values, lengths, formats, resultFormat.rawValue)
            }
        case .prepared(let name, let parameters):
            sent = try ParameterArrays(checking: parameters).withArrays { _, values, lengths, formats in
                PQsendQueryPrepared(handle, name, Int32(parameters.count), values, lengths, formats, resultFormat.rawValue)
            }
        }
        guard sent == 1 else { throw PostgresError(.client, message: libpqMessage(handle)) }
        guard PQsetSingleRowMode(handle) == 1 else {
            drainResults()
            throw PostgresError(.client, message: "could not enter single-row mode")
        }
        return PostgresQueryCursor(connection: self)
    }

    /// Reads and discards the rest of a `COPY … TO STDOUT`.
    func skipCopyOut() {
        var buffer: UnsafeMutablePointer<CChar>?
        while PQgetCopyData(handle, &buffer, 0) > 0 {
            PQfreemem(buffer)
            buffer = nil
        }
    }

    /// Removes a prepared statement (`DEALLOCATE`, quoted).
    public func deallocate(name: String) throws {
        var quoted = "\""
        for character in name { quoted += character == "\"" ? "\"\"" : String(character) }
        try execute("DEALLOCATE " + quoted + "\"")
    }
}

/// Cancels the statement running on a connection, from any thread (libpq's `PGcancel`, made
/// once on the connection's own thread).
public final class PostgresCanceller: @unchecked Sendable {
    // `PQcancel` on a `PGcancel` is thread-safe; the pointer is freed once, in deinit.
    private let cancel: OpaquePointer?

    init(_ connection: PostgresConnection) { cancel = PQgetCancel(connection.handle) }

    deinit { if let cancel { PQfreeCancel(cancel) } }

    /// Asks the server to cancel whatever the connection is running (nothing if idle).
    public func cancelRunningStatement() {
        guard let cancel else { return }
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(cancel, &buffer, Int32(buffer.count))
    }
}

extension PostgresConnection {
    /// A canceller for this connection (make it on the connection's thread).
    public func makeCanceller() -> PostgresCanceller { PostgresCanceller(self) }
}

/// The results of a statement sent with `PostgresConnection.start`, pulled one step at a time.
/// A server error is thrown by the `next()` that reaches it (after the steps before it); the
/// cursor then has nothing more. Use it from the connection's thread, and pull it to its end (or
/// `abandon()` it) before the connection runs anything else.
public final class PostgresQueryCursor {
    private let connection: PostgresConnection
    private var inResultSet = false
    private var copyOut: UnsafeMutablePointer<CChar>?
    private var inCopyOut = false
    private var finished = false
    private var pendingError: PostgresError?
    /// A step held back while its result set's columns were handed out first.
    private var held: PostgresQueryEvent?

    init(connection: PostgresConnection) { self.connection = connection }

    deinit {
        if let copyOut { PQfreemem(copyOut) }
        if !finished { abandon() }
    }

    /// The next step; nil when the statement (every statement of a simple query) is done.
    ///
    /// Values handed out (a row, COPY data) are valid until the next call.
    public func next() throws -> PostgresQueryEvent? {
        let handle = connection.handle
        if let held {
            self.held = nil
            return held
        }
        if let copyOut {
            PQfreemem(copyOut)
            self.copyOut = nil
        }
        if inCopyOut {
            var buffer: UnsafeMutablePointer<CChar>?
            let count = PQgetCopyData(handle, &buffer, 0)
            if count > 0, let buffer {
                copyOut = buffer
                return .copyOutData(UnsafeRawBufferPointer(start: buffer, count: Int(count)))
            }
            inCopyOut = false
        }
        while true {
            guard !finished, let raw = PQgetResult(handle) else {
                finished = true
                if let pendingError {
                    self.pendingError = nil
                    throw pendingError
                }
                return nil
            }
            let status = PQresultStatus(raw)
            switch status {
            case PGRES_SINGLE_TUPLE:
                let result = PostgresResult(taking: raw)
                if !inResultSet {
                    inResultSet = true
                    held = .row(result[0])
                    return .columns(result.columns)
                }
                return .row(result[0])
            case PGRES_TUPLES_OK:
                let result = PostgresResult(taking: raw)
                let columnsFirst = !inResultSet
                inResultSet = false
                if columnsFirst {
                    held = .complete(commandTag: result.commandTag)
                    return .columns(result.columns)
                }
                return .complete(commandTag: result.commandTag)
            case PGRES_COMMAND_OK:
                let result = PostgresResult(taking: raw)
                inResultSet = false
                return .complete(commandTag: result.commandTag)
            case PGRES_EMPTY_QUERY:
                PQclear(raw)
                return .emptyQuery
            case PGRES_COPY_IN:
                let result = PostgresResult(taking: raw)
                return .copyIn(CopyInFeed(connection: connection, binary: PQbinaryTuples(raw) == 1, columnFormats: result.columns.map(\.format)))
            case PGRES_COPY_OUT:
                let formats = (0..<Int(PQnfields(raw))).map { PQfformat(raw, Int32($0)) == 1 ? PostgresFormat.binary : .text }
                let binary = PQbinaryTuples(raw) == 1
                PQclear(raw)
                inCopyOut = true
                return .copyOut(binary: binary, columnFormats: formats)
            default:
                // The error ends the query; libpq still owes a NULL result.
                pendingError = pendingError ?? PostgresError(result: raw, connection: handle)
                PQclear(raw)
            }
        }
    }

    /// Cancels the statement and reads what is left, so the connection can be used again.
    public func abandon() {
        guard !finished else { return }
        finished = true
        connection.cancel()
        let handle = connection.handle
        if inCopyOut { connection.skipCopyOut(); inCopyOut = false }
        while let raw = PQgetResult(handle) {
            switch PQresultStatus(raw) {
            case PGRES_COPY_IN: _ = PQputCopyEnd(handle, "cancelled")
            case PGRES_COPY_OUT: connection.skipCopyOut()
            default: break
            }
            PQclear(raw)
        }
    }
}
