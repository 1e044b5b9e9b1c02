import Foundation
import Logging
import MRKCrypto
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The AWS KMS client for production: the JSON 1.1 protocol over HTTPS, SigV4-signed, with regional
/// endpoints, endpoint overrides, timeouts and retries with jittered exponential backoff for
/// throttling and transient errors only.
///
/// The same client talks to `mrkproxy kms serve` when its endpoint is overridden
/// (`AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL`, or `Configuration.endpoints`), which is how the demo
/// and the integration tests exercise this code path.
public final class AWSKMSClient: KMSClient {
    /// Client settings.
    public struct Configuration: Sendable {
        /// The region to call. Required.
        public var region: String
        /// Endpoint per region (e.g. `["ap-southeast-2": URL(string: "http://127.0.0.1:4599")!]`);
        /// wins over everything else. Default empty.
        public var endpoints: [String: URL]
        /// Endpoint for any region without an entry in `endpoints`; `nil` falls back to
        /// `AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL`, then `https://kms.{region}.amazonaws.com`.
        /// Default `nil`.
        public var endpoint: URL?
        /// Per-attempt timeout in seconds. Default 10.
        public var timeout: TimeInterval
        /// Attempts including the first (1 disables retries). Default 3.
        public var maxAttempts: Int
        /// First backoff ceiling in seconds; doubles per retry (full jitter). Default 0.1.
        public var baseBackoff: TimeInterval
        /// Largest backoff in seconds. Default 5.
        public var maxBackoff: TimeInterval
        /// Where endpoint variables are read from. Default: the process environment.
        public var environment: [String: String]
        /// Logs operation, region, status and retries; never bodies. Default: no-op.
        public var logger: Logger

        public init(region: String, endpoints: [String: URL] = [:], endpoint: URL? = nil, timeout: TimeInterval = 10,
                    maxAttempts: Int = 3, baseBackoff: TimeInterval = 0.1, maxBackoff: TimeInterval = 5,
                    environment: [String: String] = ProcessInfo.processInfo.environment,
                    logger: Logger = Logger(label: "mrkproxy.kms.aws", factory: { _ in SwiftLogNoOpLogHandler() })) {
            self.region = region
            self.endpoints = endpoints
            self.endpoint = endpoint
            self.timeout = timeout
            self.maxAttempts = maxAttempts
            self.baseBackoff = baseBackoff
            self.maxBackoff = maxBackoff
            self.environment = environment
            self.logger = logger
        }
    }

    public let configuration: Configuration
    private let credentialsProvider: any AWSCredentialsProvider
    private let transport: HTTPTransport

    /// - Parameters:
    ///   - configuration: region, endpoints, timeouts, retries.
    ///   - credentialsProvider: default: the standard chain (environment, shared files, ECS, IMDSv2)
    ///     over `configuration.environment`.
    public init(configuration: Configuration, credentialsProvider: (any AWSCredentialsProvider)? = nil) {
        self.configuration = configuration
        self.credentialsProvider = credentialsProvider ?? CredentialsProviderChain.standard(environment: configuration.environment)
        transport = HTTPTransport(timeout: configuration.timeout)
    }

    private init(configuration: Configuration, credentialsProvider: any AWSCredentialsProvider, transport: HTTPTransport) {
        self.configuration = configuration
        self.credentialsProvider = credentialsProvider
        self.transport = transport
    }

    /// A client for another region sharing credentials, connections and settings.
    public func inRegion(_ region: String) -> AWSKMSClient {
        var c = configuration
        c.region = region
        return AWSKMSClient(configuration: c, credentialsProvider: credentialsProvider, transport: transport)
    }

    /// The endpoint this client calls.
    public var endpoint: URL {
        if let url = configuration.endpoints[configuration.region] { return url }
        if let url = configuration.endpoint { return url }
        for name in ["AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL"] {
            if let value = configuration.environment[name], !value.isEmpty, let url = URL(string: value) { return url }
        }
        let suffix = configuration.region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
        return URL(string: "https://kms.\(configuration.region).\(suffix)")!
    }

    // MARK: KMSClient

    public func generateDataKey(_ request: GenerateDataKeyRequest) async throws -> GenerateDataKeyResponse {
        var out: WireGenerateDataKeyResponse = try await call("GenerateDataKey", Self.wire(request))
        guard var plaintext = out.Plaintext else { throw KMSError(.invalidResponse, "GenerateDataKey response has no Plaintext") }
        defer { plaintext.resetBytes(in: 0..<plaintext.count); out.Plaintext = nil }
        return GenerateDataKeyResponse(keyId: out.KeyId, ciphertextBlob: Array(out.CiphertextBlob), plaintext: SecretBytes(plaintext))
    }

    public func generateDataKeyWithoutPlaintext(_ request: GenerateDataKeyRequest) async throws -> GenerateDataKeyWithoutPlaintextResponse {
        let out: WireGenerateDataKeyResponse = try await call("GenerateDataKeyWithoutPlaintext", Self.wire(request))
        return GenerateDataKeyWithoutPlaintextResponse(keyId: out.KeyId, ciphertextBlob: Array(out.CiphertextBlob))
    }

