import Foundation
import Logging
import MRKCrypto
@testable import MRKProxy
import Testing

@Suite struct KeyCacheTests {
    static let failure = ProxyError(.kms, "KMS is down")

    /// A load that does not finish until `release()`.
    final class Gate: @unchecked Sendable {
        private let lock = NSLock()
        private var waiting: [CheckedContinuation<Void, Never>] = []
        private var open = false
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

    @Test("within the stale window an expired key is served at once while one reload runs")
    func staleWhileReloading() async throws {
        let clock = ManualClock()
        let cache = KeyCache(ttl: .seconds(60), staleWindow: .seconds(600), logger: Logger(label: "test"), time: clock.source)
        let key = KeyCache.Key(keyspaceID: 1, version: 1)
        let first = SecretBytes(randomCount: 32)
        #expect(try await cache.value(for: key) { () throws(ProxyError) in first }.bytes == first.bytes)
        #expect(cache.cached(key) != nil)
        clock.advance(by: .seconds(61))
        #expect(cache.cached(key) == nil, "past its TTL the key is not fresh")
        // KMS now hangs: every caller is served the cached key while one reload waits.
        let gate = Gate()
        for _ in 0..<5 {
            let served = try await cache.value(for: key) { () async throws(ProxyError) -> SecretBytes in
                await gate.wait()
                throw Self.failure
            }
            #expect(served.bytes == first.bytes)
        }
        #expect(cache.loads == 2, "one background reload for all five callers")
        gate.release()
    }

    @Test("past the stale window a caller waits for the reload and gets its failure; a later success is cached")
    func pastTheStaleWindow() async throws {
        let clock = ManualClock()
        let cache = KeyCache(ttl: .seconds(60), staleWindow: .seconds(60), logger: Logger(label: "test"), time: clock.source)
        let key = KeyCache.Key(keyspaceID: 1, version: 1)
        _ = try await cache.value(for: key) { () throws(ProxyError) in SecretBytes(randomCount: 32) }
        clock.advance(by: .seconds(121))
        await #expect(throws: ProxyError.self) { try await cache.value(for: key) { () throws(ProxyError) -> SecretBytes in throw Self.failure } }
        let next = SecretBytes(randomCount: 32)
        #expect(try await cache.value(for: key) { () throws(ProxyError) in next }.bytes == next.bytes)
        #expect(cache.loads == 3)
    }

    @Test("concurrent first requests share one load")
    func singleFlight() async throws {
        let cache = KeyCache(ttl: .seconds(60), staleWindow: .seconds(60), logger: Logger(label: "test"), time: ManualClock().source)
        let key = KeyCache.Key(keyspaceID: 1, version: 2)
        let gate = Gate()
        let secret = SecretBytes(randomCount: 32)
        try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for _ in 0..<8 {
                group.addTask { try await cache.value(for: key) { () async throws(ProxyError) -> SecretBytes in await gate.wait(); return secret }.bytes }
            }
            try await Task.sleep(for: .milliseconds(50))
            gate.release()
            for try await bytes in group { #expect(bytes == secret.bytes) }
        }
        #expect(cache.loads == 1)
    }
}

@Suite struct KeystoreConnectionTests {
    @Test("the keystore connection gets connect, keepalive and statement timeouts unless the URL sets them")
    func timeouts() {
        let url = SerializedConnection.withTimeouts("postgresql://app@db:5432/app?sslmode=require")
        #expect(url.hasPrefix("postgresql://app@db:5432/app?sslmode=require&connect_timeout=10&"))
        #expect(url.contains("keepalives_idle=10") && url.removingPercentEncoding?.contains("options=-c statement_timeout=10000") == true)
        let conninfo = SerializedConnection.withTimeouts("host=db dbname=app connect_timeout=3")
        #expect(conninfo.contains("connect_timeout=3") && !conninfo.contains("connect_timeout=10"))
        #expect(conninfo.contains("options='-c statement_timeout=10000'"))
        let own = SerializedConnection.withTimeouts("postgresql://db/app?options=-c%20search_path%3Dx")
        #expect(!own.contains("statement"))
    }
}
