import Foundation
import NIOCore
import SwitchyardClient
import SwitchyardCore
import Testing

/// C functions bound as handlers through libffi, declared in `serve --config-file`,
/// against the real server: real libm, and the fixture library in Tests/Fixtures/ffi.
@Suite struct BindingTests {
    /// A directory with the fixture library built in it and a config file binding
    /// it and libm, plus `extra` lines of settings; returns the directory and the file.
    func configured(_ extra: String = "") async throws -> (TemporaryDirectory, String) {
        let dir = try TemporaryDirectory()
        let library = dir.file("libffi_fixture.so")
        try await compilePlugin(Paths.root.appendingPathComponent("Tests/Fixtures/ffi/ffi_fixture.c").path, to: library)
        let yaml = """
            # serve settings, then the bindings
            \(extra)
            bindings:
              - {name: cbrt, library: libm.so.6, symbol: cbrt, signature: "double(double)"}
              - {name: pow, library: libm.so.6, symbol: pow, signature: "double(double, double)"}
              - name: add
                library: \(library)
                symbol: add
                signature: int64(int64,int64)
              - {name: greet, library: \(library), symbol: greet, signature: "string(string)"}
              - {name: checksum, library: \(library), symbol: checksum, signature: "uint32(bytes)"}
              - {name: reverse, library: \(library), symbol: reverse, signature: "bytes(bytes, out_len)"}
              - {name: inc8, library: \(library), symbol: inc8, signature: "uint8(uint8)"}
              - {name: is_even, library: \(library), symbol: is_even, signature: "bool(int64)"}
              - {name: ffi_crash, library: \(library), symbol: crash, signature: "void()"}
              - {name: no_library, library: \(dir.file("libmissing.so")), symbol: add, signature: "int64(int64, int64)"}
              - {name: no_symbol, library: \(library), symbol: subtract, signature: "int64(int64, int64)"}
              - {name: bad_signature, library: \(library), symbol: add, signature: "int64(int64, integer)"}
              - {name: echo, library: libm.so.6, symbol: cbrt, signature: "double(double)"}
            """
        let path = dir.file("switchyard.yaml")
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return (dir, path)
    }

    func text(_ client: SwitchyardClient, _ handler: String, _ payload: String) async throws -> String {
        String(decoding: try await client.submit(handler, payload: Array(payload.utf8)), as: UTF8.self)
    }

