// FFIBench: what a call through a binding costs in the worker, in ns per call,
// against calling the same C function directly. A benchmark, not a test: run
// it in release.
//
//   swift build -c release --scratch-path .build-ffi --product FFIBench
//   cc -shared -fPIC -O2 -o /tmp/libffi_fixture.so Tests/Fixtures/ffi/ffi_fixture.c
//   .build-ffi/release/FFIBench /tmp/libffi_fixture.so [--batches N] [--batch-size N]
//
// Rows, each the median batch's ns / call:
//   direct        - `add` through a typed @convention(c) pointer (the floor);
//   ffi_call      - BoundFunction.call with a raw-bytes signature that skips JSON:
//                   `uint32(bytes)` on `checksum` of 8 bytes, so libffi plus the
//                   result write (compare with `checksum direct`);
//   bound add     - BoundFunction.call on "[123456, 654321]": read the JSON array,
//                   range-check, ffi_call, write the JSON result (what a task pays
//                   in the worker, beyond the frame I/O every handler pays);
//   decode only   - BindingArguments.decode of the same payload;
//   Foundation    - JSONSerialization.jsonObject of the same payload, for the
//                   record of why the decoder is hand-written.

import Foundation
import NIOCore
import SwitchyardCore
import SwitchyardHost

#if canImport(Glibc)
import Glibc
#endif

var arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String, _ fallback: Int, in arguments: inout [String]) -> Int {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let value = Int(arguments[index + 1])
    else { return fallback }
    arguments.removeSubrange(index...index + 1)
    return value
}
let batches = option("--batches", 31, in: &arguments)
let batchSize = option("--batch-size", 200_000, in: &arguments)
guard let library = arguments.first else {
    print("usage: FFIBench PATH/libffi_fixture.so [--batches N] [--batch-size N]")
    exit(64)
}

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Median over `batches` of ns per call of `body` run `batchSize` times.
@MainActor func measure(_ label: String, _ body: () -> Void) {
    var perCall: [Double] = []
    for _ in 0..<batches {
        let start = now()
        for _ in 0..<batchSize { body() }
        perCall.append(Double(now() - start) / Double(batchSize))
    }
    perCall.sort()
    let median = perCall[perCall.count / 2]
    print(label.padding(toLength: 16, withPad: " ", startingAt: 0) + String(format: "%8.1f ns/call", median))
}

guard let handle = dlopen(library, RTLD_NOW | RTLD_LOCAL), let addAddress = dlsym(handle, "add"),
    let checksumAddress = dlsym(handle, "checksum")
else {
    print("cannot open \(library) or find add/checksum in it")
    exit(1)
}
typealias Add = @convention(c) (Int64, Int64) -> Int64
typealias Checksum = @convention(c) (UnsafePointer<UInt8>?, Int) -> UInt32
let add = unsafeBitCast(addAddress, to: Add.self)
let checksum = unsafeBitCast(checksumAddress, to: Checksum.self)

let boundAdd = try BoundFunction(BindingSpec(name: "add", library: library, symbol: "add", signature: "int64(int64, int64)"))
let boundChecksum = try BoundFunction(
    BindingSpec(name: "checksum", library: library, symbol: "checksum", signature: "uint32(bytes)"))
let payload = Array("[123456, 654321]".utf8)
let eight: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
var result = ByteBuffer()
result.reserveCapacity(64)
var sink: Int64 = 0

print("FFIBench: \(batches) batches of \(batchSize) calls; median batch")
var a: Int64 = 123_456
measure("direct add") {
    sink &+= add(a, 654_321)
    a &+= 1
}
measure("checksum direct") { eight.withUnsafeBufferPointer { sink &+= Int64(checksum($0.baseAddress, 8)) } }
measure("ffi_call") {
    result.clear()
    eight.withUnsafeBytes { _ = boundChecksum.call(payload: $0, into: &result, maxResultSize: 1 << 20) }
}
measure("bound add") {
    result.clear()
    payload.withUnsafeBytes { _ = boundAdd.call(payload: $0, into: &result, maxResultSize: 1 << 20) }
}
let signature = try BindingSignature(parsing: "int64(int64, int64)")
measure("decode only") { sink &+= Int64((try? BindingArguments.decode(payload, for: signature))?.count ?? 0) }
let data = Data(payload)
measure("Foundation") { sink &+= Int64(((try? JSONSerialization.jsonObject(with: data)) as? [Any])?.count ?? 0) }
print("(checksum of results: \(sink & 0xff); the bound add replied \(String(buffer: result)))")
