import Foundation

/// A PostgreSQL `date`: a day of the proleptic Gregorian calendar from 4714-11-24 BC to
/// 5874897-12-31, or `±infinity`.
public struct SQLDate: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Days since 1970-01-01; `Int32.min` is `-infinity`, `Int32.max` is `infinity`.
    public let daysSinceEpoch: Int32

    public static let infinity = SQLDate(unchecked: .max)
    public static let negativeInfinity = SQLDate(unchecked: .min)

    private init(unchecked days: Int32) { daysSinceEpoch = days }

    /// The date `days` after 1970-01-01 (negative before); nil outside PostgreSQL's range.
    public init?(daysSinceEpoch days: Int) {
        guard PostgresCalendar.dateRange.contains(days) else { return nil }
        daysSinceEpoch = Int32(days)
    }

    /// The date with these fields; `year` is astronomical (0 is 1 BC, -1 is 2 BC). Nil for an
    /// impossible date or one outside PostgreSQL's range.
    public init?(year: Int, month: Int, day: Int) {
        guard PostgresCalendar.isValid(year: year, month: month, day: day),
              let days = SQLDate(daysSinceEpoch: PostgresCalendar.days(fromCivil: year, month, day)) else { return nil }
        self = days
    }

    /// The UTC calendar day of `date`; nil outside PostgreSQL's range.
    public init?(_ date: Date) {
        let seconds = date.timeIntervalSince1970
        guard seconds.isFinite, seconds.magnitude < 1e15 else { return nil }
        self.init(daysSinceEpoch: Int((seconds / 86_400).rounded(.down)))
    }

    /// Parses PostgreSQL date input (see `PostgresDateTimeText`); nil where PostgreSQL would
    /// refuse it or the form is not supported.
    public init?(_ text: some StringProtocol) {
        guard case .success(let date) = PostgresDateTimeText.parseDate(text) else { return nil }
        self = date
    }

    public var isInfinite: Bool { daysSinceEpoch == .max || daysSinceEpoch == .min }

    /// Year (astronomical), month and day; nil for `±infinity`.
    public var components: (year: Int, month: Int, day: Int)? {
        isInfinite ? nil : PostgresCalendar.civil(fromDays: Int(daysSinceEpoch))
    }

    /// Midnight UTC of the day; nil for `±infinity`.
    public var date: Date? {
        isInfinite ? nil : Date(timeIntervalSince1970: Double(daysSinceEpoch) * 86_400)
    }

    /// PostgreSQL's output (`DateStyle = ISO`): `2024-02-29`, `0044-03-15 BC`, `infinity`.
    public var description: String {
        if daysSinceEpoch == .max { return "infinity" }
        if daysSinceEpoch == .min { return "-infinity" }
        let (year, month, day) = PostgresCalendar.civil(fromDays: Int(daysSinceEpoch))
        return PostgresCalendar.dateText(year: year, month: month, day: day) + (year <= 0 ? " BC" : "")
    }

    public static func < (a: SQLDate, b: SQLDate) -> Bool { a.daysSinceEpoch < b.daysSinceEpoch }
}

/// A PostgreSQL `timestamp` (a local date and time, no zone) or `timestamptz` (an instant) with
/// microsecond precision, from 4714-11-24 00:00 BC to 294276-12-31 23:59:59.999999, or `±infinity`.
/// Which of the two it is comes from the `SQLValue` case that holds it.
public struct SQLTimestamp: Sendable, Hashable, Comparable {
    /// Microseconds since 2000-01-01 00:00:00 (UTC for `timestamptz`), PostgreSQL's own
    /// representation; `Int64.min` is `-infinity`, `Int64.max` is `infinity`.
    public let microsecondsSince2000: Int64

    /// Microseconds from 1970-01-01 to 2000-01-01.
    static let microsecondsFrom1970To2000: Int64 = 946_684_800_000_000

    public static let infinity = SQLTimestamp(unchecked: .max)
    public static let negativeInfinity = SQLTimestamp(unchecked: .min)

    private init(unchecked micros: Int64) { microsecondsSince2000 = micros }

    /// The timestamp `micros` after 2000-01-01 00:00; nil outside PostgreSQL's range.
    public init?(microsecondsSince2000 micros: Int64) {
        guard PostgresCalendar.timestampRange.contains(micros) else { return nil }
        microsecondsSince2000 = micros
    }

