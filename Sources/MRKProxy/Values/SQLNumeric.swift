import Foundation

/// An exact PostgreSQL `numeric`: any precision and scale PostgreSQL accepts (131,072 digits before
/// the decimal point, 16,383 after), `NaN`, `Infinity` and `-Infinity`.
///
/// It holds the value as PostgreSQL would print it, scale included: `1.50` stays `1.50` (PostgreSQL
/// keeps the scale an unconstrained `numeric` was written with), `1.5e3` is `1500`. Two values are
/// `==` when their texts are equal; `isEqualInValue(to:)` compares as PostgreSQL's `=` does
/// (`1.5 = 1.50`).
public struct SQLNumeric: Sendable, Hashable, CustomStringConvertible {
    /// The value in PostgreSQL's output form (`-12.340`, `0.001`, `NaN`, `Infinity`, `-Infinity`).
    public let text: String

    /// Digits allowed before the decimal point (PostgreSQL's `NUMERIC_WEIGHT_MAX` in decimal digits).
    static let maxIntegerDigits = 131_072
    /// Digits allowed after the decimal point (`NUMERIC_DSCALE_MAX`).
    static let maxScale = 16_383
    /// Exponents from here on are refused outright (`numeric_in` refuses `INT_MAX / 2`; anything
    /// near it overflows the format anyway).
    static let maxExponent = Int(Int32.max / 2)

    /// Parses `text` as PostgreSQL 15's `numeric_in` does: surrounding whitespace, a sign, digits
    /// with at most one decimal point, an optional exponent, or `NaN` / `[+-]Infinity` / `[+-]inf`
    /// (any case).
    ///
    /// - Returns: nil where PostgreSQL reports invalid input or overflow.
    public init?(_ text: some StringProtocol) {
        guard let parsed = Self.parse(Array(text.utf8)) else { return nil }
        self.text = parsed
    }

    /// The exact value of `decimal` (`Decimal`'s NaN becomes `NaN`).
    public init(_ decimal: Decimal) {
        if decimal.isNaN {
            text = "NaN"
        } else {
            // `Decimal.description` is a plain decimal (no exponent) in the POSIX locale.
            text = Self.parse(Array(decimal.description.utf8)) ?? "NaN"
        }
    }

    /// The exact value of `integer`.
    public init(_ integer: Int) { text = String(integer) }

    private init(canonical: String) { text = canonical }

    public var description: String { text }

    public var isNaN: Bool { text == "NaN" }
    public var isInfinite: Bool { text == "Infinity" || text == "-Infinity" }

    /// The value as a `Decimal`, when it can hold it exactly (38 significant digits at most,
    /// finite); nil otherwise.
    public var decimal: Decimal? {
        guard !isNaN, !isInfinite, let decimal = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")),
              SQLNumeric(decimal).normalized == normalized else { return nil }
        return decimal
    }

    /// The value as a `Double` (rounded); NaN and ±infinity map to their `Double` counterparts.
    public var double: Double {
        switch text {
        case "NaN": .nan
        case "Infinity": .infinity
        case "-Infinity": -.infinity
        default: Double(text) ?? .nan
        }
    }

    /// Whether the two are equal as PostgreSQL's `numeric =` compares (scale ignored; NaN equals NaN).
    public func isEqualInValue(to other: SQLNumeric) -> Bool { normalized == other.normalized }

