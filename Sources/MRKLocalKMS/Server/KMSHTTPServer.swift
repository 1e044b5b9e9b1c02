import MRKKMS
import Foundation
import Logging
import MRKCrypto

/// Serves a `LocalKMS` store over the AWS KMS JSON 1.1 protocol, so unmodified AWS SDKs (boto3, the
/// AWS Encryption SDK, `AWSKMSClient`) can use it: `POST /` with `X-Amz-Target: TrentService.<Op>`.
///
/// Every request must carry a valid SigV4 signature by one of the store's identities (out of the
/// box `test`/`test`). The region comes from the signature's credential scope, so one server stands
/// in for all regions; `Configuration.region` pins it to one. Errors are `{"__type", "message"}` with
/// AWS's names and status codes. `GET /health` answers 200 without authentication.
public actor KMSHTTPServer {
    /// Server settings.
    public struct Configuration: Sendable {
        /// Serve only this region (requests scoped to another are rejected); `nil` serves every region.
        /// Default `nil`.
        public var region: String?
        /// Largest accepted clock skew of `X-Amz-Date`, in seconds. Default 900 (15 minutes, as AWS).
        public var maxClockSkew: TimeInterval
        /// Largest accepted request body. Default 1 MiB.
        public var maxBodyBytes: Int
        /// Logs requests' operation, region and outcome; never bodies. Default: no-op.
        public var logger: Logger

        public init(region: String? = nil, maxClockSkew: TimeInterval = 900, maxBodyBytes: Int = 1 << 20,
                    logger: Logger = Logger(label: "mrkproxy.kms.server", factory: { _ in SwiftLogNoOpLogHandler() })) {
            self.region = region
            self.maxClockSkew = maxClockSkew
            self.maxBodyBytes = maxBodyBytes
            self.logger = logger
        }
    }

    private let dispatcher: KMSRequestDispatcher
    private let server: HTTPServer
    private var boundPort: Int?

    /// A server for `kms`'s store (the view's region and principal are not used: both come from each
    /// request's signature).
    public init(kms: LocalKMS, configuration: Configuration = Configuration()) {
        let dispatcher = KMSRequestDispatcher(store: kms.store, configuration: configuration)
        self.dispatcher = dispatcher
        server = HTTPServer(maxBodyBytes: configuration.maxBodyBytes) { request in dispatcher.handle(request) }
    }

    /// Binds and starts serving.
    ///
    /// - Parameters:
    ///   - host: the address to bind. Default `127.0.0.1`.
    ///   - port: the port; 0 picks a free one. Default 4599.
    /// - Returns: the bound port.
    /// - Throws: when the address cannot be bound.
    @discardableResult
    public func start(host: String = "127.0.0.1", port: Int = 4599) async throws -> Int {
        let port = try await server.start(host: host, port: port)
        boundPort = port
        return port
    }

    /// The bound port, once started.
    public var port: Int? { boundPort }

    /// Stops serving and closes open connections.
    public func shutdown() async {
        await server.shutdown()
        boundPort = nil
    }
}

