import Foundation
import MRKPostgres

/// A value passed to or read from a statement.
///
/// Encrypted columns accept the value matching their configured type (or its PostgreSQL text
/// form as `.text`) and give back that type. Other columns are sent in text form for the server
/// to parse, and read back typed by their PostgreSQL type.
public enum SQLValue: Sendable, Hashable {
    case null
    case text(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case decimal(Decimal)
    /// An instant (`timestamp`, `timestamptz`) or a calendar date at midnight UTC (`date`).
    case date(Date)
    case uuid(UUID)
    case bytes([UInt8])
    /// JSON text (`json`, `jsonb`).
    case json(String)

    public var isNull: Bool { self == .null }
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
    /// PostgreSQL's text form of the value (what `psql` would show).
    public var description: String { postgresText ?? "NULL" }

    /// PostgreSQL's text input/output form; nil for NULL.
    public var postgresText: String? {
        switch self {
        case .null: nil
        case .text(let s), .json(let s): s
        case .int(let i): String(i)
        case .double(let d): d.isNaN ? "NaN" : d == .infinity ? "Infinity" : d == -.infinity ? "-Infinity" : String(d)
        case .bool(let b): b ? "t" : "f"
        case .decimal(let d): d.description
        case .date(let d): PostgresTime.timestampText(d)
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

    /// Reads a text-format result value of type `oid`.
    init(postgresText text: String, oid: PostgresOID) {
        switch oid {
        case .int2, .int4, .int8, .oid: self = Int(text).map(SQLValue.int) ?? .text(text)
        case .float4, .float8: self = Double(text).map(SQLValue.double) ?? .text(text)
        case .numeric: self = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")).map(SQLValue.decimal) ?? .text(text)
        case .bool: self = .bool(text == "t")
        case .date: self = PostgresTime.parseDate(text).map(SQLValue.date) ?? .text(text)
        case .timestamp, .timestamptz: self = PostgresTime.parseTimestamp(text).map(SQLValue.date) ?? .text(text)
        case .uuid: self = UUID(uuidString: text).map(SQLValue.uuid) ?? .text(text)
        case .json, .jsonb: self = .json(text)
        case .bytea:
            let bytes = Array(text.utf8)
            self = (try? bytes.withUnsafeBytes { try ByteaText.decode($0) }).map(SQLValue.bytes) ?? .text(text)
        default: self = .text(text)
        }
    }
}

/// Date and timestamp text forms, in UTC.
enum PostgresTime {
    static let utc = TimeZone(identifier: "UTC")!

    /// `YYYY-MM-DD`.
    static func dateText(_ date: Date) -> String {
        let c = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", c.year!, c.month!, c.day!)
    }

    /// `YYYY-MM-DD HH:MM:SS[.ffffff]+00`.
    static func timestampText(_ date: Date) -> String {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        let seconds = Int64((Double(micros) / 1_000_000).rounded(.down))
        let fraction = micros - seconds * 1_000_000
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: TimeInterval(seconds)))
        var text = String(format: "%04d-%02d-%02d %02d:%02d:%02d", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
        if fraction != 0 { text += String(format: ".%06lld", fraction) }
        return text + "+00"
    }

    /// Parses `YYYY-MM-DD`.
    static func parseDate(_ text: String) -> Date? {
        let parts = text.split(separator: "-")
        guard parts.count == 3, let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]),
              (1...12).contains(m), (1...31).contains(d) else { return nil }
        let date = calendar.date(from: DateComponents(year: y, month: m, day: d))
        // Reject dates that normalise to another day (e.g. 2023-02-30).
        guard let date, calendar.component(.day, from: date) == d else { return nil }
        return date
    }

    /// Parses `YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]][Z|±HH[:MM]]`; no zone means UTC.
    static func parseTimestamp(_ text: String) -> Date? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.count >= 10, let day = parseDate(String(trimmed.prefix(10))) else { return nil }
        var rest = Substring(trimmed.dropFirst(10))
        if rest.isEmpty { return day }
        guard rest.first == " " || rest.first == "T" else { return nil }
        rest = rest.dropFirst()
        var offsetSeconds = 0
        if rest.hasSuffix("Z") {
            rest = rest.dropLast()
        } else if let signIndex = rest.lastIndex(where: { $0 == "+" || $0 == "-" }) {
            let zone = rest[rest.index(after: signIndex)...].split(separator: ":")
            guard let h = Int(zone.first ?? ""), zone.count <= 2 else { return nil }
            let m = zone.count == 2 ? Int(zone[1]) ?? 0 : 0
            offsetSeconds = (h * 3600 + m * 60) * (rest[signIndex] == "-" ? -1 : 1)
            rest = rest[..<signIndex]
        }
        let clock = rest.split(separator: ":")
        guard clock.count >= 2, let h = Int(clock[0]), let m = Int(clock[1]), (0...24).contains(h), (0...59).contains(m) else { return nil }
        var seconds = 0.0
        if clock.count == 3 { guard let s = Double(clock[2]), s >= 0, s < 61 else { return nil }; seconds = s }
        return day.addingTimeInterval(Double(h * 3600 + m * 60) + seconds - Double(offsetSeconds))
    }

    static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = utc
        return calendar
    }()
}
