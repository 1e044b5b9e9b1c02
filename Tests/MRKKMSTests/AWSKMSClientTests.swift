import Foundation
import MRKCrypto
@testable import MRKKMS
@testable import MRKLocalKMS
import Testing

@Suite("AWS KMS client: endpoints, retries, error classification")
struct AWSKMSClientTests {
    let creds = StaticCredentialsProvider(AWSCredentials(accessKeyId: "AKID", secretAccessKey: "secret", sessionToken: "tok"))

    @Test func endpointResolution() {
        func endpoint(_ region: String, _ env: [String: String], endpoints: [String: URL] = [:], endpoint: URL? = nil) -> String {
            AWSKMSClient(configuration: .init(region: region, endpoints: endpoints, endpoint: endpoint, environment: env),
                         credentialsProvider: creds).endpoint.absoluteString
        }
        #expect(endpoint("us-east-1", [:]) == "https://kms.us-east-1.amazonaws.com")
        #expect(endpoint("cn-north-1", [:]) == "https://kms.cn-north-1.amazonaws.com.cn")
        #expect(endpoint("us-east-1", ["AWS_ENDPOINT_URL": "http://a:1"]) == "http://a:1")
        #expect(endpoint("us-east-1", ["AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_KMS": "http://b:2"]) == "http://b:2")
        #expect(endpoint("us-east-1", ["AWS_ENDPOINT_URL_KMS": "http://b:2"], endpoint: URL(string: "http://c:3")!) == "http://c:3")
        let perRegion = ["ap-southeast-2": URL(string: "http://syd:4599")!]
        #expect(endpoint("ap-southeast-2", ["AWS_ENDPOINT_URL_KMS": "http://b:2"], endpoints: perRegion) == "http://syd:4599")
        #expect(endpoint("us-east-1", ["AWS_ENDPOINT_URL_KMS": "http://b:2"], endpoints: perRegion) == "http://b:2")
    }

