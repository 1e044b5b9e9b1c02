import MRKSQL
import Foundation
import MRKCrypto
import MRKPostgres

/// Converts values of an encrypted column to and from the plaintext bytes that are sealed.
///
/// Each type has one canonical encoding, so equal values give equal blind indexes whether they
/// arrive as a typed parameter, a text parameter or a literal in the SQL:
///
/// | type | plaintext bytes |
/// |---|---|
/// | text, json, jsonb | UTF-8 |
/// | int2, int4, int8 | int64, big-endian |
/// | numeric | canonical decimal text |
/// | float4, float8 | IEEE-754 binary64 bits, big-endian |
/// | bool | one byte, 0 or 1 |
/// | date | int32 days since 1970-01-01, big-endian |
/// | timestamp, timestamptz | int64 microseconds since 1970-01-01 UTC, big-endian |
/// | uuid | 16 bytes |
/// | bytea | the bytes |
enum ColumnCodec {
    /// The canonical plaintext bytes of `value` for a column of `type`.
    ///
    /// - Throws: `ProxyError` `.invalidValue` naming the column and type (never the value).
    static func encode(_ value: SQLValue, as type: ColumnValueType, column: @autoclosure () -> String) throws -> [UInt8] {
        func invalid() -> ProxyError {
            ProxyError(.invalidValue, "a value for encrypted column \(column()) is not a valid \(type.rawValue)")
        }
        switch type {
        case .text:
            guard case .text(let s) = value else { throw invalid() }
            return Array(s.utf8)
        case .json, .jsonb:
            switch value {
            case .json(let s), .text(let s):
                guard (try? JSONSerialization.jsonObject(with: Data(s.utf8), options: [.fragmentsAllowed])) != nil else { throw invalid() }
                return Array(s.utf8)
            default: throw invalid()
            }
        case .int2, .int4, .int8:
            let number: Int
            switch value {
            case .int(let i): number = i
            case .text(let s): guard let i = Int(trimmedForParsing(s)) else { throw invalid() }; number = i
            default: throw invalid()
            }
            let range: ClosedRange<Int> = type == .int2 ? Int(Int16.min)...Int(Int16.max)
                : type == .int4 ? Int(Int32.min)...Int(Int32.max) : Int.min...Int.max
            guard range.contains(number) else { throw invalid() }
            return bigEndian(Int64(number))
        case .numeric:
            let decimal: Decimal
            switch value {
            case .decimal(let d): decimal = d
            case .int(let i): decimal = Decimal(i)
            case .text(let s):
                guard let d = Decimal(string: String(trimmedForParsing(s)), locale: Locale(identifier: "en_US_POSIX")),
                      !d.isNaN else { throw invalid() }
                decimal = d
            default: throw invalid()
            }
            return Array(decimal.description.utf8)
        case .float4, .float8:
            let double: Double
            switch value {
            case .double(let d): double = d
            case .int(let i): double = Double(i)
            case .text(let s): guard let d = Double(trimmedForParsing(s)) else { throw invalid() }; double = d
            default: throw invalid()
            }
            return bigEndian(double.bitPattern)
        case .bool:
            switch value {
            case .bool(let b): return [b ? 1 : 0]
            case .text(let s):
                switch s.lowercased() {
                case "t", "true", "yes", "on", "1": return [1]
                case "f", "false", "no", "off", "0": return [0]
                default: throw invalid()
                }
            default: throw invalid()
            }
        case .date:
            let days: Int
            switch value {
            case .date(let d):
                let whole = (d.timeIntervalSince1970 / 86_400).rounded(.down)
                guard whole.magnitude < Double(Int32.max) else { throw invalid() }
                days = Int(whole)
            case .text(let s): guard let d = PostgresTime.parseDays(trimmedForParsing(s)) else { throw invalid() }; days = d
            default: throw invalid()
            }
            guard days.magnitude < Int(Int32.max) else { throw invalid() }
            return bigEndian(Int32(days))
        case .timestamp, .timestamptz:
            let date: Date
            switch value {
            case .date(let d): date = d
            case .text(let s): guard let d = PostgresTime.parseTimestamp(s) else { throw invalid() }; date = d
            default: throw invalid()
            }
            return bigEndian(Int64((date.timeIntervalSince1970 * 1_000_000).rounded()))
        case .uuid:
            let uuid: UUID
            switch value {
            case .uuid(let u): uuid = u
            case .text(let s): guard let u = UUID(uuidString: s) else { throw invalid() }; uuid = u
            default: throw invalid()
            }
            return withUnsafeBytes(of: uuid.uuid) { Array($0) }
        case .bytea:
            switch value {
            case .bytes(let b): return b
            case .text(let s):
                // A bytea literal in the SQL ('\x…').
                guard let bytes = try? Array(s.utf8).withUnsafeBytes({ try ByteaText.decode($0) }) else { throw invalid() }
                return bytes
            default: throw invalid()
            }
        }
    }

