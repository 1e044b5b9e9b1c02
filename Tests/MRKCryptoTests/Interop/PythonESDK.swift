import Foundation
import MRKDevTools

/// Drives the official AWS Encryption SDK for Python (`aws-encryption-sdk`) for interop tests.
///
/// The interpreter is `$MRKPROXY_PYTHON` if set, else `<repo>/.venv/bin/python`. Without the
/// `aws-cryptographic-material-providers` package the Python SDK has no keyring API, so the
/// script uses its raw master key (`RawMasterKey`, AES-GCM wrapping), which writes exactly the
/// raw AES keyring's EDK format. Keys and data travel as JSON on stdin, never on the command line.
enum PythonESDK {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static let script = #"""
import base64, json, sys
import aws_encryption_sdk
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy, EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKey

WRAPPING = {16: WrappingAlgorithm.AES_128_GCM_IV12_TAG16_NO_PADDING,
            24: WrappingAlgorithm.AES_192_GCM_IV12_TAG16_NO_PADDING,
            32: WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING}
SUITES = {0x0478: Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
          0x0578: Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384}

request = json.load(sys.stdin)
key = base64.b64decode(request["key"])
master_key = RawMasterKey(
    provider_id=request["namespace"], key_id=request["name"].encode("utf-8"),
    wrapping_key=WrappingKey(wrapping_algorithm=WRAPPING[len(key)], wrapping_key=key,
                             wrapping_key_type=EncryptionKeyType.SYMMETRIC))
client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
results = []
for op in request["ops"]:
    try:
        if op["op"] == "encrypt":
            ciphertext, _ = client.encrypt(source=base64.b64decode(op["plaintext"]), key_provider=master_key,
                                           encryption_context=op["context"], algorithm=SUITES[op["suite"]],
                                           frame_length=op["frame_length"])
            results.append({"ciphertext": base64.b64encode(ciphertext).decode()})
        else:
            plaintext, header = client.decrypt(source=base64.b64decode(op["ciphertext"]), key_provider=master_key)
            results.append({"plaintext": base64.b64encode(plaintext).decode(),
                            "context": header.encryption_context, "suite": header.algorithm.algorithm_id})
    except Exception as error:  # reported per operation
        results.append({"error": type(error).__name__ + ": " + str(error)})
json.dump(results, sys.stdout)
"""#

    /// The interpreter to use, or a failure explaining how to provide one.
    static func interpreter() throws -> String {
        try InteropPython.require(repository: TestPaths.repoRoot)
    }

    /// Runs `ops` (each a JSON object) in one Python process and returns one result object per op.
    static func run(key: [UInt8], namespace: String, name: String, ops: [[String: Any]]) throws -> [[String: Any]] {
        let python = try interpreter()
        let scriptURL = FileManager.default.temporaryDirectory.appendingPathComponent("mrkproxy-esdk-interop-\(UUID().uuidString).py")
        try Data(script.utf8).write(to: scriptURL)
        defer { try? FileManager.default.removeItem(at: scriptURL) }
        let request: [String: Any] = ["key": Data(key).base64EncodedString(), "namespace": namespace, "name": name, "ops": ops]
        let input = try JSONSerialization.data(withJSONObject: request)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [scriptURL.path]
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // Drain stdout/stderr while writing, so neither side can block on a full pipe.
        nonisolated(unsafe) var output = Data(), errors = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { output = stdout.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async { errors = stderr.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        stdin.fileHandleForWriting.write(input)
        try stdin.fileHandleForWriting.close()
        group.wait()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let results = try? JSONSerialization.jsonObject(with: output) as? [[String: Any]], results.count == ops.count else {
            throw Failure(description: """
                the Python AWS Encryption SDK failed (\(python), exit \(process.terminationStatus)); \
                is `aws-encryption-sdk` installed in that environment? stderr: \(String(decoding: errors.suffix(2000), as: UTF8.self))
                """)
        }
        return results
    }
}
