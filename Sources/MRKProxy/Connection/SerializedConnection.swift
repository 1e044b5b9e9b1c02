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

    init(url: String) { self.url = url }

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
