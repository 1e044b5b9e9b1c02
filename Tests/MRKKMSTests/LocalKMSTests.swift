import Foundation
import MRKCrypto
@testable import MRKKMS
@testable import MRKLocalKMS
import Testing

@Suite("Embedded KMS: keys, MRKs, crypto, rotation, policies, state, audit")
struct LocalKMSTests {
    let ec: EncryptionContext = ["tenant": "acme", "purpose": "branch-key"]

    @Test func createKeyIdsAndDescribe() async throws {
        let kms = try LocalKMS()
        let mrk = try kms.createKey(description: "orders", multiRegion: true)
        #expect(mrk.keyId.hasPrefix("mrk-") && mrk.keyId.count == 36)
        #expect(mrk.keyId.dropFirst(4).allSatisfy { $0.isHexDigit && !$0.isUppercase })
        #expect(mrk.arn == "arn:aws:kms:us-east-1:111122223333:key/\(mrk.keyId)")
        #expect(mrk.multiRegion && mrk.multiRegionConfiguration?.multiRegionKeyType == "PRIMARY")
        let single = try kms.createKey()
        #expect(!single.keyId.hasPrefix("mrk-") && UUID(uuidString: single.keyId) != nil && !single.multiRegion)
        #expect(single.multiRegionConfiguration == nil)
        let described = try await kms.describeKey(DescribeKeyRequest(keyId: mrk.arn)).keyMetadata
        #expect(described == mrk)
        #expect(try kms.listKeys().map(\.keyId).sorted() == [mrk.keyId, single.keyId].sorted())
        await TestSupport.expectKMSError(.notFound) { try await kms.describeKey(DescribeKeyRequest(keyId: "mrk-00")) }
    }

    @Test func replicaSharesIdAndMaterialButNotSettings() async throws {
        let east = try LocalKMS()
        let key = try east.createKey(description: "primary desc", multiRegion: true, tags: ["team": "db"])
        let south = east.inRegion("ap-southeast-2")
        let replica = try east.replicateKey(keyId: key.keyId, replicaRegion: "ap-southeast-2")
        #expect(replica.keyId == key.keyId)
        #expect(replica.arn == "arn:aws:kms:ap-southeast-2:111122223333:key/\(key.keyId)")
        #expect(replica.description == "" && replica.multiRegionConfiguration?.multiRegionKeyType == "REPLICA")
        #expect(try south.listResourceTags(keyId: key.keyId).isEmpty)
        #expect(try east.listResourceTags(keyId: key.keyId) == ["team": "db"])
        let mrc = try #require(try await east.describeKey(DescribeKeyRequest(keyId: key.keyId)).keyMetadata.multiRegionConfiguration)
        #expect(mrc.primaryKey == MultiRegionKey(arn: key.arn, region: "us-east-1"))
        #expect(mrc.replicaKeys == [MultiRegionKey(arn: replica.arn, region: "ap-southeast-2")])
        // Aliases are per region.
        try east.createAlias(aliasName: "alias/orders", targetKeyId: key.keyId)
        #expect(try east.listAliases().map(\.aliasName) == ["alias/orders"])
        #expect(try south.listAliases().isEmpty)
        await TestSupport.expectKMSError(.notFound) { try await south.describeKey(DescribeKeyRequest(keyId: "alias/orders")) }
        // Replication rules.
        #expect(throws: KMSError.self) { try east.replicateKey(keyId: key.keyId, replicaRegion: "ap-southeast-2") }
        #expect(throws: KMSError.self) { try south.replicateKey(keyId: key.keyId, replicaRegion: "eu-west-1") }
        let single = try east.createKey()
        do { try east.replicateKey(keyId: single.keyId, replicaRegion: "eu-west-1"); Issue.record("replicated a single-Region key") } catch let e as KMSError {
            #expect(e.code == .unsupportedOperation)
        }
    }