    @Test func boundFunctionsRunInWorkersAndStatusListsThem() async throws {
        let (dir, config) = try await configured()
        try await withServer(workers: 2, extraArguments: ["--config-file", config]) { server in
            let client = try await server.connect()
            let root = try #require(Double(try await text(client, "cbrt", "[27]")))
            #expect(abs(root - 3) < 1e-12)
            #expect(try await text(client, "pow", "[2, 10]") == "1024.0")
            #expect(try await text(client, "add", "[40, 2]") == "42")
            #expect(try await text(client, "add", "[-9223372036854775808, 9223372036854775807]") == "-1")
            #expect(try await text(client, "greet", #"["Zoë \"Z\""]"#) == #""hello, Zoë \"Z\"""#)
            // A single bytes argument takes the raw payload; Adler-32 of "Wikipedia" is 0x11E60398.
            #expect(try await text(client, "checksum", "Wikipedia") == "\(0x11E6_0398)")
            #expect(try await text(client, "checksum", "") == "1")
            #expect(try await client.submit("reverse", payload: [1, 2, 3, 0, 255]) == [255, 0, 3, 2, 1])
            #expect(try await text(client, "inc8", "[254]") == "255")
            #expect(try await text(client, "is_even", "[10]") == "true")
            // A plugin handler keeps its name: the binding called `echo` is skipped.
            #expect(try await text(client, "echo", "[8]") == "[8]")

            let status = try await client.serverStatus()
            let bindings = Dictionary(uniqueKeysWithValues: try #require(status.bindings).map { ($0.name, $0) })
            #expect(bindings.count == 13)
            #expect(bindings["add"]?.signature == "int64(int64, int64)")
            #expect(bindings["add"]?.workers == 2)
            #expect(bindings["add"]?.skipped == nil)
            #expect(bindings["reverse"]?.signature == "bytes(bytes, out_len)")
            #expect(bindings["cbrt"]?.library == "libm.so.6")
            #expect(status.handlers.contains { $0.name == "add" && $0.plugin == "ffi" })
            let expected: [(String, [String])] = [
                ("no_library", ["cannot open library", "libmissing.so"]),
                ("no_symbol", ["does not export `subtract`"]),
                ("bad_signature", ["unknown type `integer`"]),
                ("echo", ["already provided by", "libswyplugin-echo.so"]),
            ]
            for (name, words) in expected {
                let reason = try #require(bindings[name]?.skipped, "\(name) is reported skipped")
                for word in words { #expect(reason.contains(word), "\(name): \(reason)") }
                #expect(bindings[name]?.workers == 0)
                #expect(server.log.contains { $0.contains("skipped binding \(name): ") }, "\(name) is logged")
            }
            for name in ["no_library", "no_symbol", "bad_signature"] {
                let error = await #expect(throws: SwitchyardError.self) {
                    _ = try await client.submit(name, payload: Array("[1, 2]".utf8))
                }
                #expect(error?.code == .unknownHandler, "\(name)")
            }

            let printed = try await run(Paths.switchyard, ["status", "--server", "\(server.address)"])
            #expect(printed.status == 0, "\(printed.stderr)")
            #expect(printed.stdout.contains("bindings:"))
            let addLine = printed.stdout.split(separator: "\n").first { $0.hasPrefix("add ") && $0.contains("int64(int64, int64)") }
            #expect(addLine?.contains("add in \(dir.file("libffi_fixture.so"))") == true, "\(printed.stdout)")
            #expect(printed.stdout.contains("skipped bindings:"))
            #expect(printed.stdout.contains("no_symbol: library"), "\(printed.stdout)")
            #expect(!printed.stdout.contains("ffi int64"), "bindings are not repeated under handlers")
            try await client.close()
        }
    }

    @Test func argumentsThatDoNotFitAreBadArgumentsNamingPositionAndType() async throws {
        let (dir, config) = try await configured()
        try await withServer(workers: 1, extraArguments: ["--config-file", config]) { server in
            let client = try await server.connect()
            let cases: [(String, String, String)] = [
                ("add", "[1, 2, 3]", "add: expects 2 arguments (int64, int64), got 3"),
                ("add", "[1]", "expects 2 arguments (int64, int64), got 1"),
                ("add", #"[1, "2"]"#, "add: argument 2 must be int64, got a string"),
                ("add", "[1.5, 2]", "argument 1 must be int64 (an integer), got the number 1.5"),
                ("pow", "[2, true]", "pow: argument 2 must be double, got true"),
                ("greet", "[42]", "argument 1 must be string, got the number 42"),
                ("inc8", "[256]", "inc8: argument 1: 256 is out of range for uint8 (0 to 255)"),
                ("inc8", "[-1]", "argument 1: -1 is out of range for uint8"),
                ("add", "[9223372036854775808, 0]", "argument 1: 9223372036854775808 is out of range for int64"),
                ("cbrt", "27", "cbrt: the payload is not a JSON array of arguments"),
            ]
            for (handler, payload, message) in cases {
                let id = try await client.submitBackground(
                    handler, payload: ByteBuffer(string: payload), options: SubmitOptions(maxAttempts: 3))
                let error = await #expect(throws: SwitchyardError.self) { _ = try await client.wait(for: id) }
                #expect(error?.code == .badArguments, "\(handler) \(payload)")
                #expect(error?.message.contains(message) == true, "\(handler) \(payload): \(error?.message ?? "")")
                let info = try await client.taskInfo(id)
                #expect(info.state == .dead)
                #expect(info.attempts == 1, "BAD_ARGUMENTS is not retried")
            }
            // The CLI shows the code like any other.
            let cli = try await run(Paths.switchyard, ["submit", "--server", "\(server.address)", "add", "[1]"])
            #expect(cli.status == 1)
            #expect(cli.stderr.contains("BAD_ARGUMENTS: add: expects 2 arguments"), "\(cli.stderr)")
            #expect(try await text(client, "add", "[1, 1]") == "2")
            try await client.close()
        }
        withExtendedLifetime(dir) {}
    }

    @Test func aCrashInABoundFunctionIsContainedLikeAPluginCrash() async throws {
        let (dir, config) = try await configured()
        try await withServer(workers: 2, extraArguments: ["--config-file", config]) { server in
            let client = try await server.connect()
            let before = try await client.serverStatus()
            async let adds: [String] = withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<50 { group.addTask { try await text(client, "add", "[\(i), 1000]") } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let bound = await #expect(throws: SwitchyardError.self) {
                _ = try await client.submit("ffi_crash", payload: Array("[]".utf8))
            }
            let plugin = await #expect(throws: SwitchyardError.self) {
                _ = try await client.submit("crash", payload: [UInt8]())
            }
            #expect(bound?.code == .workerCrashed)
            #expect(bound?.code == plugin?.code)
            for error in [bound, plugin] {
                #expect(error?.message.contains("SIGSEGV") == true, "\(error?.message ?? "")")
                #expect(error?.message.contains("attempt 2 of 2") == true, "\(error?.message ?? "")")
            }
            // Tasks beside the crashes all succeed (some re-run after their worker died).
            #expect(try await adds.sorted() == (0..<50).map { "\($0 + 1000)" }.sorted())
            let after = try await client.serverStatus()
            #expect(after.workerRestarts - before.workerRestarts == 4, "two crashes, each tried twice")
            // The replacement workers bind it again once they have said hello.
            var rebound = 0
            for _ in 0..<100_000 {
                rebound = try await client.serverStatus().bindings?.first { $0.name == "add" }?.workers ?? 0
                if rebound == 2 { break }
                await Task.yield()
            }
            #expect(rebound == 2, "the replacements bound it again")
            #expect(try await text(client, "add", "[2, 2]") == "4")
            try await client.close()
        }
        withExtendedLifetime(dir) {}
    }

    @Test func aLibraryThatCrashesWhenOpenedIsSkippedAndTheRestServe() async throws {
        let dir = try TemporaryDirectory()
        try await compilePlugin(
            Paths.root.appendingPathComponent("Tests/Fixtures/ffi/crash_on_load.c").path, to: dir.file("libboom.so"))
        let (fixtures, base) = try await configured()
        let config = dir.file("boom.yaml")
        let yaml = try String(contentsOfFile: base, encoding: .utf8)
            + "\n  - {name: boom, library: \(dir.file("libboom.so")), symbol: never_called, signature: \"int64(int64)\"}\n"
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        try await withServer(workers: 2, extraArguments: ["--config-file", config]) { server in
            let client = try await server.connect()
            let status = try await client.serverStatus()
            let boom = try #require(status.bindings?.first { $0.name == "boom" })
            #expect(boom.workers == 0)
            #expect(boom.skipped?.contains("SIGSEGV") == true, "\(boom.skipped ?? "")")
            #expect(boom.skipped?.contains("libboom.so") == true, "\(boom.skipped ?? "")")
            #expect(server.log.contains { $0.contains("skipped binding boom: ") })
            #expect(try await text(client, "add", "[1, 2]") == "3")
            let error = await #expect(throws: SwitchyardError.self) {
                _ = try await client.submit("boom", payload: Array("[1]".utf8))
            }
            #expect(error?.code == .unknownHandler)
            try await client.close()
        }
        withExtendedLifetime(fixtures) {}
    }

