import MRKKMS
import Foundation
import Logging
import MRKCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Who calls the embedded KMS, and in which region.
struct KMSCallContext: Sendable {
    var region: String
    var principal: String
    var accessKeyId: String?
    var sourceIP: String?
}

/// The embedded KMS's state and operations, shared by every region view (`LocalKMS`) and by the
/// HTTP server. Every operation runs under one lock, records an audit event and, when it changes
/// state, rewrites the state file before returning.
// @unchecked Sendable: all mutable state (`state`, `events`, `counts`, `auditFD`) is only touched
// while holding `lock`; the remaining stored properties are immutable.
final class LocalKMSStore: @unchecked Sendable {
    /// Held while the store is open, when it has a state file.
    private let stateLock: FileLock?
    fileprivate let lock = NSLock()
    private var state: LocalKMSState
    private let stateFile: String?
    private var auditFD: Int32 = -1
    private var events: [KMSAuditEvent] = []
    private var counts: [String: Int] = [:]
    private let maxEventsInMemory: Int
    let logger: Logger

    init(stateFile: String?, auditLogFile: String?, maxEventsInMemory: Int, logger: Logger) throws {
        // The store keeps the state in memory and rewrites the file: one process at a time.
        do {
            stateLock = try stateFile.map { path throws(AtomicFile.Failure) in try FileLock(for: path) }
        } catch {
            throw KMSError(.configuration, error.description)
        }
        self.stateFile = stateFile
        self.maxEventsInMemory = maxEventsInMemory
        self.logger = logger
        state = try stateFile.map(LocalKMSState.load(from:)) ?? LocalKMSState()
        if let auditLogFile {
            auditFD = open(auditLogFile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            guard auditFD >= 0 else { throw KMSError(.configuration, "cannot open audit log \(auditLogFile) (errno \(errno))") }
        }
        if let stateFile, !FileManager.default.fileExists(atPath: stateFile) { try state.save(to: stateFile) }
    }

    deinit { if auditFD >= 0 { close(auditFD) } }

    // MARK: Identities, audit access

    var accountId: String { lock.withLock { state.accountId } }
    var partition: String { lock.withLock { state.partition } }

    func identity(accessKeyId: String) -> LocalKMSIdentity? {
        lock.withLock { state.identities.first { $0.accessKeyId == accessKeyId } }
    }

    var identities: [LocalKMSIdentity] { lock.withLock { state.identities } }

    func putIdentity(_ identity: LocalKMSIdentity) throws {
        try lock.withLock {
            state.identities.removeAll { $0.accessKeyId == identity.accessKeyId }
            state.identities.append(identity)
            try persist()
        }
    }

    func auditEvents() -> [KMSAuditEvent] { lock.withLock { events } }

    func callCount(region: String?, operation: String?) -> Int {
        lock.withLock {
            counts.reduce(0) { sum, entry in
                let parts = entry.key.split(separator: "|", maxSplits: 1).map(String.init)
                let ok = (region == nil || parts[0] == region) && (operation == nil || parts[1] == operation)
                return ok ? sum + entry.value : sum
            }
        }
    }

    func resetAudit() { lock.withLock { events.removeAll(); counts.removeAll() } }

    // MARK: Call plumbing

    /// Runs `body` under the lock and records the outcome. `body` sets the key ARN it resolved.
    private func call<T>(_ operation: String, _ ctx: KMSCallContext, context: EncryptionContext? = nil,
                         _ body: (inout String?) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        var keyArn: String?
        do {
            // AWS limits an encryption context to 8,192 bytes of keys and values; beyond that its
            // length-prefixed encoding in a ciphertext blob would no longer be unambiguous.
            if let context, context.reduce(0, { $0 + $1.key.utf8.count + $1.value.utf8.count }) > 8_192 {
                throw KMSError(.validation, "Encryption context exceeds the 8192-byte limit.", region: ctx.region)
            }
            let result = try body(&keyArn)
            record(operation, ctx, keyArn, context, nil)
            return result
        } catch var error as KMSError {
            if error.region == nil { error.region = ctx.region }
            record(operation, ctx, keyArn, context, error)
            throw error
        } catch {
            let wrapped = KMSError(.internalError, "internal error in the embedded KMS", region: ctx.region)
            record(operation, ctx, keyArn, context, wrapped)
            throw wrapped
        }
    }

    private static let timeFormat = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    fileprivate func record(_ operation: String, _ ctx: KMSCallContext, _ keyArn: String?, _ ec: EncryptionContext?, _ error: KMSError?) {
        let event = KMSAuditEvent(
            time: Date().formatted(Self.timeFormat), region: ctx.region, principal: ctx.principal,
            accessKeyId: ctx.accessKeyId, operation: operation, keyArn: keyArn, encryptionContext: ec,
            outcome: error == nil ? "Success" : "Failure", errorCode: error?.code.name, errorMessage: error?.message,
            requestId: UUID().uuidString.lowercased(), sourceIPAddress: ctx.sourceIP)
        counts["\(ctx.region)|\(operation)", default: 0] += 1
        events.append(event)
        if events.count > maxEventsInMemory { events.removeFirst(events.count - maxEventsInMemory) }
        if auditFD >= 0 {
            let line = Array((event.jsonLine + "\n").utf8)
            _ = line.withUnsafeBytes { write(auditFD, $0.baseAddress, $0.count) }
        }
        if let error {
            logger.debug("kms call failed", metadata: ["operation": "\(operation)", "region": "\(ctx.region)",
                                                       "key": "\(keyArn ?? "-")", "error": "\(error.code.name)"])
        }
    }

    private func persist() throws {
        guard let stateFile else { return }
        do { try state.save(to: stateFile) } catch {
            logger.error("cannot write KMS state file", metadata: ["path": "\(stateFile)"])
            throw KMSError(.internalError, "the embedded KMS could not persist its state")
        }
    }

    // MARK: Lookups (call with the lock held)

    private func arn(_ region: String, _ keyId: String) -> String {
        "arn:\(state.partition):kms:\(region):\(state.accountId):key/\(keyId)"
    }

    private func aliasArn(_ region: String, _ name: String) -> String {
        "arn:\(state.partition):kms:\(region):\(state.accountId):\(name)"
    }

    private func keyIndex(_ region: String, _ keyId: String) -> Int? {
        state.keys.firstIndex { $0.region == region && $0.keyId == keyId }
    }

    private func notFound(_ region: String, _ keyId: String) -> KMSError {
        KMSError(.notFound, "Key '\(arn(region, keyId))' does not exist", region: region, keyId: keyId)
    }

    /// Resolves a key id, key ARN, alias name or alias ARN in the caller's region.
    private func resolve(_ identifier: String, _ ctx: KMSCallContext, allowAlias: Bool = true) throws -> Int {
        var id = identifier
        if identifier.hasPrefix("arn:") {
            let parsed: KMSARN
            do { parsed = try KMSARN(parsing: identifier) } catch {
                throw KMSError(.notFound, "Invalid keyId '\(identifier)'", region: ctx.region)
            }
            guard parsed.region == ctx.region, parsed.account == state.accountId, parsed.partition == state.partition else {
                throw KMSError(.notFound, "Key '\(identifier)' does not exist in \(ctx.region)", region: ctx.region, keyId: identifier)
            }
            id = parsed.resourceType == .alias ? "alias/" + parsed.resourceId : parsed.resourceId
        }
        if id.hasPrefix("alias/") {
            guard allowAlias, let alias = state.aliases.first(where: { $0.region == ctx.region && $0.name == id }),
                  let index = keyIndex(ctx.region, alias.targetKeyId) else {
                throw KMSError(.notFound, "Alias \(aliasArn(ctx.region, id)) is not found.", region: ctx.region, keyId: id)
            }
            return index
        }
        guard let index = keyIndex(ctx.region, id) else { throw notFound(ctx.region, id) }
        return index
    }

    private func authorize(_ action: String, _ index: Int, _ ctx: KMSCallContext, _ ec: EncryptionContext = [:]) throws {
        let key = state.keys[index]
        let policy: KeyPolicy
        do { policy = try KeyPolicy(parsing: key.policy) } catch {
            throw KMSError(.accessDenied, "the key policy of \(arn(key.region, key.keyId)) cannot be evaluated", region: key.region)
        }
        let decision = policy.evaluate(.init(principal: ctx.principal, action: action, encryptionContext: ec))
        switch decision {
        case .allow: return
        case .explicitDeny:
            throw KMSError(.accessDenied, "User: \(ctx.principal) is not authorized to perform: \(action) on resource: "
                + "\(arn(key.region, key.keyId)) with an explicit deny in a resource-based policy",
                region: key.region, keyId: key.keyId)
        case .implicitDeny:
            throw KMSError(.accessDenied, "User: \(ctx.principal) is not authorized to perform: \(action) on resource: "
                + "\(arn(key.region, key.keyId)) because no resource-based policy allows the \(action) action",
                region: key.region, keyId: key.keyId)
        }
    }

    private func requireEnabled(_ index: Int) throws {
        let key = state.keys[index]
        guard key.enabled else {
            throw KMSError(.disabled, "\(arn(key.region, key.keyId)) is disabled.", region: key.region, keyId: key.keyId)
        }
    }

    private func requirePrimary(_ index: Int, _ operation: String) throws {
        let key = state.keys[index]
        let family = state.families[key.keyId]!
        guard family.primaryRegion == key.region else {
            throw KMSError(.unsupportedOperation, "\(arn(key.region, key.keyId)) is a multi-Region replica key; "
                + "\(operation) is only supported on the primary key in \(family.primaryRegion)",
                region: key.region, keyId: key.keyId)
        }
    }

    private func rotate(_ keyId: String, now: Double) {
        var family = state.families[keyId]!
        let next = family.current.version + 1
        family.materials.append(KeyMaterialVersion(version: next, createdAt: now, key: SecretBytes(randomCount: 32)))
        family.lastRotationDate = now
        state.families[keyId] = family
        logger.info("rotated key material", metadata: ["key": "\(keyId)", "version": "\(next)"])
    }

    /// Automatic rotation, checked lazily when the material is about to be used.
    private func currentMaterial(_ keyId: String) throws -> KeyMaterialVersion {
        let family = state.families[keyId]!
        let now = Date().timeIntervalSince1970
        if family.rotationEnabled,
           now >= (family.lastRotationDate ?? family.creationDate) + Double(family.rotationPeriodInDays) * 86400 {
            rotate(keyId, now: now)
            try persist()
        }
        return state.families[keyId]!.current
    }

    private func metadata(_ index: Int) -> KeyMetadata {
        let key = state.keys[index]
        let family = state.families[key.keyId]!
        var mrc: MultiRegionConfiguration?
        if family.multiRegion {
            let regions = state.keys.filter { $0.keyId == key.keyId }.map(\.region).sorted()
            mrc = MultiRegionConfiguration(
                multiRegionKeyType: family.primaryRegion == key.region ? "PRIMARY" : "REPLICA",
                primaryKey: MultiRegionKey(arn: arn(family.primaryRegion, key.keyId), region: family.primaryRegion),
                replicaKeys: regions.filter { $0 != family.primaryRegion }.map { MultiRegionKey(arn: arn($0, key.keyId), region: $0) })
        }
        return KeyMetadata(awsAccountId: state.accountId, keyId: key.keyId, arn: arn(key.region, key.keyId),
                           creationDate: key.creationDate, enabled: key.enabled, description: key.description,
                           keyState: key.enabled ? "Enabled" : "Disabled", multiRegion: family.multiRegion,
                           multiRegionConfiguration: mrc)
    }

    private func validatePolicy(_ policy: String?) throws -> String {
        guard let policy else { return KeyPolicy.defaultPolicy(account: state.accountId, partition: state.partition) }
        _ = try KeyPolicy(parsing: policy)
        return policy
    }

    // MARK: Key management

    func createKey(_ ctx: KMSCallContext, description: String, multiRegion: Bool, policy: String?,
                   tags: [String: String], keyId chosen: String? = nil) throws -> KeyMetadata {
        try call("CreateKey", ctx) { keyArn in
            let policy = try validatePolicy(policy)
            let now = Date().timeIntervalSince1970
            if let chosen {
                guard state.families[chosen] == nil else {
                    throw KMSError(.alreadyExists, "key \(chosen) already exists", region: ctx.region)
                }
            }
            let keyId = chosen ?? (multiRegion
                ? "mrk-" + SecureRandom.bytes(count: 16).map { String(format: "%02x", $0) }.joined()
                : UUID().uuidString.lowercased())
            state.families[keyId] = KeyFamily(
                keyId: keyId, multiRegion: multiRegion, primaryRegion: ctx.region, creationDate: now,
                materials: [KeyMaterialVersion(version: 1, createdAt: now, key: SecretBytes(randomCount: 32))])
            state.keys.append(RegionKey(region: ctx.region, keyId: keyId, description: description, enabled: true,
                                        policy: policy, tags: tags, creationDate: now))
            keyArn = arn(ctx.region, keyId)
            try persist()
            return metadata(state.keys.count - 1)
        }
    }

    func replicateKey(_ ctx: KMSCallContext, keyId: String, replicaRegion: String, description: String?, policy: String?,
                      tags: [String: String]) throws -> (metadata: KeyMetadata, policy: String, tags: [String: String]) {
        try call("ReplicateKey", ctx) { keyArn in
            let index = try resolve(keyId, ctx, allowAlias: false)
            let key = state.keys[index]
            keyArn = arn(key.region, key.keyId)
            try authorize("kms:ReplicateKey", index, ctx)
            guard state.families[key.keyId]!.multiRegion else {
                throw KMSError(.unsupportedOperation, "\(keyArn!) is not a multi-Region key", keyId: key.keyId)
            }
            try requirePrimary(index, "ReplicateKey")
            guard !replicaRegion.isEmpty, replicaRegion != key.region else {
                throw KMSError(.validation, "ReplicaRegion must be another region")
            }
            guard keyIndex(replicaRegion, key.keyId) == nil else {
                throw KMSError(.alreadyExists, "\(arn(replicaRegion, key.keyId)) already exists", keyId: key.keyId)
            }
            let replicaPolicy = try validatePolicy(policy)
            state.keys.append(RegionKey(region: replicaRegion, keyId: key.keyId, description: description ?? "", enabled: true,
                                        policy: replicaPolicy, tags: tags, creationDate: Date().timeIntervalSince1970))
            try persist()
            return (metadata(state.keys.count - 1), replicaPolicy, tags)
        }
    }

    func updatePrimaryRegion(_ ctx: KMSCallContext, keyId: String, primaryRegion: String) throws {
        try call("UpdatePrimaryRegion", ctx) { keyArn in
            let index = try resolve(keyId, ctx, allowAlias: false)
            let key = state.keys[index]
            keyArn = arn(key.region, key.keyId)
            try authorize("kms:UpdatePrimaryRegion", index, ctx)
            guard state.families[key.keyId]!.multiRegion else {
                throw KMSError(.unsupportedOperation, "\(keyArn!) is not a multi-Region key", keyId: key.keyId)
            }
            try requirePrimary(index, "UpdatePrimaryRegion")
            guard keyIndex(primaryRegion, key.keyId) != nil else {
                throw KMSError(.notFound, "no replica of \(key.keyId) in \(primaryRegion)", keyId: key.keyId)
            }
            state.families[key.keyId]!.primaryRegion = primaryRegion
            try persist()
        }
    }

    func describeKey(_ ctx: KMSCallContext, keyId: String) throws -> KeyMetadata {
        try call("DescribeKey", ctx) { keyArn in
            let index = try resolve(keyId, ctx)
            keyArn = arn(ctx.region, state.keys[index].keyId)
            try authorize("kms:DescribeKey", index, ctx)
            return metadata(index)
        }
    }

    func listKeys(_ ctx: KMSCallContext) throws -> [(keyId: String, keyArn: String)] {
        try call("ListKeys", ctx) { _ in
            state.keys.filter { $0.region == ctx.region }.map { ($0.keyId, arn($0.region, $0.keyId)) }
        }
    }

    func createAlias(_ ctx: KMSCallContext, aliasName: String, targetKeyId: String) throws {
        try call("CreateAlias", ctx) { keyArn in
            guard aliasName.hasPrefix("alias/"), aliasName.count > 6, !aliasName.hasPrefix("alias/aws/"),
                  aliasName.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "/_-".contains($0)) }) else {
                throw KMSError(.invalidAliasName, "Alias must start with the prefix \"alias/\" and contain only "
                    + "alphanumeric characters, '/', '_' or '-' (not alias/aws/)")
            }
            let index = try resolve(targetKeyId, ctx, allowAlias: false)
            keyArn = arn(ctx.region, state.keys[index].keyId)
            try authorize("kms:CreateAlias", index, ctx)
            guard !state.aliases.contains(where: { $0.region == ctx.region && $0.name == aliasName }) else {
                throw KMSError(.alreadyExists, "An alias with the name \(aliasArn(ctx.region, aliasName)) already exists")
            }
            state.aliases.append(AliasEntry(region: ctx.region, name: aliasName, targetKeyId: state.keys[index].keyId,
                                            creationDate: Date().timeIntervalSince1970))
            try persist()
        }
    }

    func deleteAlias(_ ctx: KMSCallContext, aliasName: String) throws {
        try call("DeleteAlias", ctx) { keyArn in
            guard let i = state.aliases.firstIndex(where: { $0.region == ctx.region && $0.name == aliasName }) else {
                throw KMSError(.notFound, "Alias \(aliasArn(ctx.region, aliasName)) is not found.")
            }
            if let index = keyIndex(ctx.region, state.aliases[i].targetKeyId) {
                keyArn = arn(ctx.region, state.keys[index].keyId)
                try authorize("kms:DeleteAlias", index, ctx)
            }
            state.aliases.remove(at: i)
            try persist()
        }
    }

    func listAliases(_ ctx: KMSCallContext, keyId: String?) throws -> [LocalKMS.Alias] {
        try call("ListAliases", ctx) { keyArn in
            var target: String?
            if let keyId {
                let index = try resolve(keyId, ctx, allowAlias: false)
                target = state.keys[index].keyId
                keyArn = arn(ctx.region, state.keys[index].keyId)
            }
            return state.aliases.filter { $0.region == ctx.region && (target == nil || $0.targetKeyId == target) }
                .map { LocalKMS.Alias(aliasName: $0.name, aliasArn: aliasArn($0.region, $0.name), targetKeyId: $0.targetKeyId) }
        }
    }

    func setEnabled(_ ctx: KMSCallContext, keyId: String, enabled: Bool) throws {
        try call(enabled ? "EnableKey" : "DisableKey", ctx) { keyArn in
            let index = try resolve(keyId, ctx, allowAlias: false)
            keyArn = arn(ctx.region, state.keys[index].keyId)
            try authorize(enabled ? "kms:EnableKey" : "kms:DisableKey", index, ctx)
            state.keys[index].enabled = enabled
            try persist()
        }
    }

    func putKeyPolicy(_ ctx: KMSCallContext, keyId: String, policy: String) throws {
        try call("PutKeyPolicy", ctx) { keyArn in
            let index = try resolve(keyId, ctx, allowAlias: false)
            keyArn = arn(ctx.region, state.keys[index].keyId)
            try authorize("kms:PutKeyPolicy", index, ctx)
            state.keys[index].policy = try validatePolicy(policy)
            try persist()
        }
    }

    func getKeyPolicy(_ ctx: KMSCallContext, keyId: String) throws -> String {
        try call("GetKeyPolicy", ctx) { keyArn in
            let index = try resolve(keyId, ctx, allowAlias: false)
            keyArn = arn(ctx.region, state.keys[index].keyId)
            try authorize("kms:GetKeyPolicy", index, ctx)
            return state.keys[index].policy
        }
    }

    func setRotation(_ ctx: KMSCallContext, keyId: String, enabled: Bool, periodInDays: Int?) throws {
        try call(enabled ? "EnableKeyRotation" : "DisableKeyRotation", ctx) { keyArn in
            let index = try resolve(keyId, ctx, allowAlias: false)
            let key = state.keys[index]
            keyArn = arn(ctx.region, key.keyId)
            try authorize(enabled ? "kms:EnableKeyRotation" : "kms:DisableKeyRotation", index, ctx)
            try requirePrimary(index, enabled ? "EnableKeyRotation" : "DisableKeyRotation")
            guard key.enabled else {
                throw KMSError(.invalidState, "\(keyArn!) is disabled.", keyId: key.keyId)
            }
            if let periodInDays, !(90...2560).contains(periodInDays) {
                throw KMSError(.validation, "RotationPeriodInDays must be between 90 and 2560")
            }
            state.families[key.keyId]!.rotationEnabled = enabled
            if let periodInDays { state.families[key.keyId]!.rotationPeriodInDays = periodInDays }
            try persist()
        }
    }

    func rotationStatus(_ ctx: KMSCallContext, keyId: String) throws -> LocalKMS.RotationStatus {
        try call("GetKeyRotationStatus", ctx) { keyArn in
            let index = try resolve(keyId, ctx, allowAlias: false)
            let key = state.keys[index]
            keyArn = arn(ctx.region, key.keyId)
            try authorize("kms:GetKeyRotationStatus", index, ctx)
            let family = state.families[key.keyId]!
            return LocalKMS.RotationStatus(
                keyId: keyArn!, keyRotationEnabled: family.rotationEnabled, rotationPeriodInDays: family.rotationPeriodInDays,
                nextRotationDate: family.rotationEnabled
                    ? (family.lastRotationDate ?? family.creationDate) + Double(family.rotationPeriodInDays) * 86400 : nil,
                materialVersions: family.materials.count)
        }
    }

    func rotateOnDemand(_ ctx: KMSCallContext, keyId: String) throws -> String {
        try call("RotateKeyOnDemand", ctx) { keyArn in
            let index = try resolve(keyId, ctx, allowAlias: false)
            let key = state.keys[index]
            keyArn = arn(ctx.region, key.keyId)
            try authorize("kms:RotateKeyOnDemand", index, ctx)
            try requirePrimary(index, "RotateKeyOnDemand")
            guard key.enabled else { throw KMSError(.invalidState, "\(keyArn!) is disabled.", keyId: key.keyId) }
            rotate(key.keyId, now: Date().timeIntervalSince1970)
            try persist()
            return key.keyId
        }
    }

    func tag(_ ctx: KMSCallContext, keyId: String, set: [String: String], remove: [String]) throws {
        try call(remove.isEmpty ? "TagResource" : "UntagResource", ctx) { keyArn in
            let index = try resolve(keyId, ctx, allowAlias: false)
            keyArn = arn(ctx.region, state.keys[index].keyId)
            try authorize(remove.isEmpty ? "kms:TagResource" : "kms:UntagResource", index, ctx)
            state.keys[index].tags.merge(set) { $1 }
            for k in remove { state.keys[index].tags[k] = nil }
            try persist()
        }
    }

    func tags(_ ctx: KMSCallContext, keyId: String) throws -> [String: String] {
        try call("ListResourceTags", ctx) { keyArn in
            let index = try resolve(keyId, ctx, allowAlias: false)
            keyArn = arn(ctx.region, state.keys[index].keyId)
            try authorize("kms:ListResourceTags", index, ctx)
            return state.keys[index].tags
        }
    }

    // MARK: Cryptographic operations

    private func sealLocked(_ plaintext: some ContiguousBytes, index: Int, context: EncryptionContext) throws -> [UInt8] {
        let keyId = state.keys[index].keyId
        return try CiphertextBlob.seal(plaintext, keyId: keyId, material: currentMaterial(keyId), context: context)
    }

    /// Decrypts under the lock: returns the key index used and the plaintext.
    private func openLocked(_ blobBytes: [UInt8], keyId: String?, context: EncryptionContext, action: String,
                            _ ctx: KMSCallContext, keyArn: inout String?) throws -> (Int, SecretBytes) {
        let blob = try CiphertextBlob(parsing: blobBytes)
        var index: Int
        if let keyId {
            index = try resolve(keyId, ctx)
            keyArn = arn(ctx.region, state.keys[index].keyId)
            guard state.keys[index].keyId == blob.keyId else {
                throw KMSError(.incorrectKey, "The key ID in the request does not identify a CMK that can perform this operation.",
                               keyId: keyId)
            }
        } else {
            guard let found = keyIndex(ctx.region, blob.keyId) else { throw notFound(ctx.region, blob.keyId) }
            index = found
            keyArn = arn(ctx.region, blob.keyId)
        }
        try authorize(action, index, ctx, context)
        try requireEnabled(index)
        guard let material = state.families[blob.keyId]?.material(blob.materialVersion) else {
            throw KMSError(.invalidCiphertext, "the ciphertext refers to key material this key does not have")
        }
        return (index, try blob.open(material: material, context: context))
    }

    func encrypt(_ ctx: KMSCallContext, keyId: String, plaintext: SecretBytes, context: EncryptionContext) throws -> EncryptResponse {
        try call("Encrypt", ctx, context: context) { keyArn in
            let index = try resolve(keyId, ctx)
            keyArn = arn(ctx.region, state.keys[index].keyId)
            guard (1...4096).contains(plaintext.count) else {
                throw KMSError(.validation, "Plaintext must be between 1 and 4096 bytes")
            }
            try authorize("kms:Encrypt", index, ctx, context)
            try requireEnabled(index)
            let blob = try plaintext.withUnsafeBytes { try sealLocked($0, index: index, context: context) }
            return EncryptResponse(keyId: keyArn!, ciphertextBlob: blob)
        }
    }

    func generateDataKey(_ ctx: KMSCallContext, _ request: GenerateDataKeyRequest, withPlaintext: Bool) throws
        -> (keyArn: String, blob: [UInt8], plaintext: SecretBytes) {
        let operation = withPlaintext ? "GenerateDataKey" : "GenerateDataKeyWithoutPlaintext"
        return try call(operation, ctx, context: request.encryptionContext) { keyArn in
            let index = try resolve(request.keyId, ctx)
            keyArn = arn(ctx.region, state.keys[index].keyId)
            let count: Int
            if let n = request.numberOfBytes {
                guard request.keySpec == nil else { throw KMSError(.validation, "Specify either NumberOfBytes or KeySpec, not both") }
                guard (1...1024).contains(n) else { throw KMSError(.validation, "NumberOfBytes must be between 1 and 1024") }
                count = n
            } else if let spec = request.keySpec {
                guard let n = spec.byteCount else { throw KMSError(.validation, "KeySpec must be AES_256 or AES_128") }
                count = n
            } else {
                throw KMSError(.validation, "Please specify either number of bytes or key spec.")
            }
            try authorize("kms:" + operation, index, ctx, request.encryptionContext)
            try requireEnabled(index)
            let key = SecretBytes(randomCount: count)
            let blob = try key.withUnsafeBytes { try sealLocked($0, index: index, context: request.encryptionContext) }
            return (keyArn!, blob, key)
        }
    }

    func decrypt(_ ctx: KMSCallContext, _ request: DecryptRequest) throws -> DecryptResponse {
        try call("Decrypt", ctx, context: request.encryptionContext) { keyArn in
            let (index, plaintext) = try openLocked(request.ciphertextBlob, keyId: request.keyId, context: request.encryptionContext,
                                                    action: "kms:Decrypt", ctx, keyArn: &keyArn)
            return DecryptResponse(keyId: arn(ctx.region, state.keys[index].keyId), plaintext: plaintext)
        }
    }

    func reEncrypt(_ ctx: KMSCallContext, _ request: ReEncryptRequest) throws -> ReEncryptResponse {
        try call("ReEncrypt", ctx, context: request.destinationEncryptionContext) { keyArn in
            let (source, plaintext) = try openLocked(request.ciphertextBlob, keyId: request.sourceKeyId,
                                                     context: request.sourceEncryptionContext, action: "kms:ReEncryptFrom",
                                                     ctx, keyArn: &keyArn)
            let destination = try resolve(request.destinationKeyId, ctx)
            keyArn = arn(ctx.region, state.keys[destination].keyId)
            try authorize("kms:ReEncryptTo", destination, ctx, request.destinationEncryptionContext)
            try requireEnabled(destination)
            let blob = try plaintext.withUnsafeBytes {
                try sealLocked($0, index: destination, context: request.destinationEncryptionContext)
            }
            return ReEncryptResponse(ciphertextBlob: blob, sourceKeyId: arn(ctx.region, state.keys[source].keyId), keyId: keyArn!)
        }
    }
}

extension LocalKMSStore {
    /// Records a request the HTTP server rejected before it reached an operation (bad signature,
    /// unknown access key…).
    func recordRejected(operation: String, region: String, accessKeyId: String?, sourceIP: String?, error: KMSError) {
        lock.withLock {
            record(operation, KMSCallContext(region: region, principal: "anonymous", accessKeyId: accessKeyId, sourceIP: sourceIP),
                   nil, nil, error)
        }
    }
}
