import Foundation
import Logging
import MRKCluster
import MRKCrypto
@testable import MRKDevTools
import MRKKMS
@testable import MRKLocalKMS
import MRKPostgres
@testable import MRKProxy
import MRKSQL
import Testing

/// Random inputs of every supported type, with their edge values, against a real PostgreSQL 15:
/// what MRKProxy stores for an encrypted column reads back exactly as the server stores and prints
/// the same input in a plaintext column of that type, and what the server refuses MRKProxy refuses.
extension ProxyIntegration {
    @Suite struct ExactValues {
        /// How many random inputs per type (plus the fixed edge values).
        static let samples = Int(ProcessInfo.processInfo.environment["MRKPROXY_VALUE_SAMPLES"] ?? "") ?? 250

        /// Every input for `type`, from `generator`.
        static func inputs(_ type: ColumnValueType, _ random: inout SplitMix64) -> [String] {
            var values = ValueGenerators.edges(type)
            for _ in 0..<samples { values.append(ValueGenerators.random(type, &random)) }
            return values.filter { !$0.utf8.contains(0) }
        }

        /// The server's `::type::text` of each input, NULL where it refuses the input.
        static func serverText(_ inputs: [String], type: ColumnValueType, on conn: PostgresConnection) throws -> [String?] {
            let json = String(decoding: try JSONEncoder().encode(inputs), as: UTF8.self)
            let result = try conn.execute("""
                SELECT pg_temp.try_cast(x, $2) FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS u(x, n) ORDER BY n
                """, [.text(json), .text(type.postgresName)])
            return (0..<result.rowCount).map { result.string(row: $0, column: 0) }
        }

        static let tryCast = """
            SET TimeZone = 'UTC';
            CREATE FUNCTION pg_temp.try_cast(v text, t text) RETURNS text LANGUAGE plpgsql AS $f$
            DECLARE r text;
            BEGIN
              -- format('%s', …) prints with the type's output function (bool: t/f), as a column reads.
              EXECUTE format('SELECT format(''%%s'', ($1)::%s)', t) INTO r USING v;
              RETURN r;
            EXCEPTION WHEN others THEN RETURN NULL;
            END $f$;
            """

        @Test("each type's text input is read as PostgreSQL reads it: the same value where it accepts, a refusal where it refuses")
        func codecAgainstServer() throws {
            let stack = try currentStack()
            let conn = try PostgresConnection(stack.databaseURL(replica: false))
            try conn.executeScript(Self.tryCast)
            var random = SplitMix64(seed: UInt64.random(in: 0...UInt64.max))
            let seed = random.state
            var compared = 0, unsupported = 0
            for type in ColumnValueType.allCases {
                let inputs = Self.inputs(type, &random)
                let server = try Self.serverText(inputs, type: type, on: conn)
                for (input, expected) in zip(inputs, server) {
                    switch ValueGenerators.ours(input, type) {
                    case .accepted(let text):
                        #expect(text == expected, "seed \(seed), \(type): input \(input.debugDescription)")
                    case .refused:
                        #expect(expected == nil, "seed \(seed), \(type): PostgreSQL accepts \(input.debugDescription) as \(expected ?? "")")
                    case .unsupported:
                        unsupported += 1
                    }
                    compared += 1
                }
            }
            #expect(compared > 3_000)
            #expect(unsupported < compared / 10, "most generated forms are supported")
        }