    @Test func theConfigFileSetsFlagsAndTheCommandLineWins() async throws {
        // The file asks for 3 workers; ServerProcess passes --workers 2, which wins.
        let (dir, config) = try await configured("workers: 3\nmax-frame-size: 65536\nconfig: {greet.word: hi}")
        try await withServer(workers: 2, extraArguments: ["--config-file", config]) { server in
            let client = try await server.connect()
            #expect(try await client.serverStatus().workers.count == 2)
            #expect(client.maxFrameSize == 65536, "a setting only in the file applies")
            try await client.close()
        }
        withExtendedLifetime(dir) {}
    }

    @Test func everyServeFlagIsAConfigFileKey() async throws {
        let help = try await run(Paths.switchyard, ["serve", "--help"])
        let regex = try Regex("--([a-z][a-z-]*)")
        let named = Set(help.stdout.matches(of: regex).map { String(help.stdout[$0.range].dropFirst(2)) })
        // `--no-watch` is `watch: false` in the file.
        let flags = named.filter { !($0.hasPrefix("no-") && named.contains(String($0.dropFirst(3)))) }
            .subtracting(["help", "config-file", "version"])
        #expect(flags.count >= 20, "\(flags)")
        let dir = try TemporaryDirectory()
        try "nonsense: 1\n".write(toFile: dir.file("x.yaml"), atomically: true, encoding: .utf8)
        let result = try await run(Paths.switchyard, ["serve", "--config-file", dir.file("x.yaml")])
        let known = try #require(result.stderr.range(of: "known keys: ")).upperBound
        let keys = Set(result.stderr[known...].prefix { $0 != "\n" }.split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        })
        #expect(flags.subtracting(keys).isEmpty, "serve flags the config file does not know: \(flags.subtracting(keys))")
    }

    @Test func aBadConfigFileStopsServeNamingTheKey() async throws {
        let dir = try TemporaryDirectory()
        let cases: [(String, String)] = [
            ("listen: 127.0.0.1:0\nworkerz: 2\n", "unknown key `workerz`"),
            ("workers: 0\n", "--workers must be from 1 to 1024"),
            ("strategy: {a: b}\n", "`strategy` must be a value or a list"),
            ("bindings:\n  - {name: x, library: libm.so.6, symbol: cbrt, signature: \"double(double)\", lib: y}\n",
             "bindings[0]: unknown key `lib`"),
            ("bindings:\n  - {name: x, library: libm.so.6, signature: \"double(double)\"}\n", "`symbol` is missing"),
            ("config-file: other.yaml\n", "unknown key `config-file`"),
            ("watch: maybe\n", "`watch` must be true or false"),
            ("- a\n- b\n", "expected a mapping"),
        ]
        for (index, (yaml, message)) in cases.enumerated() {
            let path = dir.file("bad\(index).yaml")
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            let result = try await run(
                Paths.switchyard, ["serve", "--store", "memory", "--data-dir", dir.path, "--config-file", path])
            #expect(result.status == 64, "\(yaml): \(result.stderr)")
            #expect(result.stderr.contains("config file \(path)"), "\(yaml): \(result.stderr)")
            #expect(result.stderr.contains(message), "\(yaml): \(result.stderr)")
        }
        let missing = try await run(Paths.switchyard, ["serve", "--config-file", dir.file("none.yaml")])
        #expect(missing.status == 64)
        #expect(missing.stderr.contains("none.yaml: cannot read it"), "\(missing.stderr)")
    }
}
