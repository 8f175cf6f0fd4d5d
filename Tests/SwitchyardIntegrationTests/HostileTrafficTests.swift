import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SwitchyardClient
import SwitchyardCore
import Testing

/// A live server under a flood of bad frames keeps serving a well-behaved client.
@Suite struct HostileTrafficTests {
    /// Bad frames sent in all.
    static let floodFrames = 100_000
    /// Connections flooding at once.
    static let floodConnections = 6

    /// What the flood saw, summed over its connections.
    struct FloodTally: Sendable {
        var frames = 0
        var connections = 0
        var closedByServer = 0
        var replies: [ErrorCode: Int] = [:]
        var pongs = 0
        /// What went wrong on a flood connection (each ends that connection's flood).
        var failures: [String] = []

        mutating func add(_ other: FloodTally) {
            failures += other.failures
            frames += other.frames
            connections += other.connections
            closedByServer += other.closedByServer
            pongs += other.pongs
            replies.merge(other.replies, uniquingKeysWith: +)
        }
    }

    @Test func aHundredThousandBadFramesLeaveTheServerUpAndAGoodClientAnsweredRight() async throws {
        let seed = ProcessInfo.processInfo.environment["SWITCHYARD_FLOOD_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64.max)
        print("flood seed \(seed) (SWITCHYARD_FLOOD_SEED=\(seed) replays it)")
        try await withServer(workers: 2) { server in
            let good = try await server.connect()
            let handlers = Set(try await good.serverStatus().handlers.map(\.name))
            let floodDone = NIOLockedValueBox(false)

            // The well-behaved client: four echo tasks in flight at a time until the flood ends.
            async let goodTasks: (answered: Int, wrong: [String]) = {
                var answered = 0
                var wrong: [String] = []
                var round = 0
                while !floodDone.withLockedValue({ $0 }) && !Task.isCancelled || round == 0 {
                    round += 1
                    try await withThrowingTaskGroup(of: String?.self) { group in
                        for slot in 0..<4 {
                            let payload = "good \(round).\(slot)"
                            group.addTask {
                                do {
                                    let result = try await good.submit("echo", payload: Array(payload.utf8))
                                    return result == Array(payload.utf8)
                                        ? nil : "`\(payload)` came back as \(String(decoding: result, as: UTF8.self))"
                                } catch {
                                    return "`\(payload)` failed: \(error)"
                                }
                            }
                        }
                        for try await outcome in group {
                            answered += 1
                            if let outcome { wrong.append(outcome) }
                        }
                    }
                }
                return (answered, wrong)
            }()

            let tally = await withTaskGroup(of: FloodTally.self) { group in
                for index in 0..<Self.floodConnections {
                    let budget = Self.floodFrames / Self.floodConnections
                        + (index < Self.floodFrames % Self.floodConnections ? 1 : 0)
                    var frames = HostileFrames(seed: seed &+ UInt64(index), loadedHandlers: handlers)
                    group.addTask {
                        var tally = FloodTally()
                        do {
                            try await Self.flood(server.address, frames: budget, with: &frames, into: &tally)
                        } catch {
                            tally.failures.append("flood connection \(index): \(error)")
                        }
                        return tally
                    }
                }
                var total = FloodTally()
                for await part in group { total.add(part) }
                return total
            }
            floodDone.withLockedValue { $0 = true }
            let (answered, wrong) = try await goodTasks

            print(
                "flood: \(tally.frames) bad frames over \(tally.connections) connections, \(tally.closedByServer) closed by the server; replies \(tally.replies.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")); good client: \(answered) tasks answered"
            )
            #expect(tally.failures.isEmpty, "\(tally.failures)")
            #expect(tally.frames == Self.floodFrames)
            #expect(wrong.isEmpty, "the good client's tasks went wrong: \(wrong.prefix(10))")
            #expect(answered > 0)
            // Hostile bytes are the client's fault, never a server bug.
            #expect(tally.replies[.internalError] == nil, "the server answered INTERNAL to bad input")
            #expect(tally.closedByServer > 0 && tally.pongs > 0, "the flood reached both kinds of frames")

            // Still up, and serving new connections.
            let after = try await server.connect()
            #expect(try await after.submit("echo", payload: Array("after".utf8)) == Array("after".utf8))
            let status = try await after.serverStatus()
            #expect(status.workers.count == 2)
            if let peak = Self.peakResidentKiB(of: server.pid) {
                print("server peak resident memory (VmHWM): \(peak / 1024) MiB")
            }
            try await after.close()
            try await good.close()
        }
    }

    /// Floods one connection after another until `frames` bad frames are
    /// sent. Each connection greets (three in four) or not, then sends batches
    /// of frames the server answers and keeps the connection for, each batch
    /// followed by a PING to know it was all read; a batch may end in one
    /// frame after which the server must close the connection.
    static func flood(
        _ address: HostPort, frames budget: Int, with frames: inout HostileFrames, into tally: inout FloodTally
    ) async throws {
        var requestID: UInt32 = 0
        while tally.frames < budget {
            tally.connections += 1
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: address.host, port: address.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(FrameDecoder(maxFrameSize: 1 << 30)))
                        // Half-closure on, so `outbound.finish()` sends a FIN: a batch that leaves the
                        // server waiting for the rest of a frame then ends at once, not at the idle timeout.
                        return try NIOAsyncChannel<Frame, ByteBuffer>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true))
                    }
                }
            let greets = Int.random(in: 0..<4, using: &frames.random) != 0
            tally.add(
                try await channel.executeThenClose { inbound, outbound in
                    var part = FloodTally()
                    var replies = inbound.makeAsyncIterator()
                    /// Reads replies until `stop` says so; false when the server closed first.
                    func read(until stop: (Frame) -> Bool) async -> Bool {
                        while true {
                            let next: Frame?
                            do { next = try await replies.next() } catch { return false }  // reset: closed
                            guard let frame = next else { return false }
                            if frame.type == .error, let reply = try? ServerMessage(frame: frame),
                                case .error(let code, _, _) = reply
                            {
                                part.replies[code, default: 0] += 1
                            }
                            if stop(frame) { return true }
                        }
                    }
                    if greets {
                        var hello = ByteBuffer()
                        ClientMessage.hello(minVersion: 1, maxVersion: 1, clientName: "flood").write(requestID: 0, to: &hello)
                        try await outbound.write(hello)
                        guard await read(until: { $0.type == .helloOK }) else {
                            throw TestFailure("the server closed a connection that sent a valid HELLO")
                        }
                    }
                    while tally.frames + part.frames < budget {
                        var batch: [UInt8] = []
                        var count = 0
                        let left = budget - tally.frames - part.frames
                        let size = greets ? min(left, Int.random(in: 1...24, using: &frames.random)) : 1
                        // Without a handshake, the first frame already ends the connection.
                        let ends = !greets || Int.random(in: 0..<3, using: &frames.random) == 0
                        while count < size - (ends ? 1 : 0) {
                            requestID &+= 1
                            let frame = frames.framedMutation(requestID: requestID)
                            guard frames.classify(frame) == .survivable else { continue }
                            batch += frame
                            count += 1
                        }
                        // Framed: the server must answer with an error that closes the connection.
                        var mustRefuse = false
                        if ends {
                            requestID &+= 1
                            if Bool.random(using: &frames.random) {
                                batch += frames.framingBreaker(requestID: requestID)
                            } else {
                                // Before the handshake any frame is refused; after it, one the codec refuses.
                                var frame: [UInt8]
                                repeat {
                                    frame = frames.framedMutation(requestID: requestID)
                                } while greets ? frames.classify(frame) != .fatal : frames.decodesAsHello(frame)
                                batch += frame
                                mustRefuse = true
                            }
                            count += 1
                        }
                        part.frames += count
                        if !ends {
                            // The PING marks the end of the batch: its PONG means all of it was read.
                            requestID &+= 1
                            let marker = requestID
                            var wire = ByteBuffer(bytes: batch)
                            ClientMessage.ping(ByteBuffer(string: "marker")).write(requestID: marker, to: &wire)
                            try await outbound.write(wire)
                            guard await read(until: { $0.type == .pong && $0.requestID == marker }) else {
                                throw TestFailure("the server closed the connection on frames it should answer")
                            }
                            part.pongs += 1
                            continue
                        }
                        // The stream ends after the last frame: bytes that break the framing may
                        // leave the server waiting for the rest of a frame, which never comes.
                        do {
                            try await outbound.write(ByteBuffer(bytes: batch))
                            outbound.finish()
                        } catch {
                            // The server may close before the last bytes are written.
                        }
                        var last: Frame?
                        _ = await read(until: { last = $0; return false })
                        if mustRefuse {
                            let refusal = last.flatMap { try? ServerMessage(frame: $0) }
                            guard case .error(let code, _, _) = refusal, HostileFrames.closingCodes.contains(code) else {
                                throw TestFailure(
                                    "the last reply before the server closed was \(refusal.map { "\($0)" } ?? "none"), not an error that closes the connection"
                                )
                            }
                        }
                        part.closedByServer += 1
                        break
                    }
                    return part
                })
        }
    }

    /// The process's peak resident set, in KiB (Linux: VmHWM in /proc/PID/status).
    static func peakResidentKiB(of pid: pid_t) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        return status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
            .flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") }
    }
}
