import Foundation
import Logging
import MRKCrypto
@testable import MRKProxy
import Testing

@Suite struct KeyCacheTests {
    struct Slow: Error {}

    @Test("within the stale window an expired key is served at once while one reload runs")
    func staleWhileReloading() async throws {
        let cache = KeyCache(ttl: .milliseconds(50), staleWindow: .seconds(60), logger: Logger(label: "test"))
        let key = KeyCache.Key(keyspaceID: 1, version: 1)
        let first = SecretBytes(randomCount: 32)
        #expect(try await cache.value(for: key) { first }.bytes == first.bytes)
        try await Task.sleep(for: .milliseconds(100))
        // KMS now hangs for five seconds and then fails: callers must not wait for it.
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<5 {
            let served = try await cache.value(for: key) {
                try await Task.sleep(for: .seconds(5))
                throw Slow()
            }
            #expect(served.bytes == first.bytes)
        }
        #expect(clock.now - start < .seconds(3), "served from the cache without waiting for the reload")
        #expect(cache.loads == 2, "one background reload for all five callers")
    }

    @Test("past the stale window a caller waits for the reload and gets its failure")
    func pastTheStaleWindow() async throws {
        let cache = KeyCache(ttl: .milliseconds(10), staleWindow: .milliseconds(10), logger: Logger(label: "test"))
        let key = KeyCache.Key(keyspaceID: 1, version: 1)
        _ = try await cache.value(for: key) { SecretBytes(randomCount: 32) }
        try await Task.sleep(for: .milliseconds(100))
        await #expect(throws: Slow.self) { try await cache.value(for: key) { throw Slow() } }
        // …and a later success is cached again.
        let next = SecretBytes(randomCount: 32)
        #expect(try await cache.value(for: key) { next }.bytes == next.bytes)
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
