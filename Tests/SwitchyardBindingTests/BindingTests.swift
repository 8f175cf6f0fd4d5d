import NIOCore
import SwitchyardCore
import SwitchyardHost
import Testing

/// Signatures, argument conversion and result encoding, with no processes;
/// then real calls into libm through libffi in this process.
@Suite struct SignatureTests {
    @Test(arguments: [
        ("double(double)", "double(double)"),
        ("int64( int64 , int64 )", "int64(int64, int64)"),
        ("uint32(bytes)", "uint32(bytes)"),
        ("string(string)", "string(string)"),
        ("void(bytes)", "void(bytes)"),
        ("void()", "void()"),
        ("uint64(void)", "uint64()"),
        ("bytes(bytes, out_len)", "bytes(bytes, out_len)"),
        ("bool(int8,uint8,int16,uint16,int32,uint32,float)", "bool(int8, uint8, int16, uint16, int32, uint32, float)"),
    ])
    func parses(text: String, normal: String) throws {
        #expect(try BindingSignature(parsing: text).description == normal)
    }

    @Test func rawPayloadOnlyForASingleBytesArgument() throws {
        #expect(try BindingSignature(parsing: "uint32(bytes)").takesRawPayload)
        #expect(try BindingSignature(parsing: "bytes(bytes, out_len)").takesRawPayload)
        #expect(try BindingSignature(parsing: "bytes(out_len, bytes)").arguments == [.bytes])
        #expect(try !BindingSignature(parsing: "uint32(bytes, int32)").takesRawPayload)
        #expect(try !BindingSignature(parsing: "uint32(string)").takesRawPayload)
    }

    @Test(arguments: [
        ("double", "expected RESULT(ARG, ...)"),
        ("double(double", "expected RESULT(ARG, ...)"),
        ("(double)", "a type is missing"),
        ("double(dbl)", "unknown type `dbl`"),
        ("int(int)", "unknown type `int`"),
        ("double(double,)", "a type is missing"),
        ("double(void, double)", "argument 1 is `void`"),
        ("bytes(bytes)", "exactly one `out_len`"),
        ("bytes(bytes, out_len, out_len)", "exactly one `out_len`"),
        ("int32(out_len)", "only for a `bytes` result"),
        ("out_len(bytes)", "not a result"),
        ("int32((int32))", "parentheses"),
    ])
    func refuses(text: String, reason: String) {
        let error = #expect(throws: BindingSignature.ParseError.self) { try BindingSignature(parsing: text) }
        #expect(error?.description.contains(reason) == true, "\(text): \(error?.description ?? "")")
        #expect(error?.description.contains(text) == true, "names the signature")
    }
}

@Suite struct ArgumentTests {
    func decode(_ json: String, _ signature: String) throws -> [BindingValue] {
        try BindingArguments.decode(Array(json.utf8), for: try BindingSignature(parsing: signature))
    }

    func refusal(_ json: String, _ signature: String) -> String {
        do {
            _ = try decode(json, signature)
            return "accepted"
        } catch let error as BadArguments {
            return error.message
        } catch {
            return "\(error)"
        }
    }

