import MRKSQL
import Foundation

/// The async API: a small pool of `EncryptedConnection`s. Each call borrows a connection and
/// runs on a thread of its own (libpq blocks), so async callers never block the concurrency pool.
///
/// `@unchecked Sendable`: idle connections are only touched under `lock`, and a borrowed
/// connection is used by exactly one call at a time.
public final class EncryptedConnectionPool: @unchecked Sendable {
    /// The region's MRKProxy.
    public let database: EncryptedDatabase
    private let lock = NSLock()
    private var idle: [EncryptedConnection] = []
    private var open = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private let maxConnections: Int

    /// - Parameter maxConnections: at most this many connections are open at once. Default 4.
    public init(database: EncryptedDatabase, maxConnections: Int = 4) {
        precondition(maxConnections > 0)
        self.database = database
        self.maxConnections = maxConnections
    }

    /// Borrows a connection for `body` (which runs on a background thread).
    public func withConnection<R: Sendable>(_ body: @escaping @Sendable (EncryptedConnection) throws -> R) async throws -> R {
        let connection = try await acquire()
        let holder = UncheckedBox(connection)
        // Whatever `body` did, the next borrower gets the connection idle (no transaction left
        // open) or a new one.
        let outcome: (result: Result<R, any Error>, reusable: Bool)
        do {
            outcome = try await withBlockingThread {
                let result = Result { try body(holder.value) }
                return (result, holder.value.resetForReuse())
            }
        } catch {
            release(connection, healthy: false)
            throw error
        }
        release(connection, healthy: outcome.reusable)
        return try outcome.result.get()
    }

    /// Async `EncryptedConnection.query`.
    @discardableResult
    public func query(_ sql: String, _ values: [SQLValue] = []) async throws -> QueryResult {
        try await withConnection { try $0.query(sql, values) }
    }

    /// Async `EncryptedConnection.execute`.
    @discardableResult
    public func execute(_ sql: String, _ values: [SQLValue] = []) async throws -> Int {
        try await withConnection { try $0.execute(sql, values) }
    }

    /// Async `EncryptedConnection.batch`.
    @discardableResult
    public func batch(_ sql: String, _ rows: [[SQLValue]]) async throws -> Int {
        try await withConnection { try $0.batch(sql, rows) }
    }

    /// Async transaction: `body` runs on one connection inside BEGIN/COMMIT.
    public func transaction<R: Sendable>(_ body: @escaping @Sendable (EncryptedConnection) throws -> R) async throws -> R {
        try await withConnection { try $0.transaction(body) }
    }

    private func acquire() async throws -> EncryptedConnection {
        while true {
            enum Step { case reuse(EncryptedConnection), create, wait }
            let step: Step = lock.withLock {
                if let connection = idle.popLast() { return .reuse(UncheckedBox(connection).value) }
                if open < maxConnections { open += 1; return .create }
                return .wait
            }
            switch step {
            case .reuse(let connection): return connection
            case .create:
                do {
                    // Connecting blocks (libpq): off the concurrency pool.
                    let database = self.database
                    return try await withBlockingThread { UncheckedBox(try database.connect()) }.value
                } catch {
                    lock.withLock { open -= 1 }
                    wakeOne()
                    throw error
                }
            case .wait:
                await withCheckedContinuation { continuation in
                    let resumeNow: Bool = lock.withLock {
                        if !idle.isEmpty || open < maxConnections { return true }
                        waiters.append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    private func release(_ connection: EncryptedConnection, healthy: Bool) {
        lock.withLock {
            if healthy { idle.append(connection) } else { open -= 1 }
        }
        wakeOne()
    }

    private func wakeOne() {
        let waiter: CheckedContinuation<Void, Never>? = lock.withLock { waiters.isEmpty ? nil : waiters.removeFirst() }
        waiter?.resume()
    }
}

/// Moves a non-Sendable value across an isolation boundary. `@unchecked Sendable`: used only for
/// connections handed to exactly one thread at a time by the pool.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Runs blocking work (the sync API, libpq) on a thread of its own and awaits its result, so that
/// async callers never tie up the concurrency pool — which the sync API's rare KMS calls need.
public func withBlockingThread<R: Sendable>(_ body: @escaping @Sendable () throws -> R) async throws -> R {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
