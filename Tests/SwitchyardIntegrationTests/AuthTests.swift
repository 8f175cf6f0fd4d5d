import Foundation
import NIOCore
import SwitchyardClient
import SwitchyardCore
import Testing

/// Tokens of the auth files these tests write.
enum TestTokens {
    static let admin = "admin-4f1c2b7a9d0e3f5a6b8c"
    static let submit = "submit-7e2d4c6a8b0f1e3d5c7a"
    static let otherSubmit = "submit-1a3b5c7d9e0f2a4b6c8d"
    static let wrong = "wrong-00000000000000000000"

    /// Writes an auth file with `mode` into `directory` and returns its path.
    static func file(in directory: TemporaryDirectory, mode: Int = 0o600) throws -> String {
        let path = directory.file("auth")
        let text = "# test tokens\nadmin:\(admin)\nsubmit:\(submit)\nsubmit:\(otherSubmit)\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }
}

/// Runs `body`, which must throw a `SwitchyardError` with `code` whose message mentions each of `mentions`.
func expectRefusal(
    _ code: ErrorCode, mentioning mentions: String..., sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async {
    do {
        try await body()
        Issue.record("expected \(code), but it succeeded", sourceLocation: sourceLocation)
    } catch let error as SwitchyardError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        for mention in mentions {
            #expect(error.message.contains(mention), "`\(error.message)` should mention `\(mention)`", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("expected SwitchyardError \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

/// A task that waits an hour in state `scheduled`: cancellable, never running.
func submitScheduled(_ client: SwitchyardClient) async throws -> TaskID {
    try await client.submitBackground("echo", payload: ByteBuffer(string: "later"), options: SubmitOptions(delay: .seconds(3600)))
}

extension StrategyReport {
    /// The strategy used for handlers without their own.
    var defaultStrategy: String? { active.first { $0.scope == "default" }?.name }
}

@Suite("Authentication and roles")
struct AuthTests {
    @Test func aClientWithoutATokenOrWithAWrongOneIsRefusedAndOthersAreServed() async throws {
        let dir = try TemporaryDirectory()
        try await withServer(extraArguments: ["--auth", try TestTokens.file(in: dir)]) { server in
            try await server.waitForLog { $0.contains("clients authenticate: 1 admin and 2 submit tokens") }
            let admin = try await server.connect(token: TestTokens.admin)
            await expectRefusal(.authRequired, mentioning: "--token-file", "SWITCHYARD_TOKEN") {
                _ = try await server.connect()
            }
            await expectRefusal(.authFailed, mentioning: "matches none") {
                _ = try await server.connect(token: TestTokens.wrong)
            }
            // Nothing but HELLO before authenticating: a request first is refused, and closes the connection.
            let raw = try await RawConnection.connect(to: server.address)
            let (frames, _) = try await raw.sendAndReadUntilClosed(bytes(of: .serverStatus, requestID: 3))
            #expect(frames.count == 1)
            if case .error(let code, _, _)? = frames.first.flatMap({ try? ServerMessage(frame: $0) }) {
                #expect(code == .handshakeRequired)
            } else {
                Issue.record("expected ERROR HANDSHAKE_REQUIRED, got \(frames)")
            }
            // The authenticated client carries on.
            #expect(try await admin.submit("echo", payload: Array("still here".utf8)) == Array("still here".utf8))
            try await admin.close()
        }
    }

    @Test func aSubmitTokenMayNotAdministerNorCancelOthersTasks() async throws {
        let dir = try TemporaryDirectory()
        try await withServer(extraArguments: ["--auth", try TestTokens.file(in: dir)]) { server in
            let submitter = try await server.connect(token: TestTokens.submit)
            let admin = try await server.connect(token: TestTokens.admin)
            // What a submit token may do: submit, read, wait, list.
            #expect(try await submitter.submit("echo", payload: Array("hi".utf8)) == Array("hi".utf8))
            _ = try await submitter.serverStatus()
            _ = try await submitter.strategies()
            let adminsTask = try await submitScheduled(admin)
            #expect(try await submitter.taskInfo(adminsTask).state == .scheduled)
            #expect(try await submitter.listTasks(TaskListQuery()).contains { $0.id == adminsTask })

            // What it may not.
            await expectRefusal(.forbidden, mentioning: "RELOAD needs the admin role", "submit role") {
                _ = try await submitter.reload()
            }
            await expectRefusal(.forbidden, mentioning: "STRATEGY_SET needs the admin role") {
                _ = try await submitter.setStrategy("least_loaded")
            }
            await expectRefusal(.forbidden, mentioning: "STRATEGY_LOAD needs the admin role") {
                _ = try await submitter.loadStrategy(path: "/nonexistent/strategy.so")
            }
            await expectRefusal(.forbidden, mentioning: "task \(adminsTask) was submitted by another client") {
                _ = try await submitter.cancel(adminsTask)
            }
            let othersTask = try await submitScheduled(try await server.connect(token: TestTokens.otherSubmit))
            await expectRefusal(.forbidden, mentioning: "only the tasks you submitted") {
                _ = try await submitter.cancel(othersTask)
            }
            #expect(try await admin.taskInfo(adminsTask).state == .scheduled, "the refused cancel changed nothing")
            #expect(try await admin.taskInfo(othersTask).state == .scheduled)
            #expect(try await admin.strategies().defaultStrategy == "round_robin")

            // Refusals leave the connection open; its own tasks it may cancel, an admin any.
            let own = try await submitScheduled(submitter)
            #expect(try await submitter.cancel(own).state == .cancelled)
            #expect(try await admin.cancel(othersTask).state == .cancelled)
            _ = try await admin.setStrategy("least_loaded")
            try await submitter.close()
            try await admin.close()
        }
    }

    @Test func aSubmitTokenMayCancelItsOwnTaskAfterARestart() async throws {
        let dir = try TemporaryDirectory()
        let auth = try TestTokens.file(in: dir)
        let data = try TemporaryDirectory()
        let id = try await withServer(dataDirectory: data.path, extraArguments: ["--auth", auth]) { server in
            try await submitScheduled(try await server.connect(token: TestTokens.submit))
        }
        // The submitter is stored with the task (SQLite store): the same token still owns it.
        try await withServer(dataDirectory: data.path, extraArguments: ["--auth", auth]) { server in
            let other = try await server.connect(token: TestTokens.otherSubmit)
            await expectRefusal(.forbidden) { _ = try await other.cancel(id) }
            let owner = try await server.connect(token: TestTokens.submit)
            #expect(try await owner.cancel(id).state == .cancelled)
        }
    }

    @Test func theAdminSocketNeedsNoTokenAndOnlyItsUserMayOpenIt() async throws {
        let dir = try TemporaryDirectory()
        try await withServer(extraArguments: ["--auth", try TestTokens.file(in: dir)]) { server in
            guard case .unix(let path) = server.adminSocket else { return }
            try await server.waitForLog { $0.contains("admin socket \(path)") }
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect(attributes[.type] as? FileAttributeType == .typeSocket)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)

            let submitter = try await server.connect(token: TestTokens.submit)
            let task = try await submitScheduled(submitter)
            let local = try await SwitchyardClient.connect(to: server.adminSocket, options: ConnectOptions())
            #expect(try await local.setStrategy("least_loaded").defaultStrategy == "least_loaded")
            #expect(try await local.cancel(task).state == .cancelled)
            #expect(try await local.submit("echo", payload: Array("local".utf8)) == Array("local".utf8))
            // The CLI reaches it with --server unix:PATH.
            let cli = try await run(Paths.switchyard, ["strategy", "set", "round_robin", "--server", "unix:\(path)"])
            #expect(cli.status == 0, "\(cli.stderr)")
            #expect(try await submitter.strategies().defaultStrategy == "round_robin")
            try await local.close()
            try await submitter.close()
        }
    }

    @Test func repeatedFailuresBarTheAddressForAWhile() async throws {
        let dir = try TemporaryDirectory()
        let arguments = ["--auth", try TestTokens.file(in: dir), "--auth-max-failures", "2", "--auth-penalty", "1h"]
        try await withServer(extraArguments: arguments) { server in
            // Two wrong HELLOs on one connection: the first leaves it open, the second closes it.
            let raw = try await RawConnection.connect(to: server.address)
            let hello = bytes(
                of: .hello(minVersion: 1, maxVersion: 1, clientName: "guesser", token: TestTokens.wrong), requestID: 1)
            let (frames, _) = try await raw.sendAndReadUntilClosed(hello + hello + bytes(of: .serverStatus, requestID: 2))
            let replies = frames.compactMap { try? ServerMessage(frame: $0) }
            #expect(replies.count == 2, "AUTH_FAILED twice, then closed: \(replies)")
            guard replies.count == 2, case .error(.authFailed, _, let first) = replies[0],
                case .error(.authFailed, _, let second) = replies[1]
            else {
                Issue.record("expected AUTH_FAILED twice, got \(replies)")
                return
            }
            #expect(first.contains("1 more failure from 127.0.0.1"), "\(first)")
            #expect(second.contains("127.0.0.1 is refused for 3600 s"), "\(second)")
            try await server.waitForLog { $0.contains("AUTH_FAILED") }

            // Now the address is refused, even with the right token, and told for how long.
            await expectRefusal(.authLocked, mentioning: "127.0.0.1", "refused for", "s more") {
                _ = try await server.connect(token: TestTokens.admin)
            }
            let cli = try await run(
                Paths.switchyard, ["status", "--server", "\(server.address)"],
                environment: ["SWITCHYARD_TOKEN": TestTokens.admin])
            #expect(cli.status == 3)
            #expect(cli.stderr.contains("AUTH_LOCKED"), "\(cli.stderr)")
            // The admin socket is not an address that can be barred.
            let local = try await SwitchyardClient.connect(to: server.adminSocket, options: ConnectOptions())
            try await local.ping()
            try await local.close()
        }
    }

    @Test func theCLITakesItsTokenFromAFileOrTheEnvironment() async throws {
        let dir = try TemporaryDirectory()
        try await withServer(extraArguments: ["--auth", try TestTokens.file(in: dir)]) { server in
            try Data((TestTokens.submit + "\n").utf8).write(to: URL(fileURLWithPath: dir.file("token")))
            let fromFile = try await run(
                Paths.switchyard, ["submit", "--server", "\(server.address)", "--token-file", dir.file("token"), "echo", "a"])
            #expect(fromFile.status == 0, "\(fromFile.stderr)")
            #expect(fromFile.stdout == "a")
            let env = ["SWITCHYARD_SERVER": "\(server.address)", "SWITCHYARD_TOKEN": TestTokens.submit]
            let fromEnv = try await run(Paths.switchyard, ["submit", "echo", "b"], environment: env)
            #expect(fromEnv.status == 0, "\(fromEnv.stderr)")
            #expect(fromEnv.stdout == "b")
            let forbidden = try await run(Paths.switchyard, ["reload"], environment: env)
            #expect(forbidden.status == 1)
            #expect(forbidden.stderr.contains("FORBIDDEN"), "\(forbidden.stderr)")
            let none = try await run(Paths.switchyard, ["submit", "--server", "\(server.address)", "echo", "c"])
            #expect(none.status == 3)
            #expect(none.stderr.contains("AUTH_REQUIRED"), "\(none.stderr)")
        }
    }
}

@Suite("Starting with or without authentication")
struct AuthStartTests {
    @Test func anAuthFileOthersCanReadIsRefusedAtStart() async throws {
        let dir = try TemporaryDirectory()
        let path = try TestTokens.file(in: dir, mode: 0o644)
        let data = try TemporaryDirectory()
        let result = try await run(
            Paths.switchyard,
            ["serve", "--listen", "127.0.0.1:0", "--store", "memory", "--data-dir", data.path, "--auth", path])
        #expect(result.status == 2)
        #expect(result.stderr.contains(path), "\(result.stderr)")
        #expect(result.stderr.contains("chmod 600 \(path)"), "\(result.stderr)")

        try Data("admin:\(TestTokens.admin)\nsuperuser:\(TestTokens.submit)\n".utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        let badLine = try await run(
            Paths.switchyard,
            ["serve", "--listen", "127.0.0.1:0", "--store", "memory", "--data-dir", data.path, "--auth", path])
        #expect(badLine.status == 2)
        #expect(badLine.stderr.contains("line 2") && badLine.stderr.contains("superuser"), "\(badLine.stderr)")
    }

    @Test func anotherAddressThanLoopbackNeedsAuthOrInsecure() async throws {
        let data = try TemporaryDirectory()
        let refused = try await run(
            Paths.switchyard, ["serve", "--listen", "0.0.0.0:0", "--store", "memory", "--data-dir", data.path])
        #expect(refused.status == 64)
        #expect(refused.stderr.contains("0.0.0.0"), "\(refused.stderr)")
        #expect(refused.stderr.contains("--auth FILE") && refused.stderr.contains("--insecure"), "\(refused.stderr)")
        // With --insecure it starts, and says loudly what that means. (Nothing connects to it.)
        let server = try await ServerProcess.start(extraArguments: ["--listen", "0.0.0.0:0", "--insecure"])
        try await server.waitForLog { $0.contains("--insecure: anyone who can reach 0.0.0.0 may submit tasks") }
        #expect(await server.stop() == 0)
    }

    @Test func withoutAnAuthFileTheServerSaysItBindsLoopbackOnly() async throws {
        try await withServer { server in
            try await server.waitForLog { $0.contains("no auth file (--auth)") && $0.contains("loopback") }
            // And behaves as before: no token needed, every request allowed.
            let client = try await server.connect()
            let task = try await submitScheduled(client)
            #expect(try await client.cancel(task).state == .cancelled)
            _ = try await client.setStrategy("least_loaded")
            try await client.close()
        }
    }
}
