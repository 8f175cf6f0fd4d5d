import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SwitchyardClient
import SwitchyardCore
import Testing

/// The limits of docs/OPERATIONS.md, "Limits": each refusal names the limit,
/// its value and its flag, and the server goes on serving everyone else.
@Suite struct LimitsTests {
    @Test func payloadHandlerNameAndFrameLimitsAnswerClearlyWhileAnotherClientIsServed() async throws {
        let arguments = ["--max-payload-size", "1024", "--max-handler-name", "8", "--max-frame-size", "4096"]
        try await withServer(extraArguments: arguments) { server in
            let client = try await server.connect()
            let bystander = try await server.connect()
            try await whileServing(bystander) {
                let big = await #expect(throws: SwitchyardError.self) {
                    _ = try await client.submit("echo", payload: [UInt8](repeating: 7, count: 1025))
                }
                #expect(big?.code == .payloadTooLarge)
                for word in ["1025 bytes", "limit is 1024", "serve --max-payload-size"] {
                    #expect(big?.message.contains(word) == true, "\(big?.message ?? "")")
                }
                // At the limit it runs, on the same connection.
                let fits = [UInt8](repeating: 8, count: 1024)
                #expect(try await client.submit("echo", payload: fits) == fits)

                let name = await #expect(throws: SwitchyardError.self) {
                    _ = try await client.submit("ninebytes", payload: [UInt8]())
                }
                #expect(name?.code == .badRequest)
                for word in ["9 bytes", "limit is 8", "serve --max-handler-name"] {
                    #expect(name?.message.contains(word) == true, "\(name?.message ?? "")")
                }
                #expect(try await client.submit("sha256", payload: Array("x".utf8)).count == 64)

                // A frame over the limit: the error names the flag; that connection closes.
                let raw = try await RawConnection.connect(to: server.address)
                var huge = ByteBuffer()
                ClientMessage.submit(SubmitRequest(handler: "echo", payload: ByteBuffer(repeating: 1, count: 5000)))
                    .write(requestID: 2, to: &huge)
                let (frames, _) = try await raw.sendAndReadUntilClosed(helloBytes() + Array(huge.readableBytesView))
                let error = try errorFrame(frames.last)
                #expect(error.code == .frameTooLarge)
                #expect(error.message.contains("limit of 4096 bytes"), "\(error.message)")
                #expect(error.message.contains("serve --max-frame-size"), "\(error.message)")
            }
            try await client.close()
            try await bystander.close()
        }
    }

    @Test func aConnectionAtItsInFlightLimitIsReadNoFurtherUntilARequestEndsAndNothingIsRefused() async throws {
        try await withServer(extraArguments: ["--max-in-flight", "4"]) { server in
            let bystander = try await server.connect()
            let raw = try await RawConnection.connect(to: server.address)
            try await raw.channel.executeThenClose { inbound, outbound in
                var reader = FrameReader(inbound.makeAsyncIterator())
                // Four waiting submits of tasks due in an hour fill the connection; the
                // PING after them is held back, not answered and not refused.
                var stream = helloBytes()
                for id in UInt32(1)...4 {
                    let request = SubmitRequest(
                        handler: "echo", payload: ByteBuffer(string: "later \(id)"), delayMillis: 3_600_000)
                    stream += bytes(of: .submit(request), requestID: id)
                }
                stream += bytes(of: .ping(ByteBuffer(string: "held")), requestID: 5)
                try await outbound.write(ByteBuffer(bytes: stream))
                #expect(try await reader.next()?.type == .helloOK)

                // The server is unaffected for others. One of the four ends (cancelled from
                // the other connection): its reply comes first, then the held PING's.
                #expect(try await bystander.submit("echo", payload: Array("fine".utf8)) == Array("fine".utf8))
                let scheduled = try await bystander.listTasks(TaskListQuery(state: .scheduled, handler: "echo"))
                #expect(scheduled.count == 4)
                _ = try await bystander.cancel(try #require(scheduled.first).id)
                let cancelled = try #require(try await reader.next())
                #expect(try errorFrame(cancelled).code == .cancelled)
                let held = try #require(try await reader.next())
                #expect(held.type == .pong && held.requestID == 5, "\(held.type) \(held.requestID)")
                #expect(held.body == ByteBuffer(string: "held"))

                // The held request ran and took the free slot (4 in flight again); one
                // more ends and the connection is read again.
                _ = try await bystander.cancel(scheduled[1].id)
                #expect(try errorFrame(try await reader.next()).code == .cancelled)
                try await outbound.write(ByteBuffer(bytes: bytes(of: .ping(ByteBuffer(string: "again")), requestID: 6)))
                let pong = try #require(try await reader.next())
                #expect(pong.type == .pong && pong.requestID == 6)
            }
            try await bystander.close()
        }
    }

    @Test func connectionsOverTheTotalOrPerAddressLimitAreRefusedWithAClearError() async throws {
        let arguments = ["--max-connections", "3", "--max-connections-per-address", "2"]
        try await withServer(extraArguments: arguments) { server in
            let bystander = try await server.connect()  // 127.0.0.1: 1 of 2, 1 of 3 in total
            let second = try await server.connect()  // 127.0.0.1: 2 of 2

            // A third from 127.0.0.1 is over the per-address limit, through the client library too.
            let perAddress = await #expect(throws: SwitchyardError.self) { _ = try await server.connect() }
            #expect(perAddress?.code == .tooManyConnections)
            for word in ["127.0.0.1 has 2 connections", "serve --max-connections-per-address 2"] {
                #expect(perAddress?.message.contains(word) == true, "\(perAddress?.message ?? "")")
            }
            // Another address may connect: 3 of 3 in total.
            let other = try await RawConnection.connect(to: server.address, from: "127.0.0.2")
            try await other.channel.executeThenClose { _, outbound in
                // Greeted, so the handshake timeout cannot free its slot during the test.
                try await outbound.write(ByteBuffer(bytes: helloBytes()))
                // A fourth address is over the total.
                let (frames, _) = try await RawConnection.connect(to: server.address, from: "127.0.0.3")
                    .sendAndReadUntilClosed(helloBytes())
                #expect(frames.count == 1, "only the refusal: \(frames.map(\.type))")
                let total = try errorFrame(frames.first)
                #expect(total.code == .tooManyConnections)
                #expect(total.message.contains("3 connections open"), "\(total.message)")
                #expect(total.message.contains("serve --max-connections 3"), "\(total.message)")

                // The connections inside the limits are served meanwhile.
                #expect(try await bystander.submit("echo", payload: Array("a".utf8)) == Array("a".utf8))
                #expect(try await second.submit("echo", payload: Array("b".utf8)) == Array("b".utf8))
                #expect(server.log.contains { $0.contains("refusing connections") && $0.contains("--max-connections") })
            }

            // A closed connection frees its slot: 127.0.0.1 may connect again (the
            // server learns of the close a moment later, so a try may still be refused).
            try await second.close()
            var again: SwitchyardClient?
            for _ in 0..<200 where again == nil {
                do {
                    again = try await server.connect()
                } catch let error as SwitchyardError where error.code == .tooManyConnections {
                    continue
                }
            }
            let third = try #require(again, "127.0.0.1 never got its slot back")
            #expect(try await third.submit("echo", payload: Array("c".utf8)) == Array("c".utf8))
            try await third.close()
            try await bystander.close()
        }
    }

    @Test func aClientThatSendsNothingOrHalfAFrameIsClosedAtTheHandshakeTimeout() async throws {
        // Timeouts of a few seconds: on a loaded machine a test client can take a second or
        // two between connecting and sending its HELLO.
        try await withServer(extraArguments: ["--handshake-timeout", "5s"]) { server in
            let bystander = try await server.connect()
            try await whileServing(bystander) {
                async let silent = RawConnection.connect(to: server.address).sendAndReadUntilClosed([])
                async let halfHello = RawConnection.connect(to: server.address)
                    .sendAndReadUntilClosed(Array(helloBytes().prefix(7)))
                for (frames, _) in try await [silent, halfHello] {
                    #expect(frames.count == 1)
                    let error = try errorFrame(frames.first)
                    #expect(error.code == .handshakeTimeout)
                    #expect(error.message.contains("handshake timeout of 5 s"), "\(error.message)")
                    #expect(error.message.contains("serve --handshake-timeout"), "\(error.message)")
                }
                try await server.waitForLog { $0.contains("closing connection after HANDSHAKE_TIMEOUT") }
            }
            try await bystander.close()
        }
    }

    @Test func anIdleConnectionIsClosedButOneWaitingForItsResultIsNot() async throws {
        try await withServer(extraArguments: ["--idle-timeout", "3s"]) { server in
            // Greeted, then nothing: closed with IDLE_TIMEOUT.
            let (frames, _) = try await RawConnection.connect(to: server.address).sendAndReadUntilClosed(helloBytes())
            #expect(frames.map(\.type) == [.helloOK, .error])
            let error = try errorFrame(frames.last)
            #expect(error.code == .idleTimeout)
            #expect(error.message.contains("idle timeout of 3 s"), "\(error.message)")
            #expect(error.message.contains("serve --idle-timeout"), "\(error.message)")
            try await server.waitForLog { $0.contains("closing connection after IDLE_TIMEOUT") }

            // Greeted, then half a SUBMIT and a stall: nothing is in flight, so it is idle.
            var submit = ByteBuffer()
            ClientMessage.submit(SubmitRequest(handler: "echo", payload: ByteBuffer(string: "never finished")))
                .write(requestID: 1, to: &submit)
            let half = Array(submit.readableBytesView.prefix(12))
            let (stalled, _) = try await RawConnection.connect(to: server.address)
                .sendAndReadUntilClosed(helloBytes() + half)
            #expect(try errorFrame(stalled.last).code == .idleTimeout)

            // A connection waiting more than two idle timeouts for its task's result is not idle.
            let client = try await server.connect()
            #expect(try await client.submit("sleep", payload: Array("7000".utf8)).isEmpty == false)
            try await client.close()
        }
    }

    @Test func invalidLimitFlagsAreRefusedNamingTheFlag() async throws {
        for (flag, value) in [
            ("--max-in-flight", "0"), ("--max-connections", "0"), ("--max-connections-per-address", "0"),
            ("--max-handler-name", "256"), ("--max-payload-size", "-1"), ("--handshake-timeout", "0s"),
            ("--idle-timeout", "soon"),
        ] {
            let result = try await run(Paths.switchyard, ["serve", flag, value, "--store", "memory"])
            #expect(result.status == 64, "\(flag) \(value)")
            #expect(result.stderr.contains(flag), "\(flag) \(value): \(result.stderr)")
        }
    }

    /// A flood client (waiting SUBMITs written as fast as the server takes them,
    /// no reply ever read) and two slow-loris clients at once, while a good client
    /// submits 2,000 tasks: every one is answered right, the slow ones are closed at
    /// the handshake timeout, and the server's peak memory stays under the bound
    /// derived in docs/SECURITY.md, "Limits and floods".
    @Test func aFloodAndSlowClientsCostBoundedMemoryAndAGoodClientIsServedThroughout() async throws {
        try await withServer(extraArguments: ["--handshake-timeout", "5s"]) { server in
            let baseline = try peakMemoryKiB(of: server.pid)
            // Greeted before the flood starts, so only the slow clients race the handshake timeout.
            let good = try await server.connect()
            let stop = NIOLockedValueBox(false)
            let flood = try await FloodClient.connect(to: server.address)
            let (floodGoing, going) = AsyncStream<Void>.makeStream()
            let flooded = Task { await flood.run(payloadSize: 4096, until: stop, going: going) }
            // The flood blocks in a write the server no longer takes: only closing it ends it.
            defer { flood.close() }
            // The good client starts once the server has taken more of the flood than the
            // kernel's buffers hold, so the flood is under way and not yet over.
            for await _ in floodGoing { break }
            async let silent = RawConnection.connect(to: server.address).sendAndReadUntilClosed([])
            async let halfHello = RawConnection.connect(to: server.address)
                .sendAndReadUntilClosed(Array(helloBytes().prefix(5)))

            let tasks = 2_000
            let answered = try await withThrowingTaskGroup(of: Bool.self) { group in
                var answered = 0
                var next = 0
                func add() {
                    let i = next
                    next += 1
                    group.addTask {
                        let payload = Array("good task \(i)".utf8)
                        return try await good.submit("echo", payload: payload) == payload
                    }
                }
                while next < 32 { add() }
                for try await right in group {
                    if right { answered += 1 }
                    if next < tasks { add() }
                }
                return answered
            }
            #expect(answered == tasks)

            for (frames, _) in try await [silent, halfHello] {
                #expect(try errorFrame(frames.first).code == .handshakeTimeout)
            }
            let peak = try peakMemoryKiB(of: server.pid)
            stop.withLockedValue { $0 = true }
            flood.close()
            let floodBytes = await flooded.value
            // The bound: docs/SECURITY.md, "Limits and floods".
            let boundKiB = baseline + 160 * 1024
            print(
                "flood test: server VmHWM \(peak) KiB (\(baseline) KiB after start, bound \(boundKiB) KiB); the flood client wrote \(floodBytes / 1024) KiB"
            )
            #expect(peak < boundKiB, "peak \(peak) KiB over the bound \(boundKiB) KiB")
            try await good.close()
        }
    }

}