/// Authenticates and dispatches one KMS request. Stateless apart from the shared store.
package struct KMSRequestDispatcher: Sendable {
    let store: LocalKMSStore
    let configuration: KMSHTTPServer.Configuration

    /// A dispatcher for `kms`'s store (the fuzzing harness drives it without a network).
    package init(kms: LocalKMS, configuration: KMSHTTPServer.Configuration = KMSHTTPServer.Configuration()) {
        self.init(store: kms.store, configuration: configuration)
    }

    init(store: LocalKMSStore, configuration: KMSHTTPServer.Configuration) {
        self.store = store
        self.configuration = configuration
    }

    private static let jsonHeaders = [(name: "Content-Type", value: "application/x-amz-json-1.1")]

    package func handle(_ request: HTTPRequest) -> HTTPResponse {
        if request.method == "GET", request.path == "/health" || request.path == "/" {
            return HTTPResponse(status: 200, headers: [("Content-Type", "text/plain")], body: Array("ok\n".utf8))
        }
        let target = request.header("x-amz-target") ?? ""
        let operation = target.hasPrefix("TrentService.") ? String(target.dropFirst("TrentService.".count)) : ""
        let region: String
        let identity: LocalKMSIdentity
        do {
            guard request.method == "POST" else { throw KMSError(.unknownOperation, "only POST / is supported") }
            (region, identity) = try authenticate(request)
        } catch let error as KMSError {
            store.recordRejected(operation: operation.isEmpty ? "Unknown" : operation, region: error.region ?? "unknown",
                                 accessKeyId: Self.accessKeyId(request), sourceIP: request.remoteAddress, error: error)
            return errorResponse(error)
        } catch {
            return errorResponse(KMSError(.internalError, "internal error"))
        }
        let ctx = KMSCallContext(region: region, principal: identity.principal, accessKeyId: identity.accessKeyId,
                                 sourceIP: request.remoteAddress)
        do {
            guard !operation.isEmpty else { throw KMSError(.unknownOperation, "missing or unknown X-Amz-Target") }
            let body = try dispatch(operation, request.body, ctx)
            configuration.logger.debug("kms request", metadata: ["operation": "\(operation)", "region": "\(region)", "status": "200"])
            return HTTPResponse(status: 200, headers: Self.jsonHeaders, body: body)
        } catch let error as KMSError {
            configuration.logger.debug("kms request failed", metadata: ["operation": "\(operation)", "region": "\(region)",
                                                                        "error": "\(error.code.name)"])
            return errorResponse(error)
        } catch {
            return errorResponse(KMSError(.internalError, "internal error"))
        }
    }

    private static func accessKeyId(_ request: HTTPRequest) -> String? {
        request.header("authorization").flatMap { SigV4.Authorization(header: $0)?.accessKeyId }
    }

    private func errorResponse(_ error: KMSError) -> HTTPResponse {
        let body = (try? JSONEncoder().encode(WireError(__type: error.code.name, message: error.message, Message: nil))) ?? Data()
        return HTTPResponse(status: error.httpStatus ?? error.defaultHTTPStatus,
                            headers: Self.jsonHeaders + [("x-amzn-ErrorType", error.code.name)], body: Array(body))
    }

    // MARK: SigV4 verification

    private func authenticate(_ request: HTTPRequest) throws -> (String, LocalKMSIdentity) {
        guard let header = request.header("authorization") else {
            throw KMSError(.missingAuthenticationToken, "Missing Authentication Token")
        }
        guard let auth = SigV4.Authorization(header: header) else {
            throw KMSError(.incompleteSignature, "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
                + "parameters with algorithm AWS4-HMAC-SHA256")
        }
        guard let identity = store.identity(accessKeyId: auth.accessKeyId) else {
            throw KMSError(.unrecognizedClient, "The security token included in the request is invalid.", region: auth.region)
        }
        guard auth.service == "kms" else {
            throw KMSError(.invalidSignature, "Credential should be scoped to correct service: 'kms'.", region: auth.region)
        }
        if let fixed = configuration.region, fixed != auth.region {
            throw KMSError(.invalidSignature, "Credential should be scoped to a valid region, not '\(auth.region)'.", region: auth.region)
        }
        guard auth.signedHeaders.contains("host") else {
            throw KMSError(.invalidSignature, "'Host' must be a signed header.", region: auth.region)
        }
        // The date (replay window), the operation and any session token must be covered too.
        for name in ["x-amz-date", "x-amz-target"] + (request.header("x-amz-security-token") == nil ? [] : ["x-amz-security-token"])
        where !auth.signedHeaders.contains(name) {
            throw KMSError(.invalidSignature, "'\(name)' must be a signed header.", region: auth.region)
        }
        guard let amzDate = request.header("x-amz-date"), let date = SigV4.parseAmzDate(amzDate) else {
            throw KMSError(.incompleteSignature, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
                           region: auth.region)
        }
        let now = Date()
        if abs(now.timeIntervalSince(date)) > configuration.maxClockSkew {
            let minutes = Int(configuration.maxClockSkew / 60)
            let relation = date < now ? "earlier than" : "later than"
            let bound = date < now ? now.addingTimeInterval(-configuration.maxClockSkew) : now.addingTimeInterval(configuration.maxClockSkew)
            throw KMSError(.invalidSignature, "Signature expired: \(amzDate) is now \(relation) \(SigV4.amzDate(bound)) "
                + "(\(SigV4.amzDate(now)) \(date < now ? "-" : "+") \(minutes) min.)", region: auth.region)
        }
        guard auth.dateStamp == String(amzDate.prefix(8)) else {
            throw KMSError(.invalidSignature, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP",
                           region: auth.region)
        }
        let signed = SigV4.Request(method: request.method, path: request.path, query: request.query, headers: request.headers,
                                   body: request.body)
        let expected = SigV4.expectedSignature(signed, authorization: auth, amzDate: amzDate,
                                               secret: SecretBytes(Array(identity.secretAccessKey.utf8)))
        guard constantTimeEquals(Array(expected.utf8), Array(auth.signature.utf8)) else {
            throw KMSError(.invalidSignature, "The request signature we calculated does not match the signature you provided. "
                + "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
                region: auth.region)
        }
        return (auth.region, identity)
    }

    // MARK: Operations

    private func decode<T: Decodable>(_ type: T.Type, _ body: [UInt8]) throws -> T {
        do { return try JSONDecoder().decode(type, from: Data(body.isEmpty ? Array("{}".utf8) : body)) } catch {
            throw KMSError(.serialization, "could not parse the request body as \(String(describing: type).replacingOccurrences(of: "Wire", with: ""))")
        }
    }

    private func encode(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    private static func tags(_ wire: [WireTag]?) -> [String: String] {
        Dictionary((wire ?? []).map { ($0.TagKey, $0.TagValue) }, uniquingKeysWith: { $1 })
    }

    private static func wireTags(_ tags: [String: String]) -> [WireTag] {
        tags.sorted { $0.key < $1.key }.map { WireTag(TagKey: $0.key, TagValue: $0.value) }
    }

    private func dispatch(_ operation: String, _ body: [UInt8], _ ctx: KMSCallContext) throws -> [UInt8] {
        switch operation {
        case "GenerateDataKey", "GenerateDataKeyWithoutPlaintext":
            let r = try decode(WireGenerateDataKeyRequest.self, body)
            // Built field by field: the public initializer defaults KeySpec, the wire request must not.
            var request = GenerateDataKeyRequest(keyId: r.KeyId, encryptionContext: r.EncryptionContext ?? [:], keySpec: nil,
                                                 numberOfBytes: r.NumberOfBytes)
            request.keySpec = r.KeySpec.map(DataKeySpec.init(rawValue:))
            let withPlaintext = operation == "GenerateDataKey"
            let out = try store.generateDataKey(ctx, request, withPlaintext: withPlaintext)
            var plaintext = withPlaintext ? Data(out.plaintext.bytes) : nil
            defer { if plaintext != nil { plaintext!.resetBytes(in: 0..<plaintext!.count) } }
            return try encode(WireGenerateDataKeyResponse(KeyId: out.keyArn, CiphertextBlob: Data(out.blob), Plaintext: plaintext))
        case "Encrypt":
            var r = try decode(WireEncryptRequest.self, body)
            let plaintext = SecretBytes(r.Plaintext)
            r.Plaintext.resetBytes(in: 0..<r.Plaintext.count)
            let out = try store.encrypt(ctx, keyId: r.KeyId, plaintext: plaintext, context: r.EncryptionContext ?? [:])
            return try encode(WireEncryptResponse(KeyId: out.keyId, CiphertextBlob: Data(out.ciphertextBlob),
                                                  EncryptionAlgorithm: out.encryptionAlgorithm))
        case "Decrypt":
            let r = try decode(WireDecryptRequest.self, body)
            let out = try store.decrypt(ctx, DecryptRequest(ciphertextBlob: Array(r.CiphertextBlob), keyId: r.KeyId,
                                                            encryptionContext: r.EncryptionContext ?? [:]))
            var plaintext = Data(out.plaintext.bytes)
            defer { plaintext.resetBytes(in: 0..<plaintext.count) }
            return try encode(WireDecryptResponse(KeyId: out.keyId, Plaintext: plaintext, EncryptionAlgorithm: out.encryptionAlgorithm))
        case "ReEncrypt":
            let r = try decode(WireReEncryptRequest.self, body)
            let out = try store.reEncrypt(ctx, ReEncryptRequest(
                ciphertextBlob: Array(r.CiphertextBlob), sourceKeyId: r.SourceKeyId,
                sourceEncryptionContext: r.SourceEncryptionContext ?? [:], destinationKeyId: r.DestinationKeyId,
                destinationEncryptionContext: r.DestinationEncryptionContext ?? [:]))
            return try encode(WireReEncryptResponse(CiphertextBlob: Data(out.ciphertextBlob), SourceKeyId: out.sourceKeyId,
                                                    KeyId: out.keyId, SourceEncryptionAlgorithm: "SYMMETRIC_DEFAULT",
                                                    DestinationEncryptionAlgorithm: "SYMMETRIC_DEFAULT"))
        case "DescribeKey":
            let r = try decode(WireKeyIdRequest.self, body)
            return try encode(WireKeyMetadataResponse(KeyMetadata: store.describeKey(ctx, keyId: r.KeyId)))
        case "CreateKey":
            let r = try decode(WireCreateKeyRequest.self, body)
            if let usage = r.KeyUsage, usage != "ENCRYPT_DECRYPT" {
                throw KMSError(.unsupportedOperation, "the embedded KMS supports only ENCRYPT_DECRYPT keys")
            }
            if let spec = r.KeySpec ?? r.CustomerMasterKeySpec, spec != "SYMMETRIC_DEFAULT" {
                throw KMSError(.unsupportedOperation, "the embedded KMS supports only SYMMETRIC_DEFAULT keys")
            }
            let metadata = try store.createKey(ctx, description: r.Description ?? "", multiRegion: r.MultiRegion ?? false,
                                               policy: r.Policy, tags: Self.tags(r.Tags))
            return try encode(WireKeyMetadataResponse(KeyMetadata: metadata))
        case "ReplicateKey":
            let r = try decode(WireReplicateKeyRequest.self, body)
            let out = try store.replicateKey(ctx, keyId: r.KeyId, replicaRegion: r.ReplicaRegion, description: r.Description,
                                             policy: r.Policy, tags: Self.tags(r.Tags))
            return try encode(WireReplicateKeyResponse(ReplicaKeyMetadata: out.metadata, ReplicaPolicy: out.policy,
                                                       ReplicaTags: Self.wireTags(out.tags)))
        case "UpdatePrimaryRegion":
            let r = try decode(WireUpdatePrimaryRegionRequest.self, body)
            try store.updatePrimaryRegion(ctx, keyId: r.KeyId, primaryRegion: r.PrimaryRegion)
            return try encode(WireEmpty())
        case "ListKeys":
            let keys = try store.listKeys(ctx)
            return try encode(WireListKeysResponse(Keys: keys.map { WireKeyListEntry(KeyId: $0.keyId, KeyArn: $0.keyArn) },
                                                   Truncated: false))
        case "CreateAlias":
            let r = try decode(WireCreateAliasRequest.self, body)
            try store.createAlias(ctx, aliasName: r.AliasName, targetKeyId: r.TargetKeyId)
            return try encode(WireEmpty())
        case "DeleteAlias":
            let r = try decode(WireAliasNameRequest.self, body)
            try store.deleteAlias(ctx, aliasName: r.AliasName)
            return try encode(WireEmpty())
        case "ListAliases":
            let r = try decode(WireListAliasesRequest.self, body)
            let aliases = try store.listAliases(ctx, keyId: r.KeyId)
            return try encode(WireListAliasesResponse(
                Aliases: aliases.map { WireAliasEntry(AliasName: $0.aliasName, AliasArn: $0.aliasArn, TargetKeyId: $0.targetKeyId) },
                Truncated: false))
        case "EnableKey", "DisableKey":
            let r = try decode(WireKeyIdRequest.self, body)
            try store.setEnabled(ctx, keyId: r.KeyId, enabled: operation == "EnableKey")
            return try encode(WireEmpty())
        case "PutKeyPolicy":
            let r = try decode(WirePutKeyPolicyRequest.self, body)
            try store.putKeyPolicy(ctx, keyId: r.KeyId, policy: r.Policy)
            return try encode(WireEmpty())
        case "GetKeyPolicy":
            let r = try decode(WireKeyIdRequest.self, body)
            return try encode(WireGetKeyPolicyResponse(Policy: store.getKeyPolicy(ctx, keyId: r.KeyId), PolicyName: "default"))
        case "EnableKeyRotation":
            let r = try decode(WireEnableKeyRotationRequest.self, body)
            try store.setRotation(ctx, keyId: r.KeyId, enabled: true, periodInDays: r.RotationPeriodInDays)
            return try encode(WireEmpty())
        case "DisableKeyRotation":
            let r = try decode(WireKeyIdRequest.self, body)
            try store.setRotation(ctx, keyId: r.KeyId, enabled: false, periodInDays: nil)
            return try encode(WireEmpty())
        case "GetKeyRotationStatus":
            let r = try decode(WireKeyIdRequest.self, body)
            let s = try store.rotationStatus(ctx, keyId: r.KeyId)
            return try encode(WireRotationStatusResponse(KeyRotationEnabled: s.keyRotationEnabled, KeyId: s.keyId,
                                                         RotationPeriodInDays: s.keyRotationEnabled ? s.rotationPeriodInDays : nil,
                                                         NextRotationDate: s.nextRotationDate))
        case "RotateKeyOnDemand":
            let r = try decode(WireKeyIdRequest.self, body)
            return try encode(WireKeyIdRequest(KeyId: store.rotateOnDemand(ctx, keyId: r.KeyId)))
        case "TagResource":
            let r = try decode(WireTagResourceRequest.self, body)
            try store.tag(ctx, keyId: r.KeyId, set: Self.tags(r.Tags), remove: [])
            return try encode(WireEmpty())
        case "UntagResource":
            let r = try decode(WireUntagResourceRequest.self, body)
            try store.tag(ctx, keyId: r.KeyId, set: [:], remove: r.TagKeys)
            return try encode(WireEmpty())
        case "ListResourceTags":
            let r = try decode(WireKeyIdRequest.self, body)
            return try encode(WireListResourceTagsResponse(Tags: Self.wireTags(store.tags(ctx, keyId: r.KeyId)), Truncated: false))
        case "GenerateRandom":
            let r = try decode(WireGenerateRandomRequest.self, body)
            guard let n = r.NumberOfBytes, (1...1024).contains(n) else {
                throw KMSError(.validation, "NumberOfBytes must be between 1 and 1024")
            }
            return try encode(WireGenerateRandomResponse(Plaintext: Data(SecureRandom.bytes(count: n))))
        default:
            throw KMSError(.unknownOperation, "the embedded KMS does not implement \(operation)")
        }
    }
}
