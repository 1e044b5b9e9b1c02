internal import CLibPQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// A connection to PostgreSQL through libpq.
///
/// A connection runs one statement at a time and is not safe to use from two threads at once;
/// give each task its own connection (or use a pool). The connection closes in `deinit`.
public final class PostgresConnection {
    let handle: OpaquePointer
    /// Where server notices (and binding diagnostics) go.
    public let logger: Logger
    private let noticeSink: Unmanaged<NoticeSink>

    /// Connects with a `postgresql://` URL or a libpq `key=value` conninfo string.
    ///
    /// - Throws: `PostgresError` with code `.connectionFailed` and libpq's message.
    ///
    /// - Parameters:
    ///   - overrides: connection parameters that win over the ones in `conninfo` (for example
    ///     `client_encoding`), as libpq's keyword/value form.
    public init(_ conninfo: String, overrides: [String: String] = [:],
                logger: Logger = Logger(label: "mrkproxy.postgres", factory: { _ in SwiftLogNoOpLogHandler() })) throws {
        let keywords = ["dbname"] + overrides.keys.sorted()
        let values = [conninfo] + overrides.keys.sorted().map { overrides[$0]! }
        let connection: OpaquePointer? = withCStrings(keywords) { keywordPointers in
            withCStrings(values) { valuePointers in
                // expand_dbname = 1: `conninfo` is expanded first, later keywords override it.
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let conn = connection else {
            throw PostgresError(.connectionFailed, message: "libpq could not allocate a connection")
        }
        guard PQstatus(conn) == CONNECTION_OK else {
            let message = libpqMessage(conn)
            PQfinish(conn)
            throw PostgresError(.connectionFailed, message: message.isEmpty ? "connection failed" : message)
        }
        self.handle = conn
        self.logger = logger
        self.noticeSink = Unmanaged.passRetained(NoticeSink(logger: logger))
        PQsetNoticeReceiver(conn, { context, result in
            guard let context, let result else { return }
            Unmanaged<NoticeSink>.fromOpaque(context).takeUnretainedValue().receive(result)
        }, noticeSink.toOpaque())
    }

    deinit {
        PQfinish(handle)
        noticeSink.release()
    }

    // MARK: Connection facts

    /// What MRKProxy's connections ask of every session: text exchanged as UTF-8, which its SQL
    /// tokenizer assumes (checked again before every statement, as the server may change it).
    public static let libraryParameters = ["client_encoding": "UTF8"]

    /// The server's version number, e.g. 150004 for 15.4.
    public var serverVersion: Int { Int(PQserverVersion(handle)) }

    /// A server parameter reported at startup or by `SET` (e.g. `server_encoding`, `TimeZone`).
    public func parameterStatus(_ name: String) -> String? {
        PQparameterStatus(handle, name).map { String(cString: $0) }
    }

    /// Where server notices go instead of the logger (a protocol relay forwards them to its
    /// client). Called on the thread using the connection, while a statement runs.
    public var noticeHandler: ((PostgresNotice) -> Void)? {
        get { noticeSink.takeUnretainedValue().handler }
        set { noticeSink.takeUnretainedValue().handler = newValue }
    }

    /// The server's process id for this session (`PQbackendPID`).
    public var backendPID: Int32 { PQbackendPID(handle) }

    /// Whether the connection to the server is up (as far as libpq knows).
    public var isConnected: Bool { PQstatus(handle) == CONNECTION_OK }

    /// Whether a transaction block is open on this connection.
    public var transactionStatus: TransactionStatus {
        switch PQtransactionStatus(handle) {
        case PQTRANS_IDLE: .idle
        case PQTRANS_INTRANS: .inTransaction
        case PQTRANS_INERROR: .failedTransaction
        case PQTRANS_ACTIVE: .active
        default: .unknown
        }
    }

    /// State of the connection's transaction.
    public enum TransactionStatus: Sendable {
        case idle, active, inTransaction, failedTransaction, unknown
    }

    // MARK: Executing

    /// Runs one statement with parameters (extended protocol; multiple statements are rejected by the
    /// server).
    ///
    /// - Parameters:
    ///   - sql: the statement, with `$1`, `$2`… placeholders.
    ///   - parameters: values for the placeholders.
    ///   - resultFormat: format the server should use for result values.
    /// - Throws: `PostgresError` (with SQLSTATE for server errors).
    @discardableResult
    public func execute(_ sql: String, _ parameters: [PostgresParameter] = [], resultFormat: PostgresFormat = .text) throws -> PostgresResult {
        let result = try ParameterArrays(checking: parameters).withArrays { types, values, lengths, formats in
            PQexecParams(handle, sql, Int32(parameters.count), types, values, lengths, formats, resultFormat.rawValue)
        }
        return try checked(result)
    }

    /// Runs a script of one or more statements with the simple protocol (no parameters), e.g. a
    /// schema file. Returns the last statement's result.
    @discardableResult
    public func executeScript(_ sql: String) throws -> PostgresResult {
        try checked(PQexec(handle, sql))
    }

    /// Prepares a named statement. Parameter types may be left `.unspecified` for the server to infer.
    public func prepare(name: String, sql: String, parameterTypes: [PostgresOID] = []) throws {
        let types = parameterTypes.map(\.rawValue)
        _ = try checked(PQprepare(handle, name, sql, Int32(types.count), types.isEmpty ? nil : types))
    }

    /// Describes a prepared statement: the parameter types the server inferred and its result columns.
    public func describePrepared(name: String) throws -> (parameterTypes: [PostgresOID], columns: [PostgresColumn]) {
        let result = try checked(PQdescribePrepared(handle, name))
        let types = (0..<Int(PQnparams(result.handle))).map { PostgresOID(PQparamtype(result.handle, Int32($0))) }
        return (types, result.columns)
    }

    /// Executes a statement prepared with `prepare(name:sql:parameterTypes:)`.
    @discardableResult
    public func executePrepared(name: String, _ parameters: [PostgresParameter] = [], resultFormat: PostgresFormat = .text) throws -> PostgresResult {
        let result = try ParameterArrays(checking: parameters).withArrays { _, values, lengths, formats in
            PQexecPrepared(handle, name, Int32(parameters.count), values, lengths, formats, resultFormat.rawValue)
        }
        return try checked(result)
    }

    /// Runs `body` in a transaction: `BEGIN`, then `COMMIT` if it returns, `ROLLBACK` if it throws.
    public func transaction<R>(_ body: (PostgresConnection) throws -> R) throws -> R {
        try execute("BEGIN")
        let value: R
        do {
            value = try body(self)
        } catch {
            if transactionStatus != .idle { _ = try? execute("ROLLBACK") }
            throw error
        }
        // COMMIT of a transaction aborted by an earlier error is a ROLLBACK (no error, tag ROLLBACK).
        guard try execute("COMMIT").commandTag == "COMMIT" else {
            throw PostgresError(.invalidUse, message: "the transaction was rolled back: a statement in it failed")
        }
        return value
    }

    /// Asks the server to cancel the statement in progress (safe from another thread).
    public func cancel() {
        guard let cancel = PQgetCancel(handle) else { return }
        defer { PQfreeCancel(cancel) }
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(cancel, &buffer, Int32(buffer.count))
    }

    // MARK: Results and errors

    /// Turns a `PGresult` into a `PostgresResult`, or throws the error it reports.
    /// COPY is only accepted where it is driven (`copyIn`); anywhere else it is ended and refused,
    /// so the connection is never left in the middle of a COPY.
    func checked(_ result: OpaquePointer?, allowCopyIn: Bool = false) throws -> PostgresResult {
        guard let result else {
            throw PostgresError(.client, message: libpqMessage(handle))
        }
        switch PQresultStatus(result) {
        case PGRES_COPY_IN where allowCopyIn:
            return PostgresResult(taking: result)
        case PGRES_COPY_IN, PGRES_COPY_OUT:
            let copyIn = PQresultStatus(result) == PGRES_COPY_IN
            PQclear(result)
            if copyIn {
                _ = PQputCopyEnd(handle, "COPY FROM STDIN is only supported through copyIn")
            } else {
                var buffer: UnsafeMutablePointer<CChar>?
                while PQgetCopyData(handle, &buffer, 0) > 0 { PQfreemem(buffer); buffer = nil }
            }
            while let rest = PQgetResult(handle) { PQclear(rest) }
            throw PostgresError(.invalidUse, message: copyIn ? "COPY FROM STDIN needs copyIn" : "COPY TO STDOUT is not supported here")
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY, PGRES_SINGLE_TUPLE:
            return PostgresResult(taking: result)
        default:
            let error = PostgresError(result: result, connection: handle)
            PQclear(result)
            throw error
        }
    }
}

extension PostgresError {
    /// Builds an error from a failed `PGresult` (copying every string before the result is freed).
    init(result: OpaquePointer, connection: OpaquePointer?) {
        func field(_ code: Character) -> String? {
            PQresultErrorField(result, Int32(code.asciiValue!)).map { String(cString: $0) }
        }
        let status = PQresultStatus(result)
        let sqlState = field("C")
        var message = field("M") ?? String(cString: PQresultErrorMessage(result)).trimmingWhitespace()
        if message.isEmpty, let connection { message = libpqMessage(connection) }
        if status == PGRES_PIPELINE_ABORTED {
            self.init(.pipelineAborted, message: "not run: an earlier statement in the pipeline failed")
            return
        }
        self.init(sqlState == nil ? .client : .server, message: message, sqlState: sqlState,
                  detail: field("D"), hint: field("H"))
        fields = PostgresNotice.fields(of: result)
    }
}

/// Calls `body` with a NULL-terminated array of C strings.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let duplicates = strings.map { strdup($0) }
    defer { duplicates.forEach { free($0) } }
    let pointers = duplicates.map { UnsafePointer($0) } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// libpq's last error message on `conn`, trimmed.
func libpqMessage(_ conn: OpaquePointer) -> String {
    String(cString: PQerrorMessage(conn)).trimmingWhitespace()
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}

/// Receives server notices (`RAISE NOTICE`, warnings) and forwards them to the logger, or to
/// the connection's `noticeHandler` when one is set.
final class NoticeSink {
    let logger: Logger
    var handler: ((PostgresNotice) -> Void)?
    init(logger: Logger) { self.logger = logger }

    func receive(_ result: OpaquePointer) {
        if let handler {
            handler(PostgresNotice(fields: PostgresNotice.fields(of: result)))
            return
        }
        let severity = PQresultErrorField(result, Int32(Character("V").asciiValue!)).map { String(cString: $0) } ?? "NOTICE"
        let message = PQresultErrorField(result, Int32(Character("M").asciiValue!)).map { String(cString: $0) } ?? ""
        let sqlState = PQresultErrorField(result, Int32(Character("C").asciiValue!)).map { String(cString: $0) } ?? ""
        let level: Logger.Level = switch severity {
        case "WARNING": .warning
        case "DEBUG": .debug
        case "LOG", "INFO": .info
        default: .notice
        }
        logger.log(level: level, "\(message)", metadata: ["postgres.severity": "\(severity)", "postgres.sqlstate": "\(sqlState)"])
    }
}

/// Parameter values laid out as the C arrays libpq wants, backed by one contiguous byte buffer.
struct ParameterArrays {
    private var storage: [UInt8] = []
    private var offsets: [Int] = []
    private(set) var types: [UInt32] = []
    private(set) var lengths: [Int32] = []
    private(set) var formats: [Int32] = []
    private var nulls: [Bool] = []

    /// As `init(_:)`, refusing text values that contain a NUL byte: libpq reads text parameters
    /// up to the first NUL, so the rest would be dropped silently (PostgreSQL text cannot hold NUL).
    init(checking parameters: [PostgresParameter]) throws {
        for (index, parameter) in parameters.enumerated() where parameter.format == .text && parameter.bytes?.contains(0) == true {
            throw PostgresError(.invalidUse, message: "text parameter $\(index + 1) contains a NUL byte, which PostgreSQL text cannot hold")
        }
        self.init(parameters)
    }

    init(_ parameters: [PostgresParameter]) {
        types.reserveCapacity(parameters.count)
        for parameter in parameters {
            types.append(parameter.type.rawValue)
            formats.append(parameter.format.rawValue)
            offsets.append(storage.count)
            if let bytes = parameter.bytes {
                storage.append(contentsOf: bytes)
                // libpq ignores lengths of text-format values and reads up to a NUL.
                if parameter.format == .text { storage.append(0) }
                lengths.append(Int32(bytes.count))
                nulls.append(false)
            } else {
                lengths.append(0)
                nulls.append(true)
            }
        }
    }

    /// Calls `body` with the parameter arrays; pointers are valid only inside `body`.
    func withArrays<R>(_ body: (UnsafePointer<UInt32>?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> R) -> R {
        storage.withUnsafeBufferPointer { bytes in
            // A non-null pointer for empty values: libpq treats a NULL pointer as SQL NULL.
            let base = UnsafeRawPointer(bytes.baseAddress) ?? UnsafeRawPointer(("" as StaticString).utf8Start)
            let values: [UnsafePointer<CChar>?] = offsets.indices.map { i in
                nulls[i] ? nil : (base + offsets[i]).assumingMemoryBound(to: CChar.self)
            }
            return types.withUnsafeBufferPointer { t in
                values.withUnsafeBufferPointer { v in
                    lengths.withUnsafeBufferPointer { l in
                        formats.withUnsafeBufferPointer { f in
                            body(t.baseAddress, v.baseAddress, l.baseAddress, f.baseAddress)
                        }
                    }
                }
            }
        }
    }
}
