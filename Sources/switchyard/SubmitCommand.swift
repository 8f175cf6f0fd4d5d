import ArgumentParser
import Foundation
import NIOCore
import SwitchyardClient
import SwitchyardCore

struct SubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Run a task and print its result.",
        discussion: """
            The payload comes from the PAYLOAD argument, --file, or standard input (when it is \
            not a terminal). The result bytes alone go to standard output; progress reports \
            go to standard error. With --delay or --run-at the task waits for its time first \
            (and so does the command, unless --background). With --unique, a submit whose key \
            matches a task that is queued, scheduled, waiting to retry or running gets that task \
            instead of a new one. DURATION is a number with a unit: ms, s, m, h or d (250ms, \
            10s, 5m, 1.5h, 2d). Exit status: 0 success, 1 the task or the request failed \
            (the error code and message go to standard error), 2 the payload file could not be \
            read, 3 the server could not be reached, 64 the command line is wrong.
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "The handler to run, such as echo or sha256.")
    var handler: String

    @Argument(help: "The payload, as text.")
    var payload: String?

    @Option(help: "Read the payload from this file (- for standard input).")
    var file: String?

    @Flag(help: "Queue the task and print its id instead of waiting for the result.")
    var background = false

    @Option(help: "Priority, -1000000 to 1000000: higher runs first.")
    var priority: Int32 = 0

    @Option(help: "Attempts allowed, 1-100 (default: the server's).")
    var maxAttempts: UInt32?

    @Option(
        help: ArgumentHelp("Run no sooner than this long from now, at most 366 days.", valueName: "duration"),
        transform: { try DurationArgument(parsing: $0) })
    var delay: DurationArgument?

    @Option(
        help: ArgumentHelp(
            "Run no sooner than this time, at most 366 days ahead: ISO 8601 with a time zone (2026-12-01T10:00:00Z) or a Unix time in seconds.",
            valueName: "time"),
        transform: { try TimeArgument(parsing: $0) })
    var runAt: TimeArgument?

    @Option(
        help: ArgumentHelp(
            "Kill an attempt that runs longer than this (1ms to 7d) and count it as failed (default: the server's).",
            valueName: "duration"),
        transform: { try DurationArgument(parsing: $0) })
    var timeout: DurationArgument?

    @Option(help: ArgumentHelp("Routing key, 1-255 bytes.", valueName: "key"))
    var key: String?

    @Option(
        name: .customLong("unique"),
        help: ArgumentHelp("Unique key, 1-255 bytes: reuse the live task with this key, if any.", valueName: "key"))
    var uniqueKey: String?

    func validate() throws {
        if payload != nil && file != nil { throw ValidationError("give the payload as an argument or with --file, not both") }
        if let problem = HandlerName.validate(handler) { throw ValidationError(problem) }
        if !WireProtocol.priorityRange.contains(priority) {
            throw ValidationError("--priority must be from -1000000 to 1000000")
        }
        if let maxAttempts, !WireProtocol.maxAttemptsRange.contains(maxAttempts) {
            throw ValidationError("--max-attempts must be from 1 to 100")
        }
        if delay != nil && runAt != nil { throw ValidationError("give --delay or --run-at, not both") }
        if let delay, delay.milliseconds > WireProtocol.maxDelayMillis {
            throw ValidationError("--delay is \(delay); the limit is 366d (366 days)")
        }
        if let runAt, runAt.epochMillis <= 0 {
            throw ValidationError("--run-at must be after 1970-01-01T00:00:00Z")
        }
        if let timeout, !WireProtocol.timeoutMillisRange.contains(UInt32(clamping: timeout.milliseconds)) {
            throw ValidationError("--timeout must be from 1ms to 7d; leave it out for the server's default")
        }
        for (flag, value) in [("--key", key), ("--unique", uniqueKey)] {
            if let value, !WireProtocol.keyLengthRange.contains(value.utf8.count) {
                throw ValidationError("\(flag) must be 1-255 bytes of UTF-8; this one is \(value.utf8.count) bytes")
            }
        }
    }

    /// The options the flags ask for.
    private var options: SubmitOptions {
        SubmitOptions(
            priority: priority, maxAttempts: maxAttempts, delay: delay?.duration,
            runAt: runAt.map { Date(timeIntervalSince1970: Double($0.epochMillis) / 1000) },
            timeout: timeout?.duration, key: key, uniqueKey: uniqueKey)
    }

    func run() async throws {
        try await runClientCommand {
            let bytes = try readPayload()
            let client = try await connection.connect()
            defer { Task { try? await client.close() } }
            if background {
                let id = try await client.submitBackground(handler, payload: ByteBuffer(bytes: bytes), options: options)
                print(id)
                return
            }
            let progress = ProgressLine(label: handler)
            let result = try await client.submit(handler, payload: ByteBuffer(bytes: bytes), options: options) {
                done, total in progress.show(done: done, total: total)
            }
            progress.finish()
            FileHandle.standardOutput.write(Data(result.readableBytesView))
        }
    }

    private func readPayload() throws -> [UInt8] {
        if let payload { return Array(payload.utf8) }
        if let file, file != "-" {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw CLIFailure(message: "cannot read the payload file \(file)", exitCode: 2)
            }
            return Array(data)
        }
        if file == "-" || isatty(0) == 0 {
            return Array(FileHandle.standardInput.readDataToEndOfFile())
        }
        return []
    }
}

/// A progress line on standard error, redrawn in place when it is a terminal.
final class ProgressLine: @unchecked Sendable {
    // @unchecked Sendable: `shown` is only touched from the client's one event loop
    // (progress callbacks) and then once from `finish`, after the last callback.
    private let label: String
    private let isTerminal = isatty(2) != 0
    private var shown = false

    init(label: String) { self.label = label }

    func show(done: UInt64, total: UInt64) {
        let percent = total == 0 ? 100 : Int(Double(done) / Double(total) * 100)
        let text = "\(label): \(percent)% (\(done)/\(total))"
        FileHandle.standardError.write(Data((isTerminal ? "\r\u{1B}[K" + text : text + "\n").utf8))
        shown = true
    }

    func finish() {
        if shown && isTerminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