    /// The timestamp `micros` after 1970-01-01 00:00; nil outside PostgreSQL's range.
    public init?(microsecondsSince1970 micros: Int64) {
        let (shifted, overflow) = micros.subtractingReportingOverflow(Self.microsecondsFrom1970To2000)
        guard !overflow else { return nil }
        self.init(microsecondsSince2000: shifted)
    }

    /// `date`, rounded to the microsecond; nil outside PostgreSQL's range.
    public init?(_ date: Date) {
        let micros = (date.timeIntervalSince1970 * 1_000_000).rounded()
        guard micros.isFinite, micros.magnitude < 9e18, let exact = Int64(exactly: micros) else { return nil }
        self.init(microsecondsSince1970: exact)
    }

    public var isInfinite: Bool { microsecondsSince2000 == .max || microsecondsSince2000 == .min }

    /// The instant (for a `timestamp`, as if its time were UTC); nil for `±infinity`. `Date` holds
    /// about 15 significant digits: far from 2001 it is not microsecond-exact.
    public var date: Date? {
        isInfinite ? nil : Date(timeIntervalSince1970: (Double(microsecondsSince2000) + Double(Self.microsecondsFrom1970To2000)) / 1_000_000)
    }

    /// PostgreSQL's output of a `timestamp` (`DateStyle = ISO`): `2024-02-29 13:05:00.25`.
    public var timestampText: String { text(zone: false) }

    /// PostgreSQL's output of a `timestamptz` in a session whose `TimeZone` is UTC:
    /// `2024-02-29 13:05:00.25+00`.
    public var timestamptzText: String { text(zone: true) }

    private func text(zone: Bool) -> String {
        if microsecondsSince2000 == .max { return "infinity" }
        if microsecondsSince2000 == .min { return "-infinity" }
        let (days2000, micros) = microsecondsSince2000.floorDivided(by: 86_400_000_000)
        let (year, month, day) = PostgresCalendar.civil(fromDays: Int(days2000) + PostgresCalendar.daysFrom1970To2000)
        let seconds = micros / 1_000_000, fraction = micros % 1_000_000
        var text = PostgresCalendar.dateText(year: year, month: month, day: day) + " "
            + PostgresCalendar.twoDigits(Int(seconds / 3600)) + ":" + PostgresCalendar.twoDigits(Int(seconds / 60 % 60)) + ":"
            + PostgresCalendar.twoDigits(Int(seconds % 60))
        if fraction != 0 {
            var digits = String(fraction)
            digits = String(repeating: "0", count: 6 - digits.count) + digits
            while digits.hasSuffix("0") { digits.removeLast() }
            text += "." + digits
        }
        if zone { text += "+00" }
        if year <= 0 { text += " BC" }
        return text
    }

    public static func < (a: SQLTimestamp, b: SQLTimestamp) -> Bool { a.microsecondsSince2000 < b.microsecondsSince2000 }
}

extension Int64 {
    /// Floor division and the (non-negative) remainder.
    func floorDivided(by divisor: Int64) -> (quotient: Int64, remainder: Int64) {
        var quotient = self / divisor, remainder = self % divisor
        if remainder < 0 { quotient -= 1; remainder += divisor }
        return (quotient, remainder)
    }
}

/// The proleptic Gregorian calendar as PostgreSQL uses it, and its ranges.
enum PostgresCalendar {
    /// Julian day number of 1970-01-01.
    static let unixEpochJulianDay = 2_440_588
    /// Valid `date` values as days since 1970: Julian day 0 (4714-11-24 BC) up to, not including,
    /// Julian day 2147483494 (5874898-01-01).
    static let dateRange = (0 - unixEpochJulianDay)..<(2_147_483_494 - unixEpochJulianDay)
    /// Days from 1970-01-01 to 2000-01-01.
    static let daysFrom1970To2000 = 10_957
    /// Valid `timestamp` values as microseconds since 2000 (PostgreSQL's `MIN_TIMESTAMP` and
    /// `END_TIMESTAMP`): 4714-11-24 00:00 BC up to, not including, 294277-01-01 00:00.
    static let timestampRange: Range<Int64> = -211_813_488_000_000_000..<9_223_371_331_200_000_000

