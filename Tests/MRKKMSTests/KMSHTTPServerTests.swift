import Foundation
import MRKCrypto
@testable import MRKKMS
@testable import MRKLocalKMS
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `AWSKMSClient` (the production code path) against the in-process `KMSHTTPServer`.
@Suite("KMS HTTP server with the AWS KMS client")
struct KMSHTTPServerTests {
    let ec: EncryptionContext = ["keyspace": "orders", "version": "1"]

    @Test func mrkFlowOverHTTPWithRegionFromSigV4Scope() async throws {
        let (east, _, keyId) = try TestSupport.mrkSetup()
        try await TestSupport.withServer(east) { port in
            let eastClient = TestSupport.client(port: port, region: "us-east-1")
            let southClient = eastClient.inRegion("ap-southeast-2")
            let replicaArn = "arn:aws:kms:ap-southeast-2:111122223333:key/\(keyId)"
            let dk = try await eastClient.generateDataKey(GenerateDataKeyRequest(keyId: keyId, encryptionContext: ec))
            #expect(dk.keyId == "arn:aws:kms:us-east-1:111122223333:key/\(keyId)" && dk.plaintext.count == 32)
            let out = try await southClient.decrypt(DecryptRequest(ciphertextBlob: dk.ciphertextBlob, keyId: replicaArn, encryptionContext: ec))
            #expect(out.plaintext == dk.plaintext && out.keyId == replicaArn)
            let described = try await southClient.describeKey(DescribeKeyRequest(keyId: keyId)).keyMetadata
            #expect(described.multiRegionConfiguration?.multiRegionKeyType == "REPLICA" && described.arn == replicaArn)
            let sealed = try await southClient.encrypt(EncryptRequest(keyId: replicaArn, plaintext: SecretBytes(Array("x".utf8))))
            let re = try await eastClient.reEncrypt(ReEncryptRequest(ciphertextBlob: sealed.ciphertextBlob, destinationKeyId: keyId,
                                                                     destinationEncryptionContext: ec))
            let back = try await southClient.decrypt(DecryptRequest(ciphertextBlob: re.ciphertextBlob, encryptionContext: ec))
            #expect(back.plaintext.bytes == Array("x".utf8))
            let wo = try await eastClient.generateDataKeyWithoutPlaintext(GenerateDataKeyRequest(keyId: keyId, numberOfBytes: 48))
            #expect(try await southClient.decrypt(DecryptRequest(ciphertextBlob: wo.ciphertextBlob)).plaintext.count == 48)
            // The audit trail shows the decrypt in ap-southeast-2 with the principal and access key.
            let decrypt = try #require(east.auditEvents().first { $0.operation == "Decrypt" })
            #expect(decrypt.region == "ap-southeast-2" && decrypt.keyArn == replicaArn && decrypt.accessKeyId == "test")
            #expect(decrypt.principal == "arn:aws:iam::111122223333:root" && decrypt.sourceIPAddress == "127.0.0.1")
            #expect(east.callCount(region: "us-east-1", operation: "Decrypt") == 0)
        }
    }

    @Test func awsErrorNamesCrossHTTP() async throws {
        let (east, south, keyId) = try TestSupport.mrkSetup()
        try south.putKeyPolicy(keyId: keyId, policy: """
            {"Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*"},
                          {"Effect":"Deny","Principal":"*","Action":"kms:Decrypt"}]}
            """)
        try await TestSupport.withServer(east) { port in
            let eastClient = TestSupport.client(port: port, region: "us-east-1")
            let southClient = eastClient.inRegion("ap-southeast-2")
            let blob = try await eastClient.generateDataKeyWithoutPlaintext(GenerateDataKeyRequest(keyId: keyId)).ciphertextBlob
            let denied = await TestSupport.expectKMSError(.accessDenied) {
                try await southClient.decrypt(DecryptRequest(ciphertextBlob: blob, keyId: keyId))
            }
            #expect(denied?.region == "ap-southeast-2" && denied?.httpStatus == 400)
            #expect(denied?.message.contains("kms:Decrypt") == true)
            _ = try await eastClient.decrypt(DecryptRequest(ciphertextBlob: blob, keyId: keyId))
            await TestSupport.expectKMSError(.notFound) { try await eastClient.describeKey(DescribeKeyRequest(keyId: "mrk-missing")) }
            await TestSupport.expectKMSError(.invalidCiphertext) {
                try await eastClient.decrypt(DecryptRequest(ciphertextBlob: [1, 2, 3]))
            }
            try east.disableKey(keyId: keyId)
            await TestSupport.expectKMSError(.disabled) { try await eastClient.generateDataKey(GenerateDataKeyRequest(keyId: keyId)) }
        }
    }

