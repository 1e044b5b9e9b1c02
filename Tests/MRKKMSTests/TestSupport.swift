import Foundation
import MRKCrypto
@testable import MRKKMS
@testable import MRKLocalKMS
import Testing

enum TestSupport {
    /// The repository root, from this file's path (Tests/MRKKMSTests/TestSupport.swift).
    static let repoRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The AWS SigV4 test suite, kept in the repository (see its NOTICE and LICENSE).
    static let sigv4Vectors: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Vectors/sigv4")

    /// A fresh temporary directory, removed by the caller via `defer`.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("mrkkms-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A LocalKMS with an MRK in us-east-1 replicated to ap-southeast-2.
    static func mrkSetup(configuration: LocalKMS.Configuration = .init()) throws -> (east: LocalKMS, south: LocalKMS, keyId: String) {
        let east = try LocalKMS(configuration: configuration)
        let key = try east.createKey(description: "test", multiRegion: true)
        let south = east.inRegion("ap-southeast-2")
        try east.replicateKey(keyId: key.keyId, replicaRegion: "ap-southeast-2")
        return (east, south, key.keyId)
    }

    /// Runs `body` with a KMSHTTPServer on an ephemeral loopback port.
    static func withServer<T>(_ kms: LocalKMS, configuration: KMSHTTPServer.Configuration = .init(),
                              _ body: (Int) async throws -> T) async throws -> T {
        let server = KMSHTTPServer(kms: kms, configuration: configuration)
        let port = try await server.start(host: "127.0.0.1", port: 0)
        do {
            let result = try await body(port)
            await server.shutdown()
            return result
        } catch {
            await server.shutdown()
            throw error
        }
    }

    /// Runs `body` with a stub HTTP server answering with `handler`.
    static func withStub<T>(_ handler: @escaping HTTPServer.Handler, _ body: (Int) async throws -> T) async throws -> T {
        let server = HTTPServer(handler: handler)
        let port = try await server.start(host: "127.0.0.1", port: 0)
        do {
            let result = try await body(port)
            await server.shutdown()
            return result
        } catch {
            await server.shutdown()
            throw error
        }
    }

    /// An AWSKMSClient for the in-process server with `test`/`test` credentials.
    static func client(port: Int, region: String, secret: String = "test", accessKeyId: String = "test",
                       maxAttempts: Int = 1) -> AWSKMSClient {
        AWSKMSClient(configuration: .init(region: region, endpoint: URL(string: "http://127.0.0.1:\(port)")!, timeout: 5,
                                          maxAttempts: maxAttempts, environment: [:]),
                     credentialsProvider: StaticCredentialsProvider(AWSCredentials(accessKeyId: accessKeyId, secretAccessKey: secret)))
    }

    /// Expects `body` to throw a KMSError with `code`; returns it.
    @discardableResult
    static func expectKMSError<T>(_ code: KMSError.Code, sourceLocation: SourceLocation = #_sourceLocation,
                                  _ body: () async throws -> T) async -> KMSError? {
        do {
            _ = try await body()
            Issue.record("expected \(code.name), got success", sourceLocation: sourceLocation)
            return nil
        } catch let error as KMSError {
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
            return error
        } catch {
            Issue.record("expected KMSError \(code.name), got \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    /// A thread-safe counter for stubs.
    final class Counter: @unchecked Sendable {
        // Guarded by `lock`.
        private let lock = NSLock()
        private var value = 0
        private var requests: [HTTPRequest] = []
        func next(_ request: HTTPRequest) -> Int {
            lock.withLock { value += 1; requests.append(request); return value }
        }
        var count: Int { lock.withLock { value } }
        var seen: [HTTPRequest] { lock.withLock { requests } }
    }

    static func json(_ status: Int, _ object: [String: Any]) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/x-amz-json-1.1")],
                     body: Array(try! JSONSerialization.data(withJSONObject: object)))
    }
}

/// Holds stub responses until `release()`. `@unchecked Sendable`: guarded by `lock`.
final class ReleaseGate: @unchecked Sendable {
    private let lock = NSLock()
    private var waiting: [CheckedContinuation<Void, Never>] = []
    private var open = false

    var released: Bool { lock.withLock { open } }

    func wait() async {
        await withCheckedContinuation { continuation in
            let now = lock.withLock { () -> Bool in
                if open { return true }
                waiting.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    func release() {
        let all = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            open = true
            defer { waiting = [] }
            return waiting
        }
        all.forEach { $0.resume() }
    }
}
