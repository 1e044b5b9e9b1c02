import Foundation
import Logging
import MRKCrypto
import MRKKMS
import MRKLocalKMS
import MRKPostgres
import MRKProxy
import MRKSQL

/// The surfaces that read bytes MRKProxy does not control, each with a harness that must never
/// trap, whatever the input: it either gets a result or an error. Where a cheap property holds
/// for every accepted input (a value reads back to itself), the harness checks it too and stops
/// the process when it fails, which libFuzzer reports like a crash.
///
/// Run under libFuzzer by `mrkproxy-fuzz` (built with `-sanitize=fuzzer`), and over the seed
/// corpus by the tests.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// The SQL tokenizer, parser, analysis and rewrites (`SQLInterceptor.plan`).
    case sql
    /// The text input of every supported type, and the decoding of any plaintext bytes.
    case values
    /// The compact column envelope: header parsing and authenticated opening.
    case compact
    /// AWS Encryption SDK messages: parsing and decryption.
    case esdk
    /// KMS: requests to the local KMS server (signed and not), responses to the client,
    /// credential documents.
    case kms
    /// The configuration file.
    case config
    /// The wire proxy: client messages (startup and every message type), SCRAM exchanges, COPY
    /// data in text and CSV, binary parameter values.
    case wire

    /// Runs the harness on one input.
    public func run(_ data: [UInt8]) {
        switch self {
        case .sql: SQLHarness.run(data)
        case .values: ValueHarness.run(data)
        case .compact: CompactHarness.run(data)
        case .esdk: ESDKHarness.run(data)
        case .kms: KMSHarness.run(data)
        case .config: ConfigHarness.run(data)
        case .wire: WireHarness.run(data)
        }
    }

    /// Inputs to start fuzzing from (the checked-in corpus holds these and what fuzzing added).
    public var seeds: [[UInt8]] {
        switch self {
        case .sql: SQLHarness.seeds
        case .values: ValueHarness.seeds
        case .compact: CompactHarness.seeds
        case .esdk: ESDKHarness.seeds
        case .kms: KMSHarness.seeds
        case .config: ConfigHarness.seeds
        case .wire: WireHarness.seeds
        }
    }
}

/// Stops the process when a property that must hold for every input does not (a finding).
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        FileHandle.standardError.write(Data("property violated: \(message())\n".utf8))
        abort()
    }
}

// MARK: - SQL

enum SQLHarness {
    static let schema: EncryptedSchema = {
        let customers = QualifiedName(schema: "public", name: "customers")
        let accounts = QualifiedName(schema: "public", name: "accounts")
        return EncryptedSchema(tables: [
            EncryptedTable(name: customers, rowIdentity: "id", columns: [
                EncryptedColumn(table: customers, name: "ssn", type: .text, search: .equality),
                EncryptedColumn(table: customers, name: "dob", type: .date),
                EncryptedColumn(table: customers, name: "notes", type: .text, format: .esdk),
                EncryptedColumn(table: customers, name: "email", type: .text, search: .equality, blindIndexBits: 16),
            ]),
            EncryptedTable(name: accounts, columns: [
                EncryptedColumn(table: accounts, name: "iban", type: .text, search: .equality, blindIndexColumn: "iban_hmac"),
                EncryptedColumn(table: accounts, name: "balance", type: .numeric),
            ]),
        ])
    }()
    static let interceptors = [SQLInterceptor(schema: schema), SQLInterceptor(schema: schema, dialect: .init(serverVersion: 150_000))]

    static func run(_ data: [UInt8]) {
        guard let first = data.first else { return }
        let sql = String(decoding: data.dropFirst(), as: UTF8.self)
        let interceptor = interceptors[Int(first & 1)]
        let parameterCount = Int(first >> 1) % 8
        guard let plan = try? interceptor.plan(sql, parameterCount: parameterCount) else {
            _ = try? SQLScript.statements(sql)
            return
        }
        // What is sent is itself valid input for the tokenizer, and numbers its parameters 1…N.
        if plan.sql != sql {
            require((try? SQLTokenizer.tokenize(plan.sql)) != nil, "a rewritten statement does not tokenize")
        }
        for parameter in plan.parameters {
            if case .passthrough(.parameter(let index)) = parameter {
                require(index < parameterCount, "a passed-through parameter beyond the caller's values")
            }
        }
    }

