import Foundation

/// PostgreSQL 15's text input rules for the simple types, as total functions: each returns nil
/// exactly where PostgreSQL reports invalid input or an out-of-range value.
package enum PostgresText {
    static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (byte >= 0x09 && byte <= 0x0D) }

    private static func trimmed(_ text: some StringProtocol) -> ArraySlice<UInt8> {
        let bytes = Array(text.utf8)
        var start = 0, end = bytes.count
        while start < end && isSpace(bytes[start]) { start += 1 }
        while end > start && isSpace(bytes[end - 1]) { end -= 1 }
        return bytes[start..<end]
    }

    /// `int2in` / `int4in` / `int8in` (`pg_strtoint*`): surrounding whitespace, an optional sign,
    /// decimal digits, within `range`.
    package static func parseInteger(_ text: some StringProtocol, in range: ClosedRange<Int64>) -> Int64? {
        let bytes = trimmed(text)
        var index = bytes.startIndex
        guard index < bytes.endIndex else { return nil }
        let negative = bytes[index] == UInt8(ascii: "-")
        if negative || bytes[index] == UInt8(ascii: "+") { index += 1 }
        guard index < bytes.endIndex else { return nil }
        // Accumulate negatively so that Int64.min is reachable; stop at the first overflow.
        var value: Int64 = 0
        while index < bytes.endIndex {
            let byte = bytes[index]
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = times10.subtractingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            guard !o1, !o2 else { return nil }
            value = next
            index += 1
        }
        if !negative {
            guard value != .min else { return nil }
            value = -value
        }
        return range.contains(value) ? value : nil
    }

    /// `boolin` (`parse_bool_with_len`): `t`/`true`/`y`/`yes`/`on`/`1` and `f`/`false`/`n`/`no`/
    /// `off`/`0`, any case, unique prefixes of the words, surrounding whitespace.
    package static func parseBool(_ text: some StringProtocol) -> Bool? {
        let bytes = trimmed(text).map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }
        guard let first = bytes.first else { return nil }
        func isPrefix(of word: String, minimum: Int = 1) -> Bool {
            let w = Array(word.utf8)
            return bytes.count >= minimum && bytes.count <= w.count && Array(w.prefix(bytes.count)) == bytes
        }
        switch first {
        case UInt8(ascii: "t"): return isPrefix(of: "true") ? true : nil
        case UInt8(ascii: "f"): return isPrefix(of: "false") ? false : nil
        case UInt8(ascii: "y"): return isPrefix(of: "yes") ? true : nil
        case UInt8(ascii: "n"): return isPrefix(of: "no") ? false : nil
        case UInt8(ascii: "o"):
            if isPrefix(of: "on", minimum: 2) { return true }
            if isPrefix(of: "off", minimum: 2) { return false }
            return nil
        case UInt8(ascii: "1"): return bytes.count == 1 ? true : nil
        case UInt8(ascii: "0"): return bytes.count == 1 ? false : nil
        default: return nil
        }
    }

    /// `uuid_in`: 32 hex digits, optionally in braces, with a hyphen allowed after any group of
    /// four digits; no whitespace.
    package static func parseUUID(_ text: some StringProtocol) -> UUID? {
        let bytes = Array(text.utf8)
        var index = 0
        var braces = false
        if bytes.first == UInt8(ascii: "{") { braces = true; index = 1 }
        var out = [UInt8](repeating: 0, count: 16)
        for i in 0..<16 {
            guard index + 1 < bytes.count, let hi = hexValue(bytes[index]), let lo = hexValue(bytes[index + 1]) else { return nil }
            out[i] = hi << 4 | lo
            index += 2
            if index < bytes.count, bytes[index] == UInt8(ascii: "-"), i % 2 == 1, i < 15 { index += 1 }
        }
        if braces {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "}") else { return nil }
            index += 1
        }
        guard index == bytes.count else { return nil }
        return UUID(uuid: (out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7],
                           out[8], out[9], out[10], out[11], out[12], out[13], out[14], out[15]))
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// `byteain`: `\x` followed by hex digit pairs (whitespace allowed between pairs), or the escape
    /// format (bytes as themselves, `\\` for a backslash, `\ooo` octal with a first digit 0–3).
    package static func parseBytea(_ text: some StringProtocol) -> [UInt8]? {
        let bytes = Array(text.utf8)
        if bytes.count >= 2 && bytes[0] == UInt8(ascii: "\\") && bytes[1] == UInt8(ascii: "x") {
            var out: [UInt8] = []
            out.reserveCapacity((bytes.count - 2) / 2)
            var index = 2
            while index < bytes.count {
                let byte = bytes[index]
                if byte == 0x20 || byte == 0x0A || byte == 0x09 || byte == 0x0D { index += 1; continue }
                guard index + 1 < bytes.count, let hi = hexValue(byte), let lo = hexValue(bytes[index + 1]) else { return nil }
                out.append(hi << 4 | lo)
                index += 2
            }
            return out
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "\\") else { out.append(byte); index += 1; continue }
            if index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "\\") {
                out.append(byte)
                index += 2
            } else if index + 3 < bytes.count, (0x30...0x33).contains(bytes[index + 1]), (0x30...0x37).contains(bytes[index + 2]),
                      (0x30...0x37).contains(bytes[index + 3]) {
                out.append((bytes[index + 1] - 0x30) << 6 | (bytes[index + 2] - 0x30) << 3 | (bytes[index + 3] - 0x30))
                index += 4
            } else {
                return nil
            }
        }
        return out
    }

    /// Decodes bytea output in either format (`bytea_output = hex` or `escape`).
    package static func decodeByteaOutput(_ raw: UnsafeRawBufferPointer) -> [UInt8]? {
        parseBytea(String(decoding: raw, as: UTF8.self))
    }

    /// Whether `bytes` is valid UTF-8 without NUL: what a PostgreSQL `text` value in a UTF-8
    /// database can hold.
    package static func isValidText(_ bytes: some Collection<UInt8>) -> Bool {
        guard !bytes.contains(0) else { return false }
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }
}
