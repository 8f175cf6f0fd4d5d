import NIOCore

/// One argument of a bound C function, checked against its declared type.
public enum BindingValue: Sendable, Hashable {
    case bool(Bool)
    /// Any signed integer type, already checked against that type's range.
    case signed(Int64)
    /// Any unsigned integer type, already checked against that type's range.
    case unsigned(UInt64)
    case float(Float)
    case double(Double)
    /// A `string` argument's UTF-8 (no NUL inside; the terminator is added at
    /// the call) or a `bytes` argument's bytes.
    case bytes([UInt8])
}

/// Arguments that do not fit a binding's signature: answered BAD_ARGUMENTS.
public struct BadArguments: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Turns a task's payload, a JSON array, into the typed arguments of a
/// binding, and a C result back into JSON.
///
/// A small JSON reader of its own rather than Foundation's: integers must be
/// checked exactly against their C type's range (JSONSerialization turns
/// 18446744073709551616 into a Double and would let it be truncated), and it
/// reads the payload in place, without a Data copy (see bench/ffi for the cost).
public enum BindingArguments {
    /// The arguments in `json` for `signature`. Throws naming the first bad
    /// argument's position (from 1) and its expected type.
    public static func decode(
        _ json: UnsafeRawBufferPointer, for signature: BindingSignature
    ) throws(BadArguments) -> [BindingValue] {
        let types = signature.arguments
        var reader = JSONArrayReader(bytes: json)
        let elements = try reader.readArray()
        guard elements.count == types.count else {
            let list = types.map(\.rawValue).joined(separator: ", ")
            throw BadArguments(
                "expects \(types.count) argument\(types.count == 1 ? "" : "s") (\(list)), got \(elements.count); the payload is a JSON array of them"
            )
        }
        var values: [BindingValue] = []
        values.reserveCapacity(types.count)
        for (index, (element, type)) in zip(elements, types).enumerated() {
            values.append(try convert(element, to: type, position: index + 1, json: json))
        }
        return values
    }

    /// Convenience for tests and tools: decodes from bytes.
    public static func decode(_ json: [UInt8], for signature: BindingSignature) throws(BadArguments) -> [BindingValue] {
        do {
            return try json.withUnsafeBytes { raw in try decode(raw, for: signature) }
        } catch let error as BadArguments {
            throw error
        } catch {
            throw BadArguments("\(error)")  // unreachable: decode throws only BadArguments
        }
    }

    private static func convert(
        _ element: JSONArrayReader.Element, to type: BindingType, position: Int, json: UnsafeRawBufferPointer
    ) throws(BadArguments) -> BindingValue {
        func wrong() -> BadArguments {
            BadArguments("argument \(position) must be \(type.rawValue), got \(element.describe(in: json))")
        }
        switch type {
        case .bool:
            guard case .bool(let value) = element else { throw wrong() }
            return .bool(value)
        case .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64:
            guard case .number(let start, let end, let integral) = element else { throw wrong() }
            guard integral else {
                throw BadArguments(
                    "argument \(position) must be \(type.rawValue) (an integer), got \(element.describe(in: json))")
            }
            return try integer(json, start, end, type: type, position: position)
        case .float, .double:
            guard case .number(let start, let end, _) = element else { throw wrong() }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: json[start..<end]), as: UTF8.self)
            guard let value = Double(text), value.isFinite else {
                throw BadArguments("argument \(position): \(text) is out of range for \(type.rawValue)")
            }
            if type == .double { return .double(value) }
            let narrow = Float(value)
            guard narrow.isFinite else {
                throw BadArguments("argument \(position): \(text) is out of range for float")
            }
            return .float(narrow)
        case .string:
            guard case .string(let bytes) = element else { throw wrong() }
            guard !bytes.contains(0) else {
                throw BadArguments("argument \(position) must be string without NUL (\\u0000): C would cut it there")
            }
            return .bytes(bytes)
        case .bytes:
            guard case .string(let bytes) = element else {
                throw BadArguments(
                    "argument \(position) must be bytes (a JSON string, passed as its UTF-8), got \(element.describe(in: json))"
                )
            }
            return .bytes(bytes)
        case .void, .outLength:
            throw wrong()  // not client arguments: the signature parser keeps them out
        }
    }

    /// Reads an integer literal exactly; out of `type`'s range is an error, never a truncation.
    private static func integer(
        _ json: UnsafeRawBufferPointer, _ start: Int, _ end: Int, type: BindingType, position: Int
    ) throws(BadArguments) -> BindingValue {
        let negative = json[start] == UInt8(ascii: "-")
        var magnitude: UInt64 = 0
        var overflow = false
        for index in (negative ? start + 1 : start)..<end {
            let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(json[index] &- UInt8(ascii: "0")))
            overflow = overflow || o1 || o2
            magnitude = sum
        }
        let bits = type.bits
        func outOfRange() -> BadArguments {
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: json[start..<end]), as: UTF8.self)
            let range =
                type.isSigned
                ? "\(bits == 64 ? Int64.min : -(Int64(1) << (bits - 1))) to \(bits == 64 ? Int64.max : (Int64(1) << (bits - 1)) - 1)"
                : "0 to \(bits == 64 ? UInt64.max : (UInt64(1) << bits) - 1)"
            return BadArguments("argument \(position): \(text) is out of range for \(type.rawValue) (\(range))")
        }
        if overflow { throw outOfRange() }
        if type.isSigned {
            // The largest magnitude: 2^(bits-1) when negative, 2^(bits-1) - 1 otherwise.
            let limit = (UInt64(1) << (bits - 1)) - (negative ? 0 : 1)
            guard magnitude <= limit else { throw outOfRange() }
            return .signed(negative ? Int64(truncatingIfNeeded: 0 &- magnitude) : Int64(magnitude))
        }
        guard !negative || magnitude == 0 else { throw outOfRange() }
        guard bits == 64 || magnitude <= (UInt64(1) << bits) - 1 else { throw outOfRange() }
        return .unsigned(magnitude)
    }
}

