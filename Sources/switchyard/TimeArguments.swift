import ArgumentParser
import SwitchyardCore

/// A command-line duration: a number with a unit, such as `250ms`, `10s`,
/// `1.5m`, `2h` or `7d`; held as whole milliseconds (fractions round up).
struct DurationArgument: Hashable, Sendable, CustomStringConvertible {
    static let units: [(suffix: String, millis: UInt64)] = [
        ("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000),
    ]
    static let help = "a number with a unit: ms, s, m, h or d, such as 250ms, 10s, 5m, 1.5h"

    var milliseconds: UInt64

    init(milliseconds: UInt64) { self.milliseconds = milliseconds }

    /// Parses `text`; throws a `ValidationError` that shows the accepted form.
    init(parsing text: String) throws {
        let trimmed = text.trimmingSpaces
        if trimmed.hasPrefix("-") {
            throw ValidationError("a duration cannot be negative; give \(Self.help)")
        }
        // The longest suffix that matches: "ms" before "s" and "m".
        guard let unit = Self.units.sorted(by: { $0.suffix.count > $1.suffix.count })
            .first(where: { trimmed.hasSuffix($0.suffix) })
        else {
            if !trimmed.isEmpty && trimmed.allSatisfy({ $0.isNumber || $0 == "." }) {
                throw ValidationError("`\(trimmed)` has no unit; give \(Self.help)")
            }
            throw ValidationError("`\(trimmed)` is not a duration; give \(Self.help)")
        }
        let number = trimmed.dropLast(unit.suffix.count)
        guard let millis = Self.millis(String(number), unit: unit.millis) else {
            throw ValidationError("`\(trimmed)` is not a duration; give \(Self.help)")
        }
        self.milliseconds = millis
    }

    /// `digits[.digits] * unit`, exact in integers, fractions rounded up; nil
    /// when malformed or larger than UInt64.
    private static func millis(_ number: String, unit: UInt64) -> UInt64? {
        let parts = number.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let wholeText = parts.first, !wholeText.isEmpty || parts.count == 2,
            wholeText.allSatisfy({ $0.isASCII && $0.isNumber })
        else { return nil }
        let whole = wholeText.isEmpty ? 0 : UInt64(wholeText)
        guard let whole else { return nil }
        var (total, overflow) = whole.multipliedReportingOverflow(by: unit)
        guard !overflow else { return nil }
        if parts.count == 2 {
            let fraction = parts[1]
            guard !fraction.isEmpty, fraction.count <= 9, fraction.allSatisfy({ $0.isASCII && $0.isNumber }),
                let numerator = UInt64(fraction)
            else { return nil }
            var denominator: UInt64 = 1
            for _ in 0..<fraction.count { denominator *= 10 }
            // unit <= 86,400,000 and numerator < 10^9: the product fits in a UInt64.
            let scaled = numerator * unit
            let extra = scaled / denominator + (scaled % denominator == 0 ? 0 : 1)
            (total, overflow) = total.addingReportingOverflow(extra)
            guard !overflow else { return nil }
        }
        return total
    }

    var duration: Duration { .milliseconds(Int64(clamping: milliseconds)) }

    var description: String { formatMillis(milliseconds) }
}

/// Milliseconds in the largest unit that divides them exactly: `90s`, `5m`, `250ms`.
func formatMillis(_ millis: UInt64) -> String {
    for (suffix, size) in DurationArgument.units.reversed() where millis >= size && millis % size == 0 {
        return "\(millis / size)\(suffix)"
    }
    return "\(millis)ms"
}

/// A command-line point in time: ISO 8601 with a time zone
/// (`2026-12-01T10:00:00Z`, `2026-12-01T12:00:00.5+02:00`) or a Unix time in
/// seconds (`1796119200`, `1796119200.25`). Held as milliseconds since the epoch.
struct TimeArgument: Hashable, Sendable {
    static let help = "ISO 8601 with a time zone, such as 2026-12-01T10:00:00Z, or a Unix time in seconds"

    var epochMillis: EpochMillis

