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
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        if value == 0 { return value.sign == .minus ? "-0" : "0" }
        let (digits, exponent) = shortest(mantissa: UInt64(value.significandBitPattern), exponentBits: Int(value.exponentBitPattern),
                                          mantissaBits: 52, bias: 1023, swift: value.magnitude.description,
                                          maxDigits: 17) { precision in String(format: "%.*e", precision, value.magnitude) }
        return layout(negative: value < 0, digits: digits, exponent: exponent, fixedBelow: 15)
    }

    /// PostgreSQL's output for `real`.
    package static func text(_ value: Float) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        if value == 0 { return value.sign == .minus ? "-0" : "0" }
        let (digits, exponent) = shortest(mantissa: UInt64(value.significandBitPattern), exponentBits: Int(value.exponentBitPattern),
                                          mantissaBits: 23, bias: 127, swift: value.magnitude.description,
                                          maxDigits: 9) { precision in String(format: "%.*e", precision, Double(value.magnitude)) }
        return layout(negative: value < 0, digits: digits, exponent: exponent, fixedBelow: 6)
    }

    /// The shortest decimal digits that read back to the value *strictly* inside its rounding
    /// interval, as PostgreSQL's Ryu port (built with `STRICTLY_SHORTEST = 0`) chooses them: the
    /// exact midpoint between two neighbouring values is never printed, a digit more is.
    ///
    /// Swift's `description` gives the shortest digits with the bounds allowed; they are kept
    /// unless they are exactly a bound (checked with exact integer arithmetic), in which case the
    /// correctly rounded digits of each longer length are tried.
    ///
    /// - Returns: the digits (no leading or trailing zeros) and the decimal exponent of the last one.
    private static func shortest(mantissa: UInt64, exponentBits: Int, mantissaBits: Int, bias: Int, swift: String,
                                 maxDigits: Int, format: (Int) -> String) -> (digits: [UInt8], exponent: Int) {
        // The value is m2 · 2^e2 with two extra bits (Ryu's layout), its bounds mp and mm.
        let m2: UInt64, e2: Int
        if exponentBits == 0 {
            m2 = mantissa
            e2 = 1 - bias - mantissaBits - 2
        } else {
            m2 = (UInt64(1) << mantissaBits) | mantissa
            e2 = exponentBits - bias - mantissaBits - 2
        }
        let mmShift: UInt64 = (mantissa != 0 || exponentBits <= 1) ? 1 : 0
        let upper = 4 * m2 + 2, lower = 4 * m2 - 1 - mmShift
        func strictlyInside(_ digits: [UInt8], _ exponent: Int) -> Bool {
            let value = digits.reduce(UInt64(0)) { $0 * 10 + UInt64($1 - 0x30) }
            return ExactDecimal.compare(value, tenTo: exponent, with: upper, twoTo: e2) < 0
                && ExactDecimal.compare(value, tenTo: exponent, with: lower, twoTo: e2) > 0
        }
        let candidate = decompose(swift)
        if strictlyInside(candidate.digits, candidate.exponent) { return candidate }
        for precision in candidate.digits.count..<maxDigits {
            let next = decompose(format(precision))
            if strictlyInside(next.digits, next.exponent) { return next }
        }
        return candidate
    }

    /// Digits and exponent of a Swift `description` or a `%e` rendering ("1.5e-05", "123.0", "0.001").
    private static func decompose(_ text: String) -> (digits: [UInt8], exponent: Int) {
        let parts = text.split(separator: "e", maxSplits: 1)
        var exponent = parts.count == 2 ? Int(parts[1]) ?? 0 : 0
        let pieces = parts[0].split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let integerPart = Array(pieces[0].utf8)
        let fractionPart = pieces.count == 2 ? Array(pieces[1].utf8) : []
        var digits = integerPart + fractionPart
        exponent -= fractionPart.count
        while let first = digits.first, first == UInt8(ascii: "0"), digits.count > 1 { digits.removeFirst() }
        while let last = digits.last, last == UInt8(ascii: "0"), digits.count > 1 { digits.removeLast(); exponent += 1 }
        return (digits, exponent)
    }

    /// Lays out digits (value = digits · 10^exponent) as PostgreSQL prints them.
    private static func layout(negative: Bool, digits: [UInt8], exponent: Int, fixedBelow: Int) -> String {
        let displayExponent = exponent + digits.count - 1  // d1.d2… × 10^displayExponent
        var output: [UInt8] = negative ? [UInt8(ascii: "-")] : []
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

/// Exact comparison of `a · 10^p` with `b · 2^q` (non-negative integers, any exponents), with
/// just enough of a big integer to hold the products.
enum ExactDecimal {
    /// -1, 0 or 1 as `a · 10^p` is less than, equal to or greater than `b · 2^q`.
    static func compare(_ a: UInt64, tenTo p: Int, with b: UInt64, twoTo q: Int) -> Int {
        var left = BigUInt(a), right = BigUInt(b)
        if p >= 0 { left.multiply(byPowerOf: 10, p) } else { right.multiply(byPowerOf: 10, -p) }
        if q >= 0 { right.shiftLeft(q) } else { left.shiftLeft(-q) }
        return left.compare(right)
    }

    struct BigUInt {
        /// Little-endian 32-bit limbs.
        var limbs: [UInt32]

        init(_ value: UInt64) { limbs = [UInt32(truncatingIfNeeded: value), UInt32(truncatingIfNeeded: value >> 32)] }

        mutating func multiply(by factor: UInt32) {
            var carry: UInt64 = 0
            for index in limbs.indices {
                let product = UInt64(limbs[index]) * UInt64(factor) + carry
                limbs[index] = UInt32(truncatingIfNeeded: product)
                carry = product >> 32
            }
            if carry > 0 { limbs.append(UInt32(carry)) }
        }

        mutating func multiply(byPowerOf base: UInt32, _ exponent: Int) {
            var remaining = exponent
            // 10^9 and 2^31 fit a limb multiplier.
            let step = base == 10 ? 9 : 31
            let big = base == 10 ? UInt32(1_000_000_000) : UInt32(1) << 31
            while remaining >= step { multiply(by: big); remaining -= step }
            var last: UInt32 = 1
            for _ in 0..<remaining { last *= base }
            if last > 1 { multiply(by: last) }
        }

        mutating func shiftLeft(_ bits: Int) {
            let words = bits / 32, rest = bits % 32
            if rest > 0 {
                var carry: UInt32 = 0
                for index in limbs.indices {
                    let value = limbs[index]
                    limbs[index] = value << UInt32(rest) | carry
                    carry = value >> UInt32(32 - rest)
                }
                if carry > 0 { limbs.append(carry) }
            }
            if words > 0 { limbs.insert(contentsOf: repeatElement(0, count: words), at: 0) }
        }

        func compare(_ other: BigUInt) -> Int {
            func trimmed(_ limbs: [UInt32]) -> ArraySlice<UInt32> {
                var end = limbs.count
                while end > 0 && limbs[end - 1] == 0 { end -= 1 }
                return limbs[0..<end]
            }
            let a = trimmed(limbs), b = trimmed(other.limbs)
            if a.count != b.count { return a.count < b.count ? -1 : 1 }
            for index in stride(from: a.count - 1, through: 0, by: -1) where a[index] != b[index] {
                return a[index] < b[index] ? -1 : 1
            }
            return 0
        }
    }
}
