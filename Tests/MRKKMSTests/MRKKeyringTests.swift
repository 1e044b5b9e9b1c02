import Foundation
import MRKCrypto
@testable import MRKKMS
import Testing

/// The MRK-aware strict keyring: Swift ⇄ the official Python AWS Encryption SDK through
/// `kms serve`, sealing in us-east-1 and opening with the ap-southeast-2 replica.
@Suite struct MRKKeyringTests {
    static let script = #"""
    import sys, base64, aws_encryption_sdk
    from aws_encryption_sdk import CommitmentPolicy
    from aws_encryption_sdk.key_providers.kms import MRKAwareStrictAwsKmsMasterKeyProvider
    mode, arn = sys.argv[1], sys.argv[2]
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    provider = MRKAwareStrictAwsKmsMasterKeyProvider(key_ids=[arn])
    if mode == "decrypt":
        pt, header = client.decrypt(source=base64.b64decode(sys.stdin.read()), key_provider=provider)
        assert header.encryption_context["mrkproxy:column"] == "notes", header.encryption_context
        print(pt.decode())
    else:
        ct, _ = client.encrypt(source=b"from python in us-east-1", key_provider=provider,
                               encryption_context={"mrkproxy:column": "notes"})
        print(base64.b64encode(ct).decode())
    """#

    func runPython(_ args: [String], stdin: String, port: Int) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try PythonInteropTests.python())
        process.arguments = ["-c", Self.script] + args
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("AWS_") }
        env.merge(["AWS_ENDPOINT_URL_KMS": "http://127.0.0.1:\(port)", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"]) { $1 }
        process.environment = env
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "python failed: \(String(decoding: err, as: UTF8.self).suffix(1500))")
        return String(decoding: out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func anAWSKMSDataKeyWhoseProviderInfoIsNotAKeyARNFailsDecryption() async throws {
        let (east, _, keyId) = try TestSupport.mrkSetup()
        let keyring = try AWSKMSMRKKeyring(keyARN: east.keyARN(keyId), client: east)
        let materials = DecryptionMaterials(algorithmSuite: .aes256GCMHKDFSHA512CommitKey, encryptionContext: [:])
        for info in ["alias/app", "not-an-arn", "arn:aws:kms:us-east-1:111122223333:alias/app"] {
            let edk = EncryptedDataKey(providerID: "aws-kms", providerInfo: Array(info.utf8), ciphertext: [1, 2, 3])
            await #expect(throws: CryptoError.self, "\(info)") { try await keyring.onDecrypt(materials, encryptedDataKeys: [edk]) }
        }
    }

    @Test func swiftSealsInUSEast1PythonOpensInSydneyAndBack() async throws {
        let (east, _, keyId) = try TestSupport.mrkSetup()
        try await TestSupport.withServer(east) { port in
            let eastARN = "arn:aws:kms:us-east-1:111122223333:key/\(keyId)"
            let southARN = "arn:aws:kms:ap-southeast-2:111122223333:key/\(keyId)"
            let sealing = try AWSKMSMRKKeyring(keyARN: eastARN, client: TestSupport.client(port: port, region: "us-east-1"))
            let opening = try AWSKMSMRKKeyring(keyARN: southARN, client: TestSupport.client(port: port, region: "ap-southeast-2"))
            let esdk = ESDKClient()

            let message = try await esdk.encrypt(Array("from swift in us-east-1".utf8), keyring: sealing,
                                                 encryptionContext: ["mrkproxy:column": "notes"])
            #expect(try runPython(["decrypt", southARN], stdin: Data(message).base64EncodedString(), port: port) == "from swift in us-east-1")

            let fromPython = try runPython(["encrypt", eastARN], stdin: "", port: port)
            let opened = try await esdk.decrypt(Array(try #require(Data(base64Encoded: fromPython))), keyring: opening)
            #expect(String(decoding: opened.plaintext, as: UTF8.self) == "from python in us-east-1")
            #expect(opened.encryptionContext["mrkproxy:column"] == "notes")

            // Decrypt went to the Sydney replica only.
            let decrypts = east.auditEvents().filter { $0.operation == "Decrypt" }
            #expect(decrypts.count == 2 && decrypts.allSatisfy { $0.region == "ap-southeast-2" })

            // A keyring for another MRK finds no matching data key.
            let other = try east.createKey(multiRegion: true)
            let stranger = try AWSKMSMRKKeyring(keyARN: "arn:aws:kms:us-east-1:111122223333:key/\(other.keyId)",
                                                client: TestSupport.client(port: port, region: "us-east-1"))
            await #expect(throws: CryptoError.self) { _ = try await esdk.decrypt(message, keyring: stranger) }
        }
    }
}
