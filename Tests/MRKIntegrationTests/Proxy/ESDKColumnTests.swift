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
    @Suite struct ESDKColumns {
        static let script = #"""
        import sys, base64, aws_encryption_sdk
        from aws_encryption_sdk import CommitmentPolicy
        from aws_encryption_sdk.key_providers.kms import MRKAwareStrictAwsKmsMasterKeyProvider
        client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
        pt, header = client.decrypt(source=base64.b64decode(sys.stdin.read()),
                                    key_provider=MRKAwareStrictAwsKmsMasterKeyProvider(key_ids=[sys.argv[1]]))
        print(header.encryption_context["mrkproxy:column"] + "=" + pt.decode())
        """#

        static func python() throws -> String {
            try InteropPython.require(repository: CLITests.repo)
        }

        @Test("format: esdk columns round-trip across regions, refuse being moved to another column, and the official Python SDK reads them",
              .enabled(if: InteropPython.enabled(repository: CLITests.repo), Comment(rawValue: InteropPython.skipReason)))
        func esdkColumns() async throws {
            let stack = try currentStack()
            let table = uniqueName("esdk")
            try ddl(stack, "CREATE TABLE \(table) (id int PRIMARY KEY, notes bytea, memo bytea)")
            let (east, south) = try await openBoth(stack, tables: """
                tables:
                  public.\(table):
                    columns:
                      notes: { type: text, format: esdk }
                      memo: { type: text, format: esdk }
                """)
            let note = secret("NOTE"), memo = secret("MEMO")
            let raw: [UInt8] = try await onBlockingThread {
                let conn = try east.connect()
                try conn.batch("INSERT INTO \(table) (id, notes, memo) VALUES ($1, $2, $3)",
                               (1...50).map { [.int($0), .text(note + " #\($0)"), .text(memo)] })
                try south.waitForReplication(of: try conn.currentWALPosition())
                let admin = try PostgresConnection(stack.databaseURL(replica: false))
                return try admin.execute("SELECT notes FROM \(table) WHERE id = 7", resultFormat: .binary).bytes(row: 0, column: 0)!
            }
            #expect(raw.first == 0x02, "an ESDK v2 message")
            let rows = try await onBlockingThread {
                try south.connect().query("SELECT id, notes, memo FROM \(table) ORDER BY id").rows.map { [$0.string("notes"), $0.string("memo")] }
            }
            #expect(rows.count == 50 && rows[6] == [note + " #7", memo])
            // One KMS data key served all 50 rows of a column (the materials cache).
            let generated = stack.kms.auditEvents().filter { $0.operation == "GenerateDataKey" && $0.encryptionContext?["mrkproxy:table"] == "public.\(table)" }
            #expect(generated.count == 2)

            // A message moved to another column does not decrypt there.
            try PostgresConnection(stack.databaseURL(replica: false)).execute("UPDATE \(table) SET memo = notes WHERE id = 1")
            let moved = try await onBlockingThread {
                Result { try east.connect().query("SELECT memo FROM \(table) WHERE id = 1") }
            }
            #expect(throws: ProxyError.self) { try moved.get() }

            // The official AWS Encryption SDK for Python reads it with the Sydney replica key.
            let python = try Self.python()
            let southARN = stack.keyARN(region: "ap-southeast-2")
            let output: String = try await onBlockingThread {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: python)
                process.arguments = ["-c", Self.script, southARN]
                var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("AWS_") }
                env.merge(["AWS_ENDPOINT_URL_KMS": stack.kmsEndpoint.absoluteString, "AWS_ACCESS_KEY_ID": "test",
                           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "ap-southeast-2", "AWS_EC2_METADATA_DISABLED": "true"]) { $1 }
                process.environment = env
                let input = Pipe(), out = Pipe()
                process.standardInput = input
                process.standardOutput = out
                process.standardError = FileHandle.nullDevice
                try process.run()
                input.fileHandleForWriting.write(Data(Data(raw).base64EncodedString().utf8))
                try input.fileHandleForWriting.close()
                let data = out.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            #expect(output == "notes=\(note) #7")
        }
    }
}
