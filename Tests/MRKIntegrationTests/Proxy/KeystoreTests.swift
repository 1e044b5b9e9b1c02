import Foundation
import Logging
import MRKCluster
import MRKCrypto
@testable import MRKDevTools
import MRKKMS
@testable import MRKLocalKMS
import MRKPostgres
@testable import MRKProxy
import MRKSQL
import Testing

extension ProxyIntegration {
    @Suite struct Keystore {
        let east = "us-east-1", south = "ap-southeast-2"

        func stores(_ stack: LocalStack, keyID: String? = nil) -> (primary: BranchKeyStore, replica: BranchKeyStore) {
            let key = keyID ?? stack.keyID
            let primary = BranchKeyStore(databaseURL: stack.databaseURL(replica: false), kms: stack.kmsClient(region: east),
                                         kmsKeyARN: stack.kms.inRegion(east).keyARN(key))
            let replica = BranchKeyStore(databaseURL: stack.databaseURL(replica: true), kms: stack.kmsClient(region: south),
                                         kmsKeyARN: stack.kms.inRegion(south).keyARN(key))
            return (primary, replica)
        }

        func decrypts(_ stack: LocalStack, keyspace: String) -> [KMSAuditEvent] {
            stack.kms.auditEvents().filter { $0.operation == "Decrypt" && $0.encryptionContext?["mrkproxy:keyspace"] == keyspace }
        }

        @Test("a keystore row moved to another keyspace does not unwrap for it")
        func rowsAreBoundToTheirKeyspace() async throws {
            let stack = try currentStack()
            let (a, b) = (uniqueName("ksa"), uniqueName("ksb"))
            let (primary, _) = stores(stack)
            _ = try await primary.create(keyspace: a)
            _ = try await primary.create(keyspace: b)
            _ = try await primary.rotate(keyspace: a)
            _ = try await primary.rotate(keyspace: b)
            let idB = try primary.keyspaceID(b)
            // Asking for B's key as keyspace A: the row says B.
            await #expect(throws: ProxyError.self) { try await primary.key(keyspaceID: idB, version: 2, keyspace: a) }
            // A DB admin gives one of A's rows B's keyspace id, so that A could resolve to B's id and
            // seal under B's active key: refused rather than picking one of the ids.
            let raw = try PostgresConnection(stack.databaseURL(replica: false))
            try raw.execute("UPDATE mrkproxy_keystore SET keyspace_id = $1, version = 7 WHERE keyspace = $2 AND version = 1",
                            [.int(Int(idB)), .text(a)])
            let error = #expect(throws: ProxyError.self) { try primary.keyspaceID(a) }
            #expect(error?.description.contains("different keyspace ids") == true)
        }

        @Test("a keystore made before the beacon entry existed: init gives the beacon key its own entry holding the same key, so existing blind indexes keep matching and v1 can then be retired")
        func beaconEntryUpgrade() async throws {
            let stack = try currentStack()
            let keyspace = uniqueName("ks")
            let (primary, _) = stores(stack)
            try await primary.create(keyspace: keyspace)
            // An old keystore: no version 0, the beacon key derived from v1.
            let raw = try PostgresConnection(stack.databaseURL(replica: false))
            try raw.execute("DELETE FROM mrkproxy_keystore WHERE keyspace = $1 AND version = 0", [.text(keyspace)])
            primary.clearCache()
            let keyspaceID = try primary.keyspaceID(keyspace)
            let v1 = try await primary.key(keyspaceID: keyspaceID, version: 1)
            let derived = try CompactKeyHierarchy.beaconKey(fromFirstBranchKey: v1.key)
            #expect(try await primary.beaconKey(keyspaceID: keyspaceID) == derived)
            #expect(try await primary.rotate(keyspace: keyspace) == 2)
            let refused = #expect(throws: ProxyError.self) { try primary.retire(keyspace: keyspace, version: 1) }
            #expect(refused?.reason.contains("still derived from v1") == true, "\(String(describing: refused))")

            // init upgrades it: version 0 now holds the derived key, wrapped by KMS.
            let versions = try await primary.create(keyspace: keyspace)
            #expect(versions.map(\.version) == [0, 1, 2] && versions.first?.state == "beacon")
            primary.clearCache()
            stack.kms.resetAuditEvents()
            #expect(try await primary.beaconKey(keyspaceID: keyspaceID) == derived, "the same beacon key: blind indexes stay valid")
            #expect(decrypts(stack, keyspace: keyspace).compactMap { $0.encryptionContext?["mrkproxy:version"] } == ["0"],
                    "the beacon key is unwrapped from its own entry, not derived from v1")
            try primary.retire(keyspace: keyspace, version: 1)
            #expect(try primary.list(keyspace: keyspace).map(\.state) == ["beacon", "retired", "active"])
        }