    @Test func signsJSON11RequestsWithSessionToken() async throws {
        let seen = TestSupport.Counter()
        try await TestSupport.withStub({ request in
            _ = seen.next(request)
            return TestSupport.json(200, ["KeyId": "arn:aws:kms:eu-west-1:1:key/k", "CiphertextBlob": Data([1, 2]).base64EncodedString(),
                                          "Plaintext": Data(repeating: 7, count: 32).base64EncodedString()])
        }) { port in
            let client = AWSKMSClient(configuration: .init(region: "eu-west-1", endpoint: URL(string: "http://127.0.0.1:\(port)")!,
                                                           environment: [:]), credentialsProvider: creds)
            let out = try await client.generateDataKey(GenerateDataKeyRequest(keyId: "k", encryptionContext: ["a": "b"]))
            #expect(out.plaintext.bytes == [UInt8](repeating: 7, count: 32) && out.ciphertextBlob == [1, 2])
        }
        let request = try #require(seen.seen.first)
        #expect(request.header("x-amz-target") == "TrentService.GenerateDataKey")
        #expect(request.header("content-type") == "application/x-amz-json-1.1")
        #expect(request.header("x-amz-security-token") == "tok")
        let auth = try #require(request.header("authorization").flatMap(SigV4.Authorization.init(header:)))
        #expect(auth.region == "eu-west-1" && auth.service == "kms" && auth.accessKeyId == "AKID")
        #expect(Set(auth.signedHeaders).isSuperset(of: ["host", "x-amz-date", "x-amz-target", "content-type", "x-amz-security-token"]))
        let body = try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any]
        #expect(body?["KeyId"] as? String == "k" && body?["KeySpec"] as? String == "AES_256")
        // The stub can verify the signature exactly as the server does.
        let signed = SigV4.Request(method: "POST", path: "/", headers: request.headers, body: request.body)
        #expect(SigV4.expectedSignature(signed, authorization: auth, amzDate: request.header("x-amz-date")!,
                                        secret: SecretBytes(Array("secret".utf8))) == auth.signature)
    }

    @Test func retriesThrottlingWithBackoffThenSucceeds() async throws {
        let counter = TestSupport.Counter()
        try await TestSupport.withStub({ request in
            let n = counter.next(request)
            if n == 1 { return TestSupport.json(400, ["__type": "ThrottlingException", "message": "Rate exceeded"]) }
            if n == 2 { return TestSupport.json(500, ["__type": "com.amazonaws.kms#KMSInternalException", "message": "oops"]) }
            return TestSupport.json(200, ["KeyMetadata": ["KeyId": "mrk-1", "Arn": "arn:aws:kms:us-east-1:1:key/mrk-1"]])
        }) { port in
            let client = AWSKMSClient(configuration: .init(region: "us-east-1", endpoint: URL(string: "http://127.0.0.1:\(port)")!,
                                                           maxAttempts: 3, baseBackoff: 0.01, environment: [:]),
                                      credentialsProvider: creds)
            let meta = try await client.describeKey(DescribeKeyRequest(keyId: "mrk-1")).keyMetadata
            #expect(meta.keyId == "mrk-1")
        }
        #expect(counter.count == 3)
        // Each attempt is signed afresh.
        #expect(Set(counter.seen.compactMap { $0.header("authorization") }).count >= 1)
    }

    @Test func givesUpAfterMaxAttempts() async throws {
        let counter = TestSupport.Counter()
        try await TestSupport.withStub({ request in
            _ = counter.next(request)
            return TestSupport.json(400, ["__type": "ThrottlingException", "message": "Rate exceeded"])
        }) { port in
            let client = AWSKMSClient(configuration: .init(region: "us-east-1", endpoint: URL(string: "http://127.0.0.1:\(port)")!,
                                                           maxAttempts: 4, baseBackoff: 0.001, environment: [:]),
                                      credentialsProvider: creds)
            let error = await TestSupport.expectKMSError(.throttling) { try await client.describeKey(DescribeKeyRequest(keyId: "k")) }
            #expect(error?.isRetryable == true)
        }
        #expect(counter.count == 4)
    }

    @Test(arguments: ["AccessDeniedException", "NotFoundException", "InvalidCiphertextException", "ValidationException"])
    func doesNotRetryClientErrors(_ type: String) async throws {
        let counter = TestSupport.Counter()
        try await TestSupport.withStub({ request in
            _ = counter.next(request)
            return TestSupport.json(400, ["__type": "com.amazonaws.kms#\(type)", "message": "no"])
        }) { port in
            let client = AWSKMSClient(configuration: .init(region: "us-east-1", endpoint: URL(string: "http://127.0.0.1:\(port)")!,
                                                           maxAttempts: 5, baseBackoff: 0.001, environment: [:]),
                                      credentialsProvider: creds)
            let error = await TestSupport.expectKMSError(KMSError.Code(type)) {
                try await client.decrypt(DecryptRequest(ciphertextBlob: [1]))
            }
            #expect(error?.region == "us-east-1" && error?.message == "no")
        }
        #expect(counter.count == 1)
    }

    @Test func classifiesErrorsByType() {
        func classify(_ status: Int, _ body: String, headers: [String: String] = [:]) -> KMSError {
            AWSKMSClient.classify(.init(status: status, headers: headers, body: Data(body.utf8)), region: "r", operation: "Op")
        }
        #expect(classify(400, #"{"__type":"com.amazonaws.kms#NotFoundException","message":"m"}"#).code == .notFound)
        #expect(classify(400, #"{"__type":"KMSInvalidStateException","Message":"m"}"#).message == "m")
        #expect(classify(400, "", headers: ["x-amzn-ErrorType": "ThrottlingException:http://internal"]).code == .throttling)
        #expect(classify(503, "<html>").isRetryable)
        #expect(classify(429, "").code == .throttling)
        #expect(!classify(403, "").isRetryable)
    }

    @Test func transportFailuresAndTimeoutsAreRetryableTransportErrors() async throws {
        // A port nobody listens on.
        let client = AWSKMSClient(configuration: .init(region: "us-east-1", endpoint: URL(string: "http://127.0.0.1:9")!,
                                                       timeout: 2, maxAttempts: 2, baseBackoff: 0.001, environment: [:]),
                                  credentialsProvider: creds)
        let error = await TestSupport.expectKMSError(.transport) { try await client.describeKey(DescribeKeyRequest(keyId: "k")) }
        #expect(error?.isRetryable == true)
        // A server that does not answer until told to: the client gives up on its own (a timeout,
        // reported while the server still holds the request).
        let gate = ReleaseGate()
        try await TestSupport.withStub({ _ in
            await gate.wait()
            return TestSupport.json(200, [:])
        }) { port in
            let slow = AWSKMSClient(configuration: .init(region: "us-east-1", endpoint: URL(string: "http://127.0.0.1:\(port)")!,
                                                         timeout: 1, maxAttempts: 1, environment: [:]), credentialsProvider: creds)
            await TestSupport.expectKMSError(.transport) { try await slow.describeKey(DescribeKeyRequest(keyId: "k")) }
            #expect(!gate.released, "the client stopped waiting before the server answered")
            gate.release()
        }
    }

    @Test func plainHTTPToAnotherHostIsRefusedBeforeAnythingIsSent() async throws {
        for configuration in [
            AWSKMSClient.Configuration(region: "us-east-1", endpoint: URL(string: "http://10.1.2.3:4599")!, maxAttempts: 1, environment: [:]),
            AWSKMSClient.Configuration(region: "us-east-1", maxAttempts: 1, environment: ["AWS_ENDPOINT_URL": "http://localstack.ci:4566"]),
        ] {
            let client = AWSKMSClient(configuration: configuration, credentialsProvider: creds)
            let error = await TestSupport.expectKMSError(.configuration) { try await client.describeKey(DescribeKeyRequest(keyId: "k")) }
            #expect(error?.description.contains("https") == true)
        }
        #expect(AWSKMSClient.isPermittedEndpoint(URL(string: "https://kms.us-east-1.amazonaws.com")!))
        #expect(AWSKMSClient.isPermittedEndpoint(URL(string: "http://127.0.0.1:4599")!))
        #expect(AWSKMSClient.isPermittedEndpoint(URL(string: "http://[::1]:4599")!))
        #expect(!AWSKMSClient.isPermittedEndpoint(URL(string: "http://127.0.0.1.evil.example")!))
        #expect(!AWSKMSClient.isPermittedEndpoint(URL(string: "http://127.evil.example")!))
        #expect(!AWSKMSClient.isPermittedEndpoint(URL(string: "ftp://127.0.0.1")!))
    }

    @Test func missingCredentialsAreAClearError() async throws {
        let client = AWSKMSClient(configuration: .init(region: "us-east-1", endpoint: URL(string: "http://127.0.0.1:9")!,
                                                       environment: [:]),
                                  credentialsProvider: CredentialsProviderChain([EnvironmentCredentialsProvider(environment: [:])]))
        await TestSupport.expectKMSError(.credentials) { try await client.describeKey(DescribeKeyRequest(keyId: "k")) }
    }
}
