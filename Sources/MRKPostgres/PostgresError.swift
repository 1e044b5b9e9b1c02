/// An error from PostgreSQL or libpq.
///
/// Server errors carry the SQLSTATE and the server's primary message. The server's DETAIL is kept
/// separately because it may quote column values (for an encrypted column: ciphertext); callers that
/// surface errors to users should decide whether to show it. `description` never includes it.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure: a closed set outside this package.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        package init(_ name: String) { self.name = name }
        public var description: String { name }

        /// Could not connect (libpq's message says why).
        public static let connectionFailed = Code("connectionFailed")
        /// The server rejected a statement; see `sqlState`.
        public static let server = Code("server")
        /// libpq failed to send or receive (connection lost, out of memory…).
        public static let client = Code("client")
        /// A statement in a pipeline did not run because an earlier one failed.
        public static let pipelineAborted = Code("pipelineAborted")
        /// The caller misused the API (e.g. COPY without COPY FROM STDIN).
        public static let invalidUse = Code("invalidUse")
        /// Waiting for something (replication, startup) took longer than allowed.
        public static let timeout = Code("timeout")
    }

    public let code: Code
    /// The server's (or libpq's) primary message, trimmed.
    public let message: String
    /// Five-character SQLSTATE for server errors (e.g. `25006` read-only transaction).
    public let sqlState: String?
    /// The server's DETAIL field. May contain column values: not included in `description`.
    public let detail: String?
    /// The server's HINT field.
    public let hint: String?
    /// Index of the failing statement in a pipeline.
    public var statementIndex: Int?
    /// Every field of the server's ErrorResponse by its protocol code (`S`, `V`, `C`, `M`, `D`,
    /// `H`, `P`, `W`, …), for relaying the error as the server sent it. May quote values.
    public var fields: [UInt8: String] = [:]

    public init(_ code: Code, message: String, sqlState: String? = nil, detail: String? = nil, hint: String? = nil,
                statementIndex: Int? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
        self.statementIndex = statementIndex
    }

    public var description: String {
        var text = message
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let statementIndex { text += " [statement \(statementIndex)]" }
        if let hint { text += "; hint: \(hint)" }
        return text
    }
}

extension PostgresError {
    /// Well-known SQLSTATEs.
    public enum SQLState {
        public static let readOnlySQLTransaction = "25006"
        public static let uniqueViolation = "23505"
        public static let undefinedTable = "42P01"
        public static let undefinedColumn = "42703"
        public static let syntaxError = "42601"
        public static let queryCanceled = "57014"
    }
}
