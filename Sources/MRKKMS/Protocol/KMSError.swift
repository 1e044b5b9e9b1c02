/// An error from a KMS operation, local or remote.
///
/// `code` carries AWS KMS's error name (the JSON `__type`), so callers can branch on the same names
/// whether they talk to the embedded KMS or to AWS. Errors never carry plaintext, key material or
/// whole ciphertexts; `message` is short and safe to log.
public struct KMSError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The AWS error name; extensible.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The name as it appears in `__type` (without any `namespace#` prefix).
        public let name: String
        /// A code with an arbitrary AWS error name.
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let notFound = Code("NotFoundException")
        public static let disabled = Code("DisabledException")
        public static let accessDenied = Code("AccessDeniedException")
        public static let invalidCiphertext = Code("InvalidCiphertextException")
        public static let invalidState = Code("KMSInvalidStateException")
        public static let incorrectKey = Code("IncorrectKeyException")
        public static let throttling = Code("ThrottlingException")
        public static let unrecognizedClient = Code("UnrecognizedClientException")
        public static let invalidSignature = Code("InvalidSignatureException")
        public static let missingAuthenticationToken = Code("MissingAuthenticationTokenException")
        public static let incompleteSignature = Code("IncompleteSignatureException")
        public static let validation = Code("ValidationException")
        public static let invalidArn = Code("InvalidArnException")
        public static let invalidKeyUsage = Code("InvalidKeyUsageException")
        public static let invalidAliasName = Code("InvalidAliasNameException")
        public static let alreadyExists = Code("AlreadyExistsException")
        public static let malformedPolicyDocument = Code("MalformedPolicyDocumentException")
        public static let unsupportedOperation = Code("UnsupportedOperationException")
        public static let limitExceeded = Code("LimitExceededException")
        public static let internalError = Code("KMSInternalException")
        public static let dependencyTimeout = Code("DependencyTimeoutException")
        public static let unknownOperation = Code("UnknownOperationException")
        public static let serialization = Code("SerializationException")
        /// Client side: the transport failed (connection refused, timeout, TLS…).
        public static let transport = Code("TransportError")
        /// Client side: no credentials could be found or loaded.
        public static let credentials = Code("CredentialsError")
        /// Client side: the response could not be understood.
        public static let invalidResponse = Code("InvalidResponse")
        /// Configuration problems (duplicate MRKs, malformed ARNs, unreadable state file…).
        public static let configuration = Code("ConfigurationError")
    }

    /// The error name.
    public let code: Code
    /// A short, safe explanation (key ids and regions at most, never key material).
    public let message: String
    /// The region the failing call was made in, when known.
    public var region: String?
    /// The key identifier involved, when known.
    public var keyId: String?
    /// HTTP status returned by (or sent by) the KMS endpoint, when the error crossed HTTP.
    public var httpStatus: Int?

    /// Creates an error. Do not put secrets in `message`.
    public init(_ code: Code, _ message: String, region: String? = nil, keyId: String? = nil, httpStatus: Int? = nil) {
        self.code = code
        self.message = message
        self.region = region
        self.keyId = keyId
        self.httpStatus = httpStatus
    }

    public var description: String {
        var s = "\(code.name): \(message)"
        if let region { s += " [region \(region)]" }
        return s
    }

    /// Whether a client may retry the call that failed with this error (throttling, transient server
    /// and transport errors). Authorization, validation and not-found errors are never retried.
    public var isRetryable: Bool {
        switch code {
        case .throttling, .internalError, .dependencyTimeout, .transport, Code("KMSInternalException"),
             Code("ServiceUnavailableException"), Code("RequestLimitExceeded"), Code("TooManyRequestsException"),
             Code("RequestTimeoutException"), Code("ProvisionedThroughputExceededException"):
            return true
        default:
            return (httpStatus ?? 0) >= 500
        }
    }

    /// The HTTP status AWS KMS uses for this error name.
    package var defaultHTTPStatus: Int {
        switch code {
        case .internalError: 500
        case .dependencyTimeout: 503
        default: 400
        }
    }
}