    /// The value without trailing fractional zeros (`1.50` → `1.5`, `2.000` → `2`): the form equal
    /// values share, for blind indexes.
    var normalized: String {
        guard text.utf8.contains(UInt8(ascii: ".")) else { return text }
        var bytes = Array(text.utf8)
        while bytes.last == UInt8(ascii: "0") { bytes.removeLast() }
        if bytes.last == UInt8(ascii: ".") { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: Parsing (numeric_in, PostgreSQL 15)

    static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || (byte >= 0x09 && byte <= 0x0D)
    }

    /// Canonical output text of `bytes`, or nil when PostgreSQL would refuse them.
    static func parse(_ bytes: [UInt8]) -> String? {
        var start = 0, end = bytes.count
        while start < end && isSpace(bytes[start]) { start += 1 }
        while end > start && isSpace(bytes[end - 1]) { end -= 1 }
        guard start < end else { return nil }
        let body = bytes[start..<end]
        // The special values, matched case-insensitively and in full (numeric_in checks that only
        // whitespace follows them).
        func matches(_ word: String) -> Bool {
            let w = Array(word.utf8)
            return body.count == w.count && zip(body, w).allSatisfy { lowered($0) == $1 }
        }
        if matches("nan") { return "NaN" }
        if matches("infinity") || matches("+infinity") || matches("inf") || matches("+inf") { return "Infinity" }
        if matches("-infinity") || matches("-inf") { return "-Infinity" }
        return parseFinite(body)
    }

    private static func lowered(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte }

    /// set_var_from_str: sign, digits with at most one point, optional exponent.
    private static func parseFinite(_ body: ArraySlice<UInt8>) -> String? {
        var index = body.startIndex
        var negative = false
        if body[index] == UInt8(ascii: "+") || body[index] == UInt8(ascii: "-") {
            negative = body[index] == UInt8(ascii: "-")
            index += 1
        }
        var integerDigits: [UInt8] = []
        var fractionDigits: [UInt8] = []
        var seenPoint = false
        var digitCount = 0
        while index < body.endIndex {
            let byte = body[index]
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                if seenPoint { fractionDigits.append(byte) } else { integerDigits.append(byte) }
                digitCount += 1
            } else if byte == UInt8(ascii: ".") && !seenPoint {
                seenPoint = true
            } else {
                break
            }
            index += 1
        }
        guard digitCount > 0 else { return nil }
        var exponent = 0
        if index < body.endIndex && (body[index] == UInt8(ascii: "e") || body[index] == UInt8(ascii: "E")) {
            index += 1
            // strtol: leading whitespace, a sign, then at least one digit.
            while index < body.endIndex && isSpace(body[index]) { index += 1 }
            var exponentNegative = false
            if index < body.endIndex && (body[index] == UInt8(ascii: "+") || body[index] == UInt8(ascii: "-")) {
                exponentNegative = body[index] == UInt8(ascii: "-")
                index += 1
            }
            var exponentDigits = 0
            while index < body.endIndex, body[index] >= UInt8(ascii: "0"), body[index] <= UInt8(ascii: "9") {
                // Saturate: anything past the limit is refused below.
                exponent = min(exponent * 10 + Int(body[index] - UInt8(ascii: "0")), maxExponent)
                exponentDigits += 1
                index += 1
            }
            guard exponentDigits > 0, exponent < maxExponent else { return nil }
            if exponentNegative { exponent = -exponent }
        }
        guard index == body.endIndex else { return nil }

        // Move the decimal point by the exponent; the scale is the digits after it, never negative.
        // The result's size is checked before any digit is placed.
        var digits = integerDigits + fractionDigits
        var pointPosition = integerDigits.count + exponent  // digits before the point
        let scale = max(0, fractionDigits.count - exponent)
        let firstSignificant = digits.firstIndex { $0 != UInt8(ascii: "0") } ?? digits.count
        guard max(0, pointPosition - firstSignificant) <= maxIntegerDigits, scale <= maxScale else { return nil }
        if pointPosition < 0 {
            digits.insert(contentsOf: repeatElement(UInt8(ascii: "0"), count: -pointPosition), at: 0)
            pointPosition = 0
        }
        if pointPosition > digits.count {
            digits.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: pointPosition - digits.count))
        }
        var integerPart = Array(digits[0..<pointPosition])
        var fractionPart = Array(digits[pointPosition...])
        // The scale kept is exactly `scale` digits (the digits beyond are zeros put there by a
        // positive exponent only when scale == 0).
        if fractionPart.count > scale {
            fractionPart.removeLast(fractionPart.count - scale)
        } else if fractionPart.count < scale {
            fractionPart.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: scale - fractionPart.count))
        }
        if let firstNonZero = integerPart.firstIndex(where: { $0 != UInt8(ascii: "0") }) {
            integerPart.removeFirst(firstNonZero)
        } else {
            integerPart = []
        }
        guard integerPart.count <= maxIntegerDigits, scale <= maxScale else { return nil }
        let isZero = integerPart.isEmpty && !fractionPart.contains { $0 != UInt8(ascii: "0") }
        var output: [UInt8] = []
        output.reserveCapacity(integerPart.count + fractionPart.count + 3)
        if negative && !isZero { output.append(UInt8(ascii: "-")) }
        if integerPart.isEmpty { output.append(UInt8(ascii: "0")) } else { output += integerPart }
        if !fractionPart.isEmpty {
            output.append(UInt8(ascii: "."))
            output += fractionPart
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// A value known to be canonical (read back from a sealed plaintext, after validation).
    static func canonical(_ text: String) -> SQLNumeric? {
        guard let parsed = parse(Array(text.utf8)), parsed == text else { return nil }
        return SQLNumeric(canonical: parsed)
    }
}
