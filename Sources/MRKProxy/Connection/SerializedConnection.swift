import Foundation
import MRKPostgres

/// Runs libpq work, turning its errors into `ProxyError` (the one mapping, `ProxyError.init(_:context:)`).
///
/// - Parameter context: what was being done, for the message ("reading the keystore").
func postgres<R>(_ context: @autoclosure () -> String? = nil, _ body: () throws -> R) throws(ProxyError) -> R {
    do {
        return try body()
    } catch {
        throw ProxyError.from(error, context: context())
    }
}

extension ProxyError {
    /// An error from libpq (or already a `ProxyError`), mapped.
    static func from(_ error: any Error, context: String? = nil) -> ProxyError {
        switch error {
        case let error as ProxyError: error
        case let error as PostgresError: ProxyError(error, context: context)
        default: ProxyError(.database, "\(context ?? "a database call") failed")
        }
    }
}

/// A `PostgresConnection` shared between tasks, used by one at a time.
///
/// `@unchecked Sendable`: the connection is only reached through `withConnection`, which holds
/// `lock` for the whole use, so libpq never sees two threads at once.
final class SerializedConnection: @unchecked Sendable {
    private let lock = NSLock()
    private var connection: PostgresConnection?
    private let url: String
    /// Names the database in connection errors ("the us-east-1 database").
    private let label: String

    init(url: String, label: String = "the database") {
        self.url = Self.withTimeouts(url)
        self.label = label
    }

    /// The keystore's reads and writes are tiny; a server or network that stops answering must
    /// turn into an error (and so a retry or the stale window), never a wait without end. Adds
    /// connect, keepalive and statement timeouts the URL does not set itself.
    static func withTimeouts(_ url: String) -> String {
        var settings: [(String, String)] = [
            ("connect_timeout", "10"), ("keepalives_idle", "10"), ("keepalives_interval", "5"), ("keepalives_count", "3"),
        ]
        if !url.contains("options") { settings.append(("options", "-c statement_timeout=10000")) }
        settings.removeAll { url.contains($0.0) }
        guard !settings.isEmpty else { return url }
        if url.contains("://") {
            let encoded = settings.map { key, value in
                "\(key)=\(value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? value)"
            }
            return url + (url.contains("?") ? "&" : "?") + encoded.joined(separator: "&")
        }
        return url + " " + settings.map { key, value in value.contains(" ") ? "\(key)='\(value)'" : "\(key)=\(value)" }.joined(separator: " ")
    }

    /// Runs `body` with the connection, (re)connecting first if needed. A connection that is no
    /// longer up afterwards is dropped so the next call reconnects.
    func withConnection<R>(_ body: (PostgresConnection) throws(ProxyError) -> R) throws(ProxyError) -> R {
        lock.lock()
        defer { lock.unlock() }
        let conn: PostgresConnection
        if let existing = connection {
            conn = existing
        } else {
            conn = try postgres("cannot connect to \(label)") { try PostgresConnection(url, overrides: PostgresConnection.libraryParameters) }
            connection = conn
        }
        defer { if !conn.isConnected { connection = nil } }
        return try body(conn)
    }

    /// `withConnection` for a body that only reads: when a connection kept from before was found
    /// closed (the server restarted, or a failover replaced it), it runs once more on a new one.
    func reading<R>(_ body: (PostgresConnection) throws(ProxyError) -> R) throws(ProxyError) -> R {
        let reused = lock.withLock { connection != nil }
        do {
            return try withConnection(body)
        } catch where reused && lock.withLock({ connection == nil }) {
            return try withConnection(body)
        }
    }
}