    public func encrypt(_ request: EncryptRequest) async throws -> EncryptResponse {
        var wire = WireEncryptRequest(KeyId: request.keyId, Plaintext: Data(request.plaintext.bytes),
                                      EncryptionContext: request.encryptionContext.isEmpty ? nil : request.encryptionContext,
                                      GrantTokens: request.grantTokens.isEmpty ? nil : request.grantTokens)
        defer { wire.Plaintext.resetBytes(in: 0..<wire.Plaintext.count) }
        let out: WireEncryptResponse = try await call("Encrypt", wire)
        return EncryptResponse(keyId: out.KeyId, ciphertextBlob: Array(out.CiphertextBlob),
                               encryptionAlgorithm: out.EncryptionAlgorithm ?? "SYMMETRIC_DEFAULT")
    }

    public func decrypt(_ request: DecryptRequest) async throws -> DecryptResponse {
        var out: WireDecryptResponse = try await call("Decrypt", WireDecryptRequest(
            CiphertextBlob: Data(request.ciphertextBlob), KeyId: request.keyId,
            EncryptionContext: request.encryptionContext.isEmpty ? nil : request.encryptionContext,
            GrantTokens: request.grantTokens.isEmpty ? nil : request.grantTokens))
        defer { out.Plaintext.resetBytes(in: 0..<out.Plaintext.count) }
        return DecryptResponse(keyId: out.KeyId, plaintext: SecretBytes(out.Plaintext),
                               encryptionAlgorithm: out.EncryptionAlgorithm ?? "SYMMETRIC_DEFAULT")
    }

    public func reEncrypt(_ request: ReEncryptRequest) async throws -> ReEncryptResponse {
        let out: WireReEncryptResponse = try await call("ReEncrypt", WireReEncryptRequest(
            CiphertextBlob: Data(request.ciphertextBlob), SourceKeyId: request.sourceKeyId,
            SourceEncryptionContext: request.sourceEncryptionContext.isEmpty ? nil : request.sourceEncryptionContext,
            DestinationKeyId: request.destinationKeyId,
            DestinationEncryptionContext: request.destinationEncryptionContext.isEmpty ? nil : request.destinationEncryptionContext,
            GrantTokens: request.grantTokens.isEmpty ? nil : request.grantTokens))
        return ReEncryptResponse(ciphertextBlob: Array(out.CiphertextBlob), sourceKeyId: out.SourceKeyId, keyId: out.KeyId)
    }

    public func describeKey(_ request: DescribeKeyRequest) async throws -> DescribeKeyResponse {
        let out: WireKeyMetadataResponse = try await call("DescribeKey", WireKeyIdRequest(KeyId: request.keyId))
        return DescribeKeyResponse(keyMetadata: out.KeyMetadata)
    }

    // MARK: Key administration (operators and tools; the library never calls these)

    /// CreateKey: a symmetric encryption key in this client's region (`multiRegion`: an `mrk-` key).
    public func createKey(description: String = "", multiRegion: Bool, policy: String? = nil) async throws -> KeyMetadata {
        let out: WireKeyMetadataResponse = try await call("CreateKey", WireCreateKeyRequest(
            Description: description, MultiRegion: multiRegion, Policy: policy, KeyUsage: "ENCRYPT_DECRYPT", KeySpec: "SYMMETRIC_DEFAULT"))
        return out.KeyMetadata
    }

    /// ReplicateKey: sent to the primary key's region; returns the replica's metadata.
    public func replicateKey(keyId: String, replicaRegion: String, description: String? = nil, policy: String? = nil) async throws -> KeyMetadata {
        let out: WireReplicateKeyResponse = try await call("ReplicateKey", WireReplicateKeyRequest(
            KeyId: keyId, ReplicaRegion: replicaRegion, Description: description, Policy: policy))
        return out.ReplicaKeyMetadata
    }

    /// UpdatePrimaryRegion: sent to the current primary key's region; makes the replica in
    /// `primaryRegion` the primary key (the old primary becomes a replica).
    public func updatePrimaryRegion(keyId: String, primaryRegion: String) async throws {
        // AWS answers with an empty body (the local KMS with `{}`): nothing to decode.
        let payload = try JSONEncoder().encode(WireUpdatePrimaryRegionRequest(KeyId: keyId, PrimaryRegion: primaryRegion))
        _ = try await send("UpdatePrimaryRegion", payload: payload)
    }

    private static func wire(_ r: GenerateDataKeyRequest) -> WireGenerateDataKeyRequest {
        WireGenerateDataKeyRequest(KeyId: r.keyId, EncryptionContext: r.encryptionContext.isEmpty ? nil : r.encryptionContext,
                                   NumberOfBytes: r.numberOfBytes, KeySpec: r.numberOfBytes == nil ? r.keySpec?.rawValue : nil,
                                   GrantTokens: r.grantTokens.isEmpty ? nil : r.grantTokens)
    }

    // MARK: Transport, signing, retries

