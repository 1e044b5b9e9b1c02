#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `real` and `double precision` in PostgreSQL's text forms.
///
/// Input is parsed as PostgreSQL 15's `float4in`/`float8in` parse it on the same C library:
/// `strtof`/`strtod` in the C locale (decimal and hexadecimal forms, `NaN`, `[+-]Infinity`,
/// `[+-]inf`), surrounding whitespace allowed, and a value that overflows — or underflows to zero —
/// refused. Output is PostgreSQL's default (`extra_float_digits = 1`): the shortest decimal that
/// reads back to the same value, in fixed notation for decimal exponents in [-4, 6) (`real`) or
/// [-4, 15) (`double precision`) and `d.ddde±NN` otherwise.
package enum PostgresFloat {
    /// The C locale's numeric rules (decimal point `.`), made current for the calling thread
    /// around each parse whatever the process's locale. Created once, never freed or changed.
    nonisolated(unsafe) private static let cLocale: locale_t? = newlocale(1 << LC_NUMERIC, "C", nil)

    /// `float8in`.
    package static func parseDouble(_ text: some StringProtocol) -> Double? {
        parse(text, single: false)
    }

    /// `float4in`, widened to `Double` (exactly).
    package static func parseFloat(_ text: some StringProtocol) -> Float? {
        parse(text, single: true).map { Float($0) }
    }

    private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (byte >= 0x09 && byte <= 0x0D) }

    private static func parse(_ text: some StringProtocol, single: Bool) -> Double? {
        var bytes = Array(text.utf8)
        guard !bytes.contains(0) else { return nil }
        var start = 0
        while start < bytes.count && isSpace(bytes[start]) { start += 1 }
        guard start < bytes.count else { return nil }
        bytes.append(0)
        return bytes.withUnsafeBufferPointer { buffer -> Double? in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            let begin = base + start
            var end: UnsafeMutablePointer<CChar>?
            let previous = uselocale(cLocale)
            errno = 0
            let value: Double = single ? Double(strtof(begin, &end)) : strtod(begin, &end)
            let failedErrno = errno
            uselocale(previous)
            guard let stop = end else { return nil }
            var consumed = UnsafePointer(stop) - base
            if consumed == start || failedErrno != 0 {
                // PostgreSQL's own checks for the special words, then its overflow rule: ERANGE is
                // an error when the result is zero or infinite (a denormal is accepted).
                let word = String(decoding: bytes[start..<(bytes.count - 1)], as: UTF8.self).lowercased()
                for (prefix, special) in [("nan", Double.nan), ("infinity", .infinity), ("+infinity", .infinity),
                                          ("-infinity", -.infinity), ("inf", .infinity), ("+inf", .infinity), ("-inf", -.infinity)]
                where word.hasPrefix(prefix) {
                    let rest = word.utf8.dropFirst(prefix.utf8.count)
                    return rest.allSatisfy(isSpace) ? special : nil
                }
                guard failedErrno == ERANGE, value != 0, value.isFinite else { return nil }
                if single && !Float(value).isFinite { return nil }
            }
            while consumed < bytes.count - 1 && isSpace(bytes[consumed]) { consumed += 1 }
            return consumed == bytes.count - 1 ? value : nil
        }
    }

    /// PostgreSQL's output for `double precision`.
    package static func text(_ value: Double) -> String {
        format(sign: value.sign == .minus, description: value.magnitude.description, isNaN: value.isNaN,
               isInfinite: value.isInfinite, isZero: value == 0, fixedBelow: 15)
    }

    /// PostgreSQL's output for `real`.
    package static func text(_ value: Float) -> String {
        format(sign: value.sign == .minus, description: value.magnitude.description, isNaN: value.isNaN,
               isInfinite: value.isInfinite, isZero: value == 0, fixedBelow: 6)
    }

    /// Rebuilds Swift's shortest round-trip digits (its `description`) in PostgreSQL's layout.
    private static func format(sign: Bool, description: String, isNaN: Bool, isInfinite: Bool, isZero: Bool,
                               fixedBelow: Int) -> String {
        if isNaN { return "NaN" }
        if isInfinite { return sign ? "-Infinity" : "Infinity" }
        if isZero { return sign ? "-0" : "0" }
        // description: "123.45", "1e-05", "1.2345e+16", "0.0001" — digits and a decimal exponent.
        let parts = description.split(separator: "e", maxSplits: 1)
        let mantissa = parts[0]
        var exponent = parts.count == 2 ? Int(parts[1]) ?? 0 : 0
        let pieces = mantissa.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let integerPart = Array(pieces[0].utf8)
        let fractionPart = pieces.count == 2 ? Array(pieces[1].utf8) : []
        var digits = integerPart + fractionPart
        // The value is 0.d1d2… × 10^(exponent + integer digits); strip leading and trailing zeros.
        exponent += integerPart.count
        while let first = digits.first, first == UInt8(ascii: "0") { digits.removeFirst(); exponent -= 1 }
        while let last = digits.last, last == UInt8(ascii: "0") { digits.removeLast() }
        guard !digits.isEmpty else { return sign ? "-0" : "0" }
        let displayExponent = exponent - 1  // d1.d2… × 10^displayExponent
        var output: [UInt8] = sign ? [UInt8(ascii: "-")] : []
        if displayExponent >= -4 && displayExponent < fixedBelow {
            if displayExponent < 0 {
                output += Array("0.".utf8) + Array(repeating: UInt8(ascii: "0"), count: -displayExponent - 1) + digits
            } else if digits.count <= displayExponent + 1 {
                output += digits + Array(repeating: UInt8(ascii: "0"), count: displayExponent + 1 - digits.count)
            } else {
                output += digits[0...displayExponent]
                output.append(UInt8(ascii: "."))
                output += digits[(displayExponent + 1)...]
            }
        } else {
            output.append(digits[0])
            if digits.count > 1 {
                output.append(UInt8(ascii: "."))
                output += digits[1...]
            }
            output.append(UInt8(ascii: "e"))
            output.append(displayExponent < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
            let magnitude = String(abs(displayExponent))
            if magnitude.count < 2 { output.append(UInt8(ascii: "0")) }
            output += Array(magnitude.utf8)
        }
        return String(decoding: output, as: UTF8.self)
    }
}
