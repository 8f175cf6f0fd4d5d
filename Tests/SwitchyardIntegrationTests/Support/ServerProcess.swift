import Foundation
import NIOConcurrencyHelpers
import SwitchyardClient
import SwitchyardCore
import Subprocess
import SystemPackage
import Testing

/// Where the package's build products and sources are.
enum Paths {
    /// The repository root, found from this file's path.
    static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The build directory that holds the `switchyard` binary and the shipped
    /// plugins: the one this test process runs from (`swift test` builds every
    /// product there).
    static let buildDirectory: URL = {
        let candidates = [
            URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
                .deletingLastPathComponent(),
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            root.appendingPathComponent(".build/debug"),
        ]
        return candidates.first {
            FileManager.default.isExecutableFile(atPath: $0.appendingPathComponent("switchyard").path)
        } ?? candidates.last!
    }()

    /// The `switchyard` binary the tests run: the build directory's, or the
    /// one `SWITCHYARD_TEST_BINARY` names (`.ci/sanitize` runs the suites
    /// against a server built with a sanitizer; plugins still come from the
    /// build directory).
    static let switchyard: String = ProcessInfo.processInfo.environment["SWITCHYARD_TEST_BINARY"]
        ?? buildDirectory.appendingPathComponent("switchyard").path

    static func shippedPlugin(_ name: String) -> String {
        buildDirectory.appendingPathComponent("libswyplugin-\(name).so").path
    }

    static func fixture(_ name: String) -> String {
        root.appendingPathComponent("Tests/Fixtures/plugins/\(name)").path
    }
}

