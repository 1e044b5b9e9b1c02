#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
/// A PostgreSQL write-ahead-log position (`pg_lsn`), e.g. `16/B374D848`.
public struct LSN: Comparable, Hashable, Sendable, CustomStringConvertible {
    public let value: UInt64
    public init(_ value: UInt64) { self.value = value }

    /// Parses the `XXX/XXXXXXXX` text form; nil if malformed.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let hi = UInt32(parts[0], radix: 16), let lo = UInt32(parts[1], radix: 16) else { return nil }
        value = UInt64(hi) << 32 | UInt64(lo)
    }

    public var description: String {
        String(value >> 32, radix: 16, uppercase: true) + "/" + String(value & 0xffff_ffff, radix: 16, uppercase: true)
    }

    public static func < (lhs: LSN, rhs: LSN) -> Bool { lhs.value < rhs.value }
}

extension PostgresConnection {
    /// The primary's current WAL write position (`pg_current_wal_lsn()`).
    public func currentWALPosition() throws -> LSN {
        try lsn(from: execute("SELECT pg_current_wal_lsn()::text"), what: "pg_current_wal_lsn()")
    }

    /// The last WAL position a standby has replayed (`pg_last_wal_replay_lsn()`); nil on a primary.
    public func lastReplayedWALPosition() throws -> LSN? {
        let result = try execute("SELECT pg_last_wal_replay_lsn()::text")
        guard result.rowCount == 1, !result.isNull(row: 0, column: 0) else { return nil }
        return try lsn(from: result, what: "pg_last_wal_replay_lsn()")
    }

    private func lsn(from result: PostgresResult, what: String) throws -> LSN {
        guard result.rowCount == 1, let text = result.string(row: 0, column: 0), let lsn = LSN(text) else {
            throw PostgresError(.client, message: "\(what) returned no LSN")
        }
        return lsn
    }

    /// Waits until this standby has replayed `target`, polling every few milliseconds.
    ///
    /// - Throws: `PostgresError` `.timeout` naming both positions when `timeout` passes first, or
    ///   `.invalidUse` if this server is not a standby.
    public func waitForReplay(of target: LSN, timeout: Duration = .seconds(30)) throws {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var delay = Duration.milliseconds(2)
        while true {
            guard let replayed = try lastReplayedWALPosition() else {
                throw PostgresError(.invalidUse, message: "waitForReplay needs a standby (pg_last_wal_replay_lsn() is NULL)")
            }
            if replayed >= target { return }
            if clock.now >= deadline {
                throw PostgresError(.timeout, message: "replica replayed WAL up to \(replayed) but not \(target) within \(timeout)")
            }
            try? sleepBlocking(delay)
            delay = min(delay * 2, .milliseconds(50))
        }
    }
}

/// Blocks the calling thread (sync API) for `duration`.
func sleepBlocking(_ duration: Duration) throws {
    let (seconds, attoseconds) = duration.components
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
    _ = nanosleep(&request, nil)
}
