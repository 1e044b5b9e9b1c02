import Foundation
import MRKSQL

/// The async API: a small pool of `EncryptedConnection`s. Each call borrows a connection and
/// runs on one of the library's own threads (libpq blocks), so async callers never block the
/// concurrency pool.
///
/// `@unchecked Sendable`: idle connections and waiters are only touched under `lock`, and a
/// borrowed connection is used by exactly one call at a time.
public final class EncryptedConnectionPool: @unchecked Sendable {
    /// The region's MRKProxy.
    public let database: EncryptedDatabase
    private let lock = NSLock()
    private var idle: [EncryptedConnection] = []
    private var open = 0
    private var waiters: [(id: Int, continuation: CheckedContinuation<Void, Never>)] = []
    private var nextWaiter = 0
    private let maxConnections: Int
    private let threads: BlockingThreadPool

    /// - Parameters:
    ///   - database: the opened database whose connections the pool hands out.
    ///   - maxConnections: at most this many connections are open at once. Default 4.
    public init(database: EncryptedDatabase, maxConnections: Int = 4) {
        precondition(maxConnections > 0)
        self.database = database
        self.maxConnections = maxConnections
        threads = maxConnections <= 4 ? .shared : BlockingThreadPool(threads: maxConnections, name: "mrkproxy-pool")
    }

    /// Borrows a connection for `body` (which runs on one of the library's threads).
    ///
    /// - Throws: what `body` throws; `.cancelled` when the task is cancelled while it waits for a
    ///   connection.
    public func withConnection<R: Sendable>(_ body: @escaping @Sendable (EncryptedConnection) throws(ProxyError) -> R) async throws(ProxyError) -> R {
        let connection = try await acquire()
        // The connection is used by this one job only; the box carries it to its thread and back.
        let holder = UncheckedBox(connection)
        // Whatever `body` did, the next borrower gets the connection idle (no transaction left
        // open) or a new one.
        let outcome: (result: Result<R, ProxyError>, reusable: Bool)
        do throws(ProxyError) {
            outcome = try await threads.run { () throws(ProxyError) -> (Result<R, ProxyError>, Bool) in
                let result: Result<R, ProxyError>
                do throws(ProxyError) { result = .success(try body(holder.value)) } catch { result = .failure(error) }
                return (result, holder.value.resetForReuse())
            }
        } catch {
            release(connection, healthy: true)
            throw error
        }
        release(connection, healthy: outcome.reusable)
        return try outcome.result.get()
    }

    /// Async `EncryptedConnection.query`.
    @discardableResult
    public func query(_ sql: String, _ values: [SQLValue] = []) async throws(ProxyError) -> QueryResult {
        try await withConnection { (connection) throws(ProxyError) in try connection.query(sql, values) }
    }

    /// Async `EncryptedConnection.execute`.
    @discardableResult
    public func execute(_ sql: String, _ values: [SQLValue] = []) async throws(ProxyError) -> Int {
        try await withConnection { (connection) throws(ProxyError) in try connection.execute(sql, values) }
    }

    /// Async `EncryptedConnection.batch`.
    @discardableResult
    public func batch(_ sql: String, _ rows: [[SQLValue]]) async throws(ProxyError) -> Int {
        try await withConnection { (connection) throws(ProxyError) in try connection.batch(sql, rows) }
    }

    /// Async transaction: `body` runs on one connection inside BEGIN/COMMIT.
    public func transaction<R: Sendable>(_ body: @escaping @Sendable (EncryptedConnection) throws(ProxyError) -> R) async throws(ProxyError) -> R {
        try await withConnection { (connection) throws(ProxyError) in try connection.transaction(body) }
    }

    private func acquire() async throws(ProxyError) -> EncryptedConnection {
        while true {
            if Task.isCancelled { throw ProxyError(.cancelled, "cancelled while waiting for a connection") }
            enum Step { case reuse(EncryptedConnection), create, wait }
            let step: Step = lock.withLock {
                if let connection = idle.popLast() { return .reuse(UncheckedBox(connection).value) }
                if open < maxConnections { open += 1; return .create }
                return .wait
            }
            switch step {
            case .reuse(let connection):
                return connection
            case .create:
                do throws(ProxyError) {
                    // Connecting blocks (libpq): on the library's threads.
                    let database = self.database
                    return try await threads.run { () throws(ProxyError) in UncheckedBox(try database.connect()) }.value
                } catch {
                    lock.withLock { open -= 1 }
                    wakeOne()
                    throw error
                }
            case .wait:
                await waitForRelease()
            }
        }
    }

    /// Suspends until a connection is released or the task is cancelled.
    private func waitForRelease() async {
        let id: Int = lock.withLock {
            nextWaiter += 1
            return nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow: Bool = lock.withLock {
                    if !idle.isEmpty || open < maxConnections || Task.isCancelled { return true }
                    waiters.append((id, continuation))
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = lock.withLock { () -> CheckedContinuation<Void, Never>? in
                guard let index = waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return waiters.remove(at: index).continuation
            }
            waiter?.resume()
        }
    }

    private func release(_ connection: EncryptedConnection, healthy: Bool) {
        lock.withLock {
            if healthy { idle.append(connection) } else { open -= 1 }
        }
        wakeOne()
    }

    private func wakeOne() {
        let waiter = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            waiters.isEmpty ? nil : waiters.removeFirst().continuation
        }
        waiter?.resume()
    }
}
