/// An error from the MRKProxy library.
///
/// It names tables, columns, regions, key ids and SQLSTATEs — never plaintext, key bytes or
/// whole ciphertexts. `description` is one line, safe to log and show.
public struct ProxyError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure; extensible.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The configuration file is invalid.
        public static let configuration = Code("configuration")
        /// The database does not match the configuration (missing column, wrong type…).
        public static let schemaMismatch = Code("schemaMismatch")
        /// The KMS key is unusable for this configuration (missing, disabled, not an MRK…).
        public static let kmsKey = Code("kmsKey")
        /// A KMS call failed.
        public static let kms = Code("kms")
        /// The branch-key keystore is missing a key or inconsistent.
        public static let keystore = Code("keystore")
        /// A statement uses an encrypted column in a way MRKProxy cannot keep correct.
        public static let refused = Code("refused")
        /// A write was attempted in a read-only (replica) region.
        public static let readOnlyRegion = Code("readOnlyRegion")
        /// A stored value failed to decrypt (tampered, moved to another row or column, wrong key).
        public static let integrity = Code("integrity")
        /// A value does not fit the encrypted column's type.
        public static let invalidValue = Code("invalidValue")
        /// PostgreSQL reported an error.
        public static let database = Code("database")
    }

    public let code: Code
    /// A short, safe explanation.
    public let reason: String
    /// SQLSTATE when the database reported the error.
    public let sqlState: String?

    public init(_ code: Code, _ reason: String, sqlState: String? = nil) {
        self.code = code
        self.reason = reason
        self.sqlState = sqlState
    }

    public var description: String {
        sqlState.map { "\(code): \(reason) (SQLSTATE \($0))" } ?? "\(code): \(reason)"
    }
}
