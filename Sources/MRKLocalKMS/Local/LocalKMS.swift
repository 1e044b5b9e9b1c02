import MRKKMS
import Foundation
import Logging
import MRKCrypto

/// The embedded, AWS-KMS-compatible KMS with multi-Region key semantics, for development, tests and
/// the demo.
///
/// One `LocalKMS` store holds every region; a `LocalKMS` value is a *view* of it as one principal in
/// one region (`inRegion(_:)`, `asPrincipal(_:)` return views sharing the store). Its `KMSClient`
/// conformance serves the calls in that region, exactly as AWS KMS's regional endpoint would:
/// an MRK ciphertext made in `us-east-1` decrypts in `ap-southeast-2` under the replica's own key
/// policy and enabled state.
///
/// State (key material included) is kept in a JSON file written atomically with mode 0600; every
/// call is appended to an optional JSON-lines audit log and kept in memory (`auditEvents()`,
/// `callCount(region:operation:)`).
///
/// The key material in the state file is not protected by anything but the file mode: this is a
/// development KMS, not a security boundary.
public final class LocalKMS: KMSClient {
    /// How to open the store.
    public struct Configuration: Sendable {
        /// The JSON state file; `nil` keeps all state in memory. Created when missing. Default `nil`.
        public var stateFile: String?
        /// Where to append audit events as JSON lines; `nil` keeps them in memory only. Default `nil`.
        public var auditLogFile: String?
        /// The region of the initial view. Default `us-east-1`.
        public var region: String
        /// The principal of the initial view; `nil` uses the state's first identity
        /// (`arn:aws:iam::111122223333:root` by default).
        public var principal: String?
        /// How many audit events to keep in memory. Default 100 000.
        public var maxAuditEventsInMemory: Int
        /// Logs key ids and regions, never key material. Default: no-op.
        public var logger: Logger

        public init(stateFile: String? = nil, auditLogFile: String? = nil, region: String = "us-east-1",
                    principal: String? = nil, maxAuditEventsInMemory: Int = 100_000,
                    logger: Logger = Logger(label: "mrkproxy.kms.local", factory: { _ in SwiftLogNoOpLogHandler() })) {
            self.stateFile = stateFile
            self.auditLogFile = auditLogFile
            self.region = region
            self.principal = principal
            self.maxAuditEventsInMemory = maxAuditEventsInMemory
            self.logger = logger
        }
    }

    /// An alias as ListAliases returns it.
    public struct Alias: Sendable, Hashable {
        public var aliasName: String
        public var aliasArn: String
        public var targetKeyId: String
    }

    /// GetKeyRotationStatus output (plus how many material versions the key holds).
    public struct RotationStatus: Sendable, Hashable {
        public var keyId: String
        public var keyRotationEnabled: Bool
        public var rotationPeriodInDays: Int
        /// Seconds since 1970, when rotation is enabled.
        public var nextRotationDate: Double?
        public var materialVersions: Int
    }

    let store: LocalKMSStore
    /// The region this view serves.
    public let region: String
    /// The principal this view calls as.
    public let principal: String

    /// Opens (or creates) the store.
    ///
    /// - Throws: `KMSError` `.configuration` when the state file or audit log cannot be read/written.
    public convenience init(configuration: Configuration = Configuration()) throws {
        let store = try LocalKMSStore(stateFile: configuration.stateFile, auditLogFile: configuration.auditLogFile,
                                      maxEventsInMemory: configuration.maxAuditEventsInMemory, logger: configuration.logger)
        let principal = configuration.principal ?? store.identities.first?.principal
            ?? "arn:\(store.partition):iam::\(store.accountId):root"
        self.init(store: store, region: configuration.region, principal: principal)
    }

    init(store: LocalKMSStore, region: String, principal: String) {
        self.store = store
        self.region = region
        self.principal = principal
    }

    /// A view of the same store in another region.
    public func inRegion(_ region: String) -> LocalKMS { LocalKMS(store: store, region: region, principal: principal) }

    /// A view of the same store calling as another principal (an IAM ARN).
    public func asPrincipal(_ principal: String) -> LocalKMS { LocalKMS(store: store, region: region, principal: principal) }

    private var ctx: KMSCallContext { KMSCallContext(region: region, principal: principal) }

