import MRKSQL
import Foundation
import MRKPostgres

/// A `PostgresConnection` shared between tasks, used by one at a time.
///
/// `@unchecked Sendable`: the connection is only reached through `withConnection`, which holds
/// `lock` for the whole use, so libpq never sees two threads at once.
final class SerializedConnection: @unchecked Sendable {
    private let lock = NSLock()
    private var connection: PostgresConnection?
    private let url: String

    init(url: String) { self.url = Self.withTimeouts(url) }

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

    /// Runs `body` with the connection, (re)connecting first if needed. A connection that failed
    /// at the libpq level is dropped so the next call reconnects.
    func withConnection<R>(_ body: (PostgresConnection) throws -> R) throws -> R {
        try lock.withLock {
            let conn = try connection ?? PostgresConnection(url)
            connection = conn
            do {
                return try body(conn)
            } catch let error as PostgresError where error.code == .client {
                connection = nil
                throw error
            }
        }
    }
}
