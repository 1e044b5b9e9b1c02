import Foundation
@testable import MRKKMS
@testable import MRKLocalKMS
import Testing

@Suite("Credentials: environment, shared files, ECS, IMDSv2, chain")
struct CredentialsTests {
    @Test func expirationsInOtherFormsAreReadAndUnreadableOnesExpireSoon() throws {
        func decode(_ expiration: String) throws -> AWSCredentials {
            try MetadataCredentials.decode(Data(#"{"AccessKeyId":"AK","SecretAccessKey":"S","Token":"T","Expiration":"\#(expiration)"}"#.utf8),
                                           source: "test")
        }
        let offset = try decode("2030-01-01T00:00:00+00:00").expiration
        #expect(offset == Date(timeIntervalSince1970: 1_893_456_000))
        let zulu = try decode("2030-01-01T00:00:00Z").expiration
        #expect(zulu == offset)
        let unreadable = try #require(try decode("next tuesday").expiration)
        #expect(unreadable.timeIntervalSinceNow > 0 && unreadable.timeIntervalSinceNow <= 300, "refreshed within five minutes, not cached forever")
    }

    @Test func environmentWithSessionToken() async throws {
        let env = ["AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "envsecret", "AWS_SESSION_TOKEN": "envtoken"]
        let c = try #require(try await EnvironmentCredentialsProvider(environment: env).credentials())
        #expect(c.accessKeyId == "AKIAENV" && c.secretAccessKey.bytes == Array("envsecret".utf8) && c.sessionToken == "envtoken")
        #expect(try await EnvironmentCredentialsProvider(environment: [:]).credentials() == nil)
        await TestSupport.expectKMSError(.credentials) {
            try await EnvironmentCredentialsProvider(environment: ["AWS_ACCESS_KEY_ID": "x"]).credentials()
        }
    }

    @Test func sharedFilesAndProfiles() async throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let credentials = dir.appendingPathComponent("credentials").path
        let config = dir.appendingPathComponent("config").path
        try """
            [default]
            aws_access_key_id = AKIADEFAULT
            aws_secret_access_key = defaultsecret

            # comment
            [prod]
            aws_access_key_id=AKIAPROD
            aws_secret_access_key=prodsecret
            aws_session_token=prodtoken
            """.write(toFile: credentials, atomically: true, encoding: .utf8)
        try """
            [default]
            region = us-east-1
            [profile prod]
            region = ap-southeast-2
            aws_access_key_id = AKIAIGNORED
            [profile cfgonly]
            aws_access_key_id = AKIACFG
            aws_secret_access_key = cfgsecret
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let base = ["AWS_SHARED_CREDENTIALS_FILE": credentials, "AWS_CONFIG_FILE": config, "HOME": "/nonexistent"]
        let d = try #require(try await ProfileCredentialsProvider(environment: base).credentials())
        #expect(d.accessKeyId == "AKIADEFAULT" && d.sessionToken == nil)
        var env = base
        env["AWS_PROFILE"] = "prod"
        let p = try #require(try await ProfileCredentialsProvider(environment: env).credentials())
        #expect(p.accessKeyId == "AKIAPROD" && p.secretAccessKey.bytes == Array("prodsecret".utf8) && p.sessionToken == "prodtoken")
        #expect(AWSRegionResolver.region(environment: env) == "ap-southeast-2")
        #expect(AWSRegionResolver.region(environment: base) == "us-east-1")
        #expect(AWSRegionResolver.region(environment: base.merging(["AWS_REGION": "eu-west-1"]) { $1 }) == "eu-west-1")
        let c = try #require(try await ProfileCredentialsProvider(profile: "cfgonly", environment: base).credentials())
        #expect(c.accessKeyId == "AKIACFG")
        await TestSupport.expectKMSError(.credentials) {
            try await ProfileCredentialsProvider(profile: "missing", environment: base).credentials()
        }
        // No files at all: not configured.
        #expect(try await ProfileCredentialsProvider(environment: ["HOME": "/nonexistent"]).credentials() == nil)
    }

    static let metadataJSON: [String: String] = [
        "Code": "Success", "AccessKeyId": "ASIAMETA", "SecretAccessKey": "metasecret", "Token": "metatoken",
        "Expiration": "2099-01-01T00:00:00Z",
    ]

    @Test func ecsFullURIWithAuthorizationToken() async throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokenFile = dir.appendingPathComponent("token").path
        try "file-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let seen = TestSupport.Counter()
        try await TestSupport.withStub({ request in
            _ = seen.next(request)
            guard request.path == "/creds", request.header("authorization") == "file-token" || request.header("authorization") == "env-token"
            else { return HTTPResponse(status: 401) }
            return TestSupport.json(200, Self.metadataJSON)
        }) { port in
            let uri = "http://127.0.0.1:\(port)/creds"
            let fromFile = try #require(try await ECSCredentialsProvider(environment: [
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": uri, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokenFile,
                "AWS_CONTAINER_AUTHORIZATION_TOKEN": "ignored-when-file-set",
            ]).credentials())
            #expect(fromFile.accessKeyId == "ASIAMETA" && fromFile.sessionToken == "metatoken")
            #expect(fromFile.expiration == Date(timeIntervalSince1970: 4_070_908_800))
            let fromEnv = try await ECSCredentialsProvider(environment: [
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": uri, "AWS_CONTAINER_AUTHORIZATION_TOKEN": "env-token",
            ]).credentials()
            #expect(fromEnv?.accessKeyId == "ASIAMETA")
            await TestSupport.expectKMSError(.credentials) {
                try await ECSCredentialsProvider(environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": uri]).credentials()
            }
        }
        #expect(seen.seen.map { $0.header("authorization") } == ["file-token", "env-token", nil])
        // The relative URI goes to the ECS agent address; plain http to a remote host is refused.
        #expect(try ECSCredentialsProvider(environment: ["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc"]).endpoint()?
            .absoluteString == "http://169.254.170.2/v2/credentials/abc")
        #expect(throws: KMSError.self) {
            try ECSCredentialsProvider(environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://example.com/creds"]).endpoint()
        }
        #expect(try await ECSCredentialsProvider(environment: [:]).credentials() == nil)
    }

    @Test func imdsV2TokenThenRoleThenCredentials() async throws {
        let seen = TestSupport.Counter()
        try await TestSupport.withStub({ request in
            _ = seen.next(request)
            switch (request.method, request.path) {
            case ("PUT", "/latest/api/token"):
                guard request.header("x-aws-ec2-metadata-token-ttl-seconds") == "21600" else { return HTTPResponse(status: 400) }
                return HTTPResponse(status: 200, body: Array("imds-session-token".utf8))
            case ("GET", _) where request.header("x-aws-ec2-metadata-token") != "imds-session-token":
                return HTTPResponse(status: 401)  // IMDSv1 requests are refused, as with HttpTokens=required
            case ("GET", "/latest/meta-data/iam/security-credentials/"):
                return HTTPResponse(status: 200, body: Array("app-role\n".utf8))
            case ("GET", "/latest/meta-data/iam/security-credentials/app-role"):
                return TestSupport.json(200, Self.metadataJSON)
            default:
                return HTTPResponse(status: 404)
            }
        }) { port in
            let env = ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:\(port)/"]
            let c = try #require(try await IMDSCredentialsProvider(environment: env).credentials())
            #expect(c.accessKeyId == "ASIAMETA" && c.sessionToken == "metatoken")
            #expect(try await IMDSCredentialsProvider(environment: env.merging(["AWS_EC2_METADATA_DISABLED": "true"]) { $1 })
                .credentials() == nil)
        }
        #expect(seen.seen.map { "\($0.method) \($0.path)" } == [
            "PUT /latest/api/token", "GET /latest/meta-data/iam/security-credentials/",
            "GET /latest/meta-data/iam/security-credentials/app-role",
        ])
    }

    @Test func imdsUnreachableMeansNotOnEC2() async throws {
        let c = try await IMDSCredentialsProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9"]).credentials()
        #expect(c == nil)
    }

    @Test func chainOrderCachingAndRefresh() async throws {
        let counter = TestSupport.Counter()
        let expiring = Date().addingTimeInterval(60)  // within the 5-minute refresh margin
        try await TestSupport.withStub({ request in
            _ = counter.next(request)
            var json = Self.metadataJSON
            json["Expiration"] = expiring.formatted(Date.ISO8601FormatStyle())
            return TestSupport.json(200, json)
        }) { port in
            let ecsEnv = ["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:\(port)/creds", "HOME": "/nonexistent",
                          "AWS_EC2_METADATA_DISABLED": "true"]
            // Environment wins over ECS.
            let withEnv = CredentialsProviderChain.standard(environment: ecsEnv.merging(
                ["AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "s"]) { $1 })
            #expect(try await withEnv.credentials()?.accessKeyId == "AKIAENV")
            #expect(counter.count == 0)
            // ECS credentials expiring soon are refreshed on each use; concurrent callers share a fetch.
            let chain = CredentialsProviderChain.standard(environment: ecsEnv)
            #expect(try await chain.credentials()?.accessKeyId == "ASIAMETA")
            #expect(try await chain.credentials()?.accessKeyId == "ASIAMETA")
            #expect(counter.count == 2)
            let longLived = CredentialsProviderChain.standard(environment: ecsEnv)
            _ = try await longLived.credentials()
            #expect(counter.count == 3)
        }
        let empty = CredentialsProviderChain.standard(environment: ["HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"])
        await TestSupport.expectKMSError(.credentials) { try await empty.credentials() }
    }

    @Test func staticCredentialsAreCachedForever() async throws {
        let chain = CredentialsProviderChain([StaticCredentialsProvider(AWSCredentials(accessKeyId: "A", secretAccessKey: "B"))])
        for _ in 0..<3 { #expect(try await chain.credentials()?.accessKeyId == "A") }
    }
}
