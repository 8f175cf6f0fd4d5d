import Foundation
import NIOConcurrencyHelpers
import SwitchyardClient
import SwitchyardCore
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

    static var switchyard: String { buildDirectory.appendingPathComponent("switchyard").path }

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

/// Runs a program to completion and captures its output.
@discardableResult
func run(_ program: String, _ arguments: [String], environment: [String: String] = [:], stdin: String? = nil)
    async throws -> CommandResult
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    let input = Pipe()
    process.standardInput = input
    let exited = AsyncStream<Int32>.makeStream()
    process.terminationHandler = { exited.continuation.yield($0.terminationStatus) }
    try process.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    // Read both pipes to the end before waiting, so a full pipe cannot block the child.
    async let stdoutData = Task.detached { out.fileHandleForReading.readDataToEndOfFile() }.value
    async let stderrData = Task.detached { err.fileHandleForReading.readDataToEndOfFile() }.value
    let (o, e) = await (stdoutData, stderrData)
    var status: Int32 = -1
    for await s in exited.stream {
        status = s
        break
    }
    return CommandResult(
        status: status, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
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
    let process: Process
    let address: HostPort
    private let logLines: NIOLockedValueBox<[String]>
    private let exitStream: AsyncStream<Int32>

    static func start(
        workers: Int = 2, plugins: String? = nil, extraArguments: [String] = []
    ) async throws -> ServerProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Paths.switchyard)
        var arguments = ["serve", "--listen", "127.0.0.1:0", "--workers", "\(workers)"]
        if let plugins { arguments += ["--plugins", plugins] }
        process.arguments = arguments + extraArguments
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        let err = Pipe()
        process.standardError = err
        let (exitStream, exitContinuation) = AsyncStream<Int32>.makeStream()
        process.terminationHandler = {
            exitContinuation.yield($0.terminationStatus)
            exitContinuation.finish()
        }
        let lines = NIOLockedValueBox<[String]>([])
        let (listening, listeningContinuation) = AsyncStream<String?>.makeStream()
        // One reader thread per server: collects lines and reports the listen address.
        let reader = Thread {
            var pending = Data()
            var reported = false
            let handle = err.fileHandleForReading
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: 0x0A) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    lines.withLockedValue { $0.append(line) }
                    if !reported, let range = line.range(of: "listening on ") {
                        let rest = line[range.upperBound...]
                        reported = true
                        listeningContinuation.yield(String(rest.prefix { $0 != " " }))
                    }
                }
            }
            if !reported { listeningContinuation.yield(nil) }
            listeningContinuation.finish()
        }
        try process.run()
        reader.start()
        var address: HostPort?
        for await shown in listening {
            address = shown.flatMap { try? HostPort(parsing: $0) }
            break
        }
        guard let address else {
            process.terminate()
            let log = lines.withLockedValue { $0.joined(separator: "\n") }
            throw TestFailure("the server exited before it listened; its log:\n\(log)")
        }
        return ServerProcess(process: process, address: address, logLines: lines, exitStream: exitStream)
    }

    private init(process: Process, address: HostPort, logLines: NIOLockedValueBox<[String]>, exitStream: AsyncStream<Int32>) {
        self.process = process
        self.address = address
        self.logLines = logLines
        self.exitStream = exitStream
    }

    var log: [String] { logLines.withLockedValue { $0 } }

    func connect() async throws -> SwitchyardClient {
        try await SwitchyardClient.connect(to: address)
    }

    /// Sends SIGTERM (or `signal`) and waits for the process to exit.
    @discardableResult
    func stop(signal: Int32 = SIGTERM) async -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        return await waitForExit()
    }

    func waitForExit() async -> Int32 {
        for await status in exitStream { return status }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` with a started server and always stops it afterwards.
func withServer<T>(
    workers: Int = 2, plugins: String? = nil, extraArguments: [String] = [],
    _ body: (ServerProcess) async throws -> T
) async throws -> T {
    let server = try await ServerProcess.start(workers: workers, plugins: plugins, extraArguments: extraArguments)
    do {
        let value = try await body(server)
        await server.stop()
        return value
    } catch {
        await server.stop(signal: SIGKILL)
        throw error
    }
}