/// Runs `body` while `client` keeps submitting echo tasks, then checks every one was answered right.
private func whileServing(_ client: SwitchyardClient, _ body: () async throws -> Void) async throws {
    let stop = NIOLockedValueBox(false)
    let served = Task {
        var count = 0
        // A few hundred at most: enough to show it is served, light on a loaded machine.
        while !stop.withLockedValue({ $0 }) && count < 300 {
            let payload = Array("bystander \(count)".utf8)
            guard try await client.submit("echo", payload: payload) == payload else { return -1 }
            count += 1
        }
        return count
    }
    try await body()
    stop.withLockedValue { $0 = true }
    let count = try await served.value
    #expect(count >= 1, "the other client was served meanwhile (\(count) tasks)")
}

/// The ERROR in `frame` as (code, message); fails the test when it is something else.
private func errorFrame(_ frame: Frame?) throws -> (code: ErrorCode, message: String) {
    let frame = try #require(frame, "no frame")
    guard case .error(let code, _, let message) = try ServerMessage(frame: frame) else {
        throw TestFailure("expected an ERROR frame, got \(frame.type)")
    }
    return (code, message)
}

/// Frames read one at a time from a raw connection's byte stream.
private struct FrameReader {
    var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    var received = ByteBuffer()

    init(_ iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator) { self.iterator = iterator }