    init(parsing text: String) throws {
        let trimmed = text.trimmingSpaces
        if let first = trimmed.first, first.isNumber, trimmed.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }) {
            let parts = trimmed.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
            guard let seconds = Int64(parts[0]), seconds <= Int64.max / 1000 else {
                throw ValidationError("`\(trimmed)` is not a time; give \(Self.help)")
            }
            var millis = seconds * 1000
            if parts.count == 2 {
                let fraction = parts[1]
                guard !fraction.isEmpty, let digits = Int64(fraction.prefix(3).padding(toLength: 3)) else {
                    throw ValidationError("`\(trimmed)` is not a time; give \(Self.help)")
                }
                millis += digits
            }
            self.epochMillis = millis
            return
        }
        guard let millis = parseISO8601(trimmed) else {
            if trimmed.count == 19 || trimmed.count == 10 {
                throw ValidationError(
                    "`\(trimmed)` has no time zone; give \(Self.help) (Z for UTC, or an offset like +02:00)")
            }
            throw ValidationError("`\(trimmed)` is not a time; give \(Self.help)")
        }
        self.epochMillis = millis
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM|±HHMM]`, exactly, to milliseconds
/// since the epoch; nil when malformed, out of range, or without a time zone.
func parseISO8601(_ text: String) -> EpochMillis? {
    let chars = Array(text.utf8)
    var index = 0
    func number(_ count: Int) -> Int64? {
        guard index + count <= chars.count else { return nil }
        var value: Int64 = 0
        for byte in chars[index..<index + count] {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        index += count
        return value
    }
    func expect(_ character: Character) -> Bool {
        guard index < chars.count, let ascii = character.asciiValue, chars[index] == ascii else { return false }
        index += 1
        return true
    }
    guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
        expect("T") || expect("t"), let hour = number(2), expect(":"), let minute = number(2), expect(":"),
        let second = number(2)
    else { return nil }
    var millis: Int64 = 0
    if expect(".") {
        let start = index
        while index < chars.count, chars[index] >= UInt8(ascii: "0"), chars[index] <= UInt8(ascii: "9") { index += 1 }
        let digits = chars[start..<index]
        guard !digits.isEmpty else { return nil }
        for (position, byte) in digits.prefix(3).enumerated() {
            millis += Int64(byte - UInt8(ascii: "0")) * [100, 10, 1][position]
        }
    }
    var offsetMinutes: Int64 = 0
    if expect("Z") || expect("z") {
        offsetMinutes = 0
    } else if index < chars.count, chars[index] == UInt8(ascii: "+") || chars[index] == UInt8(ascii: "-") {
        let sign: Int64 = chars[index] == UInt8(ascii: "-") ? -1 : 1
        index += 1
        guard let offsetHours = number(2) else { return nil }
        _ = expect(":")
        guard let offsetMins = number(2), offsetHours <= 23, offsetMins <= 59 else { return nil }
        offsetMinutes = sign * (offsetHours * 60 + offsetMins)
    } else {
        return nil
    }
    guard index == chars.count, (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
        hour <= 23, minute <= 59, second <= 60
    else { return nil }
    let days = daysFromCivil(year: year, month: month, day: day)
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + min(second, 59) - offsetMinutes * 60
    return seconds * 1_000 + millis
}

/// `2026-12-01T10:00:00Z` (with `.250` when the milliseconds are not zero, or always when `fraction`).
func formatISO8601(_ millis: EpochMillis, fraction: Bool = false) -> String {
    let (days, dayMillis) = millis.quotientAndRemainder(dividingBy: 86_400_000)
    let (wholeDays, msOfDay) = dayMillis < 0 ? (days - 1, dayMillis + 86_400_000) : (days, dayMillis)
    let (year, month, day) = civilFromDays(wholeDays)
    let seconds = msOfDay / 1000
    let ms = msOfDay % 1000
    func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
    let yearText = String(year)
    var text = String(repeating: "0", count: max(0, 4 - yearText.count)) + yearText + "-\(two(month))-\(two(day))"
    text += "T\(two(seconds / 3600)):\(two(seconds / 60 % 60)):\(two(seconds % 60))"
    if fraction || ms != 0 {
        text += "." + (ms < 10 ? "00" : ms < 100 ? "0" : "") + "\(ms)"
    }
    return text + "Z"
}

private func isLeap(_ year: Int64) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

private func daysIn(month: Int64, year: Int64) -> Int64 {
    switch month {
    case 2: isLeap(year) ? 29 : 28
    case 4, 6, 9, 11: 30
    default: 31
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
private func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146_097 + dayOfEra - 719_468
}

/// The date of a day counted from 1970-01-01.
private func civilFromDays(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

extension Substring {
    fileprivate func padding(toLength length: Int) -> String {
        count >= length ? String(self) : String(self) + String(repeating: "0", count: length - count)
    }
}
