import Foundation
import MRKCrypto
@testable import MRKProxy
import Testing

/// The value codecs on their own: PostgreSQL's text rules, exact round trips, totality. (The same
/// rules are checked against a real server in `ExactValues`.)
@Suite struct ValueTextTests {
    @Test("numeric keeps every digit and its scale; malformed text is refused")
    func numeric() throws {
        let sixty = "123456789012345678901234567890.123456789012345678901234567890"
        #expect(SQLNumeric(sixty)?.text == sixty)
        #expect(SQLNumeric("12abc") == nil)
        #expect(SQLNumeric("1.50")?.text == "1.50")
        #expect(SQLNumeric("1.5e3")?.text == "1500")
        #expect(SQLNumeric("12.340e-1")?.text == "1.2340")
        #expect(SQLNumeric("1e-3")?.text == "0.001")
        #expect(SQLNumeric("-0.00")?.text == "0.00")
        #expect(SQLNumeric(" +.5 ")?.text == "0.5")
        #expect(SQLNumeric("5.")?.text == "5")
        #expect(SQLNumeric("000123.4500")?.text == "123.4500")
        #expect(SQLNumeric("nan")?.text == "NaN")
        #expect(SQLNumeric("-inf")?.text == "-Infinity")
        #expect(SQLNumeric("+Infinity")?.text == "Infinity")
        #expect(SQLNumeric("1e1001")?.text.count == 1002)
        #expect(SQLNumeric("1e131071") != nil)
        #expect(SQLNumeric("1e131072") == nil)
        #expect(SQLNumeric("1e-16383") != nil)
        #expect(SQLNumeric("1.5e-16383") == nil)
        #expect(SQLNumeric("0e-20000") == nil)
        #expect(SQLNumeric("1e999999999999") == nil, "refused before placing any digit")
        for bad in ["", " ", ".", "-", "1e", "1e+", "1.2.3", "--1", "-NaN", "0x10", "1_000", "e5", "1 2"] {
            #expect(SQLNumeric(bad) == nil, "\(bad)")
        }
        #expect(SQLNumeric("1.5")!.isEqualInValue(to: SQLNumeric("1.500")!))
        #expect(SQLNumeric("2.000")!.normalized == "2")
        #expect(SQLNumeric(sixty)!.decimal == nil, "more digits than Decimal holds")
        #expect(SQLNumeric("3.25")!.decimal == Decimal(string: "3.25"))
        // The limits: 131,072 digits before the point, 16,383 after.
        #expect(SQLNumeric(String(repeating: "9", count: 131_072)) != nil)
        #expect(SQLNumeric(String(repeating: "9", count: 131_073)) == nil)
        #expect(SQLNumeric("0." + String(repeating: "1", count: 16_383)) != nil)
        #expect(SQLNumeric("0." + String(repeating: "1", count: 16_384)) == nil)
    }