    /// The value of canonical plaintext `bytes` recorded as `type`.
    static func decode(_ bytes: [UInt8], as type: PlaintextType) throws -> SQLValue {
        try bytes.withUnsafeBytes { try decode($0, as: type) }
    }

    /// The value of canonical plaintext `bytes` recorded as `type`.
    static func decode(_ bytes: UnsafeRawBufferPointer, as type: PlaintextType) throws -> SQLValue {
        func malformed() -> ProxyError { ProxyError(.integrity, "decrypted value does not decode as \(type)") }
        switch type {
        case .text: return .text(String(decoding: bytes, as: UTF8.self))
        case .json, .jsonb: return .json(String(decoding: bytes, as: UTF8.self))
        case .int2, .int4, .int8:
            guard bytes.count == 8 else { throw malformed() }
            return .int(Int(Int64(bitPattern: readBigEndian(bytes))))
        case .numeric:
            guard let d = Decimal(string: String(decoding: bytes, as: UTF8.self), locale: Locale(identifier: "en_US_POSIX")) else { throw malformed() }
            return .decimal(d)
        case .float4, .float8:
            guard bytes.count == 8 else { throw malformed() }
            return .double(Double(bitPattern: readBigEndian(bytes)))
        case .bool:
            guard bytes.count == 1, bytes[0] <= 1 else { throw malformed() }
            return .bool(bytes[0] == 1)
        case .date:
            guard bytes.count == 4 else { throw malformed() }
            let days = Int32(bitPattern: UInt32(truncatingIfNeeded: readBigEndian(bytes)))
            return .date(Date(timeIntervalSince1970: Double(days) * 86_400))
        case .timestamp, .timestamptz:
            guard bytes.count == 8 else { throw malformed() }
            return .date(Date(timeIntervalSince1970: Double(Int64(bitPattern: readBigEndian(bytes))) / 1_000_000))
        case .uuid:
            guard bytes.count == 16 else { throw malformed() }
            let u = bytes
            return .uuid(UUID(uuid: (u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15])))
        case .bytea: return .bytes(Array(bytes))
        }
    }

    /// The PostgreSQL text form of canonical `bytes` (what ESDK-format columns store, so other
    /// apps read ordinary text).
    static func text(of bytes: [UInt8], as type: ColumnValueType) throws -> [UInt8] {
        let value = try decode(bytes, as: type.plaintextType)
        switch (type, value) {
        case (.date, .date(let d)): return Array(PostgresTime.dateText(d).utf8)
        case (.timestamp, .date(let d)): return Array(PostgresTime.timestampText(d).dropLast(3).utf8)
        default: return Array((value.postgresText ?? "").utf8)
        }
    }

    /// Parses the text form written by `text(of:as:)`.
    static func value(ofText text: [UInt8], as type: ColumnValueType) throws -> SQLValue {
        try decode(try encode(.text(String(decoding: text, as: UTF8.self)), as: type, column: "esdk"), as: type.plaintextType)
    }

    private static func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    private static func readBigEndian(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
}

extension ColumnValueType {
    /// The type tag recorded in sealed values.
    var plaintextType: PlaintextType {
        switch self {
        case .text: .text
        case .int2: .int2
        case .int4: .int4
        case .int8: .int8
        case .numeric: .numeric
        case .float4: .float4
        case .float8: .float8
        case .bool: .bool
        case .date: .date
        case .timestamp: .timestamp
        case .timestamptz: .timestamptz
        case .uuid: .uuid
        case .bytea: .bytea
        case .json: .json
        case .jsonb: .jsonb
        }
    }
}

/// `text` without leading and trailing whitespace, for parsing numbers and dates. Most values have
/// none, and checking the two ends is far cheaper than Foundation's trimming.
func trimmedForParsing(_ text: String) -> Substring {
    let utf8 = text.utf8
    guard let first = utf8.first, let last = utf8.last else { return text[...] }
    func isPlain(_ byte: UInt8) -> Bool { byte > 0x20 && byte < 0x80 }
    if isPlain(first) && isPlain(last) { return text[...] }
    return Substring(text.trimmingCharacters(in: .whitespaces))
}

/// Overwrites a plaintext buffer with zeros once it is no longer needed.
func zeroize(_ bytes: inout [UInt8]) {
    secureZero(&bytes)
}
