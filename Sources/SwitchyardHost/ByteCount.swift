import Foundation

/// Byte counts as people write them: `64M`, `2G`, `4096`.
public enum ByteCount {
    static let units: [(suffix: Character, bytes: UInt64)] = [("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40)]

    /// Parses a whole number of bytes with an optional K, M, G or T suffix
    /// (powers of 1024; `B` and `iB` after it are accepted); nil when malformed.
    public static func parse(_ text: String) -> UInt64? {
        var body = Substring(text.uppercased())
        if body.hasSuffix("IB") { body = body.dropLast(2) } else if body.hasSuffix("B") { body = body.dropLast() }
        var multiplier: UInt64 = 1
        if let last = body.last, let unit = units.first(where: { $0.suffix == last }) {
            multiplier = unit.bytes
            body = body.dropLast()
        }
        guard !body.isEmpty, body.allSatisfy({ $0.isASCII && $0.isNumber }), let number = UInt64(body) else {
            return nil
        }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : bytes
    }

    /// `64 MiB`, `1.5 GiB`, `1000 bytes`.
    static func describe(_ bytes: UInt64) -> String {
        for unit in units.reversed() where bytes >= unit.bytes {
            let value = Double(bytes) / Double(unit.bytes)
            let text = value == value.rounded() ? "\(Int(value))" : String(format: "%.1f", value)
            return "\(text) \(unit.suffix)iB"
        }
        return "\(bytes) bytes"
    }

    /// The shortest exact flag value: `64M`, or the bytes.
    static func flagValue(_ bytes: UInt64) -> String {
        for unit in units.reversed() where bytes >= unit.bytes && bytes % unit.bytes == 0 {
            return "\(bytes / unit.bytes)\(unit.suffix)"
        }
        return "\(bytes)"
    }
}