/// A fresh temporary directory, removed when the value is dropped.
final class TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("switchyard-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

struct CommandResult: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to completion and captures its output (through
/// swift-subprocess: Foundation's `Process` lost exit notifications when the
/// tests started many processes in parallel, and the run hung).
@discardableResult
func run(_ program: String, _ arguments: [String], environment: [String: String] = [:], stdin: String? = nil)
    async throws -> CommandResult
{
    let result = try await Subprocess.run(
        .path(FilePath(program)), arguments: Arguments(arguments),
        environment: .inherit.updating(environmentOverrides(environment)),
        input: .string(stdin ?? ""), output: .string(limit: 1 << 24), error: .string(limit: 1 << 24))
    return CommandResult(
        status: exitCode(result.terminationStatus), stdout: result.standardOutput,
        stderr: result.standardError)
}

/// Variables to set in a child's environment, as swift-subprocess takes them.
func environmentOverrides(_ environment: [String: String]) -> [Environment.Key: String?] {
    var overrides: [Environment.Key: String?] = [:]
    for (key, value) in environment { overrides[Environment.Key(stringLiteral: key)] = value }
    return overrides
}

/// An exit status as a shell shows it: the code, or 128 + the signal.
func exitCode(_ status: TerminationStatus) -> Int32 {
    switch status {
    case .exited(let code): Int32(code)
    case .signaled(let signal): 128 + Int32(signal)
    }
}

/// Compiles a C plugin with the SDK header, as a plugin author would.
func compilePlugin(_ source: String, to output: String, defines: [String] = []) async throws {
    let result = try await run(
        "/usr/bin/env",
        ["cc", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-I", Paths.root.appendingPathComponent("sdk/include").path]
            + defines + ["-o", output, source])
    #expect(result.status == 0, "cc failed: \(result.stderr)")
}

/// A real `switchyard serve` process on a loopback port the kernel picks.
///
/// `start` returns once the server logged its "listening on" line; every log
/// line is kept so tests can assert on them.
final class ServerProcess: Sendable {
    let pid: pid_t
    let address: HostPort
    private let exit: Task<Int32, Error>
    private let exited: NIOLockedValueBox<Bool>
    /// The data directory it was given when the caller named none (removed with the server).
    private let ownDataDirectory: TemporaryDirectory?

    /// Starts a server; with no `dataDirectory`, a fresh temporary one (so
    /// servers of parallel tests never share a store). `environment` adds to
    /// (or replaces in) the test process's environment.
    static func start(
        workers: Int = 2, plugins: String? = nil, dataDirectory: String? = nil, extraArguments: [String] = [],
        environment: [String: String] = [:]
    ) async throws -> ServerProcess {
        let own = dataDirectory == nil ? try TemporaryDirectory() : nil
        var arguments = [
            "serve", "--listen", "127.0.0.1:0", "--workers", "\(workers)", "--data-dir", dataDirectory ?? own!.path,
        ]
        if let plugins { arguments += ["--plugins", plugins] }
        // SWITCHYARD_TEST_SERVER_ARGS: arguments every test's server gets (.ci/sanitize
        // passes its sanitizer's options on to the workers with --worker-env).
        arguments += (ProcessInfo.processInfo.environment["SWITCHYARD_TEST_SERVER_ARGS"] ?? "")
            .split(separator: " ").map(String.init)
        arguments += extraArguments
        let watch = LogWatch()
        let exited = NIOLockedValueBox(false)
        let (started, startedContinuation) = AsyncStream<(pid_t, HostPort?)>.makeStream()
        // The process lives as long as this task: it reads the log until the
        // server and its workers have closed it, then reaps the server.
        let overrides = environmentOverrides(environment)
        let exit = Task<Int32, Error> {
            // Also when the server cannot be started at all (no such binary): the
            // wait for its address below must end, not hang.
            defer { startedContinuation.finish() }
            let result = try await Subprocess.run(
                .path(FilePath(Paths.switchyard)), arguments: Arguments(arguments),
                environment: .inherit.updating(overrides), input: .none,
                output: .discarded, error: .sequence
            ) { execution in
                let pid = execution.processIdentifier.value
                var reported = false
                // SWITCHYARD_TEST_LOG_DIR=DIR keeps each server's log in DIR/PID.log, for post-mortems.
                let keep = ProcessInfo.processInfo.environment["SWITCHYARD_TEST_LOG_DIR"].flatMap {
                    _ = FileManager.default.createFile(atPath: "\($0)/\(pid).log", contents: nil)
                    return FileHandle(forWritingAtPath: "\($0)/\(pid).log")
                }
                for try await line in execution.standardError.strings() {
                    watch.saw(line)
                    keep?.write(Data((line + "\n").utf8))
                    if !reported, let range = line.range(of: "listening on ") {
                        reported = true
                        let shown = String(line[range.upperBound...].prefix { $0 != " " })
                        startedContinuation.yield((pid, try? HostPort(parsing: shown)))
                    }
                }
                if !reported { startedContinuation.yield((pid, nil)) }
            }
            startedContinuation.finish()
            exited.withLockedValue { $0 = true }
            watch.ended()
            return exitCode(result.terminationStatus)
        }
        var outcome: (pid_t, HostPort?)?
        for await value in started {
            outcome = value
            break
        }
        guard let (pid, address) = outcome, let address else {
            let status: String
            do { status = "exit \(try await exit.value)" } catch { status = "\(Paths.switchyard): \(error)" }
            let log = watch.lines.joined(separator: "\n")
            throw TestFailure("the server exited (\(status)) before it listened; its log:\n\(log)")
        }
        return ServerProcess(
            pid: pid, address: address, exit: exit, exited: exited, ownDataDirectory: own,
            dataDirectory: dataDirectory ?? own!.path, watch: watch)
    }

    private let watch: LogWatch

    /// Its data directory, which holds the admin socket.
    let dataDirectory: String
    /// The admin socket (`DATA_DIR/switchyard.sock`): admin without a token.
    var adminSocket: ServerAddress { .unix(path: dataDirectory + "/switchyard.sock") }

    private init(
        pid: pid_t, address: HostPort, exit: Task<Int32, Error>,
        exited: NIOLockedValueBox<Bool>, ownDataDirectory: TemporaryDirectory?, dataDirectory: String, watch: LogWatch
    ) {
        self.dataDirectory = dataDirectory
        self.watch = watch
        self.exited = exited
        self.pid = pid
        self.address = address
        self.exit = exit
        self.ownDataDirectory = ownDataDirectory
    }

    var log: [String] { watch.lines }

    /// Returns once the server logs a line (already logged, or to come) for
    /// which `matches` is true; throws if the server exits first.
    func waitForLog(_ matches: @escaping @Sendable (String) -> Bool) async throws {
        try await watch.wait(for: matches)
    }

    func connect() async throws -> SwitchyardClient {
        try await SwitchyardClient.connect(to: address)
    }

    /// Connects over TCP with a token (and TLS, if given).
    func connect(token: String?, tls: ClientTLS? = nil) async throws -> SwitchyardClient {
        try await SwitchyardClient.connect(to: .tcp(address), options: ConnectOptions(token: token, tls: tls))
    }

    /// Sends a signal to the server process.
    func signal(_ signal: Int32) {
        if !exited.withLockedValue({ $0 }) { kill(pid, signal) }
    }

    /// Sends SIGTERM (or `signal`) and waits for the process to exit.
    @discardableResult
    func stop(signal: Int32 = SIGTERM) async -> Int32 {
        self.signal(signal)
        return await waitForExit()
    }

    /// The exit status, once the server (and every worker, which shares its
    /// log) has exited.
    func waitForExit() async -> Int32 {
        (try? await exit.value) ?? -1
    }

    deinit {
        // A test that failed halfway must not leave a server behind.
        signal(SIGKILL)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` with a started server and always stops it afterwards.
func withServer<T>(
    workers: Int = 2, plugins: String? = nil, dataDirectory: String? = nil, extraArguments: [String] = [],
    environment: [String: String] = [:], _ body: (ServerProcess) async throws -> T
) async throws -> T {
    let server = try await ServerProcess.start(
        workers: workers, plugins: plugins, dataDirectory: dataDirectory, extraArguments: extraArguments,
        environment: environment)
    do {
        let value = try await body(server)
        await server.stop()
        return value
    } catch {
        await server.stop(signal: SIGKILL)
        throw error
    }
}

/// A server's log lines as they arrive, and the tests waiting for one (see
/// `ServerProcess.waitForLog`).
final class LogWatch: Sendable {
    private struct Waiter {
        var matches: @Sendable (String) -> Bool
        var continuation: CheckedContinuation<Void, Error>
    }
    private let state = NIOLockedValueBox((waiters: [Waiter](), ended: false, seen: [String]()))

    func saw(_ line: String) {
        let ready: [Waiter] = state.withLockedValue { state in
            state.seen.append(line)
            let ready = state.waiters.filter { $0.matches(line) }
            state.waiters.removeAll { $0.matches(line) }
            return ready
        }
        for waiter in ready { waiter.continuation.resume() }
    }

    func ended() {
        let left = state.withLockedValue { state in
            state.ended = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in left { waiter.continuation.resume(throwing: TestFailure("the server exited before the awaited log line")) }
    }

    /// Every line so far.
    var lines: [String] { state.withLockedValue { $0.seen } }

    func wait(for matches: @escaping @Sendable (String) -> Bool) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            let outcome: Result<Void, Error>? = state.withLockedValue { state in
                if state.seen.contains(where: matches) { return .success(()) }
                if state.ended { return .failure(TestFailure("the server exited before the awaited log line")) }
                state.waiters.append(Waiter(matches: matches, continuation: continuation))
                return nil
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }
}

/// Tasks each worker has finished, in worker-slot order: which worker ran what.
func tasksDone(_ client: SwitchyardClient) async throws -> [UInt64] {
    try await client.serverStatus().workers.sorted { $0.id < $1.id }.map(\.tasksDone)
}
