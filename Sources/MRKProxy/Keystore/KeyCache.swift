import Foundation
import Logging
import MRKCrypto

/// Unwrapped keys in memory, with a TTL, single-flight loading and a bounded stale window.
///
/// - N concurrent requests for a key that is not cached share one load (one KMS call).
/// - After `ttl` a key is reloaded. Until `ttl + staleWindow` the old key keeps being served at
///   once while one reload runs in the background (a KMS outage neither blocks nor stops reads);
///   after a failed reload the next is tried no sooner than `retryDelay`. Past the stale window a
///   caller waits for the reload, and its failure is thrown.
/// - Evicted keys are released; `SecretBytes` zeroes its memory when the last reference goes.
///
/// `@unchecked Sendable`: all mutable state is guarded by `lock`; loads run outside the lock.
final class KeyCache: @unchecked Sendable {
    struct Key: Hashable, Sendable {
        let keyspaceID: UInt32
        let version: UInt32
    }

    private enum Entry {
        case ready(SecretBytes, loadedAt: ContinuousClock.Instant)
        /// A load in flight (`id` tells loads apart), with the key it replaces if any.
        case loading(Task<SecretBytes, any Error>, id: Int, stale: (SecretBytes, ContinuousClock.Instant)?)
    }

    private let lock = NSLock()
    private var entries: [Key: Entry] = [:]
    /// After a failed background reload: not before this instant again.
    private var retryAt: [Key: ContinuousClock.Instant] = [:]
    private var loadCount = 0
    private let ttl: Duration
    private let staleWindow: Duration
    private let retryDelay: Duration
    private let logger: Logger
    private let time: TimeSource

    init(ttl: Duration, staleWindow: Duration, logger: Logger, time: TimeSource = .continuous) {
        self.ttl = ttl
        self.staleWindow = staleWindow
        self.retryDelay = min(ttl, .seconds(5))
        self.logger = logger
        self.time = time
    }

    /// Number of loads started so far (KMS unwraps).
    var loads: Int { lock.withLock { loadCount } }

    /// The key if it is cached and fresh; never waits.
    func cached(_ key: Key) -> SecretBytes? {
        let now = time.now()
        let secret: SecretBytes? = lock.withLock {
            if case .ready(let secret, let loadedAt) = entries[key], now - loadedAt < ttl { return secret }
            return nil
        }
        if secret != nil { LibraryStatistics.shared.keyCacheHits.wrappingAdd(1, ordering: .relaxed) }
        return secret
    }

    /// The key, loading it (once, however many callers ask at the same time) when needed.
    func value(for key: Key, load: @escaping @Sendable () async throws(ProxyError) -> SecretBytes) async throws(ProxyError) -> SecretBytes {
        if let secret = cached(key) { return secret }
        enum Plan {
            case use(SecretBytes)
            case wait(Task<SecretBytes, any Error>)
        }
        let now = time.now()
        let plan: Plan = lock.withLock {
            switch entries[key] {
            case .ready(let secret, let loadedAt):
                if now - loadedAt < ttl { return .use(secret) }
                if now - loadedAt < ttl + staleWindow {
                    if retryAt[key].map({ now >= $0 }) ?? true { _ = startLoad(key, stale: (secret, loadedAt), load) }
                    return .use(secret)
                }
                return .wait(startLoad(key, stale: nil, load))
            case .loading(let task, _, let stale):
                if let (secret, loadedAt) = stale, now - loadedAt < ttl + staleWindow { return .use(secret) }
                return .wait(task)
            case nil:
                return .wait(startLoad(key, stale: nil, load))
            }
        }
        switch plan {
        case .use(let secret):
            return secret
        case .wait(let task):
            do {
                return try await task.value
            } catch let error as ProxyError {
                throw error
            } catch {
                throw ProxyError(.kms, "loading key \(key.keyspaceID)/v\(key.version) failed")
            }
        }
    }

    /// Starts loading `key`; called with `lock` held. The load records its own outcome.
    private func startLoad(_ key: Key, stale: (SecretBytes, ContinuousClock.Instant)?,
                           _ load: @escaping @Sendable () async throws(ProxyError) -> SecretBytes) -> Task<SecretBytes, any Error> {
        loadCount += 1
        LibraryStatistics.shared.kmsCalls.wrappingAdd(1, ordering: .relaxed)
        let id = loadCount
        let task = Task<SecretBytes, any Error> { [self] in
            do {
                let secret = try await load()
                let now = time.now()
                lock.withLock {
                    if case .loading(_, let current, _) = entries[key], current == id {
                        entries[key] = .ready(secret, loadedAt: now)
                        retryAt[key] = nil
                    }
                }
                return secret
            } catch {
                let now = time.now()
                lock.withLock {
                    guard case .loading(_, let current, _) = entries[key], current == id else { return }
                    if let (secret, loadedAt) = stale, now - loadedAt < ttl + staleWindow {
                        logger.warning("key reload failed; serving the cached key within its stale window",
                                       metadata: ["keyspace.id": "\(key.keyspaceID)", "version": "\(key.version)", "error": "\(error)"])
                        entries[key] = .ready(secret, loadedAt: loadedAt)
                        retryAt[key] = now + retryDelay
                    } else {
                        entries[key] = nil
                    }
                }
                throw error
            }
        }
        entries[key] = .loading(task, id: id, stale: stale)
        return task
    }

    /// Forgets every key.
    func removeAll() {
        lock.withLock {
            entries.removeAll()
            retryAt.removeAll()
        }
    }

    /// Forgets one key (a retired version).
    func remove(_ key: Key) {
        lock.withLock {
            entries[key] = nil
            retryAt[key] = nil
        }
    }
}