        @Test("a DB admin who marks the highest version retired does not make processes seal under an older one (sealing fails closed), and a beacon entry that disappears is refused, not replaced by the key derived from v1")
        func retiredStateAndBeaconRowUnderAdversary() async throws {
            let stack = try currentStack()
            let keyspace = uniqueName("ks")
            let (primary, _) = stores(stack)
            try await primary.create(keyspace: keyspace)
            #expect(try await primary.rotate(keyspace: keyspace) == 2)
            let keyspaceID = try primary.keyspaceID(keyspace)
            _ = try await primary.beaconKey(keyspaceID: keyspaceID)
            let raw = try PostgresConnection(stack.databaseURL(replica: false))
            try raw.execute("UPDATE mrkproxy_keystore SET state = 'retired' WHERE keyspace = $1 AND version = 2", [.text(keyspace)])
            primary.clearCache()
            #expect(try primary.sealingVersion(keyspace: keyspace).version == 2, "the highest version, whatever its state")
            let refused = await #expect(throws: ProxyError.self) { _ = try await primary.key(keyspaceID: keyspaceID, version: 2, keyspace: keyspace) }
            #expect(refused?.reason.contains("retired") == true)

            try raw.execute("DELETE FROM mrkproxy_keystore WHERE keyspace = $1 AND version = 0", [.text(keyspace)])
            primary.clearCache()
            let missing = await #expect(throws: ProxyError.self) { _ = try await primary.beaconKey(keyspaceID: keyspaceID) }
            #expect(missing?.reason.contains("disappeared") == true, "\(String(describing: missing))")
        }

        @Test("create is idempotent, stores the bare mrk- id, rotate adds an active version, list shows no key material")
        func createRotateList() async throws {
            let stack = try currentStack()
            let keyspace = uniqueName("ks")
            let (primary, _) = stores(stack)
            let created = try await primary.create(keyspace: keyspace)
            #expect(created.map(\.version) == [0, 1])
            #expect(created.map(\.state) == ["beacon", "active"])
            #expect(created.allSatisfy { $0.kmsKeyID == stack.keyID && $0.kmsKeyID.hasPrefix("mrk-") })
            let again = try await primary.create(keyspace: keyspace)
            #expect(again.map(\.version) == [0, 1], "init is idempotent")

            let v1 = try await primary.activeKey(keyspace: keyspace)
            let beacon = try await primary.beaconKey(keyspaceID: v1.keyspaceID)
            let rotated = try await primary.rotate(keyspace: keyspace)
            #expect(rotated == 2)
            let v2 = try await primary.activeKey(keyspace: keyspace)
            #expect(v2.version == 2 && v2.key != v1.key)
            #expect(try primary.list(keyspace: keyspace).map(\.state) == ["beacon", "decrypt_only", "active"])
            // The beacon key is its own entry (not derived from v1, so v1 can be retired) and does
            // not change with rotation.
            primary.clearCache()
            #expect(try await primary.beaconKey(keyspaceID: v1.keyspaceID) == beacon)
            #expect(try beacon != CompactKeyHierarchy.beaconKey(fromFirstBranchKey: v1.key))
            // Old versions still unwrap.
            #expect(try await primary.key(keyspaceID: v1.keyspaceID, version: 1).key == v1.key)

            // Nothing in the table is key material: every wrapped key is a KMS ciphertext blob.
            let raw = try PostgresConnection(stack.databaseURL(replica: false))
                .execute("SELECT wrapped_key FROM mrkproxy_keystore WHERE keyspace = $1", [.text(keyspace)], resultFormat: .binary)
            for row in raw.rows {
                let blob = try #require(row.bytes(0))
                #expect(blob.count > 32)
                #expect(!blob.containsSubsequence(v1.key.bytes) && !blob.containsSubsequence(v2.key.bytes))
            }
        }

