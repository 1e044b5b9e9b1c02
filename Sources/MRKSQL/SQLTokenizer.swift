/// Splits SQL text into tokens following PostgreSQL's lexical rules (with
/// `standard_conforming_strings = on`, the default since PostgreSQL 9.1).
///
/// Handles unquoted identifiers (folded to lower case), quoted and `U&"…"` identifiers, string
/// constants (`'…'` with `''`, `E'…'` with backslash escapes, `U&'…'` with `UESCAPE`, `$tag$…$tag$`,
/// `B'…'`, `X'…'`, `N'…'`, and the continuation of a constant over a newline), numbers (from
/// PostgreSQL 16 also `0x…`, `0o…`, `0b…` and `_` separators; a number directly followed by letters
/// is an error, as in PostgreSQL 15), `$n` parameters, operators (with PostgreSQL's rule for a
/// trailing `+`/`-`), `::`, punctuation, `--` and nested `/* */` comments.
///
/// Decoded string constants must be valid UTF-8 without NUL, as a UTF-8 database requires
/// (`E'\xff'` and `E'\400'` are errors there). It never traps: any input either tokenizes or
/// throws `Failure`.
package struct SQLTokenizer {
    /// The lexical rules that changed between PostgreSQL versions.
    package struct Dialect: Sendable, Hashable {
        /// PostgreSQL 16: `0x1F`, `0o17`, `0b101` and `1_000` are numbers (in 15 they are errors).
        package var nonDecimalIntegers: Bool

        /// The rules of the server with this `server_version_num` (e.g. 150004).
        package init(serverVersion: Int) { nonDecimalIntegers = serverVersion >= 160_000 }

        package init(nonDecimalIntegers: Bool) { self.nonDecimalIntegers = nonDecimalIntegers }

        /// The newest rules.
        package static let latest = Dialect(nonDecimalIntegers: true)
    }

    /// Why the text could not be tokenized. Carries a byte offset and a fixed reason, never text.
    package struct Failure: Error, Sendable, Equatable {
        var offset: Int
        var reason: String
    }

    /// Tokenizes `sql`.
    ///
    /// - Throws: `Failure` for an unterminated string, quoted identifier or comment, an invalid
    ///   escape, or a parameter number that does not fit.
    package static func tokenize(_ sql: String, dialect: Dialect = .latest) throws(Failure) -> [SQLToken] {
        var tokenizer = SQLTokenizer(bytes: Array(sql.utf8), dialect: dialect)
        return try tokenizer.run()
    }

    private let bytes: [UInt8]
    private let dialect: Dialect
    private var index = 0
    private var tokens: [SQLToken] = []

    private init(bytes: [UInt8], dialect: Dialect) {
        self.bytes = bytes
        self.dialect = dialect
    }

    // MARK: - Character classes

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D || byte == 0x0C || byte == 0x0B
    }

    private static func isIdentifierStart(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || byte == 0x5F || byte >= 0x80
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    private static func isIdentifierContinuation(_ byte: UInt8) -> Bool {
        isIdentifierStart(byte) || isDigit(byte) || byte == 0x24
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte >= 0x61 && byte <= 0x66) || (byte >= 0x41 && byte <= 0x46)
    }

    private static let operatorBytes: Set<UInt8> = Set("+-*/<>=~!@#%^&|`?".utf8)
    /// Characters that allow a multi-character operator to end in `+` or `-`.
    private static let operatorSpecialBytes: Set<UInt8> = Set("~!@#%^&|`?".utf8)

    private func byte(at offset: Int) -> UInt8? { offset >= 0 && offset < bytes.count ? bytes[offset] : nil }

    private static func lowered(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte }

    // MARK: - Main loop

    private mutating func run() throws(Failure) -> [SQLToken] {
        while index < bytes.count {
            let current = bytes[index]
            if Self.isSpace(current) {
                index += 1
                continue
            }
            if current == UInt8(ascii: "-") && byte(at: index + 1) == UInt8(ascii: "-") {
                skipLineComment()
                continue
            }
            if current == UInt8(ascii: "/") && byte(at: index + 1) == UInt8(ascii: "*") {
                try skipBlockComment()
                continue
            }
            try scanToken(current)
        }
        return tokens
    }

    private mutating func skipLineComment() {
        while index < bytes.count && bytes[index] != 0x0A && bytes[index] != 0x0D { index += 1 }
    }

    private mutating func skipBlockComment() throws(Failure) {
        let start = index
        var depth = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "/") && byte(at: index + 1) == UInt8(ascii: "*") {
                depth += 1
                index += 2
            } else if bytes[index] == UInt8(ascii: "*") && byte(at: index + 1) == UInt8(ascii: "/") {
                depth -= 1
                index += 2
                if depth == 0 { return }
            } else {
                index += 1
            }
        }
        throw Failure(offset: start, reason: "unterminated /* comment")
    }

    private mutating func append(_ kind: SQLToken.Kind, _ text: String, from start: Int) {
        tokens.append(SQLToken(kind: kind, text: text, range: start..<index))
    }

    private mutating func scanToken(_ current: UInt8) throws(Failure) {
        let start = index
        let next = byte(at: index + 1)
        let quote = UInt8(ascii: "'")
        switch current {
        case quote:
            let value = try scanQuotedString(style: .standard, start: start)
            append(.string(.standard), value, from: start)
        case UInt8(ascii: "\""):
            index += 1
            let name = try scanDoubleQuoted(start: start)
            append(.quotedIdentifier, Self.truncatedIdentifier(name), from: start)
        case _ where Self.isIdentifierStart(current):
            let lower = Self.lowered(current)
            if lower == UInt8(ascii: "e") && next == quote {
                index += 1
                let value = try scanQuotedString(style: .escape, start: start)
                append(.string(.escape), value, from: start)
            } else if lower == UInt8(ascii: "u") && next == UInt8(ascii: "&")
                && (byte(at: index + 2) == quote || byte(at: index + 2) == UInt8(ascii: "\""))
            {
                index += 2
                try scanUnicode(start: start)
            } else if (lower == UInt8(ascii: "b") || lower == UInt8(ascii: "x")) && next == quote {
                index += 1
                let digits = try scanQuotedString(style: .standard, start: start)
                append(.string(.bit), (lower == UInt8(ascii: "x") ? "x" : "b") + digits, from: start)
            } else if lower == UInt8(ascii: "n") && next == quote {
                index += 1
                let value = try scanQuotedString(style: .standard, start: start)
                append(.string(.standard), value, from: start)
            } else {
                var folded: [UInt8] = []
                while index < bytes.count && Self.isIdentifierContinuation(bytes[index]) {
                    folded.append(Self.lowered(bytes[index]))
                    index += 1
                }
                append(.identifier, Self.truncatedIdentifier(String(decoding: folded, as: UTF8.self)), from: start)
            }
        case _ where Self.isDigit(current):
            try scanNumber(start: start)
        case UInt8(ascii: ".") where next.map(Self.isDigit) ?? false:
            try scanNumber(start: start)
        case UInt8(ascii: "$"):
            try scanDollar(start: start)
        case UInt8(ascii: ":"):
            if next == UInt8(ascii: ":") {
                index += 2
                append(.punctuation, "::", from: start)
            } else if next == UInt8(ascii: "=") {
                index += 2
                append(.op, ":=", from: start)
            } else {
                index += 1
                append(.punctuation, ":", from: start)
            }
        case UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: ","),
            UInt8(ascii: ";"), UInt8(ascii: "."):
            index += 1
            append(.punctuation, String(UnicodeScalar(current)), from: start)
        case _ where Self.operatorBytes.contains(current):
            scanOperator(start: start)
        default:
            index += 1
            append(.other, String(decoding: [current], as: UTF8.self), from: start)
        }
    }

    /// PostgreSQL truncates identifiers to NAMEDATALEN - 1 = 63 bytes (on a character boundary).
    private static func truncatedIdentifier(_ name: String) -> String {
        let utf8 = Array(name.utf8)
        guard utf8.count > 63 else { return name }
        var end = 63
        while end > 0 && (utf8[end] & 0xC0) == 0x80 { end -= 1 }
        return String(decoding: utf8[0..<end], as: UTF8.self)
    }

    // MARK: - Strings

    /// Scans `'…'` starting at the opening quote (index points at it), including continuations
    /// over whitespace that contains a newline. Returns the decoded value.
    private mutating func scanQuotedString(style: SQLToken.StringStyle, start: Int) throws(Failure) -> String {
        var value: [UInt8] = []
        while true {
            index += 1  // opening quote
            if style == .escape {
                try scanEscapeBody(into: &value, start: start)
            } else {
                try scanStandardBody(into: &value, start: start)
            }
            if !continuesOnNextLine() { break }
        }
        return try Self.text(value, start: start)
    }

    /// `bytes` as text, or the error PostgreSQL gives for a constant that is not valid UTF-8 or
    /// holds a NUL (which escapes such as `\xff` or `\400` produce).
    private static func text(_ bytes: [UInt8], start: Int) throws(Failure) -> String {
        guard !bytes.contains(0), let text = String(validating: bytes, as: UTF8.self) else {
            throw Failure(offset: start, reason: "invalid byte sequence for encoding UTF8")
        }
        return text
    }

    /// After a closing quote: if whitespace with at least one newline (and `--` comments after it)
    /// leads to another `'`, moves to that quote and returns true.
    private mutating func continuesOnNextLine() -> Bool {
        var probe = index
        var sawNewline = false
        while probe < bytes.count {
            let current = bytes[probe]
            if current == 0x0A || current == 0x0D {
                sawNewline = true
                probe += 1
            } else if Self.isSpace(current) {
                probe += 1
            } else if sawNewline && current == UInt8(ascii: "-") && byte(at: probe + 1) == UInt8(ascii: "-") {
                while probe < bytes.count && bytes[probe] != 0x0A && bytes[probe] != 0x0D { probe += 1 }
            } else {
                break
            }
        }
        if sawNewline && probe < bytes.count && bytes[probe] == UInt8(ascii: "'") {
            index = probe
            return true
        }
        return false
    }

    private mutating func scanStandardBody(into value: inout [UInt8], start: Int) throws(Failure) {
        while index < bytes.count {
            let current = bytes[index]
            if current == UInt8(ascii: "'") {
                if byte(at: index + 1) == UInt8(ascii: "'") {
                    value.append(current)
                    index += 2
                    continue
                }
                index += 1
                return
            }
            value.append(current)
            index += 1
        }
        throw Failure(offset: start, reason: "unterminated string constant")
    }

    private mutating func scanEscapeBody(into value: inout [UInt8], start: Int) throws(Failure) {
        var pendingHighSurrogate: UInt32?
        while index < bytes.count {
            let current = bytes[index]
            if current == UInt8(ascii: "'") {
                if byte(at: index + 1) == UInt8(ascii: "'") {
                    value.append(current)
                    index += 2
                    continue
                }
                index += 1
                if pendingHighSurrogate != nil {
                    throw Failure(offset: start, reason: "invalid Unicode surrogate pair")
                }
                return
            }
            guard current == UInt8(ascii: "\\") else {
                if pendingHighSurrogate != nil { throw Failure(offset: start, reason: "invalid Unicode surrogate pair") }
                value.append(current)
                index += 1
                continue
            }
            guard let escaped = byte(at: index + 1) else { break }
            index += 2
            switch escaped {
            case UInt8(ascii: "b"): value.append(0x08)
            case UInt8(ascii: "f"): value.append(0x0C)
            case UInt8(ascii: "n"): value.append(0x0A)
            case UInt8(ascii: "r"): value.append(0x0D)
            case UInt8(ascii: "t"): value.append(0x09)
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var code = UInt32(escaped - 0x30)
                var digits = 1
                while digits < 3, let digit = byte(at: index), digit >= 0x30 && digit <= 0x37 {
                    code = code * 8 + UInt32(digit - 0x30)
                    index += 1
                    digits += 1
                }
                guard code != 0 else { throw Failure(offset: start, reason: "invalid zero byte escape") }
                value.append(UInt8(truncatingIfNeeded: code))
            case UInt8(ascii: "x") where byte(at: index).map(Self.isHexDigit) ?? false:
                var code: UInt32 = 0
                var digits = 0
                while digits < 2, let digit = byte(at: index), Self.isHexDigit(digit) {
                    code = code * 16 + Self.hexValue(digit)
                    index += 1
                    digits += 1
                }
                guard code != 0 else { throw Failure(offset: start, reason: "invalid zero byte escape") }
                value.append(UInt8(code))
            case UInt8(ascii: "u"), UInt8(ascii: "U"):
                let width = escaped == UInt8(ascii: "u") ? 4 : 8
                guard let code = hexNumber(width: width) else {
                    throw Failure(offset: start, reason: "invalid Unicode escape")
                }
                try appendScalar(code, pendingHighSurrogate: &pendingHighSurrogate, into: &value, start: start)
                continue
            default:
                value.append(escaped)
            }
            if pendingHighSurrogate != nil { throw Failure(offset: start, reason: "invalid Unicode surrogate pair") }
        }
        throw Failure(offset: start, reason: "unterminated string constant")
    }

    private static func hexValue(_ digit: UInt8) -> UInt32 {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(digit - 0x30)
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(digit - 0x61 + 10)
        default: UInt32(digit - 0x41 + 10)
        }
    }

    /// Reads exactly `width` hex digits at `index`, advancing past them.
    private mutating func hexNumber(width: Int) -> UInt32? {
        var code: UInt32 = 0
        for offset in 0..<width {
            guard let digit = byte(at: index + offset), Self.isHexDigit(digit) else { return nil }
            code = code &* 16 &+ Self.hexValue(digit)
        }
        index += width
        return code
    }

    private func appendScalar(
        _ code: UInt32, pendingHighSurrogate: inout UInt32?, into value: inout [UInt8], start: Int
    ) throws(Failure) {
        var scalarValue = code
        if let high = pendingHighSurrogate {
            guard code >= 0xDC00 && code <= 0xDFFF else {
                throw Failure(offset: start, reason: "invalid Unicode surrogate pair")
            }
            scalarValue = 0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00)
            pendingHighSurrogate = nil
        } else if code >= 0xD800 && code <= 0xDBFF {
            pendingHighSurrogate = code
            return
        }
        guard scalarValue != 0, let scalar = Unicode.Scalar(scalarValue) else {
            throw Failure(offset: start, reason: "invalid Unicode escape value")
        }
        value.append(contentsOf: Array(String(Character(scalar)).utf8))
    }

    /// `"…"` with `""` escapes; index is just past the opening quote.
    private mutating func scanDoubleQuoted(start: Int) throws(Failure) -> String {
        var value: [UInt8] = []
        while index < bytes.count {
            let current = bytes[index]
            if current == UInt8(ascii: "\"") {
                if byte(at: index + 1) == UInt8(ascii: "\"") {
                    value.append(current)
                    index += 2
                    continue
                }
                index += 1
                guard !value.isEmpty else { throw Failure(offset: start, reason: "zero-length quoted identifier") }
                return String(decoding: value, as: UTF8.self)
            }
            value.append(current)
            index += 1
        }
        throw Failure(offset: start, reason: "unterminated quoted identifier")
    }

    /// `U&'…'` or `U&"…"`, index at the quote; an optional `UESCAPE 'c'` follows.
    private mutating func scanUnicode(start: Int) throws(Failure) {
        let isIdentifier = bytes[index] == UInt8(ascii: "\"")
        var raw: [UInt8] = []
        if isIdentifier {
            index += 1
            raw = Array(try scanDoubleQuoted(start: start).utf8)
        } else {
            while true {
                index += 1
                try scanStandardBody(into: &raw, start: start)
                if !continuesOnNextLine() { break }
            }
        }
        var escapeCharacter = UInt8(ascii: "\\")
        // Optional UESCAPE 'c' (whitespace and comments may separate the parts).
        let afterLiteral = index
        skipTrivia()
        if matchesWord("uescape") {
            index += 7
            skipTrivia()
            // Any string constant PostgreSQL's grammar takes there: '…', E'…' or $$…$$.
            let clauseStart = index
            let escape: String
            if byte(at: index) == UInt8(ascii: "'") {
                escape = try scanQuotedString(style: .standard, start: clauseStart)
            } else if let first = byte(at: index), Self.lowered(first) == UInt8(ascii: "e"), byte(at: index + 1) == UInt8(ascii: "'") {
                index += 1
                escape = try scanQuotedString(style: .escape, start: clauseStart)
            } else if byte(at: index) == UInt8(ascii: "$"), let body = try scanDollarBody(start: clauseStart) {
                escape = body
            } else {
                throw Failure(offset: start, reason: "UESCAPE must be followed by a simple string literal")
            }
            let candidate = Array(escape.utf8)
            guard candidate.count == 1, candidate[0] != UInt8(ascii: "'"), candidate[0] != UInt8(ascii: "\""),
                  candidate[0] != UInt8(ascii: "+"), !Self.isHexDigit(candidate[0]), !Self.isSpace(candidate[0])
            else { throw Failure(offset: start, reason: "invalid Unicode escape character") }
            escapeCharacter = candidate[0]
        } else {
            index = afterLiteral
        }
        let decoded = try decodeUnicodeEscapes(raw, escape: escapeCharacter, start: start)
        if isIdentifier {
            guard !decoded.isEmpty else { throw Failure(offset: start, reason: "zero-length quoted identifier") }
            append(.quotedIdentifier, Self.truncatedIdentifier(decoded), from: start)
        } else {
            append(.string(.unicode), decoded, from: start)
        }
    }

    private mutating func skipTrivia() {
        while index < bytes.count {
            if Self.isSpace(bytes[index]) {
                index += 1
            } else if bytes[index] == UInt8(ascii: "-") && byte(at: index + 1) == UInt8(ascii: "-") {
                skipLineComment()
            } else if bytes[index] == UInt8(ascii: "/") && byte(at: index + 1) == UInt8(ascii: "*") {
                let before = index
                do { try skipBlockComment() } catch {
                    index = before
                    return
                }
            } else {
                return
            }
        }
    }

    private func matchesWord(_ word: String) -> Bool {
        let wordBytes = Array(word.utf8)
        for (offset, expected) in wordBytes.enumerated() {
            guard let actual = byte(at: index + offset), Self.lowered(actual) == expected else { return false }
        }
        if let following = byte(at: index + wordBytes.count), Self.isIdentifierContinuation(following) {
            return false
        }
        return true
    }

    private func decodeUnicodeEscapes(_ raw: [UInt8], escape: UInt8, start: Int) throws(Failure) -> String {
        var value: [UInt8] = []
        var pendingHighSurrogate: UInt32?
        var position = 0
        func hex(_ from: Int, _ width: Int) -> UInt32? {
            guard from + width <= raw.count else { return nil }
            var code: UInt32 = 0
            for digit in raw[from..<(from + width)] {
                guard Self.isHexDigit(digit) else { return nil }
                code = code * 16 + Self.hexValue(digit)
            }
            return code
        }
        while position < raw.count {
            let current = raw[position]
            guard current == escape else {
                if pendingHighSurrogate != nil { throw Failure(offset: start, reason: "invalid Unicode surrogate pair") }
                value.append(current)
                position += 1
                continue
            }
            if position + 1 < raw.count && raw[position + 1] == escape {
                if pendingHighSurrogate != nil { throw Failure(offset: start, reason: "invalid Unicode surrogate pair") }
                value.append(escape)
                position += 2
            } else if position + 1 < raw.count && raw[position + 1] == UInt8(ascii: "+"),
                let code = hex(position + 2, 6)
            {
                try appendScalar(code, pendingHighSurrogate: &pendingHighSurrogate, into: &value, start: start)
                position += 8
            } else if let code = hex(position + 1, 4) {
                try appendScalar(code, pendingHighSurrogate: &pendingHighSurrogate, into: &value, start: start)
                position += 5
            } else {
                throw Failure(offset: start, reason: "invalid Unicode escape")
            }
        }
        if pendingHighSurrogate != nil { throw Failure(offset: start, reason: "invalid Unicode surrogate pair") }
        return String(decoding: value, as: UTF8.self)
    }

    // MARK: - Dollar quotes and parameters

    private mutating func scanDollar(start: Int) throws(Failure) {
        if let next = byte(at: index + 1), Self.isDigit(next) {
            index += 1
            var number = 0
            var overflow = false
            while let digit = byte(at: index), Self.isDigit(digit) {
                let (product, overflowMultiply) = number.multipliedReportingOverflow(by: 10)
                let (sum, overflowAdd) = product.addingReportingOverflow(Int(digit - 0x30))
                overflow = overflow || overflowMultiply || overflowAdd
                number = sum
                index += 1
            }
            guard !overflow else { throw Failure(offset: start, reason: "parameter number out of range") }
            append(.parameter(number), "$\(number)", from: start)
            return
        }
        guard let body = try scanDollarBody(start: start) else {
            index += 1
            append(.other, "$", from: start)
            return
        }
        append(.string(.dollar), body, from: start)
    }

    /// `$tag$…$tag$` at `index`: its body, with `index` past the closing delimiter; nil (index
    /// unchanged) when no tag starts here.
    private mutating func scanDollarBody(start: Int) throws(Failure) -> String? {
        // $tag$ where tag is empty or an identifier without `$`.
        var probe = index + 1
        if let first = byte(at: probe), Self.isIdentifierStart(first) {
            while let current = byte(at: probe), Self.isIdentifierStart(current) || Self.isDigit(current) {
                probe += 1
            }
        }
        guard byte(at: probe) == UInt8(ascii: "$") else { return nil }
        let delimiter = Array(bytes[index...probe])
        let bodyStart = probe + 1
        var search = bodyStart
        while search + delimiter.count <= bytes.count {
            if bytes[search] == UInt8(ascii: "$") && bytes[search..<(search + delimiter.count)].elementsEqual(delimiter) {
                index = search + delimiter.count
                return String(decoding: bytes[bodyStart..<search], as: UTF8.self)
            }
            search += 1
        }
        throw Failure(offset: start, reason: "unterminated dollar-quoted string")
    }

    // MARK: - Numbers and operators

    private mutating func scanNumber(start: Int) throws(Failure) {
        var text: [UInt8] = []
        // A number runs into the letters after it: `1abc`, and before PostgreSQL 16 `0x1F` and
        // `1_000`, are errors there ("trailing junk after numeric literal").
        if dialect.nonDecimalIntegers, bytes[index] == UInt8(ascii: "0"), let radix = byte(at: index + 1).map(Self.lowered),
            radix == UInt8(ascii: "x") || radix == UInt8(ascii: "o") || radix == UInt8(ascii: "b"),
            let first = byte(at: index + 2), Self.isHexDigit(first)
        {
            text = [UInt8(ascii: "0"), radix]
            index += 2
            while let current = byte(at: index), Self.isHexDigit(current) || current == UInt8(ascii: "_") {
                if current != UInt8(ascii: "_") { text.append(current) }
                index += 1
            }
            try refuseTrailingJunk(start)
            append(.number, String(decoding: text, as: UTF8.self), from: start)
            return
        }
        let separators = dialect.nonDecimalIntegers
        func digits() {
            while let current = byte(at: index), Self.isDigit(current) || (separators && current == UInt8(ascii: "_")) {
                if current != UInt8(ascii: "_") { text.append(current) }
                index += 1
            }
        }
        digits()
        if byte(at: index) == UInt8(ascii: "."), byte(at: index + 1) != UInt8(ascii: ".") {
            text.append(UInt8(ascii: "."))
            index += 1
            digits()
        }
        if let exponent = byte(at: index), exponent == UInt8(ascii: "e") || exponent == UInt8(ascii: "E") {
            var probe = index + 1
            if let sign = byte(at: probe), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { probe += 1 }
            if let digit = byte(at: probe), Self.isDigit(digit) {
                text.append(contentsOf: bytes[index..<probe])
                index = probe
                digits()
            }
        }
        try refuseTrailingJunk(start)
        append(.number, String(decoding: text, as: UTF8.self), from: start)
    }

    private func refuseTrailingJunk(_ start: Int) throws(Failure) {
        if let following = byte(at: index), Self.isIdentifierStart(following) {
            throw Failure(offset: start, reason: "trailing junk after numeric literal")
        }
    }

    private mutating func scanOperator(start: Int) {
        var end = index
        while end < bytes.count && Self.operatorBytes.contains(bytes[end]) {
            if end > index {
                if bytes[end] == UInt8(ascii: "-") && byte(at: end + 1) == UInt8(ascii: "-") { break }
                if bytes[end] == UInt8(ascii: "/") && byte(at: end + 1) == UInt8(ascii: "*") { break }
            }
            end += 1
        }
        var symbol = Array(bytes[index..<end])
        if symbol.count > 1 && !symbol.contains(where: { Self.operatorSpecialBytes.contains($0) }) {
            while symbol.count > 1, let last = symbol.last, last == UInt8(ascii: "+") || last == UInt8(ascii: "-") {
                symbol.removeLast()
            }
        }
        index += symbol.count
        append(.op, String(decoding: symbol, as: UTF8.self), from: start)
    }
}
