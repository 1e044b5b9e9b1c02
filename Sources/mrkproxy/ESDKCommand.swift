import ArgumentParser
import MRKCrypto
import MRKDevTools

/// `mrkproxy esdk …`: AWS Encryption SDK message-format tools.
struct ESDKCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "esdk",
        abstract: "AWS Encryption SDK message format tools.",
        subcommands: [DecryptManifest.self]
    )

    /// `mrkproxy esdk decrypt-manifest PATH/manifest.json`
    struct DecryptManifest: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "decrypt-manifest",
            abstract: "Decrypt every vector of an awses-decrypt manifest (versions 2-4) whose keys are raw AES keys.",
            discussion: """
                Prints each failed and skipped test, then 'N passed, M failed' (', K skipped'). Exits non-zero if a \
                test that expects a plaintext fails or a test that expects an error decrypts. Vectors needing AWS KMS \
                or RSA keys are skipped.
                """
        )

        @Argument(help: "Path to the manifest.json of an awses-decrypt vector set.")
        var manifest: String

        @Flag(help: "Decrypt committing suites only (REQUIRE_ENCRYPT_REQUIRE_DECRYPT); default allows legacy suites.")
        var requireCommitment = false

        func run() async throws {
            let policy: CommitmentPolicy = requireCommitment ? .requireEncryptRequireDecrypt : .requireEncryptAllowDecrypt
            let runner = ESDKManifestRunner(client: ESDKClient(configuration: .init(commitmentPolicy: policy)))
            let report = try await runner.run(manifestPath: manifest)
            for result in report.results where !result.skipped && !result.passed {
                switch (result.expectation, result.outcome) {
                case (.plaintext, .rejected(let reason)):
                    print("FAILED \(result.name): expected plaintext, decryption failed: \(reason)")
                case (.plaintext, .decrypted):
                    print("FAILED \(result.name): decrypted to a different plaintext")
                case (.error(let description), _):
                    print("FAILED \(result.name): expected an error (\(description)) but decryption succeeded")
                default:
                    print("FAILED \(result.name)")
                }
            }
            for result in report.results {
                if case .skipped(let reason) = result.outcome { print("SKIPPED \(result.name): \(reason)") }
            }
            print(report.summaryLine)
            if !report.succeeded { throw ExitCode.failure }
        }
    }
}
