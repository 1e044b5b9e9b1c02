import Foundation
import MRKCrypto
import MRKSQL

/// Converts values of an encrypted column to and from the plaintext bytes that are sealed.
///
/// Each type has one exact encoding of what PostgreSQL would store for the same input:
///
/// | type | plaintext bytes |
/// |---|---|
/// | text | UTF-8 (valid, no NUL) |
/// | json | the JSON text exactly as given (validated as `json_in` does) |
/// | jsonb | the JSON text as PostgreSQL prints the `jsonb` value |
/// | int2, int4, int8 | int64, big-endian |
/// | numeric | PostgreSQL's output text, scale kept (`1.50`), or `NaN`, `Infinity`, `-Infinity` |
/// | float4, float8 | IEEE-754 binary64 bits, big-endian (a `real` is rounded to binary32 first) |
/// | bool | one byte, 0 or 1 |
/// | date | int32 days since 1970-01-01, big-endian; `Int32.max`/`Int32.min` for ±infinity |
/// | timestamp, timestamptz | int64 microseconds since 2000-01-01 (UTC), big-endian, as PostgreSQL keeps them; `Int64.max`/`Int64.min` for ±infinity (tags 16, 17; tags 10, 11 hold microseconds since 1970 and are read only) |
/// | uuid | 16 bytes |
/// | bytea | the bytes |
///
/// Blind indexes are computed over `equalityKey`, which is the same except where PostgreSQL's `=`
/// ignores a difference the stored value keeps: `numeric` scale (`1.5 = 1.50`), the sign of a
/// floating-point zero, NaN payloads.
package enum ColumnCodec {
    /// What parsing a value depends on in the session.
    package struct Context: Sendable {
        /// Seconds east of UTC of the session's `TimeZone`, for `timestamptz` text without an
        /// offset; nil when the zone has no fixed offset (such text is then refused).
        package var sessionOffset: Int?

        package init(sessionOffset: Int? = 0) { self.sessionOffset = sessionOffset }

        /// UTC: the context for values whose text carries its own offset or needs none.
        package static let utc = Context(sessionOffset: 0)

        /// The context of a session whose `TimeZone` parameter is `zone`: a fixed offset only for
        /// UTC and its aliases and `Etc/GMT±N`, the zones whose offset never changes.
        package init(timeZone zone: String?) {
            guard let zone else { self.init(sessionOffset: nil); return }
            let utc: Set<String> = ["utc", "etc/utc", "gmt", "etc/gmt", "uct", "etc/uct", "zulu", "etc/zulu", "universal",
                                    "etc/universal", "greenwich", "etc/greenwich", "gmt0", "etc/gmt0", "gmt+0", "gmt-0",
                                    "etc/gmt+0", "etc/gmt-0"]
            let lowered = zone.lowercased()
            if utc.contains(lowered) {
                self.init(sessionOffset: 0)
            } else if lowered.hasPrefix("etc/gmt"), let hours = Int(lowered.dropFirst(7)), hours.magnitude <= 14 {
                // POSIX sign convention: Etc/GMT+5 is five hours *west* of UTC.
                self.init(sessionOffset: -hours * 3600)
            } else {
                self.init(sessionOffset: nil)
            }
        }
    }

    /// The exact plaintext bytes of `value` for a column of `type`.
    ///
    /// - Throws: `ProxyError` `.invalidValue` naming the column and type (never the value).
    package static func encode(_ value: SQLValue, as type: ColumnValueType, column: @autoclosure () -> String,
                               context: Context = .utc) throws(ProxyError) -> [UInt8] {
        func invalid(_ detail: String = "") -> ProxyError {
            ProxyError(.invalidValue, "a value for encrypted column \(column()) is not a valid \(type.rawValue)\(detail)")
        }
        switch type {
        case .text:
            guard case .text(let s) = value else { throw invalid() }
            guard !s.utf8.contains(0) else { throw invalid(" (text cannot hold a NUL character)") }
            return Array(s.utf8)
        case .json:
            let text: String
            switch value {
            case .json(let s), .text(let s): text = s
            default: throw invalid()
            }
            let bytes = Array(text.utf8)
            guard !bytes.contains(0), PostgresJSON.isValidJSON(bytes) else { throw invalid() }
            return bytes
        case .jsonb:
            let text: String
            switch value {
            case .json(let s), .text(let s): text = s
            default: throw invalid()
            }
            let bytes = Array(text.utf8)
            guard !bytes.contains(0), let normalized = PostgresJSON.normalizedJSONB(bytes) else { throw invalid() }
            return normalized
        case .int2, .int4, .int8:
            let range: ClosedRange<Int64> = type == .int2 ? Int64(Int16.min)...Int64(Int16.max)
                : type == .int4 ? Int64(Int32.min)...Int64(Int32.max) : Int64.min...Int64.max
            let number: Int64
            switch value {
            case .int(let i): number = Int64(i)
            case .text(let s): guard let i = PostgresText.parseInteger(s, in: range) else { throw invalid() }; number = i
            default: throw invalid()
            }
            guard range.contains(number) else { throw invalid(" (out of range)") }
            return bigEndian(number)
        case .numeric:
            let numeric: SQLNumeric
            switch value {
            case .numeric(let n): numeric = n
            case .int(let i): numeric = SQLNumeric(i)
            case .text(let s): guard let n = SQLNumeric(s) else { throw invalid() }; numeric = n
            default: throw invalid()
            }
            return Array(numeric.text.utf8)
        case .float4:
            let float: Float
            switch value {
            case .float(let f): float = f
            case .double(let d):
                // float8 → float4 as PostgreSQL casts it: overflow is an error.
                guard !d.isFinite || Float(d).isFinite else { throw invalid(" (out of range)") }
                float = Float(d)
            case .int(let i): float = Float(i)
            case .text(let s): guard let f = PostgresFloat.parseFloat(s) else { throw invalid() }; float = f
            default: throw invalid()
            }
            // NaN payloads are not kept (PostgreSQL prints every NaN as `NaN`): one NaN.
            return bigEndian(float.isNaN ? Double.nan.bitPattern : Double(float).bitPattern)
        case .float8:
            let double: Double
            switch value {
            case .double(let d): double = d
            case .float(let f): double = Double(f)
            case .int(let i): double = Double(i)
            case .text(let s): guard let d = PostgresFloat.parseDouble(s) else { throw invalid() }; double = d
            default: throw invalid()
            }
            return bigEndian(double.isNaN ? Double.nan.bitPattern : double.bitPattern)
        case .bool:
            switch value {
            case .bool(let b): return [b ? 1 : 0]
            case .text(let s): guard let b = PostgresText.parseBool(s) else { throw invalid() }; return [b ? 1 : 0]
            default: throw invalid()
            }
        case .date:
            let date: SQLDate
            switch value {
            case .date(let d): date = d
            case .text(let s):
                switch PostgresDateTimeText.parseDate(s) {
                case .success(let d): date = d
                case .failure(.invalid): throw invalid()
                case .failure(.unsupported): throw invalid(Self.dateTimeForms)
                }
            default: throw invalid()
            }
            return bigEndian(date.daysSinceEpoch)
        case .timestamp, .timestamptz:
            let timestamp: SQLTimestamp
            switch (value, type) {
            case (.timestamp(let t), .timestamp), (.timestamptz(let t), .timestamptz): timestamp = t
            case (.text(let s), _):
                switch PostgresDateTimeText.parseTimestamp(s, withTimeZone: type == .timestamptz, sessionOffset: context.sessionOffset) {
                case .success(let t): timestamp = t
                case .failure(.invalid): throw invalid()
                case .failure(.unsupported):
                    throw invalid(type == .timestamptz && context.sessionOffset == nil
                                  ? " in this form: the session's TimeZone has no fixed offset, so give an explicit one (+HH:MM)"
                                  : Self.dateTimeForms)
                }
            default: throw invalid()
            }
            return bigEndian(timestamp.microsecondsSince2000)
        case .uuid:
            let uuid: UUID
            switch value {
            case .uuid(let u): uuid = u
            case .text(let s): guard let u = PostgresText.parseUUID(s) else { throw invalid() }; uuid = u
            default: throw invalid()
            }
            return withUnsafeBytes(of: uuid.uuid) { Array($0) }
        case .bytea:
            switch value {
            case .bytes(let b): return b
            case .text(let s):
                guard let bytes = PostgresText.parseBytea(s) else { throw invalid() }
                return bytes
            default: throw invalid()
            }
        }
    }

    private static let dateTimeForms =
        " in a form MRKProxy reads: use ISO 8601 (YYYY-MM-DD[ HH:MM[:SS[.ffffff]]][Z|±HH[:MM]][ BC]), infinity, -infinity or epoch"

    /// The bytes a blind index is computed over: `encode`, with the differences PostgreSQL's `=`
    /// ignores removed.
    package static func equalityKey(_ value: SQLValue, as type: ColumnValueType, column: @autoclosure () -> String,
                                    context: Context = .utc) throws(ProxyError) -> [UInt8] {
        let bytes = try encode(value, as: type, column: column(), context: context)
        switch type {
        case .numeric:
            return Array((SQLNumeric.canonical(String(decoding: bytes, as: UTF8.self))?.normalized ?? "").utf8)
        case .float4, .float8:
            let double = Double(bitPattern: readBigEndian(bytes[...]))
            if double.isNaN { return bigEndian(Double.nan.bitPattern) }
            return bigEndian((double == 0 ? 0.0 : double).bitPattern)
        case .timestamp, .timestamptz:
            // Blind indexes written before timestamps were kept since 2000 hash microseconds since
            // 1970: keep that, and use a longer, distinct form for the few instants it cannot hold.
            let micros = Int64(bitPattern: readBigEndian(bytes[...]))
            if micros == .max || micros == .min { return bytes }
            let (since1970, overflow) = micros.addingReportingOverflow(SQLTimestamp.microsecondsFrom1970To2000)
            if overflow || since1970 == .max || since1970 == .min { return [1] + bytes }
            return bigEndian(since1970)
        default:
            return bytes
        }
    }

    /// The type tag a column's blind indexes are computed with (the plaintext tag, except that
    /// timestamps keep the tags they had when blind indexes were first written).
    package static func indexTag(_ type: ColumnValueType) -> UInt8 {
        switch type {
        case .timestamp: PlaintextType.timestampSince1970.rawValue
        case .timestamptz: PlaintextType.timestamptzSince1970.rawValue
        default: type.plaintextType.rawValue
        }
    }

    /// The value of exact plaintext `bytes` recorded as `type`.
    ///
    /// - Throws: `.integrity` when the bytes are not a valid encoding (they authenticated, so the
    ///   writer was faulty).
    package static func decode(_ bytes: UnsafeRawBufferPointer, as type: PlaintextType) throws(ProxyError) -> SQLValue {
        func malformed() -> ProxyError { ProxyError(.integrity, "a decrypted value does not decode as \(type)") }
        switch type {
        case .text:
            guard PostgresText.isValidText(bytes) else { throw malformed() }
            return .text(String(decoding: bytes, as: UTF8.self))
        case .json:
            guard !bytes.contains(0), PostgresJSON.isValidJSON(Array(bytes)) else { throw malformed() }
            return .json(String(decoding: bytes, as: UTF8.self))
        case .jsonb:
            guard !bytes.contains(0), PostgresJSON.normalizedJSONB(Array(bytes)) != nil else { throw malformed() }
            return .json(String(decoding: bytes, as: UTF8.self))
        case .int2, .int4, .int8:
            guard bytes.count == 8 else { throw malformed() }
            let value = Int64(bitPattern: readBigEndian(bytes[...]))
            let range: ClosedRange<Int64> = type == .int2 ? Int64(Int16.min)...Int64(Int16.max)
                : type == .int4 ? Int64(Int32.min)...Int64(Int32.max) : Int64.min...Int64.max
            guard range.contains(value), let int = Int(exactly: value) else { throw malformed() }
            return .int(int)
        case .numeric:
            guard let numeric = SQLNumeric.canonical(String(decoding: bytes, as: UTF8.self)) else { throw malformed() }
            return .numeric(numeric)
        case .float4:
            guard bytes.count == 8 else { throw malformed() }
            let double = Double(bitPattern: readBigEndian(bytes[...]))
            let float = Float(double)
            guard double.isNaN || Double(float) == double else { throw malformed() }
            return .float(float)
        case .float8:
            guard bytes.count == 8 else { throw malformed() }
            return .double(Double(bitPattern: readBigEndian(bytes[...])))
        case .bool:
            guard bytes.count == 1, bytes[0] <= 1 else { throw malformed() }
            return .bool(bytes[0] == 1)
        case .date:
            guard bytes.count == 4 else { throw malformed() }
            let days = Int32(bitPattern: UInt32(truncatingIfNeeded: readBigEndian(bytes[...])))
            if days == .max { return .date(.infinity) }
            if days == .min { return .date(.negativeInfinity) }
            guard let date = SQLDate(daysSinceEpoch: Int(days)) else { throw malformed() }
            return .date(date)
        case .timestamp, .timestamptz, .timestampSince1970, .timestamptzSince1970:
            guard bytes.count == 8 else { throw malformed() }
            let micros = Int64(bitPattern: readBigEndian(bytes[...]))
            let timestamp: SQLTimestamp
            if micros == .max {
                timestamp = .infinity
            } else if micros == .min {
                timestamp = .negativeInfinity
            } else if type == .timestamp || type == .timestamptz {
                guard let t = SQLTimestamp(microsecondsSince2000: micros) else { throw malformed() }
                timestamp = t
            } else {
                guard let t = SQLTimestamp(microsecondsSince1970: micros) else { throw malformed() }
                timestamp = t
            }
            return type == .timestamp || type == .timestampSince1970 ? .timestamp(timestamp) : .timestamptz(timestamp)
        case .uuid:
            guard bytes.count == 16 else { throw malformed() }
            let u = bytes
            return .uuid(UUID(uuid: (u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15])))
        case .bytea: return .bytes(Array(bytes))
        }
    }

    package static func decode(_ bytes: [UInt8], as type: PlaintextType) throws(ProxyError) -> SQLValue {
        do {
            return try bytes.withUnsafeBytes { buffer throws(ProxyError) in try decode(buffer, as: type) }
        } catch let error as ProxyError {
            throw error
        } catch {
            throw ProxyError(.integrity, "a decrypted value does not decode as \(type)")
        }
    }

    /// The PostgreSQL text form of exact plaintext `bytes` (what ESDK-format columns store, so
    /// that other apps read ordinary text).
    package static func text(of bytes: [UInt8], as type: ColumnValueType) throws(ProxyError) -> [UInt8] {
        Array((try decode(bytes, as: type.plaintextType).postgresText ?? "").utf8)
    }

    /// Parses the text form written by `text(of:as:)` back to a value.
    package static func value(ofText text: [UInt8], as type: ColumnValueType) throws(ProxyError) -> SQLValue {
        guard PostgresText.isValidText(text) else {
            throw ProxyError(.integrity, "a decrypted value does not decode as \(type.rawValue)")
        }
        return try decode(try encode(.text(String(decoding: text, as: UTF8.self)), as: type, column: "esdk"), as: type.plaintextType)
    }

    private static func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    private static func readBigEndian(_ bytes: some Collection<UInt8>) -> UInt64 {
        bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
}

extension ColumnValueType {
    /// The type tag recorded in sealed values.
    package var plaintextType: PlaintextType {
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