    /// Sends `operation` with a JSON body and decodes the JSON response, retrying retryable errors.
    func call<Response: Decodable>(_ operation: String, _ body: some Encodable) async throws -> Response {
        let encoder = JSONEncoder()
        var payload = try encoder.encode(body)
        defer { payload.resetBytes(in: 0..<payload.count) }
        // Responses such as Decrypt's carry key material (base64): wipe the body once decoded.
        var data = try await send(operation, payload: payload)
        defer { data.resetBytes(in: 0..<data.count) }
        do { return try JSONDecoder().decode(Response.self, from: data) } catch {
            throw KMSError(.invalidResponse, "\(operation) response could not be parsed", region: configuration.region)
        }
    }

    /// Whether requests may go to `url`: HTTPS, or plain HTTP to this machine only (a local
    /// `mrkproxy kms serve`). KMS responses carry key material, and requests are signed.
    public static func isPermittedEndpoint(_ url: URL) -> Bool {
        switch url.scheme?.lowercased() {
        case "https": return url.host != nil
        case "http": return url.host.map(isLoopbackHost) ?? false
        default: return false
        }
    }

    /// `localhost`, `::1`, or an IPv4 address in 127.0.0.0/8 (all four parts numeric, so that
    /// `127.0.0.1.example.com` is not one).
    public static func isLoopbackHost(_ host: String) -> Bool {
        let host = host.lowercased()
        if ["localhost", "::1", "[::1]"].contains(host) { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCII) && part.allSatisfy(\.isNumber) && Int(part).map { $0 <= 255 } == true
        }
    }

    /// Sends one signed request per attempt; returns the body of the first 200 response.
    func send(_ operation: String, payload: Data) async throws -> Data {
        let url = endpoint
        guard Self.isPermittedEndpoint(url) else {
            throw KMSError(.configuration, "refusing KMS endpoint \(url.scheme ?? "?")://\(url.host ?? "?"): use https (plain http only to a loopback address)",
                           region: configuration.region)
        }
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await sendOnce(operation, payload: payload, url: url)
            } catch let error as KMSError where error.isRetryable && attempt < max(1, configuration.maxAttempts) {
                let ceiling = min(configuration.maxBackoff, configuration.baseBackoff * pow(2, Double(attempt - 1)))
                let delay = Double.random(in: 0...max(ceiling, 0))
                configuration.logger.debug("retrying KMS call", metadata: [
                    "operation": "\(operation)", "region": "\(configuration.region)", "attempt": "\(attempt)",
                    "error": "\(error.code.name)", "delayMs": "\(Int(delay * 1000))",
                ])
                try await Task.sleep(nanoseconds: UInt64(delay * 1_000_000_000))
            }
        }
    }

    private func sendOnce(_ operation: String, payload: Data, url: URL) async throws -> Data {
        let credentials: AWSCredentials
        do {
            guard let found = try await credentialsProvider.credentials() else {
                throw KMSError(.credentials, "no AWS credentials found")
            }
            credentials = found
        } catch var error as KMSError {
            error.region = configuration.region
            throw error
        }
        var path = url.path
        if path.isEmpty { path = "/" }
        var request = SigV4.Request(method: "POST", path: path, query: url.query ?? "",
                                    headers: [("Host", HTTPTransport.hostHeader(url)),
                                              ("Content-Type", "application/x-amz-json-1.1"),
                                              ("X-Amz-Target", "TrentService.\(operation)")],
                                    body: Array(payload))
        SigV4.sign(&request, credentials: credentials, region: configuration.region, service: "kms", date: Date())
        let response: HTTPTransport.Response
        do {
            response = try await transport.send(method: "POST", url: url, headers: request.headers + [("Accept", "application/json")],
                                                body: payload, timeout: configuration.timeout)
        } catch var error as KMSError {
            error.region = configuration.region
            throw error
        }
        guard response.status == 200 else { throw Self.classify(response, region: configuration.region, operation: operation) }
        return response.body
    }

    /// Turns an error response into a `KMSError` named by its `__type` (namespace prefix and
    /// `:`-suffix stripped), falling back to `x-amzn-ErrorType`, then to the HTTP status.
    package static func classify(_ response: HTTPTransport.Response, region: String, operation: String) -> KMSError {
        var type: String?
        var message: String?
        if let object = try? JSONSerialization.jsonObject(with: response.body) as? [String: Any] {
            type = object["__type"] as? String
            message = (object["message"] as? String) ?? (object["Message"] as? String)
        }
        if type == nil { type = response.header("x-amzn-ErrorType") }
        var name = type ?? ""
        if let hash = name.lastIndex(of: "#") { name = String(name[name.index(after: hash)...]) }
        if let colon = name.firstIndex(of: ":") { name = String(name[..<colon]) }
        if name.isEmpty {
            name = response.status == 429 ? KMSError.Code.throttling.name
                : response.status >= 500 ? "ServiceUnavailableException" : "HTTP\(response.status)"
        }
        return KMSError(KMSError.Code(name), message.map { String($0.prefix(512)) } ?? "\(operation) failed with HTTP \(response.status)",
                        region: region, httpStatus: response.status)
    }
}