    static let seeds: [[UInt8]] = [
        "SELECT * FROM customers WHERE ssn = $1", "SELECT id, ssn FROM customers c WHERE c.email = 'a@b' AND id > 5",
        "INSERT INTO customers (id, ssn, dob) VALUES ($1, '123', DATE '2020-01-01') RETURNING id, ssn",
        "UPDATE customers SET ssn = $1 WHERE id = $2", "DELETE FROM accounts WHERE iban IN ($1, 'DE00')",
        "WITH x AS (SELECT id, ssn FROM customers) SELECT * FROM x", "SELECT U&'x!0041' UESCAPE $$!$$, E'\\x41', $tag$ssn$tag$",
        "SELECT a.id FROM accounts a JOIN customers c ON c.id = a.owner WHERE c.ssn = $1 ORDER BY 1 LIMIT 3",
        "INSERT INTO accounts (id, iban) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET iban = EXCLUDED.iban",
        "SELECT count(*) FILTER (WHERE ssn = $1) FROM customers GROUP BY name HAVING count(*) > 1",
        "EXPLAIN ANALYZE SELECT * FROM customers WHERE ssn LIKE 'x%'", "COPY customers FROM STDIN", "DO $$ BEGIN END $$",
        "SELECT 0x1F, 1_000, 1e10, .5, 'a' 'b'", "/* nested /* comment */ */ SELECT 1 -- end",
    ].flatMap { sql in [[UInt8(2)] + Array(sql.utf8), [UInt8(5)] + Array(sql.utf8)] }
}

// MARK: - Values

enum ValueHarness {
    static func run(_ data: [UInt8]) {
        guard data.count >= 1 else { return }
        let types = ColumnValueType.allCases
        let type = types[Int(data[0]) % types.count]
        let rest = Array(data.dropFirst())
        if data[0] & 0x80 == 0 {
            // Text input, then the exact round trip: what is stored prints as text that reads back
            // to the same stored bytes.
            let text = String(decoding: rest, as: UTF8.self)
            for context in [ColumnCodec.Context.utc, ColumnCodec.Context(sessionOffset: 19_800), ColumnCodec.Context(sessionOffset: nil)] {
                guard let bytes = try? ColumnCodec.encode(.text(text), as: type, column: "t.c", context: context) else { continue }
                guard let value = try? ColumnCodec.decode(bytes, as: type.plaintextType) else {
                    require(false, "\(type): stored bytes of an accepted input do not decode")
                    return
                }
                let again = try? ColumnCodec.encode(.text(value.postgresText ?? ""), as: type, column: "t.c", context: .utc)
                require(again == bytes, "\(type): the printed value does not read back to the same stored bytes")
                _ = try? ColumnCodec.equalityKey(.text(text), as: type, column: "t.c", context: context)
                _ = SQLValue(postgresText: text, oid: PostgresOID(UInt32(data[0] & 0x7F) &+ 16))
            }
        } else {
            // Any bytes as a stored plaintext of any type tag.
            for tag in PlaintextType.allCases { _ = try? ColumnCodec.decode(rest, as: tag) }
            _ = rest.withUnsafeBytes { PostgresText.decodeByteaOutput($0) }
        }
    }

