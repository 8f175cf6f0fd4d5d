import Foundation
import NIOCore
import SwitchyardClient
import SwitchyardCore
import Testing

/// Crashing workers, bad plugins and bad bytes: each gets a clear answer and
/// nothing else is lost.
@Suite struct FaultTests {
    @Test func aCrashingPluginNeitherTakesTheServerDownNorLosesOtherTasks() async throws {
        try await withServer(workers: 2) { server in
            let client = try await server.connect()
            let before = try await client.serverStatus()
            let outcome = try await withThrowingTaskGroup(of: (Int, Result<[UInt8], SwitchyardError>).self) { group in
                for i in 0..<400 {
                    group.addTask {
                        let handler = i % 100 == 50 ? "crash" : "echo"
                        do {
                            return (i, .success(try await client.submit(handler, payload: Array("t\(i)".utf8))))
                        } catch let error as SwitchyardError {
                            return (i, .failure(error))
                        }
                    }
                }
                var outcome: [Int: Result<[UInt8], SwitchyardError>] = [:]
                for try await (i, result) in group { outcome[i] = result }
                return outcome
            }
            for i in 0..<400 {
                switch outcome[i]! {
                case .success(let bytes):
                    #expect(i % 100 != 50, "crash task \(i) cannot succeed")
                    #expect(bytes == Array("t\(i)".utf8), "task \(i)")
                case .failure(let error):
                    #expect(i % 100 == 50, "echo task \(i) failed: \(error)")
                    #expect(error.code == .workerCrashed)
                    #expect(error.message.contains("SIGSEGV"), "\(error.message)")
                    #expect(error.message.contains("attempt 2 of 2"), "retried once by default: \(error.message)")
                }
            }
            // Four crash tasks, each tried twice: eight workers died and were replaced.
            let after = try await client.serverStatus()
            #expect(after.workerRestarts - before.workerRestarts == 8)
            #expect(after.workers.count == 2)
            #expect(Set(after.workers.map(\.pid)).isDisjoint(with: before.workers.map(\.pid)))
            let info = try await client.serverStatus()
            #expect(info.workers.allSatisfy { $0.state == "ready" || $0.state == "starting" })
            #expect(try await client.submit("echo", payload: Array("still here".utf8)) == Array("still here".utf8))
            #expect(server.log.contains { $0.contains("SIGSEGV") && $0.contains("starting a replacement") })
            try await client.close()
        }
    }

