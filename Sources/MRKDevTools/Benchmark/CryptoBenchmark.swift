import MRKLocalKMS
import MRKCluster
import MRKPostgres
import MRKKMS
import MRKCrypto
import MRKSQL
import MRKProxy
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Micro-benchmarks of the crypto core, with optional side-by-side references measured in the
/// same run (`openssl speed`, the official Python Encryption SDK).
public enum CryptoBenchmark {
    /// Measured figures. Times are CPU microseconds per operation on one thread (best of many
    /// short rounds), comparable with `openssl speed`'s user-time figures.
    public struct Report: Sendable, Codable {
        /// Compact format: seal a 16-byte value (returning a new array).
        public var compactSealMicros: Double
        /// Compact format: open a 16-byte value (returning a new array).
        public var compactOpenMicros: Double
        /// Compact format: seal into a caller buffer (no allocation).
        public var compactSealIntoBufferMicros: Double
        /// Compact format: open into a caller buffer (no allocation).
        public var compactOpenIntoBufferMicros: Double
        /// Bytes the compact format adds to every value.
        public var compactOverheadBytes: Int
        /// ESDK 0x0478, one frame, 16-byte value, cached encryption materials.
        public var esdkEncryptMicros: Double
        /// ESDK 0x0478 decrypt of that message with its data key already unwrapped.
        public var esdkDecryptMicros: Double
        /// Bytes an ESDK 0x0478 message adds to a 16-byte value (raw AES keyring, empty context).
        public var esdkOverheadBytes: Int
        /// `openssl speed -evp aes-256-gcm -bytes 16 -seconds 1`, µs per 16-byte block, if measured.
        public var opensslAES256GCM16Micros: Double?
        /// Python `aws-encryption-sdk` encrypt of 16 bytes with 0x0478 (raw AES master key), if measured.
        public var pythonESDKEncryptMicros: Double?
    }

    /// Runs the in-process measurements.
    /// - Parameter iterations: operations per round (5 rounds, best kept).
    public static func run(iterations: Int = 100_000) throws -> Report {
        let key = SecretBytes(randomCount: 32)
        let cipher = try ColumnCipher(dataKey: key, keyID: CompactKeyID(keyspace: 1, version: 1))
        let context = ColumnContext(table: "public.accounts", column: "balance")
        let value = SecureRandom.bytes(count: 16)
        let sealed = try cipher.seal(value, type: .numeric, context: context)

        let seal = try measure(iterations) { _ = try cipher.seal(value, type: .numeric, context: context) }
        let open = try measure(iterations) { _ = try cipher.open(sealed, context: context) }
        var buffer = [UInt8](repeating: 0, count: sealed.count)
        let sealInto = try value.withUnsafeBytes { v in
            try buffer.withUnsafeMutableBytes { b in
                try measure(iterations) { try cipher.seal(v, type: .numeric, context: context, into: b) }
            }
        }
        var plain = [UInt8](repeating: 0, count: 16)
        let openInto = try sealed.withUnsafeBytes { s in
            try plain.withUnsafeMutableBytes { p in
                try measure(iterations) { _ = try cipher.open(s, context: context, into: p) }
            }
        }

        let client = ESDKClient(configuration: .init(algorithmSuite: .aes256GCMHKDFSHA512CommitKey))
        let keyring = try RawAESKeyring(keyNamespace: "bench", keyName: "key", wrappingKey: SecretBytes(randomCount: 32))
        let request = EncryptionMaterials(algorithmSuite: .aes256GCMHKDFSHA512CommitKey, encryptionContext: [:])
        let materials = try keyring.wrap(request)
        let message = try client.encrypt(value, materials: materials)
        let esdkIterations = max(1, iterations / 10)
        let esdkEncrypt = try measure(esdkIterations) { _ = try client.encrypt(value, materials: materials) }
        let parsed = try client.parse(message)
        var decryption = try ESDKClient.decryptionRequest(for: parsed.header, reproduced: [:])
        decryption.plaintextDataKey = materials.plaintextDataKey
        let decryptionMaterials = decryption
        let esdkDecrypt = try measure(esdkIterations) { _ = try client.decrypt(client.parse(message), materials: decryptionMaterials) }

        return Report(compactSealMicros: seal, compactOpenMicros: open,
                      compactSealIntoBufferMicros: sealInto, compactOpenIntoBufferMicros: openInto,
                      compactOverheadBytes: CompactEnvelope.overheadByteCount,
                      esdkEncryptMicros: esdkEncrypt, esdkDecryptMicros: esdkDecrypt,
                      esdkOverheadBytes: message.count - value.count,
                      opensslAES256GCM16Micros: nil, pythonESDKEncryptMicros: nil)
    }