    static let seeds: [[UInt8]] = {
        var seeds: [[UInt8]] = []
        let samples: [(ColumnValueType, [String])] = [
            (.numeric, ["1.50", "-1e-3", "NaN", "1e131071", "12abc"]), (.date, ["5874897-12-31", "4714-11-24 BC", "infinity"]),
            (.timestamp, ["2020-01-01 24:00:00", "294276-12-31 23:59:59.999999", "2020-01-01T10:00:00.0000005Z"]),
            (.timestamptz, ["2020-01-01 00:00:00+9999999999999999", "2020-01-01 10:00 +05:30", "epoch"]),
            (.float4, ["0.1", "1e-45", "4.1061872e+07"]), (.float8, ["0x1p-1074", "-0", "nan(12)"]),
            (.jsonb, [#"{"b":1,"a":[1,{"c":"\ud83d\ude00"}]}"#, "[1e2, -0]"]), (.json, [#""\u0000""#]),
            (.bytea, ["\\x00ff", "a\\\\b\\001"]), (.uuid, ["{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"]), (.bool, ["tr", "of"]),
            (.int2, ["-32768"]), (.int8, ["9223372036854775807"]), (.text, ["ünïcødé"]),
        ]
        for (type, texts) in samples {
            let tag = UInt8(ColumnValueType.allCases.firstIndex(of: type)!)
            for text in texts { seeds.append([tag] + Array(text.utf8)) }
        }
        seeds.append([0x80] + [0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF])
        return seeds
    }()
}

// MARK: - Compact envelope

enum CompactHarness {
    static let key = SecretBytes(Array(repeating: 7, count: 32))
    static let keyID = CompactKeyID(keyspace: 1, version: 1)
    static let context = ColumnContext(table: "public.customers", column: "ssn")

    static func run(_ data: [UInt8]) {
        _ = try? CompactEnvelope.header(of: data)
        guard let cipher = try? ColumnCipher(dataKey: key, keyID: keyID) else { return }
        let identity: [UInt8]? = data.first.map { $0 & 1 == 1 ? [0x31] : nil } ?? nil
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: max(data.count, 1), alignment: 16)
        defer { output.deallocate() }
        data.withUnsafeBytes { sealed in
            if let identity {
                identity.withUnsafeBytes { _ = try? cipher.open(sealed, context: context, rowIdentity: $0, into: output) }
            } else {
                _ = try? cipher.open(sealed, context: context, rowIdentity: nil, into: output)
            }
        }
        _ = try? cipher.open(data, context: context)
    }

    static let seeds: [[UInt8]] = {
        guard let cipher = try? ColumnCipher(dataKey: key, keyID: keyID) else { return [] }
        var seeds: [[UInt8]] = []
        for (index, plaintext) in ["078-05-1120", "", String(repeating: "x", count: 300)].enumerated() {
            if let sealed = try? cipher.seal(Array(plaintext.utf8), type: .text, context: context) { seeds.append(sealed) }
            if let sealed = try? cipher.seal(Array(plaintext.utf8), type: PlaintextType.allCases[index], context: context.withRowIdentity([0x31])) {
                seeds.append(sealed)
            }
        }
        return seeds
    }()
}

// MARK: - AWS Encryption SDK

enum ESDKHarness {
    static let keyring = try? RawAESKeyring(keyNamespace: "mrkproxy", keyName: "fuzz", wrappingKey: SecretBytes(Array(repeating: 9, count: 32)))
    static let client = ESDKClient(configuration: .init(commitmentPolicy: .requireEncryptAllowDecrypt, maxEncryptedDataKeys: 4))

    static func run(_ data: [UInt8]) {
        guard let message = try? client.parse(data), let keyring else { return }
        _ = message.storedEncryptionContext
        let box = UncheckedSendable(message)
        BlockingAsync.run { _ = try? await client.decryptionMaterials(for: box.value, keyring: keyring).algorithmSuite }
        // Decrypt without materials from the keyring too: every frame check runs on the bytes.
        let materials = DecryptionMaterials(algorithmSuite: message.algorithmSuite, encryptionContext: message.storedEncryptionContext,
                                            plaintextDataKey: SecretBytes(Array(repeating: 1, count: message.algorithmSuite.dataKeyByteCount)))
        _ = try? client.decrypt(message, materials: materials)
    }