        @Test("random values written through MRKProxy read back equal to the same values in a plaintext column of the type")
        func roundTripThroughProxy() async throws {
            let stack = try currentStack()
            let types = ColumnValueType.allCases
            let table = uniqueName("exact")
            try ddl(stack, """
                CREATE TABLE \(table) (id int PRIMARY KEY, \(types.map { "c_\($0.rawValue) bytea" }.joined(separator: ", ")));
                CREATE TABLE \(table)_plain (id int PRIMARY KEY, \(types.map { "c_\($0.rawValue) \($0.postgresName)" }.joined(separator: ", ")));
                """)
            let (east, _) = try await openBoth(stack, tables: "tables:\n  public.\(table):\n    row_identity: id\n    columns:\n"
                + types.map { "      c_\($0.rawValue): { type: \($0.rawValue) }" }.joined(separator: "\n"))
            var random = SplitMix64(seed: UInt64.random(in: 0...UInt64.max))
            let seed = random.state
            // Per type, the inputs both sides accept.
            var accepted: [ColumnValueType: [String]] = [:]
            for type in types {
                accepted[type] = Self.inputs(type, &random).filter {
                    if case .accepted = ValueGenerators.ours($0, type) { return true } else { return false }
                }
            }
            let rows = accepted.values.map(\.count).max() ?? 0
            let inputs = accepted
            try await onBlockingThread {
                let proxy = try east.connect()
                try proxy.execute("SET TimeZone = 'UTC'")
                let plain = try PostgresConnection(stack.databaseURL(replica: false))
                try plain.execute("SET TimeZone = 'UTC'")
                let columns = types.map { "c_\($0.rawValue)" }.joined(separator: ", ")
                let placeholders = (2...(types.count + 1)).map { "$\($0)" }.joined(separator: ", ")
                var batch: [[SQLValue]] = []
                for row in 0..<rows {
                    let values = types.map { type -> SQLValue in
                        let list = inputs[type]!
                        return row < list.count ? .text(list[row]) : .null
                    }
                    batch.append([.int(row)] + values)
                    try plain.execute("INSERT INTO \(table)_plain (id, \(columns)) VALUES ($1, \(types.indices.map { "$\($0 + 2)::\(types[$0].postgresName)" }.joined(separator: ", ")))",
                                      [.int(row)] + values.map(\.parameter))
                }
                try proxy.batch("INSERT INTO \(table) (id, \(columns)) VALUES ($1, \(placeholders))", batch)
                let decrypted = try proxy.query("SELECT id, \(columns) FROM \(table) ORDER BY id").rows
                let reference = try plain.execute("SELECT id, \(columns) FROM \(table)_plain ORDER BY id")
                #expect(decrypted.count == rows)
                for (index, row) in decrypted.enumerated() {
                    for (position, type) in types.enumerated() {
                        let expected = reference.string(row: index, column: position + 1)
                        #expect(row["c_\(type.rawValue)"].postgresText == expected,
                                "seed \(seed), \(type), row \(index): \(inputs[type]!.count > index ? inputs[type]![index].debugDescription : "NULL")")
                    }
                }
            }
        }
    }
}

extension ColumnValueType {
    /// The PostgreSQL type name.
    var postgresName: String {
        switch self {
        case .timestamp: "timestamp"
        case .timestamptz: "timestamptz"
        default: rawValue
        }
    }
}

/// A small seedable generator (SplitMix64), so a failing run can be repeated from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Inputs for each type: the edges PostgreSQL draws, and random forms around them.
enum ValueGenerators {
    enum Outcome { case accepted(String), refused, unsupported }

    /// What MRKProxy does with `input` for a column of `type` (in a UTC session).
    static func ours(_ input: String, _ type: ColumnValueType) -> Outcome {
        switch type {
        case .date:
            switch PostgresDateTimeText.parseDate(input) {
            case .success(let date): return .accepted(date.description)
            case .failure(.invalid): return .refused
            case .failure(.unsupported): return .unsupported
            }
        case .timestamp, .timestamptz:
            switch PostgresDateTimeText.parseTimestamp(input, withTimeZone: type == .timestamptz, sessionOffset: 0) {
            case .success(let t): return .accepted(type == .timestamp ? t.timestampText : t.timestamptzText)
            case .failure(.invalid): return .refused
            case .failure(.unsupported): return .unsupported
            }
        default:
            guard let bytes = try? ColumnCodec.encode(.text(input), as: type, column: "t.c"),
                  let value = try? ColumnCodec.decode(bytes, as: type.plaintextType) else { return .refused }
            return .accepted(value.postgresText ?? "")
        }
    }