    /// The account id all keys belong to (`111122223333` unless the state file says otherwise).
    public var accountId: String { store.accountId }

    /// The ARN of key `keyId` in this view's region (whether or not it exists).
    public func keyARN(_ keyId: String) -> String { "arn:\(store.partition):kms:\(region):\(store.accountId):key/\(keyId)" }

    // MARK: KMSClient

    public func generateDataKey(_ request: GenerateDataKeyRequest) async throws -> GenerateDataKeyResponse {
        let r = try store.generateDataKey(ctx, request, withPlaintext: true)
        return GenerateDataKeyResponse(keyId: r.keyArn, ciphertextBlob: r.blob, plaintext: r.plaintext)
    }

    public func generateDataKeyWithoutPlaintext(_ request: GenerateDataKeyRequest) async throws -> GenerateDataKeyWithoutPlaintextResponse {
        let r = try store.generateDataKey(ctx, request, withPlaintext: false)
        return GenerateDataKeyWithoutPlaintextResponse(keyId: r.keyArn, ciphertextBlob: r.blob)
    }

    public func encrypt(_ request: EncryptRequest) async throws -> EncryptResponse {
        try store.encrypt(ctx, keyId: request.keyId, plaintext: request.plaintext, context: request.encryptionContext)
    }

    public func decrypt(_ request: DecryptRequest) async throws -> DecryptResponse { try store.decrypt(ctx, request) }

    public func reEncrypt(_ request: ReEncryptRequest) async throws -> ReEncryptResponse { try store.reEncrypt(ctx, request) }

    public func describeKey(_ request: DescribeKeyRequest) async throws -> DescribeKeyResponse {
        DescribeKeyResponse(keyMetadata: try store.describeKey(ctx, keyId: request.keyId))
    }

    // MARK: Key management (synchronous; each is audited like the crypto calls)

    /// CreateKey in this view's region. MRK ids are `mrk-` + 32 hex digits; others are UUIDs.
    ///
    /// - Parameters:
    ///   - policy: a key policy JSON document; `nil` gives AWS's default (the account may do everything).
    /// - Throws: `MalformedPolicyDocumentException`.
    @discardableResult
    public func createKey(description: String = "", multiRegion: Bool = false, policy: String? = nil,
                          tags: [String: String] = [:]) throws -> KeyMetadata {
        try store.createKey(ctx, description: description, multiRegion: multiRegion, policy: policy, tags: tags)
    }

