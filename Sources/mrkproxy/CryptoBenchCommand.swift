import ArgumentParser
import Foundation
import MRKDevTools
import MRKCrypto

/// `mrkproxy bench-crypto [--json]`: crypto-core micro-benchmarks with same-run references.
struct CryptoBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-crypto",
        abstract: "Measure compact-format seal/open and ESDK encrypt; compare with openssl speed and the Python SDK.",
        discussion: "Build with -c release for meaningful numbers. Python is $MRKPROXY_PYTHON or ./.venv/bin/python."
    )

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(help: "Compact-format operations to time (ESDK: a tenth of this).")
    var iterations = 100_000

    @Flag(help: "Skip the openssl speed and Python SDK reference measurements.")
    var noCompare = false

    func validate() throws {
        guard iterations > 0 else { throw ValidationError("--iterations must be positive") }
    }

    func run() async throws {
        var report = try CryptoBenchmark.run(iterations: iterations)
        if !noCompare {
            report.opensslAES256GCM16Micros = CryptoBenchmark.measureOpenSSLSpeed()
            let python = ProcessInfo.processInfo.environment["MRKPROXY_PYTHON"] ?? ".venv/bin/python"
            if FileManager.default.isExecutableFile(atPath: python) {
                report.pythonESDKEncryptMicros = CryptoBenchmark.measurePythonESDK(python: python)
            }
        }
        if json {
            try JSONOutput.print(report)
            return
        }
        func f(_ value: Double) -> String { String(format: "%.2f", value) }
        print("compact seal, 16 B:          \(f(report.compactSealMicros)) µs   (into buffer \(f(report.compactSealIntoBufferMicros)) µs)")
        print("compact open, 16 B:          \(f(report.compactOpenMicros)) µs   (into buffer \(f(report.compactOpenIntoBufferMicros)) µs)")
        print("compact overhead:            \(report.compactOverheadBytes) B per value")
        print("ESDK 0x0478 encrypt, 16 B:   \(f(report.esdkEncryptMicros)) µs   (cached data key, one frame)")
        print("ESDK 0x0478 decrypt, 16 B:   \(f(report.esdkDecryptMicros)) µs   (data key already unwrapped)")
        print("ESDK overhead:               \(report.esdkOverheadBytes) B per message (raw AES keyring, empty context)")
        if let openssl = report.opensslAES256GCM16Micros {
            print("openssl speed aes-256-gcm:   \(f(openssl)) µs per 16 B block; compact seal/open = \(f(report.compactSealMicros / openssl))x / \(f(report.compactOpenMicros / openssl))x")
        } else {
            print("openssl speed:               not available")
        }
        if let python = report.pythonESDKEncryptMicros {
            print("Python ESDK 0x0478 encrypt:  \(f(python)) µs; MRKProxy is \(f(python / report.esdkEncryptMicros))x faster")
        } else {
            print("Python ESDK:                 not available")
        }
    }
}