    /// CPU microseconds per call of `body`: the best of many short rounds of thread CPU time
    /// (`CLOCK_THREAD_CPUTIME_ID`), so time the thread spends descheduled on a busy machine does
    /// not count, just as `openssl speed` reports user CPU time.
    static func measure(_ iterations: Int, _ body: () throws -> Void) throws -> Double {
        for _ in 0..<min(iterations, 2000) { try body() }  // warm up
        let perRound = max(1, min(iterations, 1000))
        let rounds = max(20, iterations / perRound)
        var best = Double.infinity
        for _ in 0..<rounds {
            let start = threadCPUSeconds()
            for _ in 0..<perRound { try body() }
            best = min(best, (threadCPUSeconds() - start) * 1e6 / Double(perRound))
        }
        return best
    }

    private static func threadCPUSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) * 1e-9
    }

    /// Runs `openssl speed -evp aes-256-gcm -bytes 16 -seconds 1` and returns µs per 16-byte
    /// block, or nil when `openssl` is unavailable or its output is not understood.
    public static func measureOpenSSLSpeed() -> Double? {
        guard let (status, output) = runProcess("openssl", ["speed", "-evp", "aes-256-gcm", "-bytes", "16", "-seconds", "1"]),
              status == 0 else { return nil }
        // "Doing AES-256-GCM for 1s on 16 size blocks: 41234567 AES-256-GCM's in 1.00s"
        for line in output.split(separator: "\n") where line.contains("Doing") && line.contains(" in ") {
            let words = line.split(separator: " ")
            guard let colon = words.firstIndex(where: { $0.hasSuffix(":") }), colon + 1 < words.count,
                  let count = Double(words[colon + 1]), let last = words.last,
                  let seconds = Double(last.dropLast()), count > 0 else { continue }
            return seconds * 1e6 / count
        }
        return nil
    }

    /// Times the official Python SDK (0x0478, raw AES master key, 16-byte value) with `python`, or
    /// returns nil when it cannot run.
    public static func measurePythonESDK(python: String, iterations: Int = 2000) -> Double? {
        let script = """
            import os, time, aws_encryption_sdk
            from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy, EncryptionKeyType, WrappingAlgorithm
            from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
            from aws_encryption_sdk.key_providers.raw import RawMasterKey
            mk = RawMasterKey(provider_id="bench", key_id=b"key", wrapping_key=WrappingKey(
                wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING, wrapping_key=os.urandom(32),
                wrapping_key_type=EncryptionKeyType.SYMMETRIC))
            client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
            value = os.urandom(16)
            def once():
                client.encrypt(source=value, key_provider=mk, algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY)
            for _ in range(100): once()
            best = float("inf")
            for _ in range(10):
                start = time.process_time()
                for _ in range(\(iterations / 10)): once()
                best = min(best, (time.process_time() - start) / \(iterations / 10))
            print(best * 1e6)
            """
        guard let (status, output) = runProcess(python, ["-c", script]), status == 0 else { return nil }
        return Double(output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").last ?? "")
    }

    /// Runs a process (looked up in PATH), returning its exit status and combined stdout+stderr.
    ///
    /// Spawned with `posix_spawn` and an empty signal mask: Swift concurrency threads block signals
    /// and a child inherits that mask, which would stop `openssl speed` (it times itself with
    /// SIGALRM) from ever finishing.
    private static func runProcess(_ executable: String, _ arguments: [String]) -> (Int32, String)? {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return nil }
        #if os(Linux)
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        #else
        var actions: posix_spawn_file_actions_t?
        var attributes: posix_spawnattr_t?
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addclose(&actions, fds[1])
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGALRM, SIGPIPE, SIGINT, SIGTERM] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawnp(&pid, executable, &actions, &attributes, argv, environ)
        close(fds[1])
        defer { close(fds[0]) }
        guard spawned == 0 else { return nil }
        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if count > 0 { output += chunk[0..<count] } else if count == 0 || errno != EINTR { break }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let exited = (status & 0x7f) == 0
        return (exited ? (status >> 8) & 0xff : -1, String(decoding: output, as: UTF8.self))
    }
}