    static func edges(_ type: ColumnValueType) -> [String] {
        switch type {
        case .int2: ["-32768", "32767", "-32769", "32768", " +7 ", "0", "-0", "", "+", "1.0", "1e3", "0x10", "12 3", "\t42\n"]
        case .int4: ["-2147483648", "2147483647", "-2147483649", "2147483648", "007", " 1"]
        case .int8: ["-9223372036854775808", "9223372036854775807", "-9223372036854775809", "9223372036854775808", "99999999999999999999"]
        case .numeric:
            ["123456789012345678901234567890.123456789012345678901234567890", "12abc", "1.50", "1.5e3", "12.340e-1", "-0.00", " +.5 ",
             "5.", "NaN", "nan", "-inf", "+Infinity", "1e1000", "1e1001", "1e-1000", "1e 5", ".", "-", "1e", "-NaN", "0x10", "1_000",
             String(repeating: "9", count: 1000), "0." + String(repeating: "0", count: 500) + "1"]
        case .float4: ["0.1", "1e39", "1e-50", "1e-45", "3.4028235e38", "-0", "NaN", "inf", "-Infinity", "0x1p-149", " 1.5 ", "1.5x", ""]
        case .float8: ["0.1", "1e308", "1e309", "1e-400", "4e-320", "5e-324", "-0", "nan", "Infinity", "0x1.8p1", "1e15", "123456789012345", "1.7976931348623157e308"]
        case .bool: ["t", "TR", "true", "truex", "yes", "on", "of", "o", "off", "1", "0", "10", " f ", "n", "no", "nO"]
        case .date:
            ["5874897-12-31", "5874898-01-01", "4714-11-24 BC", "4714-11-23 BC", "0000-01-01", "0001-01-01", "2023-02-29", "2024-02-29",
             " 2024-2-9 ", "10000-01-01", "infinity", "-infinity", "epoch", "2024-02-29 23:59:59+05", "1999-13-01", "0999-01-01"]
        case .timestamp, .timestamptz:
            ["3000-01-01 00:00:00.000001", "2020-01-01 24:30:00", "2020-01-01 24:00:00", "2020-01-01 23:59:60.5", "2020-01-01 10:59:60.5", "2020-01-01 24:00:00.0000006",
             "2020-01-01 00:00:00+9999999999999999", "2020-01-01 00:00:00+16", "2020-01-01 10:00:00+15:59", "2020-01-01 10:00:00-15:59:59",
             "2020-01-01T10:00:00Z", "2020-01-01 10:00:00.0000005", "2020-01-01 10:00:00.0000015", "294276-12-31 23:59:59.999999",
             "294277-01-01 00:00:00", "4714-11-24 00:00:00 BC", "4714-11-23 23:59:59 BC", "0044-03-15 12:00:00 BC", "infinity", "-infinity",
             "epoch", "2020-01-01 10:00 +0530", "2020-01-01 10:00:00.123456789", "2020-01-01 10:00:00.9999995"]
        case .uuid:
            ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "a0eebc999c0b4ef8bb6d6bb9bd380a11",
             "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
             "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"]
        case .bytea: ["\\x", "\\x00ff 10", "\\x0", "\\X00", "a\\\\b\\001", "\\400", "a\\b", "plain text", "\\x G0"]
        case .text: ["", "ünïcødé", "😀", "a'b\"c\\d", String(repeating: "x", count: 10_000)]
        case .json, .jsonb:
            [#"{"b":1,"a":[1,2,{"cc":true,"c":null}],"b":2.50}"#, #" "x\u00e9\n\u001f" "#, "[1e2, -0, 0.0e1, 1E-2]", #""\ud83d\ude00""#,
             #""\u0000""#, "", "{", "[1,]", "01", "1.", "NaN", "[1] 2", #"{"a":1,"a":2}"#, "1e400", "true", " null "]
        }
    }