    static func isLeap(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    static func daysInMonth(_ year: Int, _ month: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Whether the fields name a real day (any year; the range is checked separately).
    static func isValid(year: Int, month: Int, day: Int) -> Bool {
        year.magnitude < 10_000_000 && (1...12).contains(month) && day >= 1 && day <= daysInMonth(year, month)
    }

    /// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm); `year` is astronomical and
    /// at most 10⁷ in magnitude, which keeps the arithmetic far from overflow.
    static func days(fromCivil year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The civil date of a day count since 1970-01-01.
    static func civil(fromDays days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    static func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }

    /// `YYYY-MM-DD` with the year as PostgreSQL prints it (1 BC is 0001, at least four digits).
    static func dateText(year: Int, month: Int, day: Int) -> String {
        var yearText = String(year <= 0 ? 1 - year : year)
        if yearText.count < 4 { yearText = String(repeating: "0", count: 4 - yearText.count) + yearText }
        return yearText + "-" + twoDigits(month) + "-" + twoDigits(day)
    }
}

/// PostgreSQL date and time input, for the forms MRKProxy supports: ISO 8601 dates
/// (`YYYY-MM-DD`, a year of three or more digits, optional `BC`/`AD`), optionally followed by a time
/// (`HH:MM[:SS[.fraction]]`, after a space or `T`) and a zone (`Z`, `UTC`, `GMT`, `±HH`, `±HHMM`,
/// `±HH:MM`, `±HH:MM:SS`), and the words `infinity`, `-infinity` and `epoch`. Other forms
/// PostgreSQL accepts (month names, other field orders, zone names, `now`/`today`) are refused
/// with `.unsupported`; values PostgreSQL refuses are refused with `.invalid`.
///
/// The rules are PostgreSQL 15's: hour 24 only as `24:00:00`, second 60 allowed (it carries into
/// the next minute), fractions rounded to the microsecond (half to even, as `rint`), zone offsets
/// below 16 hours; a zone given for a `timestamp` or `date` is ignored, as PostgreSQL does.
enum PostgresDateTimeText {
    enum Failure: Error, Equatable {
        /// PostgreSQL would refuse the value.
        case invalid
        /// PostgreSQL may accept it, but MRKProxy does not read this form.
        case unsupported
    }

    /// The fields of a parsed value.
    struct Fields {
        enum Special { case infinity, negativeInfinity, epoch }
        var special: Special?
        var year = 1970, month = 1, day = 1
        var hasTime = false
        var hour = 0, minute = 0, second = 0
        /// Microseconds, 0...1_000_000 (rounding can reach a whole second).
        var microsecond = 0
        /// Seconds east of UTC, when a zone was given.
        var zoneOffset: Int?
    }

    static func parseDate(_ text: some StringProtocol) -> Result<SQLDate, Failure> {
        switch parse(Array(text.utf8)) {
        case .failure(let failure): return .failure(failure)
        case .success(let fields):
            switch fields.special {
            case .infinity: return .success(.infinity)
            case .negativeInfinity: return .success(.negativeInfinity)
            case .epoch: return .success(SQLDate(daysSinceEpoch: 0)!)
            case nil:
                guard let date = SQLDate(year: fields.year, month: fields.month, day: fields.day) else { return .failure(.invalid) }
                return .success(date)
            }
        }
    }

    /// Parses a `timestamp` (zone: nil) or a `timestamptz` (zone: the offset, in seconds east of
    /// UTC, of the session's time zone for values written without one; nil when the session's zone
    /// has no fixed offset, and such values are refused as `.unsupported`).
    static func parseTimestamp(_ text: some StringProtocol, withTimeZone: Bool, sessionOffset: Int?) -> Result<SQLTimestamp, Failure> {
        switch parse(Array(text.utf8)) {
        case .failure(let failure): return .failure(failure)
        case .success(let fields):
            switch fields.special {
            case .infinity: return .success(.infinity)
            case .negativeInfinity: return .success(.negativeInfinity)
            case .epoch: return .success(SQLTimestamp(microsecondsSince1970: 0)!)
            case nil: break
            }
            guard PostgresCalendar.isValid(year: fields.year, month: fields.month, day: fields.day) else { return .failure(.invalid) }
            var offset = 0
            if withTimeZone {
                guard let zone = fields.zoneOffset ?? sessionOffset else { return .failure(.unsupported) }
                offset = zone
            }
            // Julian-day check first, as PostgreSQL does (it also bounds the arithmetic below).
            let days = PostgresCalendar.days(fromCivil: fields.year, fields.month, fields.day)
            guard PostgresCalendar.dateRange.contains(days) else { return .failure(.invalid) }
            // Dates reach 5874897 AD, timestamps 294276 AD: compute with overflow checks.
            let seconds = Int64(days - PostgresCalendar.daysFrom1970To2000).multipliedReportingOverflow(by: 86_400)
            let clock = Int64(fields.hour * 3600 + fields.minute * 60 + fields.second - offset)
            let (micros, o1) = (seconds.partialValue &+ clock).multipliedReportingOverflow(by: 1_000_000)
            guard !seconds.overflow, !o1, let timestamp = SQLTimestamp(microsecondsSince2000: micros &+ Int64(fields.microsecond)) else {
                return .failure(.invalid)
            }
            return .success(timestamp)
        }
    }

    private static func lowered(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte }
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
    private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (byte >= 0x09 && byte <= 0x0D) }
    private static func isLetter(_ byte: UInt8) -> Bool { (lowered(byte) >= 0x61 && lowered(byte) <= 0x7A) }

    static func parse(_ input: [UInt8]) -> Result<Fields, Failure> {
        var start = 0, end = input.count
        while start < end && isSpace(input[start]) { start += 1 }
        while end > start && isSpace(input[end - 1]) { end -= 1 }
        let bytes = Array(input[start..<end])
        guard !bytes.isEmpty else { return .failure(.invalid) }
        var fields = Fields()
        let word = String(decoding: bytes.map(lowered), as: UTF8.self)
        switch word {
        case "infinity": fields.special = .infinity; return .success(fields)
        case "-infinity": fields.special = .negativeInfinity; return .success(fields)
        case "epoch": fields.special = .epoch; return .success(fields)
        case "now", "today", "tomorrow", "yesterday", "allballs": return .failure(.unsupported)
        default: break
        }
        var index = 0
        func number(maxDigits: Int) -> (value: Int, digits: Int)? {
            var value = 0, digits = 0
            while index < bytes.count, isDigit(bytes[index]) {
                guard digits < maxDigits else { return nil }
                value = value * 10 + Int(bytes[index] - 0x30)
                digits += 1
                index += 1
            }
            return digits == 0 ? nil : (value, digits)
        }
        // The date: Y…Y-M[M]-D[D].
        guard let year = number(maxDigits: 9) else { return .failure(.unsupported) }
        guard index < bytes.count, bytes[index] == UInt8(ascii: "-") else { return .failure(.unsupported) }
        guard year.digits >= 3 else { return .failure(.unsupported) }  // two-digit years depend on DateStyle
        index += 1
        guard let month = number(maxDigits: 2), index < bytes.count, bytes[index] == UInt8(ascii: "-") else { return .failure(.unsupported) }
        index += 1
        guard let day = number(maxDigits: 2) else { return .failure(.unsupported) }
        fields.month = month.value
        fields.day = day.value
        var era: Bool?  // true: BC
        var rawYear = year.value

        // Then, in order: an optional time, an optional zone, an optional era.
        func skipSpaces() -> Bool {
            let before = index
            while index < bytes.count && isSpace(bytes[index]) { index += 1 }
            return index > before
        }
        func letters() -> String {
            let begin = index
            while index < bytes.count && isLetter(bytes[index]) { index += 1 }
            return String(decoding: bytes[begin..<index].map(lowered), as: UTF8.self)
        }
        func parseOffset() -> Result<Int, Failure> {
            let negative = bytes[index] == UInt8(ascii: "-")
            index += 1
            let begin = index
            guard let first = number(maxDigits: 9) else { return .failure(.invalid) }
            var hours = first.value, minutes = 0, seconds = 0
            if first.digits == 4 && index - begin == 4 {
                hours = first.value / 100
                minutes = first.value % 100
            } else if first.digits == 6 {
                hours = first.value / 10_000
                minutes = first.value / 100 % 100
                seconds = first.value % 100
            } else if first.digits > 2 {
                return .failure(.invalid)
            } else if index < bytes.count && bytes[index] == UInt8(ascii: ":") {
                index += 1
                guard let m = number(maxDigits: 2) else { return .failure(.invalid) }
                minutes = m.value
                if index < bytes.count && bytes[index] == UInt8(ascii: ":") {
                    index += 1
                    guard let s = number(maxDigits: 2) else { return .failure(.invalid) }
                    seconds = s.value
                }
            }
            // PostgreSQL: |offset| < 16 h, minutes and seconds below 60.
            guard hours < 16, minutes < 60, seconds < 60 else { return .failure(.invalid) }
            let offset = hours * 3600 + minutes * 60 + seconds
            return .success(negative ? -offset : offset)
        }

        var sawSpace = skipSpaces()
        if index < bytes.count && (lowered(bytes[index]) == UInt8(ascii: "t") || sawSpace) && index + 1 < bytes.count
            && (isDigit(bytes[index]) || (lowered(bytes[index]) == UInt8(ascii: "t") && isDigit(bytes[index + 1]))) {
            if lowered(bytes[index]) == UInt8(ascii: "t") { index += 1 }
            guard let hour = number(maxDigits: 2), index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                return .failure(.unsupported)
            }
            index += 1
            guard let minute = number(maxDigits: 2) else { return .failure(.unsupported) }
            fields.hasTime = true
            fields.hour = hour.value
            fields.minute = minute.value
            if index < bytes.count && bytes[index] == UInt8(ascii: ":") {
                index += 1
                guard let second = number(maxDigits: 2) else { return .failure(.invalid) }
                fields.second = second.value
                if index < bytes.count && bytes[index] == UInt8(ascii: ".") {
                    let begin = index
                    index += 1
                    while index < bytes.count && isDigit(bytes[index]) { index += 1 }
                    // ParseFraction: strtod of ".ddd", times 10⁶, rint (half to even).
                    let fraction = String(decoding: bytes[begin..<index], as: UTF8.self)
                    guard index - begin > 1, let value = PostgresFloat.parseDouble("0" + fraction) else { return .failure(.invalid) }
                    fields.microsecond = Int((value * 1_000_000).rounded(.toNearestOrEven))
                }
            }
            // The fields' ranges, and a time of day of at most 24:00:00 (so 23:59:60.5 is refused
            // while 10:59:60.5 carries into the next minute), as PostgreSQL checks them.
            let timeOfDay = ((fields.hour * 60 + fields.minute) * 60 + fields.second) * 1_000_000 + fields.microsecond
            guard fields.hour <= 24, fields.minute <= 59, fields.second <= 60, fields.microsecond <= 1_000_000,
                  timeOfDay <= 86_400_000_000 else {
                return .failure(.invalid)
            }
            sawSpace = skipSpaces()
        }
        // Zone and era, each at most once, in either order.
        while index < bytes.count {
            let current = bytes[index]
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") {
                guard fields.zoneOffset == nil, fields.hasTime else { return .failure(.unsupported) }
                switch parseOffset() {
                case .failure(let failure): return .failure(failure)
                case .success(let offset): fields.zoneOffset = offset
                }
            } else if isLetter(current) {
                let name = letters()
                switch name {
                case "bc", "ad":
                    guard era == nil, sawSpace || !fields.hasTime else { return .failure(.unsupported) }
                    era = name == "bc"
                case "z", "utc", "gmt", "ut", "zulu":
                    guard fields.zoneOffset == nil, fields.hasTime else { return .failure(.unsupported) }
                    fields.zoneOffset = 0
                default:
                    return .failure(.unsupported)
                }
            } else {
                return .failure(.unsupported)
            }
            sawSpace = skipSpaces()
        }
        // Year 0 does not exist in either era.
        guard rawYear > 0 else { return .failure(.invalid) }
        if era == true { rawYear = 1 - rawYear }
        fields.year = rawYear
        guard (1...12).contains(fields.month), fields.day >= 1, fields.day <= PostgresCalendar.daysInMonth(fields.year, fields.month) else {
            return .failure(.invalid)
        }
        return .success(fields)
    }
}