/// What a bound function returned, ready to be written as the task's result.
public enum BindingResultJSON {
    public static func writeNull(to buffer: inout ByteBuffer) { buffer.writeStaticString("null") }

    public static func write(_ value: Bool, to buffer: inout ByteBuffer) {
        buffer.writeStaticString(value ? "true" : "false")
    }

    public static func write(_ value: Int64, to buffer: inout ByteBuffer) { buffer.writeString(String(value)) }

    public static func write(_ value: UInt64, to buffer: inout ByteBuffer) { buffer.writeString(String(value)) }

    /// A finite double as its shortest round-trip form; NaN and infinities, which
    /// JSON cannot hold, as `null`.
    public static func write(_ value: Double, to buffer: inout ByteBuffer) {
        guard value.isFinite else { return writeNull(to: &buffer) }
        buffer.writeString(value.description)
    }

    public static func write(_ value: Float, to buffer: inout ByteBuffer) {
        guard value.isFinite else { return writeNull(to: &buffer) }
        buffer.writeString(value.description)
    }

    /// A C string as a JSON string; bytes that are not UTF-8 become U+FFFD.
    public static func writeString(_ bytes: UnsafeRawBufferPointer, to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        if bytes.allSatisfy({ $0 < 0x80 }) {
            appendEscaped(bytes, to: &buffer)
        } else {
            var text = String(decoding: bytes, as: UTF8.self)
            text.withUTF8 { appendEscaped(UnsafeRawBufferPointer($0), to: &buffer) }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    private static func appendEscaped(_ bytes: UnsafeRawBufferPointer, to buffer: inout ByteBuffer) {
        let hex = Array("0123456789abcdef".utf8)
        var runStart = 0
        for (index, byte) in bytes.enumerated() where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<index]))
            runStart = index + 1
            switch byte {
            case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
            case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
            case UInt8(ascii: "\n"): buffer.writeStaticString("\\n")
            case UInt8(ascii: "\r"): buffer.writeStaticString("\\r")
            case UInt8(ascii: "\t"): buffer.writeStaticString("\\t")
            default: buffer.writeBytes([UInt8(ascii: "\\"), UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 15)]])
            }
        }
        buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart...]))
    }
}

/// Reads one JSON array of scalars (nested arrays and objects are read, and
/// refused later as the wrong type). Positions are byte offsets in `bytes`.
struct JSONArrayReader {
    enum Element {
        /// The literal's bytes; `integral` when it has no fraction and no exponent.
        case number(start: Int, end: Int, integral: Bool)
        case string([UInt8])
        case bool(Bool)
        case null
        case array
        case object

        func describe(in json: UnsafeRawBufferPointer) -> String {
            switch self {
            case .number(let start, let end, _):
                let text = String(decoding: UnsafeRawBufferPointer(rebasing: json[start..<end]), as: UTF8.self)
                return "the number \(text)"
            case .string: return "a string"
            case .bool(let value): return "\(value)"
            case .null: return "null"
            case .array: return "an array"
            case .object: return "an object"
            }
        }
    }

