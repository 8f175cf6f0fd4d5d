// The entry point, two ways:
// - `fuzz/run` builds with `-sanitize=fuzzer` and `-DSWITCHYARD_LIBFUZZER`:
//   libFuzzer supplies `main` and calls `LLVMFuzzerTestOneInput` per input.
// - A normal `swift build` has no libFuzzer to link, so it gets a small `main`
//   that writes the seed corpus or checks saved inputs (a corpus, a crash file).
#if SWITCHYARD_LIBFUZZER

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    let violations = FrameFuzzer.violations(in: input)
    if !violations.isEmpty {
        // A violation is a finding like a crash: libFuzzer saves the input.
        fatalError("invariant broken:\n" + violations.joined(separator: "\n"))
    }
    return 0
}

#else

import Foundation

@main
enum FuzzTool {
    static let usage = """
        usage: SwitchyardFuzz seeds DIR        write the seed corpus into DIR
               SwitchyardFuzz check PATH...    check saved inputs (files, or directories of them)
        (fuzz/run builds the libFuzzer target from the same sources)
        """

    static func main() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch arguments.first {
        case "seeds" where arguments.count == 2:
            let directory = URL(fileURLWithPath: arguments[1])
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            for seed in SeedCorpus.seeds {
                try Data(seed.bytes).write(to: directory.appendingPathComponent(seed.name))
            }
            print("wrote \(SeedCorpus.seeds.count) seeds to \(directory.path)")
        case "check" where arguments.count >= 2:
            var checked = 0
            var failed = 0
            for path in try inputFiles(arguments.dropFirst()) {
                checked += 1
                let violations = FrameFuzzer.violations(in: Array(try Data(contentsOf: URL(fileURLWithPath: path))))
                if !violations.isEmpty {
                    failed += 1
                    print("\(path):\n  " + violations.joined(separator: "\n  "))
                }
            }
            print("\(checked - failed) passed, \(failed) failed")
            if failed > 0 { exit(1) }
        default:
            FileHandle.standardError.write(Data((usage + "\n").utf8))
            exit(2)
        }
    }

    /// The files named, and the files directly inside the directories named, sorted.
    static func inputFiles(_ paths: ArraySlice<String>) throws -> [String] {
        var files: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: path])
            }
            if isDirectory.boolValue {
                files += try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { path + "/" + $0 }
            } else {
                files.append(path)
            }
        }
        return files
    }
}

#endif
