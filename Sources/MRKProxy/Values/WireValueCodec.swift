import Foundation
import MRKPostgres
import MRKSQL

/// The PostgreSQL wire forms of an encrypted column's values, for the wire proxy: what a client
/// would receive from (and may send to) a plaintext column of the configured type — the type's
/// OID and size, its text output and its binary send/receive format.
package enum WireValueCodec {
    /// Days from 1970-01-01 (where `SQLDate` counts from) to 2000-01-01 (PostgreSQL's epoch).
    static let daysFrom1970To2000 = 10_957

    /// The type OID a client sees for a column of `type`.
    package static func oid(_ type: ColumnValueType) -> UInt32 {
        switch type {
        case .text: 25
        case .int2: 21
        case .int4: 23
        case .int8: 20
        case .numeric: 1700
        case .float4: 700
        case .float8: 701
        case .bool: 16
        case .date: 1082
        case .timestamp: 1114
        case .timestamptz: 1184
        case .uuid: 2950
        case .bytea: 17
        case .json: 114
        case .jsonb: 3802
        }
    }

    /// `pg_type.typlen` of `type` (-1: variable length).
    package static func size(_ type: ColumnValueType) -> Int16 {
        switch type {
        case .int2: 2
        case .int4, .float4, .date: 4
        case .int8, .float8, .timestamp, .timestamptz: 8
        case .bool: 1
        case .uuid: 16
        case .text, .numeric, .bytea, .json, .jsonb: -1
        }
    }

    // MARK: Text

    /// The text PostgreSQL outputs for `value` (DateStyle ISO); `timestamptz` in `timeZone`, as
    /// the server renders it for the session (UTC when the zone is unknown).
    package static func text(_ value: SQLValue, timeZone: TimeZone?) -> String? {
        if case .timestamptz(let t) = value, let timeZone, !t.isInfinite, let date = t.date {
            let offset = timeZone.secondsFromGMT(for: date)
            if offset != 0, let shifted = SQLTimestamp(microsecondsSince2000: t.microsecondsSince2000 + Int64(offset) * 1_000_000) {
                return shifted.timestampText + offsetText(offset)
            }
        }
        return value.postgresText
    }

    /// `+02`, `-05:30`, `+00:01:15`: PostgreSQL's form of a UTC offset in seconds.
    static func offsetText(_ seconds: Int) -> String {
        let sign = seconds < 0 ? "-" : "+"
        let magnitude = abs(seconds)
        var text = sign + PostgresCalendar.twoDigits(magnitude / 3600)
        if magnitude % 3600 != 0 || magnitude % 60 != 0 { text += ":" + PostgresCalendar.twoDigits(magnitude % 3600 / 60) }
        if magnitude % 60 != 0 { text += ":" + PostgresCalendar.twoDigits(magnitude % 60) }
        return text
    }

    // MARK: Binary

    /// `value` in the binary format of `type` (PostgreSQL's `*send`).
    ///
    /// - Throws: `.invalidValue` when the value is not of the type (cannot happen for values the
    ///   library decoded for a column of `type`).
    package static func binary(_ value: SQLValue, as type: ColumnValueType) throws(ProxyError) -> [UInt8] {
        func mismatch() -> ProxyError { ProxyError(.invalidValue, "a \(type) value has no binary form here") }
        switch (type, value) {
        case (.text, .text(let s)), (.json, .json(let s)), (.json, .text(let s)): return Array(s.utf8)
        case (.jsonb, .json(let s)), (.jsonb, .text(let s)): return [1] + Array(s.utf8)
        case (.bytea, .bytes(let b)): return b
        case (.int2, .int(let i)): return bigEndian(Int16(truncatingIfNeeded: i))
        case (.int4, .int(let i)): return bigEndian(Int32(truncatingIfNeeded: i))
        case (.int8, .int(let i)): return bigEndian(Int64(i))
        case (.float4, .float(let f)): return bigEndian(f.bitPattern)
        case (.float4, .double(let d)): return bigEndian(Float(d).bitPattern)
        case (.float8, .double(let d)): return bigEndian(d.bitPattern)
        case (.bool, .bool(let b)): return [b ? 1 : 0]
        case (.date, .date(let d)):
            if d == .infinity { return bigEndian(Int32.max) }
            if d == .negativeInfinity { return bigEndian(Int32.min) }
            return bigEndian(Int32(truncatingIfNeeded: Int(d.daysSinceEpoch) - WireValueCodec.daysFrom1970To2000))
        case (.timestamp, .timestamp(let t)), (.timestamptz, .timestamptz(let t)): return bigEndian(t.microsecondsSince2000)
        case (.uuid, .uuid(let u)): return withUnsafeBytes(of: u.uuid) { Array($0) }
        case (.numeric, .numeric(let n)): return numericBinary(n.text)
        default: throw mismatch()
        }
    }

    /// The value a client sent in the binary format of `type`, for a column of that type.
    ///
    /// - Throws: `.invalidValue` naming `column` (never the value) when the bytes are not a
    ///   valid binary value of the type, as PostgreSQL's `*recv` would refuse them.
    package static func value(binary bytes: [UInt8], as type: ColumnValueType, column: String) throws(ProxyError) -> SQLValue {
        func invalid() -> ProxyError { ProxyError(.invalidValue, "invalid binary value for \(column) (\(type))") }
        func integer(_ width: Int) throws(ProxyError) -> Int64 {
            guard bytes.count == width else { throw invalid() }
            var value: Int64 = bytes[0] >= 0x80 ? -1 : 0
            for byte in bytes { value = value << 8 | Int64(byte) }
            return value
        }
        switch type {
        case .text, .json:
            guard let text = String(validating: bytes, as: UTF8.self), !bytes.contains(0) else { throw invalid() }
            return type == .json ? .json(text) : .text(text)
        case .jsonb:
            guard bytes.first == 1, let text = String(validating: bytes.dropFirst(), as: UTF8.self), !bytes.contains(0) else { throw invalid() }
            return .json(text)
        case .bytea: return .bytes(bytes)
        case .int2: return .int(Int(try integer(2)))
        case .int4: return .int(Int(try integer(4)))
        case .int8: return .int(Int(try integer(8)))
        case .float4: return .float(Float(bitPattern: UInt32(truncatingIfNeeded: try integer(4))))
        case .float8: return .double(Double(bitPattern: UInt64(bitPattern: try integer(8))))
        case .bool:
            guard bytes.count == 1 else { throw invalid() }
            return .bool(bytes[0] != 0)
        case .date:
            let days = try integer(4)
            if days == Int64(Int32.max) { return .date(.infinity) }
            if days == Int64(Int32.min) { return .date(.negativeInfinity) }
            guard let date = SQLDate(daysSinceEpoch: Int(days) + WireValueCodec.daysFrom1970To2000) else { throw invalid() }
            return .date(date)
        case .timestamp, .timestamptz:
            let micros = try integer(8)
            let timestamp: SQLTimestamp
            if micros == .max { timestamp = .infinity } else if micros == .min { timestamp = .negativeInfinity } else {
                guard let t = SQLTimestamp(microsecondsSince2000: micros) else { throw invalid() }
                timestamp = t
            }
            return type == .timestamp ? .timestamp(timestamp) : .timestamptz(timestamp)
        case .uuid:
            guard bytes.count == 16 else { throw invalid() }
            let u = bytes
            return .uuid(UUID(uuid: (u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15])))
        case .numeric:
            guard let text = numericText(binary: bytes), let numeric = SQLNumeric(text) else { throw invalid() }
            return .numeric(numeric)
        }
    }

    // MARK: numeric

    /// PostgreSQL's binary numeric: ndigits, weight, sign, dscale (int16 each), then ndigits
    /// base-10000 digits, from the value's output text.
    static func numericBinary(_ text: String) -> [UInt8] {
        switch text {
        case "NaN": return bigEndian(Int16(0)) + bigEndian(Int16(0)) + bigEndian(UInt16(0xC000)) + bigEndian(Int16(0))
        // PostgreSQL 15's numeric_send gives the infinities a dscale of 32.
        case "Infinity": return bigEndian(Int16(0)) + bigEndian(Int16(0)) + bigEndian(UInt16(0xD000)) + bigEndian(Int16(32))
        case "-Infinity": return bigEndian(Int16(0)) + bigEndian(Int16(0)) + bigEndian(UInt16(0xF000)) + bigEndian(Int16(32))
        default: break
        }
        var digits = Substring(text)
        let negative = digits.hasPrefix("-")
        if negative { digits = digits.dropFirst() }
        let parts = digits.split(separator: ".", omittingEmptySubsequences: false)
        let integer = Array(parts[0].utf8).map { Int($0) - 48 }
        let fraction = parts.count > 1 ? Array(parts[1].utf8).map { Int($0) - 48 } : []
        let dscale = fraction.count
        // Pad the integer part on the left and the fraction on the right to whole groups of four.
        let integerPadded = [Int](repeating: 0, count: (4 - integer.count % 4) % 4) + integer
        let fractionPadded = fraction + [Int](repeating: 0, count: (4 - fraction.count % 4) % 4)
        func groups(_ d: [Int]) -> [Int] { stride(from: 0, to: d.count, by: 4).map { d[$0] * 1000 + d[$0 + 1] * 100 + d[$0 + 2] * 10 + d[$0 + 3] } }
        var base = groups(integerPadded) + groups(fractionPadded)
        var weight = integerPadded.count / 4 - 1
        while let first = base.first, first == 0 {
            base.removeFirst()
            weight -= 1
        }
        while let last = base.last, last == 0 { base.removeLast() }
        if base.isEmpty { weight = 0 }
        var out = bigEndian(Int16(base.count)) + bigEndian(Int16(weight)) + bigEndian(UInt16(negative && !base.isEmpty ? 0x4000 : 0))
            + bigEndian(Int16(dscale))
        for group in base { out += bigEndian(Int16(group)) }
        return out
    }

    /// The text of a binary numeric (nil when malformed, as `numeric_recv` refuses it).
    static func numericText(binary bytes: [UInt8]) -> String? {
        guard bytes.count >= 8 else { return nil }
        func int16(_ offset: Int) -> Int { Int(Int16(bitPattern: UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1]))) }
        let count = int16(0), weight = int16(2), sign = UInt16(bitPattern: Int16(int16(4))), dscale = int16(6)
        guard count >= 0, bytes.count == 8 + 2 * count, dscale >= 0, dscale <= SQLNumeric.maxScale else { return nil }
        switch sign {
        case 0xC000: return "NaN"
        case 0xD000: return "Infinity"
        case 0xF000: return "-Infinity"
        case 0, 0x4000: break
        default: return nil
        }
        var groups: [Int] = []
        for index in 0..<count {
            let group = int16(8 + 2 * index)
            guard (0..<10000).contains(group) else { return nil }
            groups.append(group)
        }
        // Digits before the point: groups 0...weight; after: the rest, cut to dscale.
        var integer = ""
        if weight >= 0 {
            for index in 0...weight {
                let group = index < groups.count ? groups[index] : 0
                integer += index == 0 ? String(group) : String(repeating: "0", count: 4 - String(group).count) + String(group)
            }
        } else {
            integer = "0"
        }
        var fraction = ""
        if dscale > 0 {
            var index = weight + 1
            while fraction.count < dscale {
                let group = index >= 0 && index < groups.count ? groups[index] : 0
                fraction += String(repeating: "0", count: 4 - String(group).count) + String(group)
                index += 1
            }
            fraction = String(fraction.prefix(dscale))
        }
        guard abs(weight) < 100_000 else { return nil }
        let text = (sign == 0x4000 ? "-" : "") + integer + (fraction.isEmpty ? "" : "." + fraction)
        return text
    }

    static func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }
}