    let bytes: UnsafeRawBufferPointer
    var index = 0

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    private func fail(_ what: String) -> BadArguments {
        BadArguments("the payload is not a JSON array of arguments: \(what) at byte \(index)")
    }

    private mutating func skipSpace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func readArray() throws(BadArguments) -> [Element] {
        skipSpace()
        guard peek() == UInt8(ascii: "[") else { throw fail("expected `[`") }
        index += 1
        var elements: [Element] = []
        skipSpace()
        if peek() == UInt8(ascii: "]") {
            index += 1
        } else {
            while true {
                elements.append(try readValue(depth: 1))
                skipSpace()
                guard let next = peek() else { throw fail("unterminated array") }
                index += 1
                if next == UInt8(ascii: "]") { break }
                guard next == UInt8(ascii: ",") else {
                    index -= 1
                    throw fail("expected `,` or `]`")
                }
            }
        }
        skipSpace()
        guard index == bytes.count else { throw fail("text after the array") }
        return elements
    }

    private mutating func readValue(depth: Int) throws(BadArguments) -> Element {
        skipSpace()
        guard let first = peek() else { throw fail("a value is missing") }
        switch first {
        case UInt8(ascii: "\""):
            return .string(try readString())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try readNumber()
        case UInt8(ascii: "t"):
            try expectWord("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectWord("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectWord("null")
            return .null
        case UInt8(ascii: "["), UInt8(ascii: "{"):
            guard depth < 64 else { throw fail("nested too deep") }
            let close = first == UInt8(ascii: "[") ? UInt8(ascii: "]") : UInt8(ascii: "}")
            index += 1
            skipSpace()
            if peek() == close {
                index += 1
            } else {
                while true {
                    if close == UInt8(ascii: "}") {
                        skipSpace()
                        guard peek() == UInt8(ascii: "\"") else { throw fail("expected a key") }
                        _ = try readString()
                        skipSpace()
                        guard peek() == UInt8(ascii: ":") else { throw fail("expected `:`") }
                        index += 1
                    }
                    _ = try readValue(depth: depth + 1)
                    skipSpace()
                    guard let next = peek() else { throw fail("unterminated value") }
                    index += 1
                    if next == close { break }
                    guard next == UInt8(ascii: ",") else {
                        index -= 1
                        throw fail("expected `,`")
                    }
                }
            }
            return first == UInt8(ascii: "[") ? .array : .object
        default:
            throw fail("unexpected character")
        }
    }

    private mutating func expectWord(_ word: StaticString) throws(BadArguments) {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count,
            memcmp(bytes.baseAddress! + index, word.utf8Start, count) == 0
        else { throw fail("invalid literal") }
        index += count
    }

    private mutating func digits() -> Int {
        let start = index
        while let byte = peek(), byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { index += 1 }
        return index - start
    }

    private mutating func readNumber() throws(BadArguments) -> Element {
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        if peek() == UInt8(ascii: "0") {
            index += 1
        } else if digits() == 0 {
            throw fail("invalid number")
        }
        var integral = true
        if peek() == UInt8(ascii: ".") {
            index += 1
            integral = false
            guard digits() > 0 else { throw fail("invalid number") }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            index += 1
            integral = false
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { throw fail("invalid number") }
        }
        return .number(start: start, end: index, integral: integral)
    }

    private mutating func hex4() throws(BadArguments) -> UInt32 {
        guard index + 4 <= bytes.count else { throw fail("short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw fail("bad \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func readString() throws(BadArguments) -> [UInt8] {
        index += 1  // the opening quote
        var out: [UInt8] = []
        var runStart = index
        while true {
            guard let byte = peek() else { throw fail("unterminated string") }
            if byte == UInt8(ascii: "\"") {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<index]))
                index += 1
                return out
            }
            guard byte >= 0x20 else { throw fail("control character in a string") }
            guard byte == UInt8(ascii: "\\") else {
                index += 1
                continue
            }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<index]))
            index += 1
            guard let escape = peek() else { throw fail("unterminated string") }
            index += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    guard index + 6 <= bytes.count, bytes[index] == UInt8(ascii: "\\"),
                        bytes[index + 1] == UInt8(ascii: "u")
                    else { throw fail("unpaired surrogate") }
                    index += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw fail("unpaired surrogate")
                }
                out.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar)!)).utf8))
            default:
                throw fail("bad escape")
            }
            runStart = index
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
