import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SwitchyardClient
import SwitchyardCore
import Testing

@Suite struct ShutdownTests {
    @Test func sigtermFinishesInFlightTasksThenExitsZero() async throws {
        let server = try await ServerProcess.start(workers: 2)
        let client = try await server.connect()
        // Two sleeps, one per worker, plus queued echoes behind them.
        let (running, runningContinuation) = AsyncStream<Void>.makeStream()
        let results = Task {
            try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        let reply = try await client.submit("sleep", payload: Array("600".utf8)) { _, _ in
                            runningContinuation.yield()
                        }
                        return String(decoding: reply, as: UTF8.self)
                    }
                }
                var replies: [String] = []
                for try await reply in group { replies.append(reply) }
                return replies
            }
        }
        // Progress from both tasks means both are running on a worker.
        var progressed = 0
        for await _ in running {
            progressed += 1
            if progressed == 2 { break }
        }
        let status = await server.stop(signal: SIGTERM)
        let replies = try await results.value
        #expect(replies == ["slept 600 ms", "slept 600 ms"])
        #expect(status == 0)
        #expect(server.log.contains { $0.contains("shutting down") })
        #expect(server.log.last?.contains("stopped") == true, "\(server.log.suffix(3))")
    }

    @Test func afterSigtermNewSubmitsAreRefusedWithShuttingDown() async throws {
        let server = try await ServerProcess.start(workers: 1)
        let client = try await server.connect()
        let (running, runningContinuation) = AsyncStream<Void>.makeStream()
        let long = Task {
            try await client.submit("sleep", payload: Array("800".utf8)) { _, _ in runningContinuation.yield() }
        }
        for await _ in running { break }
        server.signal(SIGTERM)
        // The server stops accepting at once; an open connection is told why.
        var refused: SwitchyardError?
        while refused == nil {
            do {
                _ = try await client.submit("echo", payload: Array("x".utf8))
            } catch let error as SwitchyardError {
                refused = error
            }
        }
        #expect(refused?.code == .shuttingDown || refused?.code == nil, "\(String(describing: refused))")
        #expect(String(decoding: try await long.value, as: UTF8.self) == "slept 800 ms")
        #expect(await server.waitForExit() == 0)
    }
}

@Suite struct ClosedConnectionTests {
    @Test func aRequestOnAConnectionTheServerClosedFailsInsteadOfHanging() async throws {
        let server = try await ServerProcess.start(workers: 1)
        let client = try await server.connect()
        try await client.ping()
        #expect(await server.stop() == 0)
        // The channel is closed by now; each request must fail at once, every time.
        for _ in 0..<3 {
            let error = await #expect(throws: SwitchyardError.self) { try await client.ping() }
            #expect(error?.code == nil, "a connection failure, not a server error")
        }
    }
}

@Suite struct CLITests {
    @Test func submitWritesTheResultAloneToStdout() async throws {
        try await withServer { server in
            let env = ["SWITCHYARD_SERVER": "\(server.address)"]
            let echo = try await run(Paths.switchyard, ["submit", "echo", "hello world"], environment: env)
            #expect(echo.status == 0)
            #expect(echo.stdout == "hello world")
            let stdin = try await run(Paths.switchyard, ["submit", "wordcount"], environment: env, stdin: "a b c\n")
            #expect(stdin.status == 0)
            #expect(stdin.stdout.contains(#""words":3"#))
            let dir = try TemporaryDirectory()
            try Data("from a file".utf8).write(to: URL(fileURLWithPath: dir.file("payload")))
            let file = try await run(
                Paths.switchyard, ["submit", "--server", "\(server.address)", "echo", "--file", dir.file("payload")])
            #expect(file.status == 0)
            #expect(file.stdout == "from a file")
        }
    }