        @Test("the replica region unwraps with its own replica key: Decrypt in ap-southeast-2, nothing in us-east-1")
        func replicaRegionDecryptsLocally() async throws {
            let stack = try currentStack()
            let keyspace = uniqueName("ks")
            let (primary, replica) = stores(stack)
            try await primary.create(keyspace: keyspace)
            let written = try await primary.activeKey(keyspace: keyspace)
            stack.kms.resetAuditEvents()
            try stack.cluster.waitForReplication()

            let read = try await replica.activeKey(keyspace: keyspace)
            #expect(read.key == written.key && read.version == written.version)
            let events = decrypts(stack, keyspace: keyspace)
            #expect(events.count == 1)
            #expect(events.allSatisfy { $0.region == south && $0.succeeded })
            let decryptARN = events.first?.keyArn
            #expect(decryptARN == stack.keyARN(region: south))
            let eastCalls = stack.kms.auditEvents().filter { $0.region == east && $0.encryptionContext?["mrkproxy:keyspace"] == keyspace }
            #expect(eastCalls.isEmpty)
        }

        @Test("rotation on the primary is visible on the replica")
        func rotationReplicates() async throws {
            let stack = try currentStack()
            let keyspace = uniqueName("ks")
            let (primary, replica) = stores(stack)
            try await primary.create(keyspace: keyspace)
            // Rotate the KMS key material too: new wraps use the new material, old ones still unwrap.
            _ = try stack.kms.rotateKeyOnDemand(keyId: stack.keyID)
            let version = try await primary.rotate(keyspace: keyspace)
            let key = try await primary.activeKey(keyspace: keyspace)
            try stack.cluster.waitForReplication()
            let seen = try await replica.activeKey(keyspace: keyspace)
            #expect(seen.version == version && seen.key == key.key)
            #expect(try await replica.key(keyspaceID: key.keyspaceID, version: 1).key == primary.key(keyspaceID: key.keyspaceID, version: 1).key)
        }

        @Test("a replica policy that denies Decrypt fails reads in ap-southeast-2 with AccessDenied; us-east-1 still works")
        func replicaPolicyDeniesDecrypt() async throws {
            let stack = try currentStack()
            // A key of its own, so the policy change does not affect other tests.
            let key = try stack.kms.createKey(description: "policy test", multiRegion: true)
            _ = try stack.kms.replicateKey(keyId: key.keyId, replicaRegion: south)
            try stack.kms.inRegion(south).putKeyPolicy(keyId: key.keyId, policy: """
                {"Version": "2012-10-17", "Statement": [
                  {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"},
                  {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}]}
                """)
            let keyspace = uniqueName("ks")
            let (primary, replica) = stores(stack, keyID: key.keyId)
            try await primary.create(keyspace: keyspace)
            try stack.cluster.waitForReplication()
            let error = try await #require(throws: ProxyError.self) { try await replica.activeKey(keyspace: keyspace) }
            #expect(error.code == .kms)
            #expect(error.description.contains("AccessDeniedException"))
            #expect(error.description.contains(south))
            primary.clearCache()
            #expect(try await primary.activeKey(keyspace: keyspace).version == 1)
        }

