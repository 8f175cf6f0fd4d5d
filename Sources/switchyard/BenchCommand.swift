import ArgumentParser
import Foundation
import Histogram
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SwitchyardCore

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure throughput and latency against a running server.",
        discussion: """
            Sends --tasks tasks to --handler with --concurrency requests in flight in total, spread \
            over --connections connections, and prints throughput and latency percentiles. \
            Latency is measured from the moment a request is written to the moment its reply is read.
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "The handler to run.")
    var handler: String = "echo"

    @Option(name: [.customShort("n"), .long], help: "Tasks to run in total.")
    var tasks: Int = 100_000

    @Option(name: [.customShort("c"), .long], help: "Requests in flight, in total over all connections.")
    var concurrency: Int = 1000

    @Option(name: [.customShort("k"), .long], help: "Connections.")
    var connections: Int = 1

    @Option(name: [.customShort("p"), .long], help: "Payload size in bytes (random bytes; for sleep, the payload is --sleep-ms).")
    var payloadSize: Int = 16

    @Option(help: "For the sleep handler: milliseconds each task sleeps.")
    var sleepMs: Int?

    @Option(help: "The payload of every task, as text, e.g. '[1, 2]' for a bound C function (instead of random bytes).")
    var payload: String?

    @Flag(help: "Submit in the background (measure acceptance, not execution).")
    var background = false

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard tasks >= 1 else { throw ValidationError("--tasks must be at least 1") }
        guard connections >= 1 && connections <= 4096 else { throw ValidationError("--connections must be from 1 to 4096") }
        guard concurrency >= connections else {
            throw ValidationError("--concurrency must be at least --connections (each connection needs one request in flight)")
        }
        guard payloadSize >= 0 && payloadSize <= 16 * 1024 * 1024 - 1024 else {
            throw ValidationError("--payload-size must be from 0 to 16 MiB - 1 KiB")
        }
        if let problem = HandlerName.validate(handler) { throw ValidationError(problem) }
    }

    func run() async throws {
        guard case .tcp(let address) = try connection.address() else {
            throw ValidationError("bench speaks plain TCP only: give --server HOST:PORT, not a Unix socket")
        }
        if connection.tls != nil {
            throw ValidationError("bench speaks plain TCP only: benchmark a server without --tls-cert (unset --tls-ca and SWITCHYARD_TLS_CA)")
        }
        let token = try connection.token()
        var payload = ByteBuffer()
        if let text = self.payload {
            payload.writeString(text)
        } else if let sleepMs {
            payload.writeString("\(sleepMs)")
        } else {
            var generator = SystemRandomNumberGenerator()
            payload.writeBytes((0..<payloadSize).map { _ in UInt8.random(in: 0...255, using: &generator) })
        }
        // One client thread: the server and its workers need the other cores.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await measure(address: address, token: token, payload: payload, group: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try? await group.shutdownGracefully()
    }

    private func measure(address: HostPort, token: String?, payload: ByteBuffer, group: EventLoopGroup) async throws {
        let progress = NIOLockedValueBox(0)
        let quotas = (0..<connections).map { tasks / connections + ($0 < tasks % connections ? 1 : 0) }
        let windows = (0..<connections).map { concurrency / connections + ($0 < concurrency % connections ? 1 : 0) }
        let describe =
            "\(handler), \(tasks) tasks, \(concurrency) in flight over \(connections) connection\(connections == 1 ? "" : "s"), \(payload.readableBytes)-byte payloads\(background ? ", background" : "")"
        if !json { printError("switchyard bench: \(describe)") }

        var runs: [(BenchRun, EventLoopFuture<Void>)] = []
        let start = NIODeadline.now()
        for index in 0..<connections where quotas[index] > 0 {
            let run = BenchRun(
                handler: handler, payload: payload, background: background, quota: quotas[index],
                window: windows[index], verifyEcho: handler == "echo" && !background, progress: progress, token: token)
            let channel: Channel
            do {
                channel = try await ClientBootstrap(group: group)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandlers(
                                ByteToMessageHandler(FrameBatchDecoder(maxFrameSize: 1 << 30)), BenchHandler(run: run))
                        }
                    }
                    .connect(host: address.host, port: address.port).get()
            } catch {
                printError("error: cannot connect to \(address): \(error)")
                throw ExitCode(3)
            }
            // `done` was created on the channel's loop in BenchHandler.handlerAdded.
            runs.append((run, run.done.futureResult.always { _ in channel.close(promise: nil) }))
        }

        // A progress line while it runs.
        let reporter = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(1))
                let done = progress.withLockedValue { $0 }
                if !json { printError("  \(done)/\(tasks) done") }
            }
        }
        var failure: Error?
        for (_, future) in runs {
            do { try await future.get() } catch { failure = error }
        }
        reporter.cancel()
        let seconds = Double((NIODeadline.now() - start).nanoseconds) / 1e9
        if let failure {
            printError("error: \(failure)")
            throw ExitCode(1)
        }

        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        var errors = 0
        var mismatches = 0
        var firstError: String?
        for (run, _) in runs {
            for latency in run.latencies { _ = histogram.record(latency) }
            errors += run.errors
            mismatches += run.mismatches
            if firstError == nil { firstError = run.firstError }
        }
        let throughput = Double(tasks) / seconds
        func us(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }
        if json {
            let object: [String: Any] = [
                "handler": handler, "tasks": tasks, "concurrency": concurrency, "connections": connections,
                "payloadSize": payload.readableBytes, "background": background, "seconds": seconds,
                "throughput": throughput, "errors": errors, "mismatches": mismatches,
                "p50_us": us(50), "p90_us": us(90), "p99_us": us(99), "p999_us": us(99.9),
                "max_us": Double(histogram.max) / 1000,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("\(describe)")
            print(String(format: "  %d tasks in %.3f s: %.0f tasks/s, %d errors", tasks, seconds, throughput, errors))
            print(
                String(
                    format: "  latency µs: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f", us(50), us(90), us(99),
                    us(99.9), Double(histogram.max) / 1000))
            if let firstError { print("  first error: \(firstError)") }
            if mismatches > 0 { print("  \(mismatches) echo results differed from their payload") }
        }
        if errors > 0 || mismatches > 0 { throw ExitCode(1) }
    }
}

/// One connection's share of a benchmark. Touched only on its channel's event loop
/// until `done` completes; read by the command afterwards.
final class BenchRun: @unchecked Sendable {
    // @unchecked Sendable: mutated only on one event loop, read after `done` completes.
    let handler: String
    let payload: ByteBuffer
    let background: Bool
    let quota: Int
    let window: Int
    let verifyEcho: Bool
    let progress: NIOLockedValueBox<Int>
    /// Presented in HELLO to a server with --auth.
    let token: String?
    var done: EventLoopPromise<Void>!
    var sent = 0
    var completed = 0
    var errors = 0
    var mismatches = 0
    var firstError: String?
    /// Send time of each request, by request id (ids are 1...quota).
    var sentAt: [UInt64]
    var latencies: [UInt64] = []

    init(
        handler: String, payload: ByteBuffer, background: Bool, quota: Int, window: Int, verifyEcho: Bool,
        progress: NIOLockedValueBox<Int>, token: String?
    ) {
        self.token = token
        self.handler = handler
        self.payload = payload
        self.background = background
        self.quota = quota
        self.window = window
        self.verifyEcho = verifyEcho
        self.progress = progress
        self.sentAt = [UInt64](repeating: 0, count: quota + 1)
        latencies.reserveCapacity(quota)
    }
}

/// Drives one benchmark connection entirely on its event loop: no async hop per task.
final class BenchHandler: ChannelInboundHandler {
    typealias InboundIn = [Frame]

    private let run: BenchRun
    private var out: ByteBuffer!
    private var greeted = false
    private var reported = 0

    init(run: BenchRun) { self.run = run }

    func handlerAdded(context: ChannelHandlerContext) {
        run.done = context.eventLoop.makePromise()
        out = context.channel.allocator.buffer(capacity: 64 * 1024)
    }

    func channelActive(context: ChannelHandlerContext) {
        ClientMessage.hello(minVersion: 1, maxVersion: 1, clientName: "switchyard-bench", token: run.token)
            .write(requestID: 0, to: &out)
        flush(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        for frame in unwrapInboundIn(data) { receive(frame, context: context) }
    }

    private func receive(_ frame: Frame, context: ChannelHandlerContext) {
        if !greeted {
            guard frame.type == .helloOK else {
                let reason = (try? ServerMessage(frame: frame)).map { "\($0)" } ?? "\(frame.type)"
                run.done.fail(CLIFailure(message: "handshake failed: \(reason)", exitCode: 1))
                return
            }
            greeted = true
            while run.sent < min(run.window, run.quota) { sendOne() }
            return
        }
        let now = NIODeadline.now().uptimeNanoseconds
        let id = Int(frame.requestID)
        guard id >= 1 && id <= run.quota else { return }
        switch frame.type {
        case .result:
            if run.verifyEcho {
                var body = frame.body
                body.moveReaderIndex(forwardBy: 8)
                if body != run.payload { run.mismatches += 1 }
            }
        case .accepted:
            break
        case .progress:
            return
        default:
            run.errors += 1
            if run.firstError == nil, let message = try? ServerMessage(frame: frame) { run.firstError = "\(message)" }
        }
        run.latencies.append(now &- run.sentAt[id])
        run.completed += 1
        if run.sent < run.quota { sendOne() }
        if run.completed == run.quota {
            flush(context)
            run.done.succeed()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush(context)
        let delta = run.completed - reported
        if delta > 0 {
            reported = run.completed
            run.progress.withLockedValue { $0 += delta }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        run.done.fail(CLIFailure(message: "the server closed the connection after \(run.completed) replies", exitCode: 1))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        run.done.fail(error)
        context.close(promise: nil)
    }

    private func sendOne() {
        run.sent += 1
        run.sentAt[run.sent] = NIODeadline.now().uptimeNanoseconds
        ClientMessage.writeSubmit(
            SubmitRequest(handler: run.handler, payload: run.payload, background: run.background),
            requestID: UInt32(run.sent), to: &out)
    }

    private func flush(_ context: ChannelHandlerContext) {
        guard out.readableBytes > 0 else { return }
        context.writeAndFlush(NIOAny(out), promise: nil)
        out = context.channel.allocator.buffer(capacity: 64 * 1024)
    }
}
