import MRKPostgres
import MRKSQL

/// The one error the MRKProxy library throws.
///
/// It names tables, columns, regions, key ids and SQLSTATEs — never plaintext, key bytes or
/// whole ciphertexts. `description` is one line, safe to log and show.
public struct ProxyError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure: a closed set (nobody outside the library can make a new one).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The configuration file is invalid.
        public static let configuration = Code("configuration")
        /// The database does not match the configuration (missing column, wrong type…).
        public static let schemaMismatch = Code("schemaMismatch")
        /// The KMS key is unusable for this configuration (missing, disabled, not an MRK, unreachable…).
        public static let kmsKey = Code("kmsKey")
        /// A KMS call failed.
        public static let kms = Code("kms")
        /// The branch-key keystore is missing a key or inconsistent.
        public static let keystore = Code("keystore")
        /// A statement uses an encrypted column in a way MRKProxy cannot keep correct; nothing was
        /// sent. `refusal` says which table, column and construct.
        public static let refused = Code("refused")
        /// A write was attempted in a read-only (replica) region, or the database is in recovery.
        public static let readOnlyRegion = Code("readOnlyRegion")
        /// The database returned something MRKProxy did not write: a value that fails to decrypt
        /// or to match its row, plaintext where ciphertext belongs, a result column that is not
        /// the one the statement reads, a table changed under the configuration.
        public static let integrity = Code("integrity")
        /// A value does not fit the encrypted column's type.
        public static let invalidValue = Code("invalidValue")
        /// PostgreSQL reported an error (`sqlState` says which) or the connection failed.
        public static let database = Code("database")
        /// The task waiting for a connection or a result was cancelled.
        public static let cancelled = Code("cancelled")
    }

    /// What a refused statement was refused for.
    public struct Refusal: Sendable, Hashable {
        /// The configured table concerned, if known.
        public let table: QualifiedName?
        /// The encrypted column concerned, if any.
        public let column: String?
        /// The construct refused (`LIKE`, `function lower()`, `ORDER BY`…): fixed text and
        /// identifiers only, never values.
        public let construct: String
    }

    public let code: Code
    /// A short, safe explanation.
    public let reason: String
    /// SQLSTATE when the database reported the error.
    public let sqlState: String?
    /// For `.refused`: the table, column and construct.
    public let refusal: Refusal?
    /// The server's error as it sent it, for a relay to its own client (the wire proxy); its
    /// DETAIL may quote values, so it is never part of `description`.
    package var server: PostgresError?
    /// For `.refused`: the analysis's refusal code (`copy`, `multipleStatements`, …).
    package var refusalCode: String?
    /// For `.schemaMismatch`: the statement was planned before a migration's last step and
    /// nothing it read was returned (a read is run again once, planned afresh).
    package var stalePlan = false

    package init(_ code: Code, _ reason: String, sqlState: String? = nil) {
        self.code = code
        self.reason = reason
        self.sqlState = sqlState
        self.refusal = nil
    }

    /// A refusal from the SQL analysis.
    package init(refusal error: InterceptionError) {
        code = .refused
        reason = error.summary
        sqlState = nil
        refusal = Refusal(table: error.table, column: error.column, construct: error.construct)
        refusalCode = error.code.name
    }

    /// The one mapping from libpq and server errors. `context` says what was being done
    /// ("cannot connect to the us-east-1 database"); the server's DETAIL (which may quote values)
    /// is never included.
    package init(_ error: PostgresError, context: String? = nil) {
        var message = error.message
        if let index = error.statementIndex { message += " (batch row \(index))" }
        if let context { message = "\(context): \(message)" }
        if error.sqlState == PostgresError.SQLState.readOnlySQLTransaction {
            self.init(.readOnlyRegion, message, sqlState: error.sqlState)
        } else {
            self.init(.database, message, sqlState: error.sqlState)
        }
        server = error
    }

    public var description: String {
        sqlState.map { "\(code): \(reason) (SQLSTATE \($0))" } ?? "\(code): \(reason)"
    }
}
