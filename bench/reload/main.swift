// ReloadBench: what a hot reload costs the tasks flowing through it.
//
// Sends `echo` tasks at a constant rate (open loop: a fixed schedule, not a
// window, so a stall shows as latency instead of fewer sends) on one
// connection, asks the server to reload at a set second, and prints per
// second of send time the task count and latency percentiles, the reload's
// duration as the client saw it (request to reply: the new workers all ready
// and the old ones gone) and as the server measured it.
//
//   ReloadBench HOST:PORT [rate=2000] [seconds=9] [reload-at=4]
//
// bench/reload/run builds everything, starts a release server with 4 workers
// and runs this. It prints figures; it asserts nothing.
import Foundation
import Histogram
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SwitchyardClient
import SwitchyardCore

let arguments = CommandLine.arguments
guard arguments.count >= 2, let address = try? HostPort(parsing: arguments[1]) else {
    FileHandle.standardError.write(Data("usage: ReloadBench HOST:PORT [rate] [seconds] [reload-at]\n".utf8))
    exit(64)
}
let rate = arguments.count > 2 ? Int(arguments[2]) ?? 2_000 : 2_000
let seconds = arguments.count > 3 ? Int(arguments[3]) ?? 9 : 9
let reloadAt = arguments.count > 4 ? Int(arguments[4]) ?? 4 : 4

/// Everything the sending connection touches, confined to its event loop.
final class OpenLoop: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Frame
    let total: Int
    let perTick: Int
    var sentAt: [UInt64]
    var latency: [UInt64]
    var sent = 0
    var received = 0
    var errors = 0
    var start: UInt64 = 0
    var out: ByteBuffer!
    let payload = ByteBuffer(string: "0123456789abcdef")
    var finished: EventLoopPromise<Void>!
    var ticker: RepeatedTask?

    init(total: Int, perTick: Int) {
        self.total = total
        self.perTick = perTick
        sentAt = [UInt64](repeating: 0, count: total + 1)
        latency = [UInt64](repeating: 0, count: total + 1)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        finished = context.eventLoop.makePromise()
        out = context.channel.allocator.buffer(capacity: 64 * 1024)
    }

    func channelActive(context: ChannelHandlerContext) {
        ClientMessage.hello(minVersion: 1, maxVersion: 1, clientName: "reload-bench").write(requestID: 0, to: &out)
        context.writeAndFlush(NIOAny(out), promise: nil)
        out = context.channel.allocator.buffer(capacity: 64 * 1024)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if frame.type == .helloOK {
            start = DispatchTime.now().uptimeNanoseconds
            // Every millisecond, send what the schedule says is due by now.
            ticker = context.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(1)) { [self] _ in
                let due = min(total, Int((DispatchTime.now().uptimeNanoseconds - start) / 1_000_000) * perTick)
                while sent < due {
                    sent += 1
                    sentAt[sent] = DispatchTime.now().uptimeNanoseconds
                    ClientMessage.writeSubmit(
                        SubmitRequest(handler: "echo", payload: payload, background: false), requestID: UInt32(sent),
                        to: &out)
                }
                if out.readableBytes > 0 {
                    context.writeAndFlush(NIOAny(out), promise: nil)
                    out = context.channel.allocator.buffer(capacity: 64 * 1024)
                }
                if sent == total { ticker?.cancel() }
            }
            return
        }
        let id = Int(frame.requestID)
        guard id >= 1 && id <= total else { return }
        if frame.type == .progress { return }
        if frame.type != .result { errors += 1 }
        latency[id] = DispatchTime.now().uptimeNanoseconds - sentAt[id]
        received += 1
        if received == total { finished.succeed() }
    }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let perTick = max(1, rate / 1_000)
let total = perTick * 1_000 * seconds
let loop = OpenLoop(total: total, perTick: perTick)
let channel = try await ClientBootstrap(group: group)
    .channelOption(.socketOption(.tcp_nodelay), value: 1)
    .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandlers(ByteToMessageHandler(FrameDecoder(maxFrameSize: 1 << 24)), loop)
        }
    }
    .connect(host: address.host, port: address.port).get()

let admin = try await SwitchyardClient.connect(to: address)
try await Task.sleep(for: .seconds(reloadAt))
let requested = DispatchTime.now().uptimeNanoseconds
let report = try await admin.reload()
let answered = DispatchTime.now().uptimeNanoseconds
try await loop.finished.futureResult.get()
try await channel.close()
try await admin.close()

let start = loop.start
let reloadSecond = Int((requested - start) / 1_000_000_000)
print("ReloadBench: echo at \(perTick * 1_000)/s for \(seconds) s, 4 workers expected; reload at second \(reloadSecond)")
print(
    String(
        format: "reload: outcome %@, generation %d, %.1f ms request to reply (server: %.1f ms), %d old workers drained, %d killed",
        report.outcome, report.generation, Double(answered - requested) / 1e6, report.durationMillis, report.drained,
        report.killedAtDrainTimeout))
var steady = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
print("second  tasks   p50 µs    p99 µs    max µs")
for second in 0..<seconds {
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    for id in 1...total where Int((loop.sentAt[id] - start) / 1_000_000_000) == second {
        _ = histogram.record(loop.latency[id])
        if second != reloadSecond && second > 0 { _ = steady.record(loop.latency[id]) }
    }
    print(
        String(
            format: "%6d  %5d  %8.1f  %8.1f  %8.1f%@", second, Int(histogram.totalCount),
            Double(histogram.valueAtPercentile(50)) / 1e3, Double(histogram.valueAtPercentile(99)) / 1e3,
            Double(histogram.max) / 1e3, second == reloadSecond ? "   <- reload" : ""))
}
print(
    String(
        format: "steady state (every second but the first and the reload's): p50 %.1f µs, p99 %.1f µs; errors %d",
        Double(steady.valueAtPercentile(50)) / 1e3, Double(steady.valueAtPercentile(99)) / 1e3, loop.errors))
try await group.shutdownGracefully()