    static let seeds: [[UInt8]] = {
        guard let keyring else { return [] }
        var seeds: [[UInt8]] = []
        let box = UncheckedSendable(SeedBox())
        BlockingAsync.run {
            for (index, text) in ["", "hello", String(repeating: "z", count: 5000)].enumerated() {
                let suite: AlgorithmSuite = index == 1 ? .aes256GCMHKDFSHA512CommitKeyECDSAP384 : .aes256GCMHKDFSHA512CommitKey
                let encrypting = ESDKClient(configuration: .init(algorithmSuite: suite, frameLength: 1024))
                if let message = try? await encrypting.encrypt(Array(text.utf8), keyring: keyring, encryptionContext: ["mrkproxy:column": "notes"]) {
                    box.value.add(message)
                }
            }
        }
        seeds = box.value.items
        return seeds
    }()
}

/// Runs async code to completion from synchronous code, on a thread of its own (a task executor),
/// so that it never needs a thread of Swift's concurrency pool, which the caller may be holding.
final class BlockingAsync: TaskExecutor, @unchecked Sendable {
    private static let shared = BlockingAsync()
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    private init() {
        let thread = Thread { [self] in
            while true {
                condition.lock()
                while jobs.isEmpty { condition.wait() }
                let job = jobs.removeFirst()
                condition.unlock()
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
        }
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        jobs.append(unowned)
        condition.signal()
        condition.unlock()
    }

    static func run(_ body: @escaping @Sendable () async -> Void) {
        let done = DispatchSemaphore(value: 0)
        Task(executorPreference: shared) {
            await body()
            done.signal()
        }
        done.wait()
    }
}

/// Collects seeds across a task boundary. `@unchecked Sendable`: guarded by `lock`.
final class SeedBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [[UInt8]] = []
    func add(_ item: [UInt8]) { lock.withLock { stored.append(item) } }
    var items: [[UInt8]] { lock.withLock { stored } }
}

/// Carries a value into a detached task that the caller waits for. `@unchecked Sendable`: the
/// caller does not touch the value until the task is done.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

// MARK: - KMS

enum KMSHarness {
    static let kms: LocalKMS? = {
        guard let kms = try? LocalKMS(configuration: .init(region: "us-east-1", maxAuditEventsInMemory: 16)),
              let key = try? kms.createKey(description: "fuzz", multiRegion: true) else { return nil }
        _ = try? kms.replicateKey(keyId: key.keyId, replicaRegion: "ap-southeast-2")
        keyID = key.keyId
        return kms
    }()
    nonisolated(unsafe) static var keyID = ""
    static let dispatcher = kms.map { KMSRequestDispatcher(kms: $0) }
    static let operations = ["Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "DescribeKey", "ReEncrypt",
                             "CreateKey", "ReplicateKey", "UpdatePrimaryRegion", "ListKeys", "CreateAlias", "ListAliases",
                             "PutKeyPolicy", "GetKeyPolicy", "EnableKeyRotation", "GetKeyRotationStatus", "TagResource",
                             "ListResourceTags", "GenerateRandom", "ScheduleKeyDeletion", "DisableKey", "EnableKey"]

    static func run(_ data: [UInt8]) {
        guard let mode = data.first, let dispatcher else { return }
        let rest = Array(data.dropFirst())
        switch mode % 4 {
        case 0:
            // A request as the network could send it: `header: value` lines, a blank line, the body.
            let text = String(decoding: rest, as: UTF8.self)
            let parts = text.components(separatedBy: "\n\n")
            let headers = parts[0].split(separator: "\n").compactMap { line -> (name: String, value: String)? in
                let pieces = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                guard pieces.count == 2 else { return nil }
                return (String(pieces[0]), pieces[1].trimmingCharacters(in: .whitespaces))
            }
            _ = dispatcher.handle(HTTPRequest(method: "POST", uri: "/", headers: headers,
                                              body: Array(parts.dropFirst().joined(separator: "\n\n").utf8)))
        case 1:
            // A correctly signed request with a fuzzed operation and body: the JSON decoding and
            // every operation's handling.
            guard let selector = rest.first else { return }
            let operation = operations[Int(selector) % operations.count]
            let body = Array(rest.dropFirst())
            let region = selector & 0x80 == 0 ? "us-east-1" : "ap-southeast-2"
            var request = SigV4.Request(method: "POST", path: "/", headers: [
                ("Host", "kms.\(region).amazonaws.com"), ("Content-Type", "application/x-amz-json-1.1"),
                ("X-Amz-Target", "TrentService.\(operation)"),
            ], body: body)
            SigV4.sign(&request, credentials: AWSCredentials(accessKeyId: "test", secretAccessKey: "test"), region: region,
                       service: "kms", date: Date())
            _ = dispatcher.handle(HTTPRequest(method: "POST", uri: "/", headers: request.headers, body: body))
        case 2:
            // A response as a KMS endpoint could send it, to the client.
            let response = HTTPTransport.Response(status: rest.first.map { Int($0) * 4 } ?? 200, headers: ["x-amzn-ErrorType": "X"], body: Data(rest.dropFirst()))
            _ = AWSKMSClient.classify(response, region: "us-east-1", operation: "Decrypt")
            for type in [WireDecryptResponse.self as any Decodable.Type, WireGenerateDataKeyResponse.self, WireKeyMetadataResponse.self,
                         WireEncryptResponse.self, WireReEncryptResponse.self] {
                _ = try? JSONDecoder().decode(type, from: Data(rest))
            }
            _ = SigV4.Authorization(header: String(decoding: rest, as: UTF8.self))
            _ = SigV4.parseAmzDate(String(decoding: rest, as: UTF8.self))
        default:
            // Credentials documents: the shared files (INI) and the ECS/IMDS JSON.
            _ = ProfileCredentialsProvider.parseINI(String(decoding: rest, as: UTF8.self))
            _ = try? MetadataCredentials.decode(Data(rest), source: "fuzz")
        }
    }