    @Test func ciphertextFromPrimaryDecryptsInReplicaRegion() async throws {
        let (east, south, keyId) = try TestSupport.mrkSetup()
        let dataKey = try await east.generateDataKey(GenerateDataKeyRequest(keyId: keyId, encryptionContext: ec))
        #expect(dataKey.plaintext.count == 32)
        #expect(dataKey.keyId == east.keyARN(keyId))
        let replicaArn = south.keyARN(keyId)
        let out = try await south.decrypt(DecryptRequest(ciphertextBlob: dataKey.ciphertextBlob, keyId: replicaArn, encryptionContext: ec))
        #expect(out.plaintext == dataKey.plaintext)
        #expect(out.keyId == replicaArn)
        // Also without KeyId, and with the bare id.
        #expect(try await south.decrypt(DecryptRequest(ciphertextBlob: dataKey.ciphertextBlob, encryptionContext: ec)).plaintext == dataKey.plaintext)
        // And the other way round.
        let sealed = try await south.encrypt(EncryptRequest(keyId: keyId, plaintext: SecretBytes(Array("hello".utf8)), encryptionContext: ec))
        #expect(sealed.keyId == replicaArn)
        #expect(try await east.decrypt(DecryptRequest(ciphertextBlob: sealed.ciphertextBlob, keyId: keyId, encryptionContext: ec))
            .plaintext.bytes == Array("hello".utf8))
        // The audit trail proves where each call happened.
        let decrypts = south.auditEvents().filter { $0.operation == "Decrypt" && $0.region == "ap-southeast-2" }
        #expect(decrypts.count == 2 && decrypts.allSatisfy { $0.succeeded && $0.keyArn == replicaArn })
        #expect(east.callCount(region: "ap-southeast-2", operation: "Decrypt") == 2)
        #expect(east.callCount(region: "us-east-1", operation: "Decrypt") == 1)
    }

    @Test func tamperedTruncatedOrWrongContextCiphertextsAreRejected() async throws {
        let (east, south, keyId) = try TestSupport.mrkSetup()
        let blob = try await east.generateDataKeyWithoutPlaintext(GenerateDataKeyRequest(keyId: keyId, encryptionContext: ec)).ciphertextBlob
        for i in [0, 6, blob.count / 2, blob.count - 1] {
            var flipped = blob
            flipped[i] ^= 0x01
            await TestSupport.expectKMSError(i == 6 ? .notFound : .invalidCiphertext) {
                try await south.decrypt(DecryptRequest(ciphertextBlob: flipped, encryptionContext: ec))
            }
        }
        await TestSupport.expectKMSError(.invalidCiphertext) {
            try await south.decrypt(DecryptRequest(ciphertextBlob: Array(blob.dropLast(1)), encryptionContext: ec))
        }
        await TestSupport.expectKMSError(.invalidCiphertext) {
            try await south.decrypt(DecryptRequest(ciphertextBlob: Array(blob.prefix(20)), encryptionContext: ec))
        }
        var wrong = ec
        wrong["tenant"] = "other"
        await TestSupport.expectKMSError(.invalidCiphertext) {
            try await south.decrypt(DecryptRequest(ciphertextBlob: blob, encryptionContext: wrong))
        }
        await TestSupport.expectKMSError(.invalidCiphertext) { try await south.decrypt(DecryptRequest(ciphertextBlob: blob)) }
        // A different key named in the request: IncorrectKeyException.
        let other = try south.createKey(multiRegion: true)
        await TestSupport.expectKMSError(.incorrectKey) {
            try await south.decrypt(DecryptRequest(ciphertextBlob: blob, keyId: other.keyId, encryptionContext: ec))
        }
        // An ARN of another region than the endpoint's: NotFound.
        await TestSupport.expectKMSError(.notFound) {
            try await south.decrypt(DecryptRequest(ciphertextBlob: blob, keyId: east.keyARN(keyId), encryptionContext: ec))
        }
        // Errors never carry the ciphertext.
        let error = await TestSupport.expectKMSError(.invalidCiphertext) {
            try await south.decrypt(DecryptRequest(ciphertextBlob: blob, encryptionContext: wrong))
        }
        #expect(!(error?.description.contains(Data(blob).base64EncodedString()) ?? true))
    }

    @Test func generateDataKeyValidation() async throws {
        let kms = try LocalKMS()
        let key = try kms.createKey(multiRegion: true)
        let r16 = try await kms.generateDataKey(GenerateDataKeyRequest(keyId: key.keyId, keySpec: .aes128))
        #expect(r16.plaintext.count == 16)
        let r64 = try await kms.generateDataKey(GenerateDataKeyRequest(keyId: key.keyId, numberOfBytes: 64))
        #expect(r64.plaintext.count == 64)
        await TestSupport.expectKMSError(.validation) {
            try await kms.generateDataKey(GenerateDataKeyRequest(keyId: key.keyId, numberOfBytes: 2000))
        }
        await TestSupport.expectKMSError(.validation) {
            try await kms.generateDataKey(GenerateDataKeyRequest(keyId: key.keyId, keySpec: nil))
        }
        // Encryption contexts are limited to 8,192 bytes, as in AWS (and so blobs stay unambiguous).
        let big = ["k": String(repeating: "v", count: 8_200)]
        await TestSupport.expectKMSError(.validation) {
            try await kms.generateDataKey(GenerateDataKeyRequest(keyId: key.keyId, encryptionContext: big, keySpec: .aes256))
        }
        let limit = ["k": String(repeating: "v", count: 8_191)]
        #expect(try await kms.generateDataKey(GenerateDataKeyRequest(keyId: key.keyId, encryptionContext: limit, keySpec: .aes256)).plaintext.count == 32)
        await TestSupport.expectKMSError(.validation) {
            try await kms.encrypt(EncryptRequest(keyId: key.keyId, plaintext: SecretBytes([UInt8](repeating: 1, count: 4097))))
        }
    }

    @Test func reEncryptMovesBetweenKeysAndContexts() async throws {
        let (east, south, keyId) = try TestSupport.mrkSetup()
        let other = try south.createKey()
        let sealed = try await east.encrypt(EncryptRequest(keyId: keyId, plaintext: SecretBytes(Array("row key".utf8)), encryptionContext: ec))
        let moved = try await south.reEncrypt(ReEncryptRequest(ciphertextBlob: sealed.ciphertextBlob, sourceEncryptionContext: ec,
                                                               destinationKeyId: other.keyId, destinationEncryptionContext: ["v": "2"]))
        #expect(moved.sourceKeyId == south.keyARN(keyId) && moved.keyId == other.arn)
        let out = try await south.decrypt(DecryptRequest(ciphertextBlob: moved.ciphertextBlob, encryptionContext: ["v": "2"]))
        #expect(out.plaintext.bytes == Array("row key".utf8) && out.keyId == other.arn)
    }

    @Test func disabledReplicaRefusesOnlyInItsOwnRegion() async throws {
        let (east, south, keyId) = try TestSupport.mrkSetup()
        let blob = try await east.generateDataKeyWithoutPlaintext(GenerateDataKeyRequest(keyId: keyId, encryptionContext: ec)).ciphertextBlob
        try south.disableKey(keyId: keyId)
        #expect(try await south.describeKey(DescribeKeyRequest(keyId: keyId)).keyMetadata.keyState == "Disabled")
        #expect(try await east.describeKey(DescribeKeyRequest(keyId: keyId)).keyMetadata.keyState == "Enabled")
        await TestSupport.expectKMSError(.disabled) {
            try await south.decrypt(DecryptRequest(ciphertextBlob: blob, keyId: keyId, encryptionContext: ec))
        }
        await TestSupport.expectKMSError(.disabled) { try await south.generateDataKey(GenerateDataKeyRequest(keyId: keyId)) }
        _ = try await east.decrypt(DecryptRequest(ciphertextBlob: blob, keyId: keyId, encryptionContext: ec))
        try south.enableKey(keyId: keyId)
        _ = try await south.decrypt(DecryptRequest(ciphertextBlob: blob, keyId: keyId, encryptionContext: ec))
    }

    @Test func rotationOnPrimaryReachesReplicasAndOldCiphertextsStillDecrypt() async throws {
        let (east, south, keyId) = try TestSupport.mrkSetup()
        let old = try await east.generateDataKey(GenerateDataKeyRequest(keyId: keyId, encryptionContext: ec))
        // Replicas cannot rotate.
        await TestSupport.expectKMSError(.unsupportedOperation) { try south.rotateKeyOnDemand(keyId: keyId) }
        await TestSupport.expectKMSError(.unsupportedOperation) { try south.enableKeyRotation(keyId: keyId) }
        try east.enableKeyRotation(keyId: keyId, rotationPeriodInDays: 90)
        #expect(try east.getKeyRotationStatus(keyId: keyId).keyRotationEnabled)
        try east.rotateKeyOnDemand(keyId: keyId)
        #expect(try south.getKeyRotationStatus(keyId: keyId).materialVersions == 2)
        let new = try await south.generateDataKey(GenerateDataKeyRequest(keyId: keyId, encryptionContext: ec))
        #expect(try CiphertextBlob(parsing: old.ciphertextBlob).materialVersion == 1)
        #expect(try CiphertextBlob(parsing: new.ciphertextBlob).materialVersion == 2)
        #expect(try await south.decrypt(DecryptRequest(ciphertextBlob: old.ciphertextBlob, encryptionContext: ec)).plaintext == old.plaintext)
        #expect(try await east.decrypt(DecryptRequest(ciphertextBlob: new.ciphertextBlob, encryptionContext: ec)).plaintext == new.plaintext)
        // A disabled primary cannot rotate.
        try east.disableKey(keyId: keyId)
        await TestSupport.expectKMSError(.invalidState) { try east.rotateKeyOnDemand(keyId: keyId) }
        await TestSupport.expectKMSError(.invalidState) { try east.enableKeyRotation(keyId: keyId) }
    }

    @Test func updatePrimaryRegionMovesRotationRights() async throws {
        let (east, south, keyId) = try TestSupport.mrkSetup()
        await TestSupport.expectKMSError(.unsupportedOperation) { try south.updatePrimaryRegion(keyId: keyId, primaryRegion: "ap-southeast-2") }
        await TestSupport.expectKMSError(.notFound) { try east.updatePrimaryRegion(keyId: keyId, primaryRegion: "eu-west-1") }
        try east.updatePrimaryRegion(keyId: keyId, primaryRegion: "ap-southeast-2")
        let meta = try await south.describeKey(DescribeKeyRequest(keyId: keyId)).keyMetadata
        #expect(meta.multiRegionConfiguration?.multiRegionKeyType == "PRIMARY")
        #expect(meta.multiRegionConfiguration?.replicaKeys.map(\.region) == ["us-east-1"])
        try south.rotateKeyOnDemand(keyId: keyId)
        await TestSupport.expectKMSError(.unsupportedOperation) { try east.rotateKeyOnDemand(keyId: keyId) }
    }

    @Test func replicaPolicyDenyingDecryptFailsThereOnly() async throws {
        let (east, south, keyId) = try TestSupport.mrkSetup()
        let blob = try await east.generateDataKeyWithoutPlaintext(GenerateDataKeyRequest(keyId: keyId, encryptionContext: ec)).ciphertextBlob
        try south.putKeyPolicy(keyId: keyId, policy: """
            {"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
              {"Effect":"Deny","Principal":"*","Action":["kms:Decrypt","kms:ReEncrypt*"],"Resource":"*"}]}
            """)
        let error = await TestSupport.expectKMSError(.accessDenied) {
            try await south.decrypt(DecryptRequest(ciphertextBlob: blob, keyId: south.keyARN(keyId), encryptionContext: ec))
        }
        #expect(error?.message.contains("kms:Decrypt") == true && error?.message.contains("explicit deny") == true)
        #expect(error?.region == "ap-southeast-2")
        _ = try await east.decrypt(DecryptRequest(ciphertextBlob: blob, keyId: east.keyARN(keyId), encryptionContext: ec))
        // Encrypt is still allowed on the replica.
        _ = try await south.generateDataKey(GenerateDataKeyRequest(keyId: keyId))
        let failed = south.auditEvents().last { $0.operation == "Decrypt" && !$0.succeeded }
        #expect(failed?.errorCode == "AccessDeniedException" && failed?.region == "ap-southeast-2")
    }

    @Test func policiesDenyByDefaultAndMatchPrincipalsActionsAndContext() async throws {
        let kms = try LocalKMS()
        let app = "arn:aws:iam::111122223333:role/app"
        let other = "arn:aws:iam::444455556666:role/intruder"
        let key = try kms.createKey(multiRegion: true, policy: """
            {"Statement":[
              {"Effect":"Allow","Principal":{"AWS":["\(app)"]},"Action":["kms:GenerateDataKey*","kms:Describe*"],"Resource":"*"},
              {"Effect":"Allow","Principal":{"AWS":"\(app)"},"Action":"kms:Decrypt","Resource":"*",
               "Condition":{"StringEquals":{"kms:EncryptionContext:tenant":"acme"}}}]}
            """)
        let asApp = kms.asPrincipal(app)
        let dk = try await asApp.generateDataKey(GenerateDataKeyRequest(keyId: key.keyId, encryptionContext: ec))
        _ = try await asApp.generateDataKeyWithoutPlaintext(GenerateDataKeyRequest(keyId: key.keyId))
        _ = try await asApp.decrypt(DecryptRequest(ciphertextBlob: dk.ciphertextBlob, encryptionContext: ec))
        // Not granted: Encrypt (no statement), Decrypt with another tenant, another account, even the root.
        await TestSupport.expectKMSError(.accessDenied) {
            try await asApp.encrypt(EncryptRequest(keyId: key.keyId, plaintext: SecretBytes([1])))
        }
        let other2 = try await asApp.generateDataKey(GenerateDataKeyRequest(keyId: key.keyId, encryptionContext: ["tenant": "globex"]))
        await TestSupport.expectKMSError(.accessDenied) {
            try await asApp.decrypt(DecryptRequest(ciphertextBlob: other2.ciphertextBlob, encryptionContext: ["tenant": "globex"]))
        }
        await TestSupport.expectKMSError(.accessDenied) {
            try await kms.asPrincipal(other).describeKey(DescribeKeyRequest(keyId: key.keyId))
        }
        await TestSupport.expectKMSError(.accessDenied) { try kms.putKeyPolicy(keyId: key.keyId, policy: "{\"Statement\":[]}") }
        // Malformed policies are refused.
        #expect(throws: KMSError.self) { try kms.createKey(policy: "{not json") }
        #expect(throws: KMSError.self) { try kms.createKey(policy: "{\"Statement\":[{\"Effect\":\"Maybe\",\"Principal\":\"*\",\"Action\":\"kms:*\"}]}") }
        // A condition this KMS cannot evaluate is refused, not ignored (a Deny would never apply).
        for condition in [#"{"Null":{"kms:EncryptionContext:tenant":"true"}}"#, #"{"StringEquals":{"kms:ViaService":"rds.us-east-1.amazonaws.com"}}"#] {
            let error = #expect(throws: KMSError.self) {
                try kms.createKey(policy: #"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Condition":"# + condition + "}]}")
            }
            #expect(error?.code == .malformedPolicyDocument)
        }
    }

    @Test func policyGlobbing() {
        #expect(KeyPolicy.glob("kms:*", "kms:decrypt"))
        #expect(KeyPolicy.glob("kms:generatedatakey*", "kms:generatedatakeywithoutplaintext"))
        #expect(KeyPolicy.glob("kms:re?ncrypt*", "kms:reencryptfrom"))
        #expect(!KeyPolicy.glob("kms:encrypt", "kms:reencryptfrom"))
        #expect(KeyPolicy.principal("111122223333", matches: "arn:aws:iam::111122223333:role/x"))
        #expect(!KeyPolicy.principal("arn:aws:iam::111122223333:root", matches: "arn:aws:iam::444455556666:root"))
    }

    @Test func stateIsPersistedAtomicallyWithMode0600() async throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("state.json").path
        let blob: GenerateDataKeyResponse
        do {
            let (east, _, keyId) = try TestSupport.mrkSetup(configuration: .init(stateFile: path))
            blob = try await east.generateDataKey(GenerateDataKeyRequest(keyId: keyId, encryptionContext: ec))
            try east.putIdentity(LocalKMSIdentity(accessKeyId: "AKIAAPP", secretAccessKey: "s3cret", principal: "arn:aws:iam::111122223333:role/app"))
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
            // No temporary files left; the lock file stays (it is locked, never rewritten).
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["state.json", "state.json.lock"])
            // One store per state file: a second one would rewrite the file from a stale copy.
            #expect(throws: KMSError.self) { try LocalKMS(configuration: .init(stateFile: path, region: "ap-southeast-2")) }
        }
        // Reopen once the first store is gone: the replica still decrypts what the primary made.
        let reopened = try LocalKMS(configuration: .init(stateFile: path, region: "ap-southeast-2"))
        let out = try await reopened.decrypt(DecryptRequest(ciphertextBlob: blob.ciphertextBlob, encryptionContext: ec))
        #expect(out.plaintext == blob.plaintext)
        #expect(reopened.identities.contains { $0.accessKeyId == "AKIAAPP" })
        #expect(reopened.identities.contains { $0.accessKeyId == "test" && $0.principal == "arn:aws:iam::111122223333:root" })
        // A corrupt file is a clear configuration error.
        try Data("{".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: KMSError.self) { try LocalKMS(configuration: .init(stateFile: path)) }
    }

    @Test func auditLogRecordsEveryCallAsJSONLines() async throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("audit.jsonl").path
        let (east, south, keyId) = try TestSupport.mrkSetup(configuration: .init(auditLogFile: log))
        let dk = try await east.generateDataKey(GenerateDataKeyRequest(keyId: keyId, encryptionContext: ec))
        _ = try await south.decrypt(DecryptRequest(ciphertextBlob: dk.ciphertextBlob, keyId: south.keyARN(keyId), encryptionContext: ec))
        _ = try? await south.decrypt(DecryptRequest(ciphertextBlob: dk.ciphertextBlob, encryptionContext: [:]))
        let events = try KMSAuditEvent.readLog(at: log)
        #expect(events.map(\.operation) == ["CreateKey", "ReplicateKey", "GenerateDataKey", "Decrypt", "Decrypt"])
        #expect(events == east.auditEvents())
        let decrypt = events[3]
        #expect(decrypt.region == "ap-southeast-2" && decrypt.keyArn == south.keyARN(keyId) && decrypt.encryptionContext == ec)
        #expect(decrypt.principal == "arn:aws:iam::111122223333:root" && decrypt.succeeded && decrypt.errorCode == nil)
        #expect(events[4].outcome == "Failure" && events[4].errorCode == "InvalidCiphertextException")
        #expect(!events.contains { $0.region == "us-east-1" && $0.operation == "Decrypt" })
        // No key material or data keys in the log.
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(!text.contains(Data(dk.plaintext.bytes).base64EncodedString()))
        #expect(east.callCount(region: "ap-southeast-2") == 2 && east.callCount(operation: "Decrypt") == 2)
        let attributes = try FileManager.default.attributesOfItem(atPath: log)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }
}
