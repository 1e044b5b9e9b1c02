import Foundation
import Logging
import MRKCrypto

/// Unwrapped keys in memory, with a TTL, single-flight loading and a bounded stale window.
///
/// - N concurrent requests for a key that is not cached share one load (one KMS call).
/// - After `ttl` a key is reloaded; if that fails, the old key is used for at most `staleWindow`
///   more (so a brief KMS outage does not stop reads), then the failure is thrown.
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
        case loading(Task<SecretBytes, Error>, stale: (SecretBytes, ContinuousClock.Instant)?)
    }

    private let lock = NSLock()
    private var entries: [Key: Entry] = [:]
    private var loadCount = 0
    private let ttl: Duration
    private let staleWindow: Duration
    private let logger: Logger
    private let clock = ContinuousClock()

    init(ttl: Duration, staleWindow: Duration, logger: Logger) {
        self.ttl = ttl
        self.staleWindow = staleWindow
        self.logger = logger
    }

    /// Number of loads started so far (KMS unwraps).
    var loads: Int { lock.withLock { loadCount } }

    /// The key if it is cached and fresh; never waits.
    func cached(_ key: Key) -> SecretBytes? {
        lock.withLock {
            if case .ready(let secret, let loadedAt) = entries[key], clock.now - loadedAt < ttl { return secret }
            return nil
        }
    }

    /// The key, loading it (once, however many callers ask at the same time) when needed.
    func value(for key: Key, load: @escaping @Sendable () async throws -> SecretBytes) async throws -> SecretBytes {
        if let secret = cached(key) { return secret }
        let (task, stale): (Task<SecretBytes, Error>, (SecretBytes, ContinuousClock.Instant)?) = lock.withLock {
            var stale: (SecretBytes, ContinuousClock.Instant)?
            switch entries[key] {
            case .ready(let secret, let loadedAt):
                // Loaded by another caller since `cached` looked: no new task needed.
                if clock.now - loadedAt < ttl { return (Task { secret }, nil) }
                stale = (secret, loadedAt)
            case .loading(let task, let previous):
                return (task, previous)
            case nil:
                break
            }
            loadCount += 1
            let task = Task { try await load() }
            entries[key] = .loading(task, stale: stale)
            return (task, stale)
        }
        do {
            let secret = try await task.value
            // Only the load this caller waited for is replaced: a newer one may have started since.
            lock.withLock {
                if case .loading(let current, _) = entries[key], current == task { entries[key] = .ready(secret, loadedAt: clock.now) }
            }
            return secret
        } catch {
            return try lock.withLock {
                let ours: Bool
                if case .loading(let current, _) = entries[key], current == task { ours = true } else { ours = false }
                if let (secret, loadedAt) = stale, clock.now - loadedAt < ttl + staleWindow {
                    logger.warning("key reload failed; using the cached key within its stale window",
                                   metadata: ["keyspace.id": "\(key.keyspaceID)", "version": "\(key.version)", "error": "\(error)"])
                    if ours { entries[key] = .ready(secret, loadedAt: loadedAt) }
                    return secret
                }
                if ours { entries[key] = nil }
                throw error
            }
        }
    }

    /// Forgets every key.
    func removeAll() { lock.withLock { entries.removeAll() } }
}