        @Test("100 concurrent cold reads make exactly one Decrypt call")
        func singleFlight() async throws {
            let stack = try currentStack()
            let keyspace = uniqueName("ks")
            let (primary, replica) = stores(stack)
            try await primary.create(keyspace: keyspace)
            try stack.cluster.waitForReplication()
            let id = try replica.keyspaceID(keyspace)
            let keys = try await withThrowingTaskGroup(of: SecretBytes.self) { group in
                for _ in 0..<100 { group.addTask { try await replica.key(keyspaceID: id, version: 1).key } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(keys.count == 100 && Set(keys.map(\.bytes)).count == 1)
            #expect(decrypts(stack, keyspace: keyspace).filter { $0.region == south }.count == 1)
            #expect(replica.unwrapCount == 1)
        }

        @Test("when KMS is unreachable, a cached key is used within its stale window, then reads fail")
        func staleWindow() async throws {
            let stack = try currentStack()
            let keyspace = uniqueName("ks")
            let (primary, _) = stores(stack)
            try await primary.create(keyspace: keyspace)
            let clock = ManualClock()
            var configuration = BranchKeyStore.Configuration()
            configuration.cacheTTL = .seconds(300)
            configuration.staleWindow = .seconds(600)
            configuration.time = clock.source
            // A KMS endpoint where nothing listens: every call fails.
            let unreachable = AWSKMSClient(configuration: .init(region: east, endpoint: URL(string: "http://127.0.0.1:9")!, timeout: 1,
                                                                maxAttempts: 1, environment: [:]),
                                           credentialsProvider: StaticCredentialsProvider(AWSCredentials(accessKeyId: "test", secretAccessKey: "test")))
            let flaky = FlakyKMS(working: stack.kmsClient(region: east), broken: unreachable)
            let store = BranchKeyStore(databaseURL: stack.databaseURL(replica: false), kms: flaky,
                                       kmsKeyARN: stack.keyARN(region: east), configuration: configuration)
            let id = try store.keyspaceID(keyspace)
            let fresh = try await store.key(keyspaceID: id, version: 1).key
            flaky.breakIt()
            clock.advance(by: .seconds(301))  // past the TTL, inside the stale window
            #expect(try await store.key(keyspaceID: id, version: 1).key == fresh)
            clock.advance(by: .seconds(600))  // past the stale window
            await #expect(throws: ProxyError.self) { try await store.key(keyspaceID: id, version: 1) }
        }
    }
}

/// A KMS that works until `breakIt()`, then forwards to an unreachable endpoint.
final class FlakyKMS: KMSClient, @unchecked Sendable {
    // `broken` is only flipped from false to true, under `lock`.
    private let lock = NSLock()
    private var broken = false
    let working: any KMSClient
    let unreachable: any KMSClient
    init(working: any KMSClient, broken: any KMSClient) {
        self.working = working
        self.unreachable = broken
    }
    func breakIt() { lock.withLock { broken = true } }
    private var current: any KMSClient { lock.withLock { broken ? unreachable : working } }
    func generateDataKey(_ r: GenerateDataKeyRequest) async throws -> GenerateDataKeyResponse { try await current.generateDataKey(r) }
    func generateDataKeyWithoutPlaintext(_ r: GenerateDataKeyRequest) async throws -> GenerateDataKeyWithoutPlaintextResponse {
        try await current.generateDataKeyWithoutPlaintext(r)
    }
    func encrypt(_ r: EncryptRequest) async throws -> EncryptResponse { try await current.encrypt(r) }
    func decrypt(_ r: DecryptRequest) async throws -> DecryptResponse { try await current.decrypt(r) }
    func reEncrypt(_ r: ReEncryptRequest) async throws -> ReEncryptResponse { try await current.reEncrypt(r) }
    func describeKey(_ r: DescribeKeyRequest) async throws -> DescribeKeyResponse { try await current.describeKey(r) }
}

extension Array where Element == UInt8 {
    func containsSubsequence(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { self[$0..<($0 + needle.count)].elementsEqual(needle) }
    }
}
