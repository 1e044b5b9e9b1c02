internal import COpenSSL

/// An error from a cryptographic operation. It never carries key bytes or plaintext.
public struct CryptoError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong: a closed set outside this package.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        package init(_ name: String) { self.name = name }
        public var description: String { name }

        /// Authentication failed: wrong key, wrong associated data, or tampered ciphertext.
        public static let authenticationFailed = Code("authenticationFailed")
        /// A key, nonce or tag of the wrong length.
        public static let invalidLength = Code("invalidLength")
        /// libcrypto reported an internal failure.
        public static let libcrypto = Code("libcrypto")
        /// A serialized value or message is malformed (truncated, extended, unknown version…).
        public static let malformed = Code("malformed")
        /// A value was sealed with a format or algorithm this build does not support.
        public static let unsupported = Code("unsupported")
        /// A signature did not verify.
        public static let invalidSignature = Code("invalidSignature")
        /// Key commitment did not match.
        public static let commitmentMismatch = Code("commitmentMismatch")
        /// The commitment policy forbids this algorithm suite.
        public static let policyViolation = Code("policyViolation")
        /// No keyring or master key could decrypt any of the encrypted data keys.
        public static let noDecryptableKey = Code("noDecryptableKey")
        /// A value was sealed under a different key (key id) than the one offered to open it.
        public static let keyMismatch = Code("keyMismatch")
        /// The encryption context supplied on decrypt contradicts the one stored in the message.
        public static let encryptionContextMismatch = Code("encryptionContextMismatch")
        /// The caller's input is not acceptable (reserved encryption-context key, size limits…).
        public static let invalidInput = Code("invalidInput")
    }

    public let code: Code
    /// A short, safe explanation (no secrets, no plaintext).
    public let reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code): \(reason)" }

    /// Captures (and clears) the libcrypto error queue.
    static func libcrypto(_ operation: String) -> CryptoError {
        let code = ERR_get_error()
        ERR_clear_error()
        var reason = operation
        if code != 0, let s = ERR_reason_error_string(code) { reason += " (\(String(cString: s)))" }
        return CryptoError(.libcrypto, reason)
    }
}