    @Test func rejectsBadSignaturesUnknownKeysAndMissingAuth() async throws {
        let (east, _, keyId) = try TestSupport.mrkSetup()
        try await TestSupport.withServer(east) { port in
            await TestSupport.expectKMSError(.invalidSignature) {
                try await TestSupport.client(port: port, region: "us-east-1", secret: "not-the-secret")
                    .describeKey(DescribeKeyRequest(keyId: keyId))
            }
            await TestSupport.expectKMSError(.unrecognizedClient) {
                try await TestSupport.client(port: port, region: "us-east-1", accessKeyId: "AKIAUNKNOWN")
                    .describeKey(DescribeKeyRequest(keyId: keyId))
            }
            let (status, body) = try await Self.raw(port: port, headers: ["X-Amz-Target": "TrentService.ListKeys"])
            #expect(status == 400 && body.contains("MissingAuthenticationTokenException"))
            // A valid signature that does not cover the operation header: refused.
            var unsigned = SigV4.Request(method: "POST", path: "/", headers: [
                ("Host", "127.0.0.1:\(port)"), ("Content-Type", "application/x-amz-json-1.1"),
            ], body: Array("{}".utf8))
            SigV4.sign(&unsigned, credentials: AWSCredentials(accessKeyId: "test", secretAccessKey: "test"), region: "us-east-1",
                       service: "kms", date: Date())
            var headers = Dictionary(unsigned.headers.filter { $0.name != "Host" }.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
            headers["X-Amz-Target"] = "TrentService.ListKeys"
            let (unsignedStatus, unsignedBody) = try await Self.raw(port: port, headers: headers)
            #expect(unsignedStatus == 400 && unsignedBody.contains("x-amz-target"), "\(unsignedBody)")
            let rejected = east.auditEvents().filter { !$0.succeeded && $0.principal == "anonymous" }
            #expect(rejected.map(\.errorCode) == ["InvalidSignatureException", "UnrecognizedClientException", "MissingAuthenticationTokenException",
                                                  "InvalidSignatureException"])
        }
    }

    @Test func rejectsClockSkewOverFifteenMinutes() async throws {
        let kms = try LocalKMS()
        try await TestSupport.withServer(kms) { port in
            for (offset, expectOK) in [(-20.0 * 60, false), (16.0 * 60, false), (-10.0 * 60, true)] {
                var request = SigV4.Request(method: "POST", path: "/", headers: [
                    ("Host", "127.0.0.1:\(port)"), ("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", "TrentService.ListKeys"),
                ], body: Array("{}".utf8))
                SigV4.sign(&request, credentials: AWSCredentials(accessKeyId: "test", secretAccessKey: "test"), region: "us-east-1",
                           service: "kms", date: Date().addingTimeInterval(offset))
                let headers = Dictionary(request.headers.filter { $0.name != "Host" }.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
                let (status, body) = try await Self.raw(port: port, headers: headers)
                if expectOK {
                    #expect(status == 200, "\(body)")
                } else {
                    #expect(status == 400 && body.contains("InvalidSignatureException") && body.contains("Signature expired"), "\(body)")
                }
            }
        }
    }

    @Test func pinnedRegionRejectsOtherScopes() async throws {
        let (east, _, keyId) = try TestSupport.mrkSetup()
        try await TestSupport.withServer(east, configuration: .init(region: "ap-southeast-2")) { port in
            let south = TestSupport.client(port: port, region: "ap-southeast-2")
            let meta = try await south.describeKey(DescribeKeyRequest(keyId: keyId)).keyMetadata
            #expect(meta.multiRegionConfiguration?.multiRegionKeyType == "REPLICA")
            await TestSupport.expectKMSError(.invalidSignature) {
                try await south.inRegion("us-east-1").describeKey(DescribeKeyRequest(keyId: keyId))
            }
        }
    }

    @Test func unknownOperationAndMalformedBody() async throws {
        let kms = try LocalKMS()
        try await TestSupport.withServer(kms) { port in
            let client = TestSupport.client(port: port, region: "us-east-1")
            await TestSupport.expectKMSError(.unknownOperation) { try await client.send("CreateCustomKeyStore", payload: Data("{}".utf8)) }
            await TestSupport.expectKMSError(.serialization) { try await client.send("Decrypt", payload: Data("{\"x\":1}".utf8)) }
        }
    }

    /// An unsigned (or pre-signed) POST / with the given headers and `{}` body.
    static func raw(port: Int, headers: [String: String]) async throws -> (Int, String) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/")!)
        request.httpMethod = "POST"
        request.httpBody = Data("{}".utf8)
        request.setValue("application/x-amz-json-1.1", forHTTPHeaderField: "Content-Type")
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }
}
