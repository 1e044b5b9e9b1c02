import MRKSQL
import Foundation
import MRKCrypto
import MRKPostgres

/// Rows returned by a statement, with encrypted columns decrypted.
public struct QueryResult: Sendable {
    /// Column names, in order.
    public let columns: [String]
    /// The rows.
    public let rows: [Row]
    /// The command tag (`SELECT 3`, `INSERT 0 1`…).
    public let commandTag: String
    /// Rows affected, for INSERT/UPDATE/DELETE/SELECT.
    public let affectedRows: Int?
}

/// The columns of a result, shared by its rows: names, and which column a name means.
final class RowSchema: Sendable {
    let names: [String]
    /// Name → column. Where several columns share a name, the one MRKProxy decrypted wins (so a
    /// column added by someone else cannot shadow an encrypted one), else the first.
    let lookup: [String: Int]

    init(names: [String], encrypted: Set<Int>) {
        self.names = names
        var lookup: [String: Int] = [:]
        for (index, name) in names.enumerated() {
            if let existing = lookup[name], encrypted.contains(existing) || !encrypted.contains(index) { continue }
            lookup[name] = index
        }
        self.lookup = lookup
    }
}

/// One row: values by index or column name, with typed accessors.
public struct Row: Sendable {
    let schema: RowSchema
    /// The values, in column order.
    public let values: [SQLValue]

    /// Column names (shared by every row of a result).
    public var columns: [String] { schema.names }

    /// The value at `index`.
    public subscript(index: Int) -> SQLValue { values[index] }

    /// The value of the column named `name` (`.null` if there is none). Where several columns
    /// share the name, the one MRKProxy decrypted, else the first.
    public subscript(name: String) -> SQLValue {
        schema.lookup[name].map { values[$0] } ?? .null
    }

    /// `name` as a string (any non-NULL value in its text form).
    public func string(_ name: String) -> String? { self[name].postgresText }
    /// `name` as an integer.
    public func int(_ name: String) -> Int? {
        switch self[name] {
        case .int(let i): i
        case .text(let s): PostgresText.parseInteger(s, in: Int64(Int.min)...Int64(Int.max)).map { Int($0) }
        default: nil
        }
    }
    /// `name` as an instant: a `timestamptz`, a `timestamp` read as UTC, or a `date` at midnight
    /// UTC; nil for other values and for ±infinity.
    public func date(_ name: String) -> Date? {
        switch self[name] {
        case .date(let d): d.date
        case .timestamp(let t), .timestamptz(let t): t.date
        default: nil
        }
    }
    /// `name` as a calendar date (a `date` value).
    public func calendarDate(_ name: String) -> SQLDate? {
        if case .date(let d) = self[name] { return d }
        return nil
    }
    /// `name` as a `timestamp` or `timestamptz` value, with microsecond precision.
    public func timestamp(_ name: String) -> SQLTimestamp? {
        switch self[name] {
        case .timestamp(let t), .timestamptz(let t): t
        default: nil
        }
    }
    /// `name` as a floating-point number (a `numeric` rounded).
    public func double(_ name: String) -> Double? {
        switch self[name] {
        case .double(let d): d
        case .float(let f): Double(f)
        case .int(let i): Double(i)
        case .numeric(let n): n.double
        default: nil
        }
    }
    /// `name` as an exact `numeric`.
    public func numeric(_ name: String) -> SQLNumeric? {
        switch self[name] {
        case .numeric(let n): n
        case .int(let i): SQLNumeric(i)
        default: nil
        }
    }
    /// `name` as a decimal, when `Decimal` holds the value exactly (38 significant digits).
    public func decimal(_ name: String) -> Decimal? { numeric(name)?.decimal }
    /// `name` as a boolean.
    public func bool(_ name: String) -> Bool? {
        if case .bool(let b) = self[name] { return b }
        return nil
    }
    /// `name` as a UUID.
    public func uuid(_ name: String) -> UUID? {
        if case .uuid(let u) = self[name] { return u }
        return nil
    }
    /// `name` as JSON text.
    public func json(_ name: String) -> String? {
        if case .json(let j) = self[name] { return j }
        return nil
    }
    /// `name` as bytes.
    public func bytes(_ name: String) -> [UInt8]? {
        if case .bytes(let b) = self[name] { return b }
        return nil
    }
}