    /// The next frame, or nil when the server closed the connection first.
    mutating func next() async throws -> Frame? {
        while true {
            if let frame = try Frame.read(from: &received) { return frame }
            guard var chunk = try await iterator.next() else { return nil }
            received.writeBuffer(&chunk)
        }
    }
}

/// The server's peak resident memory (VmHWM in /proc/PID/status), in KiB.
private func peakMemoryKiB(of pid: pid_t) throws -> Int {
    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
        let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
    else { throw TestFailure("no VmHWM in /proc/\(pid)/status") }
    return kib
}

/// A client that writes waiting echo SUBMITs as fast as the server takes them
/// and never reads a reply (auto-read is off: its receive buffer fills, then the
/// server's send buffer, then the server's outbound queue).
private final class FloodClient: Sendable {
    let channel: Channel

    private init(channel: Channel) { self.channel = channel }

    static func connect(to address: HostPort) async throws -> FloodClient {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: false)
            .connect(host: address.host, port: address.port).get()
        return FloodClient(channel: channel)
    }

    /// Writes until `stop`, the connection closes, 60 s or 4 GiB; returns the bytes written.
    /// `going` gets one value once 8 MiB are written, and finishes when the flood ends.
    func run(payloadSize: Int, until stop: NIOLockedValueBox<Bool>, going: AsyncStream<Void>.Continuation) async -> Int {
        defer { going.finish() }
        var written = 0
        let deadline = NIODeadline.now() + .seconds(60)
        let payload = ByteBuffer(repeating: 0x66, count: payloadSize)
        var id: UInt32 = 0
        do {
            try await channel.writeAndFlush(ByteBuffer(bytes: helloBytes())).get()
            while !stop.withLockedValue({ $0 }) && NIODeadline.now() < deadline && written < 4 << 30 {
                var batch = channel.allocator.buffer(capacity: 64 * (payloadSize + 32))
                for _ in 0..<64 {
                    id &+= 1
                    ClientMessage.writeSubmit(SubmitRequest(handler: "echo", payload: payload), requestID: id, to: &batch)
                }
                let size = batch.readableBytes
                // Completes once the kernel took the bytes: waits while the server reads nothing.
                try await channel.writeAndFlush(batch).get()
                written += size
                if written >= 8 << 20 && written - size < 8 << 20 { going.yield() }
            }
        } catch {
            // Closed by the test (or the server): the flood is over.
        }
        return written
    }

    func close() { channel.close(promise: nil) }
}
