/// A C function bound as a task handler through libffi, with no glue code.
///
/// Only the operator declares bindings (in `serve --config-file`); a client can
/// only submit to the handler `name`, never name a library or a symbol.
public struct BindingSpec: Codable, Sendable, Hashable {
    /// The handler name clients submit to (the rules of plugin handler names).
    public var name: String
    /// A path (`/opt/lib/libfoo.so`) or a soname the dynamic loader finds (`libm.so.6`).
    public var library: String
    /// The exported function, e.g. `cbrt`.
    public var symbol: String
    /// Its C signature in Switchyard's notation, e.g. `double(double)` (see `BindingSignature`).
    public var signature: String

    public init(name: String, library: String, symbol: String, signature: String) {
        self.name = name
        self.library = library
        self.symbol = symbol
        self.signature = signature
    }
}

/// A type in a binding's signature, named as in the configuration.
public enum BindingType: String, Sendable, Hashable, CaseIterable {
    case void, bool
    case int8, int16, int32, int64
    case uint8, uint16, uint32, uint64
    case float, double
    /// A NUL-terminated `const char *`.
    case string
    /// Two C arguments, `const uint8_t *data, size_t length`; as a result, a
    /// `const uint8_t *` whose length the function stores through `out_len`.
    case bytes
    /// A `size_t *` where a `bytes`-returning function stores the result's
    /// length. Not supplied by the client.
    case outLength = "out_len"

    public var isInteger: Bool {
        switch self {
        case .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64: true
        default: false
        }
    }

    public var isSigned: Bool { self == .int8 || self == .int16 || self == .int32 || self == .int64 }

    /// Bit width of an integer type (0 for the others).
    public var bits: Int {
        switch self {
        case .int8, .uint8: 8
        case .int16, .uint16: 16
        case .int32, .uint32: 32
        case .int64, .uint64: 64
        default: 0
        }
    }
}

/// A binding's signature: `RESULT(ARG, ARG, ...)`, e.g. `int64(int64,int64)`,
/// `uint32(bytes)`, `string(string)`, `void()`, `bytes(bytes, out_len)`.
///
/// Rules: `void` only as the result (or as the sole `(void)`, meaning no
/// arguments); `out_len` appears exactly once when the result is `bytes` and
/// never otherwise; spaces are ignored.
public struct BindingSignature: Sendable, Hashable, CustomStringConvertible {
    public let result: BindingType
    /// The declared parameters in C order, `out_len` included, `bytes` as one.
    public let parameters: [BindingType]

    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
    }

    public init(parsing text: String) throws(ParseError) {
        let compact = text.filter { !$0.isWhitespace }
        func fail(_ why: String) -> ParseError { ParseError(description: "signature `\(text)`: \(why)") }
        guard let open = compact.firstIndex(of: "("), compact.last == ")" else {
            throw fail("expected RESULT(ARG, ...), e.g. `double(double)`")
        }
        let resultName = String(compact[..<open])
        let inside = compact[compact.index(after: open)..<compact.index(before: compact.endIndex)]
        guard !inside.contains("("), !inside.contains(")") else { throw fail("parentheses inside the argument list") }
        func type(_ name: String) throws(ParseError) -> BindingType {
            guard let type = BindingType(rawValue: name) else {
                let known = BindingType.allCases.map(\.rawValue).joined(separator: ", ")
                throw fail(name.isEmpty ? "a type is missing" : "unknown type `\(name)`; known types: \(known)")
            }
            return type
        }
        let result = try type(resultName)
        guard result != .outLength else { throw fail("`out_len` is an argument, not a result") }
        var parameters: [BindingType] = []
        if !inside.isEmpty && inside != "void" {
            for (index, name) in inside.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
                let parameter = try type(String(name))
                guard parameter != .void else { throw fail("argument \(index + 1) is `void`; write `()` for none") }
                parameters.append(parameter)
            }
        }
        let outLengths = parameters.filter { $0 == .outLength }.count
        if result == .bytes {
            guard outLengths == 1 else {
                throw fail(
                    "a `bytes` result needs exactly one `out_len` argument, where the function stores the length")
            }
        } else if outLengths > 0 {
            throw fail("`out_len` is only for a `bytes` result")
        }
        self.result = result
        self.parameters = parameters
        // Stored, not computed: both are read on every call.
        arguments = parameters.filter { $0 != .outLength }
        takesRawPayload = arguments == [.bytes]
    }

    /// The arguments a client supplies, in order (`out_len` left out).
    public let arguments: [BindingType]

    /// True when the payload is passed as is: the only argument is `bytes`.
    public let takesRawPayload: Bool

    /// The normal form, e.g. `int64(int64, int64)`.
    public var description: String {
        "\(result.rawValue)(\(parameters.map(\.rawValue).joined(separator: ", ")))"
    }
}