    @Test func maxAttemptsOneFailsACrashedTaskWithoutARetry() async throws {
        try await withServer(workers: 1) { server in
            let client = try await server.connect()
            let error = await #expect(throws: SwitchyardError.self) {
                _ = try await client.submit("crash", payload: [UInt8](), maxAttempts: 1)
            }
            #expect(error?.code == .workerCrashed)
            #expect(error?.message.contains("SIGSEGV") == true, "\(error?.message ?? "")")
            #expect(error?.message.contains("attempt") == false, "no retry is announced: \(error?.message ?? "")")
            #expect(try await client.serverStatus().workerRestarts == 1)
            try await client.close()
        }
    }

    @Test func eachBadPluginIsSkippedWithItsFileAndReasonAndTheRestServe() async throws {
        let dir = try TemporaryDirectory()
        try FileManager.default.copyItem(atPath: Paths.shippedPlugin("echo"), toPath: dir.file("libswyplugin-echo.so"))
        try await compilePlugin(Paths.fixture("wrong_abi.c"), to: dir.file("wrong_abi.so"))
        try await compilePlugin(Paths.fixture("no_entry.c"), to: dir.file("no_entry.so"))
        try await compilePlugin(Paths.fixture("duplicate_echo.c"), to: dir.file("zz-duplicate_echo.so"))
        try await compilePlugin(Paths.fixture("start_fails.c"), to: dir.file("start_fails.so"))
        try await compilePlugin(Paths.fixture("start_crashes.c"), to: dir.file("start_crashes.so"))
        try FileManager.default.copyItem(atPath: Paths.fixture("not_a_plugin.so.txt"), toPath: dir.file("not_a_plugin.so"))

        try await withServer(workers: 2, plugins: dir.path) { server in
            let client = try await server.connect()
            let status = try await client.serverStatus()
            #expect(status.handlers.map(\.name) == ["echo"])
            #expect(status.handlers.first?.file == dir.file("libswyplugin-echo.so"))
            let reasons = Dictionary(status.skippedPlugins.map { ($0.file, $0.reason) }) { $0 + " | " + $1 }
            let expected: [(String, [String])] = [
                ("wrong_abi.so", ["ABI 99", "ABI 1"]),
                ("no_entry.so", ["swy_plugin_entry"]),
                ("zz-duplicate_echo.so", ["`echo`", "libswyplugin-echo.so"]),
                ("start_fails.so", ["start_fails", "cannot open the model file"]),
                ("start_crashes.so", ["start_crashes", "SIGSEGV", "on_worker_start"]),
                ("not_a_plugin.so", ["ELF"]),
            ]
            for (file, words) in expected {
                let reason = try #require(reasons[dir.file(file)], "no skip reported for \(file): \(reasons)")
                for word in words { #expect(reason.contains(word), "\(file): \(reason)") }
                #expect(server.log.contains { $0.contains("skipped plugin \(dir.file(file))") }, "\(file) is logged")
            }
            #expect(status.skippedPlugins.count == expected.count, "each file once: \(status.skippedPlugins)")

            // The first echo in load order wins; the others get a clear error.
            #expect(try await client.submit("echo", payload: Array("hi".utf8)) == Array("hi".utf8))
            for handler in ["wrong_abi", "start_fails", "start_crashes", "dup"] {
                let error = await #expect(throws: SwitchyardError.self) {
                    _ = try await client.submit(handler, payload: [UInt8]())
                }
                #expect(error?.code == .unknownHandler, "\(handler)")
            }
            try await client.close()
        }
    }

    @Test func garbageBytesGetAnErrorFrameThenTheConnectionClosesAndOthersCarryOn() async throws {
        try await withServer { server in
            let bystander = try await server.connect()

            // An HTTP request where a frame should be: its first four bytes read as a huge length.
            let http = try await RawConnection.connect(to: server.address)
            let (httpFrames, _) = try await http.sendAndReadUntilClosed(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            #expect(httpFrames.count == 1)
            let httpReply = try ServerMessage(frame: try #require(httpFrames.first))
            guard case .error(let code, _, let message) = httpReply else {
                Issue.record("expected ERROR, got \(httpReply)")
                return
            }
            #expect(code == .frameTooLarge)
            #expect(message.contains("16777216") || message.contains("16 MiB"), "\(message)")

            // A frame too short to hold its own header.
            let short = try await RawConnection.connect(to: server.address)
            let (shortFrames, _) = try await short.sendAndReadUntilClosed(helloBytes() + [0, 0, 0, 2, 0x05, 0])
            #expect(shortFrames.count == 2, "HELLO_OK, then ERROR")
            #expect(shortFrames.first?.type == .helloOK)
            if case .error(let code, _, _) = try ServerMessage(frame: try #require(shortFrames.last)) {
                #expect(code == .badFrame)
            } else {
                Issue.record("expected ERROR after the short frame, got \(shortFrames.last!)")
            }

            // A request before the handshake.
            let early = try await RawConnection.connect(to: server.address)
            let (earlyFrames, _) = try await early.sendAndReadUntilClosed(bytes(of: .ping(ByteBuffer()), requestID: 7))
            try #require(earlyFrames.count == 1)
            if case .error(let code, _, _) = try ServerMessage(frame: earlyFrames[0]) {
                #expect(code == .handshakeRequired)
                #expect(earlyFrames[0].requestID == 7)
            } else {
                Issue.record("expected ERROR, got \(earlyFrames[0])")
            }

            // The client connected before all that is unaffected, and so is a new one.
            #expect(try await bystander.submit("echo", payload: Array("fine".utf8)) == Array("fine".utf8))
            let newcomer = try await server.connect()
            try await newcomer.ping()
            try await newcomer.close()
            try await bystander.close()
        }
    }

    @Test func anOversizedFrameIsRefusedBeforeItsBodyArrives() async throws {
        try await withServer(extraArguments: ["--max-frame-size", "65536"]) { server in
            let client = try await server.connect()
            #expect(client.maxFrameSize == 65536)
            let raw = try await RawConnection.connect(to: server.address)
            // A SUBMIT header announcing 1 MiB, and only a little of its body.
            let header: [UInt8] = [0x00, 0x10, 0x00, 0x06, 0x02, 0x00, 0x00, 0x00, 0x00, 0x09]
            let (frames, _) = try await raw.sendAndReadUntilClosed(helloBytes() + header + [UInt8](repeating: 0, count: 100))
            // HELLO_OK, then the refusal; `#require`, so a missing frame fails the test, not the run.
            try #require(frames.count == 2, "\(frames.map { try? ServerMessage(frame: $0) })")
            if case .error(let code, _, let message) = try ServerMessage(frame: frames[1]) {
                #expect(code == .frameTooLarge)
                #expect(message.contains("65536"), "\(message)")
            } else {
                Issue.record("expected ERROR, got \(frames[1])")
            }
            // The client library knows the limit from the handshake: a typed error,
            // and the connection stays usable.
            let big = [UInt8](repeating: 0x61, count: 70_000)
            let error = await #expect(throws: SwitchyardError.self) { _ = try await client.submit("echo", payload: big) }
            #expect(error?.code == .frameTooLarge, "\(String(describing: error))")
            #expect(error?.message.contains("65536") == true)
            #expect(try await client.submit("echo", payload: Array("small".utf8)) == Array("small".utf8))
            let again = try await server.connect()
            #expect(try await again.submit("echo", payload: Array("ok".utf8)) == Array("ok".utf8))
            try await again.close()
        }
    }
}