    @Test func submitErrorsGoToStderrWithTheCodeAndANonZeroExit() async throws {
        try await withServer { server in
            let env = ["SWITCHYARD_SERVER": "\(server.address)"]
            let failed = try await run(Paths.switchyard, ["submit", "fail", "x"], environment: env)
            #expect(failed.status == 1)
            #expect(failed.stdout.isEmpty)
            #expect(failed.stderr.contains("HANDLER_FAILED"))
            let unknown = try await run(Paths.switchyard, ["submit", "nope", "x"], environment: env)
            #expect(unknown.status == 1)
            #expect(unknown.stderr.contains("UNKNOWN_HANDLER") && unknown.stderr.contains("nope"))
        }
    }

    @Test func anUnreachableServerIsExitCodeThree() async throws {
        // A port that was just free: bind nothing there.
        let result = try await run(Paths.switchyard, ["submit", "--server", "127.0.0.1:1", "echo", "x"])
        #expect(result.status == 3)
        #expect(result.stderr.contains("127.0.0.1:1"))
    }

    @Test func backgroundPrintsAnIDThatStatusDescribes() async throws {
        try await withServer { server in
            let env = ["SWITCHYARD_SERVER": "\(server.address)"]
            let submitted = try await run(Paths.switchyard, ["submit", "--background", "echo", "bg"], environment: env)
            #expect(submitted.status == 0)
            let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(UInt64(id) != nil, "an id: \(submitted.stdout)")
            let status = try await run(Paths.switchyard, ["status", id, "--json"], environment: env)
            #expect(status.status == 0)
            #expect(status.stdout.contains("\"handler\"") && status.stdout.contains("echo"), "\(status.stdout)")
            let server = try await run(Paths.switchyard, ["status", "--json"], environment: env)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(server.stdout.utf8)) as? [String: Any])
            #expect((json["workers"] as? [Any])?.count == 2)
        }
    }

    @Test func badServeArgumentsAreRefusedWithTheFlagNamed() async throws {
        let result = try await run(Paths.switchyard, ["serve", "--workers", "0"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--workers"), "\(result.stderr)")
        let plugins = try await run(Paths.switchyard, ["serve", "--listen", "127.0.0.1:0", "--store", "memory", "--plugins", "/nonexistent/dir"])
        #expect(plugins.status != 0)
        #expect(plugins.stderr.contains("/nonexistent/dir"), "\(plugins.stderr)")
    }
}

@Suite struct ExampleTests {
    @Test func theOutOfTreeCPluginBuildsWithMakeAndServes() async throws {
        let dir = try TemporaryDirectory()
        let example = Paths.root.appendingPathComponent("examples/c-plugin").path
        try FileManager.default.copyItem(atPath: example, toPath: dir.file("c-plugin"))
        let make = try await run(
            "/usr/bin/env",
            ["make", "-C", dir.file("c-plugin"), "SDK_INCLUDE=\(Paths.root.appendingPathComponent("sdk/include").path)"])
        #expect(make.status == 0, "\(make.stdout)\(make.stderr)")
        let plugins = dir.file("plugins")
        try FileManager.default.createDirectory(atPath: plugins, withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: dir.file("c-plugin/libreverse.so"), toPath: plugins + "/libreverse.so")
        try await withServer(plugins: plugins) { server in
            let client = try await server.connect()
            #expect(try await client.serverStatus().handlers.map(\.name) == ["reverse"])
            #expect(try await client.submit("reverse", payload: Array("stressed".utf8)) == Array("desserts".utf8))
            try await client.close()
        }
        // Its per-worker configuration comes from --config.
        try await withServer(plugins: plugins, extraArguments: ["--config", "reverse.prefix=>"]) { server in
            let client = try await server.connect()
            #expect(try await client.submit("reverse", payload: Array("abc".utf8)) == Array(">cba".utf8))
            try await client.close()
        }
    }

    @Test func theEmbeddingExampleRunsATaskAndShutsDown() async throws {
        let result = try await run(Paths.buildDirectory.appendingPathComponent("EmbedExample").path, [])
        #expect(result.status == 0, "\(result.stderr)")
        // printf 'hello from an embedded host' | sha256sum
        #expect(result.stdout == "fc12440f055faed92c9635ae3f81d56f54fcc57a4cb5da1a21a552116d899daa\n")
    }
}