    static func random(_ type: ColumnValueType, _ r: inout SplitMix64) -> String {
        func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &r)] }
        func chance(_ n: Int) -> Bool { Int.random(in: 0..<n, using: &r) == 0 }
        func spaces() -> String { chance(5) ? pick([" ", "\t", "\n ", "  "]) : "" }
        func digits(_ count: Int) -> String { String((0..<count).map { _ in pick(Array("0123456789")) }) }
        switch type {
        case .int2, .int4, .int8:
            let bits = type == .int2 ? 16 : type == .int4 ? 32 : 64
            let limit = bits == 64 ? Int64.max : Int64(1) << (bits - 1)
            let value: Int64 = chance(4) ? (chance(2) ? limit &- Int64.random(in: -1...1, using: &r) : -limit &+ Int64.random(in: -1...1, using: &r))
                : Int64.random(in: (bits == 64 ? Int64.min : -limit)...(bits == 64 ? Int64.max : limit - 1), using: &r)
            return spaces() + (chance(8) && value >= 0 ? "+" : "") + String(value) + spaces()
        case .numeric:
            if chance(20) { return pick(["NaN", "Infinity", "-Infinity", "inf", "-inf", "nAn", " nan "]) }
            var text = pick(["", "-", "+"]) + digits(Int.random(in: 0...(chance(5) ? 60 : 8), using: &r))
            if chance(2) { text += "." + digits(Int.random(in: 0...(chance(5) ? 40 : 6), using: &r)) }
            if chance(4) { text += pick(["e", "E"]) + pick(["", "-", "+"]) + String(Int.random(in: 0...(chance(10) ? 1100 : 30), using: &r)) }
            return spaces() + text + spaces()
        case .float4, .float8:
            let double = chance(2) ? Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &r))
                : Double.random(in: -1e6...1e6, using: &r) * pow(10, Double(Int.random(in: -45...45, using: &r)))
            if double.isNaN { return "NaN" }
            return spaces() + pick([String(double), String(format: "%.17g", double), String(format: "%.6e", double), String(format: "%a", double),
                                    String(format: "%.3f", double)]) + spaces()
        case .bool:
            let word = pick(["t", "tr", "tru", "true", "y", "ye", "yes", "on", "1", "f", "fa", "fals", "false", "n", "no", "of", "off", "0", "o", "x", "2", "yess"])
            return spaces() + String(word.map { chance(2) ? Character($0.uppercased()) : $0 }) + spaces()
        case .date:
            let days = Int.random(in: (PostgresCalendar.dateRange.lowerBound - 400)...(PostgresCalendar.dateRange.upperBound + 400), using: &r)
            let (y, m, d) = PostgresCalendar.civil(fromDays: chance(2) ? days : Int.random(in: -800_000...800_000, using: &r))
            let year = y <= 0 ? 1 - y : y
            var text = String(format: "%04d", year) + "-" + (chance(4) ? String(m) : String(format: "%02d", m)) + "-"
                + (chance(4) ? String(d) : String(format: "%02d", chance(30) ? 30 : d))
            if y <= 0 { text += " BC" } else if chance(20) { text += " AD" }
            if chance(6) { text += " " + String(format: "%02d:%02d", Int.random(in: 0...23, using: &r), Int.random(in: 0...59, using: &r)) }
            return spaces() + text + spaces()
        case .timestamp, .timestamptz:
            let micros = chance(3) ? Int64.random(in: PostgresCalendar.timestampRange, using: &r)
                : Int64.random(in: -2_000_000_000_000_000...4_000_000_000_000_000, using: &r)
            let (days, rest) = micros.floorDivided(by: 86_400_000_000)
            let (y, m, d) = PostgresCalendar.civil(fromDays: Int(days) + PostgresCalendar.daysFrom1970To2000)
            let seconds = rest / 1_000_000
            var text = String(format: "%04d-%02d-%02d", y <= 0 ? 1 - y : y, m, d) + pick([" ", "T"])
                + String(format: "%02d:%02d", seconds / 3600, seconds / 60 % 60)
            if !chance(8) {
                text += String(format: ":%02d", chance(40) ? 60 : seconds % 60)
                let fractionDigits = Int.random(in: 0...9, using: &r)
                if fractionDigits > 0 { text += "." + digits(fractionDigits) }
            }
            if chance(2) {
                text += pick(["", " "]) + pick(["Z", "+00", "-05", "+05:30", "-03:00:30", "+1", "+0545", "UTC", "+15:59", "-16"])
            } else if type == .timestamptz {
                text += "Z"
            }
            if y <= 0 { text += " BC" }
            if chance(40) { text = text.replacingOccurrences(of: String(format: "%02d:", seconds / 3600), with: "24:") }
            return spaces() + text + spaces()
        case .uuid:
            let hex = (0..<32).map { _ in pick(Array("0123456789abcdefABCDEF")) }
            var text = ""
            let style = Int.random(in: 0..<4, using: &r)
            for (i, c) in hex.enumerated() {
                if i > 0 && ((style == 0 && [8, 12, 16, 20].contains(i)) || (style == 1 && i % 4 == 0)) { text += "-" }
                text.append(c)
            }
            if style == 3 { text = "{" + text + "}" }
            if chance(10) { text.removeLast() }
            return text
        case .bytea:
            let bytes = (0..<Int.random(in: 0...20, using: &r)).map { _ in UInt8.random(in: 0...255, using: &r) }
            if chance(2) {
                return "\\x" + bytes.map { String(format: chance(2) ? "%02x" : "%02X", $0) + (chance(6) ? " " : "") }.joined()
            }
            return bytes.map { b in
                if b == 0x5C { return "\\\\" }
                if b < 0x20 || b >= 0x7F { return String(format: "\\%03o", b) }
                return String(UnicodeScalar(b))
            }.joined()
        case .text:
            let scalars = (0..<Int.random(in: 0...30, using: &r)).compactMap { _ in
                Unicode.Scalar(pick([UInt32.random(in: 1...0x7F, using: &r), UInt32.random(in: 0x80...0x7FF, using: &r),
                                     UInt32.random(in: 0x800...0xD7FF, using: &r), UInt32.random(in: 0x10000...0x10FFFF, using: &r)]))
            }
            return String(String.UnicodeScalarView(scalars))
        case .json, .jsonb:
            var text = randomJSON(depth: 0, &r)
            if chance(8), !text.isEmpty { text.removeLast() }
            if chance(12) { text += pick([",", "x", " ]"]) }
            return text
        }
    }

    static func randomJSON(depth: Int, _ r: inout SplitMix64) -> String {
        func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &r)] }
        let space = pick(["", " ", "\n"])
        switch Int.random(in: 0..<(depth > 3 ? 4 : 7), using: &r) {
        case 0: return pick(["true", "false", "null"])
        case 1: return pick(["0", "-0", "1", "-12", "1.50", "1e2", "1E-3", "-0.0e1", "123456789012345678901234567890", "2.5e+10", "0.1"])
        case 2, 3:
            let parts = (0..<Int.random(in: 0...6, using: &r)).map { _ in
                pick(["a", "é", "\\u00e9", "\\ud83d\\ude00", "\\n", "\\\"", "\\\\", "\\/", "\\t", "x y", "\\u0001", "😀"])
            }
            return "\"" + parts.joined() + "\""
        case 4, 5:
            let count = Int.random(in: 0...4, using: &r)
            let pairs = (0..<count).map { _ in "\"" + pick(["a", "b", "aa", "ab", "B", "é", "a"]) + "\"" + space + ":" + space + randomJSON(depth: depth + 1, &r) }
            return "{" + space + pairs.joined(separator: "," + space) + space + "}"
        default:
            let items = (0..<Int.random(in: 0...4, using: &r)).map { _ in randomJSON(depth: depth + 1, &r) }
            return "[" + items.joined(separator: "," + space) + "]"
        }
    }
}
