import Foundation
import MRKPostgres

/// A value passed to or read from a statement.
///
/// Encrypted columns accept the value matching their configured type (or its PostgreSQL text
/// form as `.text`) and give back that type, exactly: what PostgreSQL would store for the same
/// input, or an `.invalidValue` error where PostgreSQL would refuse it. Other columns are sent in
/// text form for the server to parse, and read back typed by their PostgreSQL type.
public enum SQLValue: Sendable, Hashable {
    case null
    case text(String)
    /// `smallint`, `integer`, `bigint`.
    case int(Int)
    /// `double precision`.
    case double(Double)
    /// `real`.
    case float(Float)
    case bool(Bool)
    /// `numeric`, exact.
    case numeric(SQLNumeric)
    /// `date`.
    case date(SQLDate)
    /// `timestamp` (without time zone).
    case timestamp(SQLTimestamp)
    /// `timestamptz`: an instant.
    case timestamptz(SQLTimestamp)
    case uuid(UUID)
    /// `bytea`.
    case bytes([UInt8])
    /// JSON text (`json`, `jsonb`).
    case json(String)

    public var isNull: Bool { self == .null }

    /// `decimal` as an exact `numeric`.
    public static func decimal(_ decimal: Decimal) -> SQLValue { .numeric(SQLNumeric(decimal)) }

    /// `date` as a `timestamptz` (rounded to the microsecond); NULL when it is outside
    /// PostgreSQL's range.
    public static func instant(_ date: Date) -> SQLValue { SQLTimestamp(date).map(SQLValue.timestamptz) ?? .null }
}

extension SQLValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(nilLiteral: ()) { self = .null }
}

extension SQLValue: CustomStringConvertible {
    /// PostgreSQL's text form of the value (what `psql` shows, with `DateStyle = ISO` and
    /// `TimeZone = UTC`).
    public var description: String { postgresText ?? "NULL" }

    /// PostgreSQL's text input/output form; nil for NULL.
    public var postgresText: String? {
        switch self {
        case .null: nil
        case .text(let s), .json(let s): s
        case .int(let i): String(i)
        case .double(let d): PostgresFloat.text(d)
        case .float(let f): PostgresFloat.text(f)
        case .bool(let b): b ? "t" : "f"
        case .numeric(let n): n.text
        case .date(let d): d.description
        case .timestamp(let t): t.timestampText
        case .timestamptz(let t): t.timestamptzText
        case .uuid(let u): u.uuidString.lowercased()
        case .bytes(let b): ByteaText.encode(b)
        }
    }

    /// The value as a statement parameter for a column that is not encrypted.
    var parameter: PostgresParameter {
        switch self {
        case .null: .null
        case .bytes(let b): .bytea(b)
        default: .text(postgresText!)
        }
    }

    /// Reads a text-format result value of type `oid` (a column that is not encrypted). Total:
    /// a value that does not read as its type (an unexpected `DateStyle`, say) stays `.text`.
    package init(postgresText text: String, oid: PostgresOID) {
        switch oid {
        case .int2, .int4, .int8, .oid:
            self = PostgresText.parseInteger(text, in: Int64(Int.min)...Int64(Int.max)).map { .int(Int($0)) } ?? .text(text)
        case .float8: self = PostgresFloat.parseDouble(text).map(SQLValue.double) ?? .text(text)
        case .float4: self = PostgresFloat.parseFloat(text).map(SQLValue.float) ?? .text(text)
        case .numeric: self = SQLNumeric(text).map(SQLValue.numeric) ?? .text(text)
        case .bool: self = text == "t" ? .bool(true) : text == "f" ? .bool(false) : .text(text)
        case .date: self = SQLDate(text).map(SQLValue.date) ?? .text(text)
        case .timestamp:
            if case .success(let t) = PostgresDateTimeText.parseTimestamp(text, withTimeZone: false, sessionOffset: nil) {
                self = .timestamp(t)
            } else {
                self = .text(text)
            }
        case .timestamptz:
            // Output always carries its offset.
            if case .success(let t) = PostgresDateTimeText.parseTimestamp(text, withTimeZone: true, sessionOffset: nil) {
                self = .timestamptz(t)
            } else {
                self = .text(text)
            }
        case .uuid: self = PostgresText.parseUUID(text).map(SQLValue.uuid) ?? .text(text)
        case .json, .jsonb: self = .json(text)
        case .bytea: self = PostgresText.parseBytea(text).map(SQLValue.bytes) ?? .text(text)
        default: self = .text(text)
        }
    }
}
