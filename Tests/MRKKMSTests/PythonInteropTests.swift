import Foundation
@testable import MRKKMS
@testable import MRKLocalKMS
import Testing
import MRKDevTools

/// Unmodified AWS clients against `KMSHTTPServer`: boto3 (`endpoint_url`) and the AWS Encryption SDK
/// for Python (`MRKAwareStrictAwsKmsMasterKeyProvider` via `AWS_ENDPOINT_URL_KMS`).
///
/// Python comes from `MRKPROXY_PYTHON`, else `<repo>/.venv/bin/python` (with `boto3` and
/// `aws-encryption-sdk` installed: `python3 -m venv .venv && .venv/bin/pip install aws-encryption-sdk boto3`).
@Suite("Interop with boto3 and the Python AWS Encryption SDK",
       .enabled(if: InteropPython.enabled(repository: TestSupport.repoRoot), Comment(rawValue: InteropPython.skipReason)))
struct PythonInteropTests {
    static func python() throws -> String {
        try InteropPython.require(repository: TestSupport.repoRoot)
    }

    /// Runs `script` with `args`; returns (exit status, stdout, stderr) without blocking a thread.
    static func run(_ script: String, args: [String], environment: [String: String]) async throws -> (Int32, String, String) {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("script.py")
        try script.write(to: file, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try python())
        process.arguments = [file.path] + args
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("AWS_") }
        env.merge(environment) { $1 }
        process.environment = env
        let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        return (status, try String(contentsOf: out, encoding: .utf8), try String(contentsOf: err, encoding: .utf8))
    }

    static let boto3Script = #"""
    import json, sys, boto3, botocore
    port = sys.argv[1]
    def kms(region, secret="test"):
        return boto3.client("kms", region_name=region, endpoint_url=f"http://127.0.0.1:{port}",
                            aws_access_key_id="test", aws_secret_access_key=secret,
                            config=botocore.config.Config(retries={"max_attempts": 1}))
    def code(fn):
        try:
            fn(); return "OK"
        except botocore.exceptions.ClientError as e:
            return e.response["Error"]["Code"]
    east, south = kms("us-east-1"), kms("ap-southeast-2")
    out = {}
    key = east.create_key(Description="boto3", MultiRegion=True)["KeyMetadata"]
    kid = key["KeyId"]
    out["keyId"] = kid
    rep = east.replicate_key(KeyId=kid, ReplicaRegion="ap-southeast-2", Description="replica")
    out["replicaArn"] = rep["ReplicaKeyMetadata"]["Arn"]
    out["replicaType"] = south.describe_key(KeyId=kid)["KeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"]
    east.create_alias(AliasName="alias/boto3", TargetKeyId=kid)
    out["aliasesEast"] = [a["AliasName"] for a in east.list_aliases()["Aliases"]]
    out["aliasesSouth"] = [a["AliasName"] for a in south.list_aliases()["Aliases"]]
    ctx = {"tenant": "acme"}
    dk = east.generate_data_key(KeyId="alias/boto3", KeySpec="AES_256", EncryptionContext=ctx)
    pt = south.decrypt(CiphertextBlob=dk["CiphertextBlob"], KeyId=out["replicaArn"], EncryptionContext=ctx)
    out["decryptKeyId"] = pt["KeyId"]
    out["roundTrip"] = pt["Plaintext"] == dk["Plaintext"]
    out["wrongContext"] = code(lambda: south.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"tenant": "x"}))
    out["rotateOnReplica"] = code(lambda: south.enable_key_rotation(KeyId=kid))
    east.enable_key_rotation(KeyId=kid)
    out["rotationStatus"] = east.get_key_rotation_status(KeyId=kid)["KeyRotationEnabled"]
    east.rotate_key_on_demand(KeyId=kid)
    out["oldAfterRotation"] = south.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}]})
    south.put_key_policy(KeyId=kid, PolicyName="default", Policy=policy)
    out["deniedInSouth"] = code(lambda: south.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx))
    out["allowedInEast"] = code(lambda: east.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx))
    south.disable_key(KeyId=kid)
    out["disabledSouth"] = code(lambda: south.encrypt(KeyId=kid, Plaintext=b"x"))
    out["enabledEast"] = code(lambda: east.encrypt(KeyId=kid, Plaintext=b"x"))
    out["badSignature"] = code(lambda: kms("us-east-1", secret="wrong").list_keys())
    out["notFound"] = code(lambda: east.describe_key(KeyId="mrk-00000000000000000000000000000000"))
    out["listKeys"] = len(east.list_keys()["Keys"])
    print(json.dumps(out))
    """#

    @Test func boto3AgainstTheServer() async throws {
        let kms = try LocalKMS()
        try await TestSupport.withServer(kms) { port in
            let (status, stdout, stderr) = try await Self.run(Self.boto3Script, args: [String(port)], environment: [:])
            try #require(status == 0, "boto3 script failed: \(stderr.suffix(2000))")
            let out = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
            let keyId = try #require(out["keyId"] as? String)
            #expect(keyId.hasPrefix("mrk-"))
            #expect(out["replicaArn"] as? String == "arn:aws:kms:ap-southeast-2:111122223333:key/\(keyId)")
            #expect(out["replicaType"] as? String == "REPLICA")
            #expect(out["aliasesEast"] as? [String] == ["alias/boto3"] && out["aliasesSouth"] as? [String] == [])
            #expect(out["decryptKeyId"] as? String == out["replicaArn"] as? String)
            #expect(out["roundTrip"] as? Bool == true && out["oldAfterRotation"] as? Bool == true)
            #expect(out["wrongContext"] as? String == "InvalidCiphertextException")
            #expect(out["rotateOnReplica"] as? String == "UnsupportedOperationException")
            #expect(out["rotationStatus"] as? Bool == true)
            #expect(out["deniedInSouth"] as? String == "AccessDeniedException" && out["allowedInEast"] as? String == "OK")
            #expect(out["disabledSouth"] as? String == "DisabledException" && out["enabledEast"] as? String == "OK")
            #expect(out["badSignature"] as? String == "InvalidSignatureException")
            #expect(out["notFound"] as? String == "NotFoundException")
            #expect(out["listKeys"] as? Int == 1)
        }
    }

    static let esdkScript = #"""
    import sys, base64, aws_encryption_sdk
    from aws_encryption_sdk import CommitmentPolicy
    from aws_encryption_sdk.key_providers.kms import MRKAwareStrictAwsKmsMasterKeyProvider
    east_arn, south_arn = sys.argv[1], sys.argv[2]
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    ct, _ = client.encrypt(source=b"card 4111-1111", key_provider=MRKAwareStrictAwsKmsMasterKeyProvider(key_ids=[east_arn]),
                           encryption_context={"table": "payments"})
    pt, header = client.decrypt(source=ct, key_provider=MRKAwareStrictAwsKmsMasterKeyProvider(key_ids=[south_arn]))
    assert pt == b"card 4111-1111", pt
    assert header.encryption_context["table"] == "payments"
    print("OK", base64.b64encode(ct).decode())
    """#

    @Test func awsEncryptionSDKEncryptsInUSEast1AndDecryptsWithTheSydneyReplica() async throws {
        let dir = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("audit.jsonl").path
        let (east, _, keyId) = try TestSupport.mrkSetup(configuration: .init(auditLogFile: log))
        east.resetAuditEvents()
        try await TestSupport.withServer(east) { port in
            let eastArn = "arn:aws:kms:us-east-1:111122223333:key/\(keyId)"
            let southArn = "arn:aws:kms:ap-southeast-2:111122223333:key/\(keyId)"
            let (status, stdout, stderr) = try await Self.run(Self.esdkScript, args: [eastArn, southArn], environment: [
                "AWS_ENDPOINT_URL_KMS": "http://127.0.0.1:\(port)", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
            ])
            try #require(status == 0, "ESDK script failed: \(stderr.suffix(2000))")
            #expect(stdout.hasPrefix("OK "))
            let events = try KMSAuditEvent.readLog(at: log).filter { $0.operation == "GenerateDataKey" || $0.operation == "Decrypt" }
            #expect(events.map(\.operation) == ["GenerateDataKey", "Decrypt"])
            #expect(events.first?.region == "us-east-1" && events.first?.keyArn == eastArn)
            #expect(events.last?.region == "ap-southeast-2" && events.last?.keyArn == southArn && events.last?.succeeded == true)
            #expect(events.last?.encryptionContext?["table"] == "payments")
            #expect(east.callCount(region: "us-east-1", operation: "Decrypt") == 0)
        }
    }
}
