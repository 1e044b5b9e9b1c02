import MRKSQL
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
    package init(postgresText text: String, oid: PostgresOID) {
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
package enum PostgresTime {
    static let utc = TimeZone(identifier: "UTC")!

    /// `YYYY-MM-DD`.
    package static func dateText(_ date: Date) -> String {
        let (y, m, d) = civil(fromDays: Int((date.timeIntervalSince1970 / 86_400).rounded(.down)))
        return String(format: "%04d-%02d-%02d", y, m, d)
    }

    /// `YYYY-MM-DD HH:MM:SS[.ffffff]+00`.
    static func timestampText(_ date: Date) -> String {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        let seconds = Int64((Double(micros) / 1_000_000).rounded(.down))
        let fraction = micros - seconds * 1_000_000
        let days = Int((Double(seconds) / 86_400).rounded(.down))
        let secondOfDay = Int(seconds) - days * 86_400
        let (y, m, d) = civil(fromDays: days)
        var text = String(format: "%04d-%02d-%02d %02d:%02d:%02d", y, m, d, secondOfDay / 3600, secondOfDay / 60 % 60, secondOfDay % 60)
        if fraction != 0 { text += String(format: ".%06lld", fraction) }
        return text + "+00"
    }

    /// Parses `YYYY-MM-DD` (proleptic Gregorian, UTC midnight), rejecting impossible dates.
    static func parseDate(_ text: some StringProtocol) -> Date? {
        parseDays(text).map { Date(timeIntervalSince1970: Double($0) * 86_400) }
    }

    /// Parses `YYYY-MM-DD` to days since 1970-01-01, rejecting impossible dates.
    static func parseDays(_ text: some StringProtocol) -> Int? {
        // The common form — all ASCII digits, `Y…Y-MM-DD` — straight from the UTF-8 bytes.
        var fields = (0, 0, 0)
        var field = 0, digits = 0, yearDigits = 0, plain = true
        for byte in text.utf8 {
            if byte == UInt8(ascii: "-") {
                guard field < 2, digits > 0 else { plain = false; break }
                if field == 0 { yearDigits = digits } else if digits != 2 { plain = false; break }
                field += 1
                digits = 0
            } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") && digits < 9 {
                let digit = Int(byte &- UInt8(ascii: "0"))
                switch field {
                case 0: fields.0 = fields.0 * 10 + digit
                case 1: fields.1 = fields.1 * 10 + digit
                default: fields.2 = fields.2 * 10 + digit
                }
                digits += 1
            } else {
                plain = false
                break
            }
        }
        if plain && field == 2 && digits == 2 && yearDigits > 0 {
            let (y, m, d) = fields
            guard (1...12).contains(m), (1...daysInMonth(y, m)).contains(d) else { return nil }
            return days(fromCivil: y, m, d)
        }
        // Anything else (a sign, other digits) goes through the general parser. Years have at most
        // 9 digits (PostgreSQL stops at 5874897), which also keeps the day arithmetic from overflowing.
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].utf8.count <= 10, parts[1].count == 2, parts[2].count == 2,
              let y = Int(parts[0]), y.magnitude < 1_000_000_000, let m = Int(parts[1]), let d = Int(parts[2]),
              (1...12).contains(m), (1...daysInMonth(y, m)).contains(d) else { return nil }
        return days(fromCivil: y, m, d)
    }

    private static func isLeap(_ y: Int) -> Bool { y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) }

    private static func daysInMonth(_ y: Int, _ m: Int) -> Int {
        [31, isLeap(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
    }

    /// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
    static func days(fromCivil year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The civil date of a day count since 1970-01-01.
    static func civil(fromDays days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Parses `YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]][Z|±HH[:MM]]`; no zone means UTC.
    static func parseTimestamp(_ text: String) -> Date? {
        let trimmed = trimmedForParsing(text)
        guard trimmed.count >= 10, let day = parseDate(trimmed.prefix(10)) else { return nil }
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

}