    @Test("timestamps keep their microseconds across PostgreSQL's range; 24:00 and out-of-range zones as PostgreSQL")
    func timestamps() throws {
        func parse(_ text: String, tz: Bool = false) -> SQLTimestamp? {
            if case .success(let t) = PostgresDateTimeText.parseTimestamp(text, withTimeZone: tz, sessionOffset: 0) { return t }
            return nil
        }
        #expect(parse("3000-01-01 00:00:00.000001")?.timestampText == "3000-01-01 00:00:00.000001")
        #expect(parse("2020-01-01 24:30:00") == nil)
        #expect(parse("2020-01-01 24:00:00")?.timestampText == "2020-01-02 00:00:00")
        #expect(parse("2020-01-01 10:59:60.5")?.timestampText == "2020-01-01 11:00:00.5")
        #expect(parse("2020-01-01 23:59:60.5") == nil, "past 24:00:00")
        #expect(parse("2020-01-01 24:00:00.0000004")?.timestampText == "2020-01-02 00:00:00")
        #expect(parse("2020-01-01 00:00:00+9999999999999999", tz: true) == nil)
        #expect(parse("2020-01-01 00:00:00+16", tz: true) == nil)
        #expect(parse("2020-01-01 10:00:00+15:59", tz: true)?.timestamptzText == "2019-12-31 18:01:00+00")
        #expect(parse("2020-01-01 10:00:00+05")?.timestampText == "2020-01-01 10:00:00", "a zone is ignored for timestamp")
        #expect(parse("2020-01-01T10:00:00Z", tz: true)?.timestamptzText == "2020-01-01 10:00:00+00")
        #expect(parse("2020-01-01 10:00:00.0000005")?.timestampText == "2020-01-01 10:00:00", "rint: half to even")
        #expect(parse("2020-01-01 10:00:00.0000015")?.timestampText == "2020-01-01 10:00:00.000002")
        #expect(parse("294276-12-31 23:59:59.999999")?.timestampText == "294276-12-31 23:59:59.999999")
        #expect(parse("294277-01-01 00:00:00") == nil)
        #expect(parse("4714-11-24 00:00:00 BC")?.timestampText == "4714-11-24 00:00:00 BC")
        #expect(parse("4714-11-23 23:59:59 BC") == nil)
        #expect(parse("0044-03-15 12:00:00 BC", tz: true)?.timestamptzText == "0044-03-15 12:00:00+00 BC")
        #expect(parse("infinity")?.timestampText == "infinity")
        #expect(parse("-infinity") == SQLTimestamp.negativeInfinity)
        #expect(parse("epoch", tz: true)?.timestamptzText == "1970-01-01 00:00:00+00")
        #expect(parse("5874897-12-31 00:00:00") == nil)
        // Offset-less timestamptz text needs a session zone with a fixed offset.
        #expect(PostgresDateTimeText.parseTimestamp("2020-01-01 10:00", withTimeZone: true, sessionOffset: nil) == .failure(.unsupported))
        #expect(PostgresDateTimeText.parseTimestamp("2020-01-01 10:00", withTimeZone: true, sessionOffset: 3600)
            == .success(SQLTimestamp(microsecondsSince1970: 1_577_869_200_000_000)!))
        #expect(PostgresDateTimeText.parseTimestamp("now", withTimeZone: false, sessionOffset: 0) == .failure(.unsupported))
        #expect(PostgresDateTimeText.parseTimestamp("Jan 1 2020", withTimeZone: false, sessionOffset: 0) == .failure(.unsupported))
    }

    @Test("dates across PostgreSQL's whole range, BC years, infinity; out-of-range and impossible dates refused")
    func dates() throws {
        #expect(SQLDate("5874897-12-31")?.description == "5874897-12-31")
        #expect(SQLDate("5874898-01-01") == nil)
        #expect(SQLDate("4714-11-24 BC")?.description == "4714-11-24 BC")
        #expect(SQLDate("4714-11-23 BC") == nil)
        #expect(SQLDate("0000-01-01") == nil)
        #expect(SQLDate("2023-02-29") == nil)
        #expect(SQLDate("2024-02-29")?.description == "2024-02-29")
        #expect(SQLDate(" 2024-2-9 ")?.description == "2024-02-09")
        #expect(SQLDate("2024-02-29 23:59:59+05")?.description == "2024-02-29", "the time and zone of a date are ignored")
        #expect(SQLDate("10000-01-01")?.description == "10000-01-01")
        #expect(SQLDate("infinity") == .infinity)
        #expect(SQLDate("-infinity")?.description == "-infinity")
        #expect(SQLDate("epoch")?.daysSinceEpoch == 0)
        #expect(SQLDate("01-02-03") == nil, "two-digit years depend on DateStyle")
        // PostgreSQL: SELECT '0001-01-01'::date - '1970-01-01'::date = -719162.
        #expect(SQLDate("0001-01-01")?.daysSinceEpoch == -719_162)
        // Every representable day prints and parses back to itself.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let days = Int.random(in: PostgresCalendar.dateRange, using: &generator)
            let date = try #require(SQLDate(daysSinceEpoch: days))
            #expect(SQLDate(date.description) == date, "\(days)")
        }
        for days in [PostgresCalendar.dateRange.lowerBound, PostgresCalendar.dateRange.upperBound - 1, 0, -1, -719_162, -719_163] {
            let date = try #require(SQLDate(daysSinceEpoch: days))
            #expect(SQLDate(date.description) == date, "\(days)")
        }
    }

    @Test("every microsecond timestamp prints and parses back to itself, as timestamp and as timestamptz")
    func timestampRoundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        let range = PostgresCalendar.timestampRange
        var samples = (0..<20_000).map { _ in Int64.random(in: range, using: &generator) }
        samples += [range.lowerBound, range.upperBound - 1, 0, -1, 1, -SQLTimestamp.microsecondsFrom1970To2000]
        for micros in samples {
            let timestamp = try #require(SQLTimestamp(microsecondsSince2000: micros))
            #expect(PostgresDateTimeText.parseTimestamp(timestamp.timestampText, withTimeZone: false, sessionOffset: nil) == .success(timestamp))
            #expect(PostgresDateTimeText.parseTimestamp(timestamp.timestamptzText, withTimeZone: true, sessionOffset: nil) == .success(timestamp))
        }
    }

    @Test("floats: strtod rules, shortest round-trip output in PostgreSQL's layout")
    func floats() throws {
        #expect(PostgresFloat.text(0.1 as Double) == "0.1")
        #expect(PostgresFloat.text(0.1 as Float) == "0.1")
        #expect(PostgresFloat.text(1e15 as Double) == "1e+15")
        #expect(PostgresFloat.text(123_456_789_012_345 as Double) == "123456789012345")
        #expect(PostgresFloat.text(1_234_567_890_123_456 as Double) == "1.234567890123456e+15")
        #expect(PostgresFloat.text(1e5 as Float) == "100000")
        #expect(PostgresFloat.text(1e6 as Float) == "1e+06")
        #expect(PostgresFloat.text(0.0001 as Double) == "0.0001")
        #expect(PostgresFloat.text(0.00001 as Double) == "1e-05")
        #expect(PostgresFloat.text(-0.0 as Double) == "-0")
        #expect(PostgresFloat.text(Double.nan) == "NaN")
        #expect(PostgresFloat.text(-Double.infinity) == "-Infinity")
        #expect(PostgresFloat.text(Double.leastNonzeroMagnitude) == "5e-324")
        #expect(PostgresFloat.text(Double.greatestFiniteMagnitude) == "1.7976931348623157e+308")
        #expect(PostgresFloat.parseDouble(" 0x1p3 ") == 8)
        #expect(PostgresFloat.parseDouble("1e-400") == nil, "underflow to zero is an error")
        #expect(PostgresFloat.parseDouble("1e400") == nil)
        #expect(PostgresFloat.parseDouble("4e-320") != nil, "a denormal is fine")
        #expect(PostgresFloat.parseFloat("1e39") == nil)
        #expect(PostgresFloat.parseFloat("1e-50") == nil)
        #expect(PostgresFloat.parseDouble("-INF") == -.infinity)
        #expect(PostgresFloat.parseDouble("nan")?.isNaN == true)
        #expect(PostgresFloat.parseDouble("1.5x") == nil)
        #expect(PostgresFloat.parseDouble("") == nil)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let double = Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &generator))
            guard !double.isNaN else { continue }
            #expect(PostgresFloat.parseDouble(PostgresFloat.text(double))?.bitPattern == double.bitPattern)
            let float = Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &generator))
            guard !float.isNaN else { continue }
            #expect(PostgresFloat.parseFloat(PostgresFloat.text(float))?.bitPattern == float.bitPattern)
        }
    }

    @Test("booleans, integers, uuids and bytea as PostgreSQL reads them")
    func simpleTypes() throws {
        for (text, value) in [("t", true), ("TR", true), (" yes ", true), ("on", true), ("1", true), ("f", false), ("of", false),
                              ("OFF", false), ("n", false), ("0", false)] {
            #expect(PostgresText.parseBool(text) == value, "\(text)")
        }
        for bad in ["o", "tx", "truee", "2", "10", "", "yess"] { #expect(PostgresText.parseBool(bad) == nil, "\(bad)") }
        #expect(PostgresText.parseInteger(" -32768 ", in: -32768...32767) == -32768)
        #expect(PostgresText.parseInteger("32768", in: -32768...32767) == nil)
        #expect(PostgresText.parseInteger("-9223372036854775808", in: .min ... .max) == .min)
        #expect(PostgresText.parseInteger("9223372036854775808", in: .min ... .max) == nil)
        for bad in ["", "+", "1.0", "1e3", "0x10", "1_000", "12 3"] { #expect(PostgresText.parseInteger(bad, in: .min ... .max) == nil, "\(bad)") }
        let uuid = try #require(UUID(uuidString: "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"))
        for text in ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "a0eebc999c0b4ef8bb6d6bb9bd380a11",
                     "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"] {
            #expect(PostgresText.parseUUID(text) == uuid, "\(text)")
        }
        for bad in ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "{a0eebc999c0b4ef8bb6d6bb9bd380a11",
                    "a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11"] {
            #expect(PostgresText.parseUUID(bad) == nil, "\(bad)")
        }
        #expect(PostgresText.parseBytea("\\x00ff 10") == [0, 255, 16])
        #expect(PostgresText.parseBytea("a\\\\b\\001") == [0x61, 0x5C, 0x62, 1])
        #expect(PostgresText.parseBytea("\\x0") == nil)
        #expect(PostgresText.parseBytea("\\400") == nil)
        #expect(PostgresText.parseBytea("a\\b") == nil)
    }

    @Test("json is kept as written once valid; jsonb is normalised as PostgreSQL prints it")
    func json() throws {
        func jsonb(_ text: String) -> String? { PostgresJSON.normalizedJSONB(Array(text.utf8)).map { String(decoding: $0, as: UTF8.self) } }
        #expect(jsonb(#"{"b":1,"a":[1,2,{"cc":true,"c":null}],"b":2.50}"#) == #"{"a": [1, 2, {"c": null, "cc": true}], "b": 2.50}"#)
        #expect(jsonb(#" "x\u00e9\n\u001f" "#) == #""xé\n\u001f""#)
        #expect(jsonb(#"[1e2, -0, 0.0e1, 1E-2]"#) == "[100, 0, 0, 0.01]")
        #expect(jsonb(#""\ud83d\ude00""#) == "\"😀\"")
        #expect(jsonb(#""\u0000""#) == nil)
        #expect(PostgresJSON.isValidJSON(Array(#""\u0000""#.utf8)), "json accepts \\u0000, jsonb does not")
        for bad in ["", "{", "[1,]", "{\"a\"}", "01", "1.", ".5", "tru", "nul", "{'a':1}", "\"\t\"", #""\ud83d""#, #""\ude00""#,
                    "[1] 2", "NaN", "+1", "\"\\x\""] {
            #expect(!PostgresJSON.isValidJSON(Array(bad.utf8)), "\(bad)")
            #expect(jsonb(bad) == nil, "\(bad)")
        }
        // Deep nesting is refused, not a stack overflow.
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(!PostgresJSON.isValidJSON(Array(deep.utf8)))
        let ok = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        #expect(jsonb(ok) == ok)
    }

    @Test("encode and decode: exact round trips, equality keys that ignore what = ignores, totality on any bytes")
    func codec() throws {
        let cases: [(ColumnValueType, SQLValue, String)] = [
            (.numeric, .text("1.50"), "1.50"), (.numeric, .text("NaN"), "NaN"), (.float4, .text("0.1"), "0.1"),
            (.float8, .text("-0"), "-0"), (.date, .text("1815-12-10"), "1815-12-10"),
            (.timestamp, .text("1815-12-10 01:02:03.000004"), "1815-12-10 01:02:03.000004"),
            (.timestamptz, .text("1815-12-10 01:02:03+01"), "1815-12-10 00:02:03+00"),
            (.jsonb, .text(#"{"b":1,"a":2}"#), #"{"a": 2, "b": 1}"#), (.json, .text(#"{"b":1,"a":2}"#), #"{"b":1,"a":2}"#),
            (.bool, .text("yes"), "t"), (.int2, .text(" 7 "), "7"), (.bytea, .text("\\x0102"), "\\x0102"),
        ]
        for (type, input, expected) in cases {
            let bytes = try ColumnCodec.encode(input, as: type, column: "t.c")
            #expect(try ColumnCodec.decode(bytes, as: type.plaintextType).postgresText == expected, "\(type)")
            #expect(try ColumnCodec.text(of: bytes, as: type) == Array(expected.utf8))
        }
        #expect(try ColumnCodec.equalityKey(.text("1.5"), as: .numeric, column: "c") == ColumnCodec.equalityKey(.text("1.500"), as: .numeric, column: "c"))
        #expect(try ColumnCodec.equalityKey(.text("-0"), as: .float8, column: "c") == ColumnCodec.equalityKey(.text("0"), as: .float8, column: "c"))
        #expect(try ColumnCodec.encode(.text("1.5"), as: .numeric, column: "c") != ColumnCodec.encode(.text("1.500"), as: .numeric, column: "c"))
        #expect(throws: ProxyError.self) { try ColumnCodec.encode(.text("a\u{0}b"), as: .text, column: "c") }
        #expect(throws: ProxyError.self) { try ColumnCodec.encode(.double(1e300), as: .float4, column: "c") }
        // Legacy timestamps (tags 10 and 11: microseconds since 1970) still read.
        let legacy = withUnsafeBytes(of: Int64(1_700_000_000_123_456).bigEndian) { Array($0) }
        #expect(try ColumnCodec.decode(legacy, as: .timestamptzSince1970).postgresText == "2023-11-14 22:13:20.123456+00")
        // Decoding is total: random bytes for every type give a value or an integrity error.
        var generator = SystemRandomNumberGenerator()
        for type in PlaintextType.allCases {
            for length in [0, 1, 4, 8, 16, 33] {
                for _ in 0..<200 {
                    let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
                    do { _ = try ColumnCodec.decode(bytes, as: type) } catch { #expect(error.code == .integrity) }
                }
            }
        }
        // The poison date: the largest PostgreSQL date decodes (it used to trap).
        let poison = try ColumnCodec.encode(.text("5874897-12-31"), as: .date, column: "c")
        #expect(try ColumnCodec.decode(poison, as: .date).postgresText == "5874897-12-31")
        #expect(SQLValue(postgresText: "5874897-12-31", oid: .date) == .date(SQLDate("5874897-12-31")!))
    }
}