    @Test func convertsEachType() throws {
        #expect(try decode("[27]", "double(double)") == [.double(27)])
        #expect(try decode(" [ -2.5e1 , 1 ] ", "double(double, float)") == [.double(-25), .float(1)])
        #expect(try decode("[1, -2]", "int64(int64, int64)") == [.signed(1), .signed(-2)])
        #expect(
            try decode("[9223372036854775807, -9223372036854775808, 18446744073709551615]", "void(int64, int64, uint64)")
                == [.signed(.max), .signed(.min), .unsigned(.max)])
        #expect(try decode("[255, -128, 127, 65535, -32768]", "void(uint8, int8, int8, uint16, int16)").count == 5)
        #expect(try decode("[true, false]", "void(bool, bool)") == [.bool(true), .bool(false)])
        #expect(
            try decode(#"["a\"b\\c\n\u00e9\ud83d\ude00"]"#, "string(string)")
                == [.bytes(Array("a\"b\\c\n\u{e9}\u{1F600}".utf8))])
        #expect(try decode(#"["xyz", 3]"#, "uint32(bytes, int32)") == [.bytes(Array("xyz".utf8)), .signed(3)])
        #expect(try decode("[]", "uint64()") == [])
    }

    @Test func wrongCountNamesTheExpectedTypes() {
        let message = refusal("[1, 2, 3]", "int64(int64, int64)")
        #expect(message.contains("expects 2 arguments (int64, int64), got 3"), "\(message)")
        #expect(refusal("[]", "double(double)").contains("expects 1 argument (double), got 0"))
    }

    @Test func wrongTypeNamesPositionAndType() {
        #expect(refusal(#"[1, "2"]"#, "int64(int64, int64)") == "argument 2 must be int64, got a string")
        #expect(refusal("[1.5, 2]", "int64(int64, int64)") == "argument 1 must be int64 (an integer), got the number 1.5")
        #expect(refusal("[1e3]", "int32(int32)").contains("argument 1 must be int32 (an integer)"))
        #expect(refusal("[1]", "bool(bool)") == "argument 1 must be bool, got the number 1")
        #expect(refusal("[null]", "double(double)") == "argument 1 must be double, got null")
        #expect(refusal("[[1]]", "double(double)") == "argument 1 must be double, got an array")
        #expect(refusal(#"[{"a": [1, {}]}]"#, "string(string)") == "argument 1 must be string, got an object")
        #expect(refusal(#"["a\u0000b"]"#, "string(string)").contains("argument 1 must be string without NUL"))
    }

    @Test func integersOutOfRangeAreRefusedNotTruncated() {
        #expect(refusal("[256]", "uint8(uint8)") == "argument 1: 256 is out of range for uint8 (0 to 255)")
        #expect(refusal("[-1]", "uint32(uint32)") == "argument 1: -1 is out of range for uint32 (0 to 4294967295)")
        #expect(refusal("[0, 128]", "void(int8, int8)") == "argument 2: 128 is out of range for int8 (-128 to 127)")
        #expect(refusal("[-129]", "int8(int8)").contains("out of range for int8"))
        #expect(
            refusal("[9223372036854775808]", "int64(int64)")
                == "argument 1: 9223372036854775808 is out of range for int64 (-9223372036854775808 to 9223372036854775807)")
        #expect(refusal("[18446744073709551616]", "uint64(uint64)").contains("out of range for uint64"))
        #expect(refusal("[99999999999999999999999]", "int64(int64)").contains("out of range for int64"))
        #expect(refusal("[1e39]", "float(float)") == "argument 1: 1e39 is out of range for float")
        #expect(refusal("[1e999]", "double(double)") == "argument 1: 1e999 is out of range for double")
        #expect(refusal("[-0]", "uint8(uint8)") == "accepted")
    }

    @Test func malformedJSONSaysWhere() {
        for bad in ["", "27", "[1,]", "[1 2]", "[01]", "[1.]", "[-]", #"["abc]"#, "[tru]", "[1] x", "{}", "[\"\u{01}\"]"] {
            let message = refusal(bad, "double(double)")
            #expect(message.hasPrefix("the payload is not a JSON array of arguments"), "\(bad): \(message)")
        }
    }

    @Test func resultsAreJSON() {
        func json(_ write: (inout ByteBuffer) -> Void) -> String {
            var buffer = ByteBuffer()
            write(&buffer)
            return String(buffer: buffer)
        }
        #expect(json { BindingResultJSON.write(3.0, to: &$0) } == "3.0")
        #expect(json { BindingResultJSON.write(Double.nan, to: &$0) } == "null")
        #expect(json { BindingResultJSON.write(-Double.infinity, to: &$0) } == "null")
        #expect(json { BindingResultJSON.write(Int64.min, to: &$0) } == "-9223372036854775808")
        #expect(json { BindingResultJSON.write(UInt64.max, to: &$0) } == "18446744073709551615")
        #expect(json { BindingResultJSON.write(true, to: &$0) } == "true")
        let text = Array("a\"b\\\n\u{01}é".utf8)
        #expect(json { buffer in text.withUnsafeBytes { BindingResultJSON.writeString($0, to: &buffer) } }
            == #""a\"b\\\n\u0001é""#)
        let invalid: [UInt8] = [0x61, 0xFF]
        #expect(json { buffer in invalid.withUnsafeBytes { BindingResultJSON.writeString($0, to: &buffer) } }
            == "\"a\u{FFFD}\"")
    }
}

/// Real calls through libffi into libm, in this process.
@Suite struct BoundFunctionTests {
    func call(_ function: BoundFunction, _ payload: String) -> (BoundFunction.Outcome, String) {
        var result = ByteBuffer()
        let outcome = Array(payload.utf8).withUnsafeBytes {
            function.call(payload: $0, into: &result, maxResultSize: 1 << 20)
        }
        return (outcome, String(buffer: result))
    }

    @Test func callsLibm() throws {
        let cbrt = try BoundFunction(BindingSpec(name: "cbrt", library: "libm.so.6", symbol: "cbrt", signature: "double(double)"))
        // glibc's cbrt is not correctly rounded (cbrt(27) is 3.0000000000000004): compare near.
        let (outcome27, text27) = call(cbrt, "[27]")
        #expect(outcome27 == .ok)
        #expect(abs(try #require(Double(text27)) - 3) < 1e-12, "\(text27)")
        #expect(call(cbrt, "[8]") == (.ok, "2.0"))
        let pow = try BoundFunction(BindingSpec(name: "pow", library: "libm.so.6", symbol: "pow", signature: "double(double, double)"))
        #expect(call(pow, "[2, 10]") == (.ok, "1024.0"))
        #expect(call(pow, "[0, -1]") == (.ok, "null"), "infinity has no JSON form")
        let ldexpf = try BoundFunction(
            BindingSpec(name: "ldexpf", library: "libm.so.6", symbol: "ldexpf", signature: "float(float, int32)"))
        #expect(call(ldexpf, "[1.5, 3]") == (.ok, "12.0"))
        let (outcome, _) = call(pow, #"[2, "x"]"#)
        #expect(outcome == .badArguments("argument 2 must be double, got a string"))
    }

    @Test func loadErrorsNameWhatIsMissing() {
        let library = #expect(throws: BoundFunction.LoadError.self) {
            try BoundFunction(BindingSpec(name: "x", library: "libnot-there.so.9", symbol: "f", signature: "void()"))
        }
        #expect(library?.description.contains("libnot-there.so.9") == true, "\(library?.description ?? "")")
        let symbol = #expect(throws: BoundFunction.LoadError.self) {
            try BoundFunction(BindingSpec(name: "x", library: "libm.so.6", symbol: "no_such_fn", signature: "void()"))
        }
        #expect(symbol?.description == "library `libm.so.6` does not export `no_such_fn`")
        let signature = #expect(throws: BoundFunction.LoadError.self) {
            try BoundFunction(BindingSpec(name: "x", library: "libm.so.6", symbol: "cbrt", signature: "double(real)"))
        }
        #expect(signature?.description.contains("unknown type `real`") == true)
    }
}