    static let seeds: [[UInt8]] = {
        var seeds: [[UInt8]] = []
        _ = kms
        let key = keyID.isEmpty ? "mrk-00000000000000000000000000000000" : keyID
        let bodies: [(String, String)] = [
            ("GenerateDataKey", #"{"KeyId":"\#(key)","KeySpec":"AES_256","EncryptionContext":{"a":"b"}}"#),
            ("Encrypt", #"{"KeyId":"\#(key)","Plaintext":"aGVsbG8="}"#), ("DescribeKey", #"{"KeyId":"\#(key)"}"#),
            ("Decrypt", #"{"CiphertextBlob":"AQIDBA==","KeyId":"\#(key)"}"#), ("CreateKey", #"{"MultiRegion":true,"Description":"x"}"#),
            ("PutKeyPolicy", #"{"KeyId":"\#(key)","Policy":"{\"Version\":\"2012-10-17\",\"Statement\":[]}"}"#),
        ]
        for (operation, body) in bodies {
            let index = UInt8(operations.firstIndex(of: operation) ?? 0)
            seeds.append([1, index] + Array(body.utf8))
        }
        seeds.append([0] + Array("X-Amz-Target: TrentService.Decrypt\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00\n\n{}".utf8))
        seeds.append([2, 50] + Array(#"{"__type":"com.amazonaws.kms#NotFoundException","message":"x"}"#.utf8))
        seeds.append([2, 50] + Array(#"{"KeyId":"k","Plaintext":"AAAA","CiphertextBlob":"AAAA"}"#.utf8))
        seeds.append([3] + Array("[default]\naws_access_key_id = A\naws_secret_access_key = B\n".utf8))
        seeds.append([3] + Array(#"{"AccessKeyId":"A","SecretAccessKey":"B","Token":"T","Expiration":"2030-01-01T00:00:00Z","Code":"Success"}"#.utf8))
        return seeds
    }()
}

// MARK: - Configuration

enum ConfigHarness {
    static func run(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        _ = try? ProxyConfiguration.parse(text, source: "fuzz.yaml", environment: [:])
    }

    static let seeds: [[UInt8]] = [
        """
        region: us-east-1
        kms:
          key: arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab
          endpoint: http://127.0.0.1:4599
          cache_ttl: 5m
        regions:
          us-east-1: { database: "postgres://app@127.0.0.1:5432/app" }
          ap-southeast-2: { database: "postgres://app@127.0.0.1:5433/app", read_only: true }
        tables:
          public.customers:
            row_identity: id
            columns:
              ssn: { type: text, search: equality, index_bits: 64 }
              dob: { type: date }
              notes: { type: text, format: esdk }
        """,
        #"{"region":"us-east-1","kms":{"key":"arn:aws:kms:us-east-1:1:key/mrk-1"},"regions":{"us-east-1":{"database":"x"}}}"#,
        "region: [unterminated", "",
    ].map { Array($0.utf8) }
}