    /// Makes sure the multi-Region key `keyId` (`mrk-` + 32 hex digits, chosen by the caller: a
    /// development convenience AWS does not offer) exists with this view's region as its primary
    /// and a replica in each of `replicaRegions`, creating what is missing. For a stack whose
    /// configuration names the key before the KMS first starts (docker compose).
    ///
    /// - Returns: the key's ARN in each region.
    @discardableResult
    public func ensureMultiRegionKey(_ keyId: String, replicaRegions: [String], description: String = "MRKProxy key") throws -> [String: String] {
        guard keyId.hasPrefix("mrk-"), keyId.count == 36,
              keyId.dropFirst(4).allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
            throw KMSError(.validation, "\(keyId) is not a multi-Region key id (mrk- and 32 lower-case hex digits)")
        }
        var arns: [String: String] = [:]
        if (try? store.describeKey(ctx, keyId: keyId)) == nil {
            _ = try store.createKey(ctx, description: description, multiRegion: true, policy: nil, tags: [:], keyId: keyId)
        }
        arns[region] = keyARN(keyId)
        for replica in replicaRegions where replica != region {
            let view = inRegion(replica)
            if (try? view.store.describeKey(view.ctx, keyId: keyId)) == nil {
                try replicateKey(keyId: keyId, replicaRegion: replica)
            }
            arns[replica] = inRegion(replica).keyARN(keyId)
        }
        return arns
    }

    /// ReplicateKey: call on the primary's region. The replica shares id and key material, but has its
    /// own policy (default policy when `nil`), enabled state, description, aliases and tags.
    ///
    /// - Throws: `UnsupportedOperationException` for a single-Region key or a replica,
    ///   `AlreadyExistsException` when `replicaRegion` already holds the key.
    @discardableResult
    public func replicateKey(keyId: String, replicaRegion: String, description: String? = nil, policy: String? = nil,
                             tags: [String: String] = [:]) throws -> KeyMetadata {
        try store.replicateKey(ctx, keyId: keyId, replicaRegion: replicaRegion, description: description, policy: policy,
                               tags: tags).metadata
    }

    /// UpdatePrimaryRegion: call on the current primary's region; `primaryRegion` must hold a replica.
    public func updatePrimaryRegion(keyId: String, primaryRegion: String) throws {
        try store.updatePrimaryRegion(ctx, keyId: keyId, primaryRegion: primaryRegion)
    }

    /// ListKeys in this region.
    public func listKeys() throws -> [(keyId: String, keyArn: String)] { try store.listKeys(ctx) }

    /// CreateAlias (`alias/…`) for a key in this region.
    public func createAlias(aliasName: String, targetKeyId: String) throws {
        try store.createAlias(ctx, aliasName: aliasName, targetKeyId: targetKeyId)
    }

    /// DeleteAlias in this region.
    public func deleteAlias(aliasName: String) throws { try store.deleteAlias(ctx, aliasName: aliasName) }

    /// ListAliases in this region, optionally only those of one key.
    public func listAliases(keyId: String? = nil) throws -> [Alias] { try store.listAliases(ctx, keyId: keyId) }

    /// EnableKey: only this region's key.
    public func enableKey(keyId: String) throws { try store.setEnabled(ctx, keyId: keyId, enabled: true) }

    /// DisableKey: only this region's key; related keys elsewhere keep working.
    public func disableKey(keyId: String) throws { try store.setEnabled(ctx, keyId: keyId, enabled: false) }

    /// PutKeyPolicy on this region's key.
    public func putKeyPolicy(keyId: String, policy: String) throws { try store.putKeyPolicy(ctx, keyId: keyId, policy: policy) }

    /// GetKeyPolicy of this region's key.
    public func getKeyPolicy(keyId: String) throws -> String { try store.getKeyPolicy(ctx, keyId: keyId) }

    /// EnableKeyRotation: primary keys only (`UnsupportedOperationException` on a replica,
    /// `KMSInvalidStateException` when disabled).
    public func enableKeyRotation(keyId: String, rotationPeriodInDays: Int? = nil) throws {
        try store.setRotation(ctx, keyId: keyId, enabled: true, periodInDays: rotationPeriodInDays)
    }

    /// DisableKeyRotation: primary keys only.
    public func disableKeyRotation(keyId: String) throws {
        try store.setRotation(ctx, keyId: keyId, enabled: false, periodInDays: nil)
    }

    /// GetKeyRotationStatus.
    public func getKeyRotationStatus(keyId: String) throws -> RotationStatus { try store.rotationStatus(ctx, keyId: keyId) }

    /// RotateKeyOnDemand: primary keys only. New material serves every region at once; ciphertexts
    /// under older material keep decrypting. Returns the key id.
    @discardableResult
    public func rotateKeyOnDemand(keyId: String) throws -> String { try store.rotateOnDemand(ctx, keyId: keyId) }

    /// TagResource on this region's key.
    public func tagResource(keyId: String, tags: [String: String]) throws { try store.tag(ctx, keyId: keyId, set: tags, remove: []) }

    /// ListResourceTags of this region's key.
    public func listResourceTags(keyId: String) throws -> [String: String] { try store.tags(ctx, keyId: keyId) }

    // MARK: Identities and audit

    /// The access keys the HTTP server accepts.
    public var identities: [LocalKMSIdentity] { store.identities }

    /// Adds (or replaces) an access key → principal mapping and persists it.
    public func putIdentity(_ identity: LocalKMSIdentity) throws { try store.putIdentity(identity) }

    /// Every call recorded since the store was opened (bounded by `maxAuditEventsInMemory`), oldest first.
    public func auditEvents() -> [KMSAuditEvent] { store.auditEvents() }

    /// Number of calls (successful or not) per region and operation; `nil` matches any.
    public func callCount(region: String? = nil, operation: String? = nil) -> Int {
        store.callCount(region: region, operation: operation)
    }

    /// Clears the in-memory audit events and counters (the audit log file is left alone).
    public func resetAuditEvents() { store.resetAudit() }
}
