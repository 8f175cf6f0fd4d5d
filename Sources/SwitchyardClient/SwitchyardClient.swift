import NIOCore
import NIOPosix
import SwitchyardCore

/// A connection to a Switchyard server.
///
/// One connection carries any number of requests at once (pipelining): call it
/// from as many tasks as you like. Replies come in completion order and are
/// matched to their requests by id.
///
///     let client = try await SwitchyardClient.connect(to: .defaultServer)
///     let digest = try await client.submit("sha256", payload: Array("hello".utf8))
///     try await client.close()
public final class SwitchyardClient: Sendable {
    private let channel: Channel
    /// What the server said in its handshake.
    public let serverName: String
    public let protocolVersion: UInt16
    public let maxFrameSize: Int

    private init(channel: Channel, serverName: String, protocolVersion: UInt16, maxFrameSize: Int) {
        self.channel = channel
        self.serverName = serverName
        self.protocolVersion = protocolVersion
        self.maxFrameSize = maxFrameSize
    }

    /// Connects and performs the version handshake.
    public static func connect(
        to address: HostPort = .defaultServer,
        clientName: String = "switchyard-swift",
        eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> SwitchyardClient {
        let channel: Channel
        do {
            channel = try await ClientBootstrap(group: eventLoopGroup)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers(
                            ByteToMessageHandler(FrameDecoder(maxFrameSize: 1 << 30)), ClientChannelHandler())
                    }
                }
                .connect(host: address.host, port: address.port).get()
        } catch {
            throw SwitchyardError.connection(
                "cannot connect to \(address): \(error); is `switchyard serve` running there? (set --server or SWITCHYARD_SERVER)"
            )
        }
        let reply = try await send(
            .hello(minVersion: WireProtocol.minVersion, maxVersion: WireProtocol.maxVersion, clientName: clientName),
            on: channel)
        guard case .helloOK(let version, let maxFrame, let name) = reply else {
            channel.close(promise: nil)
            throw SwitchyardError.connection("the server answered HELLO with \(reply)")
        }
        return SwitchyardClient(channel: channel, serverName: name, protocolVersion: version, maxFrameSize: Int(maxFrame))
    }

    /// Runs a task and waits for its result.
    ///
    /// - Throws: `SwitchyardError` with the server's code (`UNKNOWN_HANDLER`,
    ///   `HANDLER_FAILED`, `WORKER_CRASHED`, ...) and message.
    public func submit(
        _ handler: String, payload: ByteBuffer, priority: Int32 = 0, maxAttempts: UInt32? = nil,
        onProgress: (@Sendable (_ done: UInt64, _ total: UInt64) -> Void)? = nil
    ) async throws -> ByteBuffer {
        let request = SubmitRequest(
            handler: handler, payload: payload, priority: priority, background: false, maxAttempts: maxAttempts)
        switch try await send(.submit(request), onProgress: onProgress) {
        case .result(_, let result): return result
        case let other: throw unexpected(other, for: "SUBMIT")
        }
    }

    /// Runs a task and waits for its result, with the payload as bytes.
    public func submit(
        _ handler: String, payload: some Sequence<UInt8> = [], priority: Int32 = 0, maxAttempts: UInt32? = nil,
        onProgress: (@Sendable (_ done: UInt64, _ total: UInt64) -> Void)? = nil
    ) async throws -> [UInt8] {
        let result = try await submit(
            handler, payload: ByteBuffer(bytes: payload), priority: priority, maxAttempts: maxAttempts,
            onProgress: onProgress)
        return Array(result.readableBytesView)
    }

    /// Queues a task and returns its id without waiting for it to run.
    public func submitBackground(
        _ handler: String, payload: ByteBuffer, priority: Int32 = 0, maxAttempts: UInt32? = nil
    ) async throws -> TaskID {
        let request = SubmitRequest(
            handler: handler, payload: payload, priority: priority, background: true, maxAttempts: maxAttempts)
        switch try await send(.submit(request)) {
        case .accepted(let id): return id
        case let other: throw unexpected(other, for: "SUBMIT")
        }
    }

    /// A task's record: state, attempts, last error, and its result once it succeeded.
    public func taskInfo(_ id: TaskID) async throws -> TaskInfo {
        switch try await send(.taskStatus(id)) {
        case .taskInfo(let info): return info
        case let other: throw unexpected(other, for: "TASK_STATUS")
        }
    }

    /// The server's workers, handlers and counters.
    public func serverStatus() async throws -> ServerStatus {
        switch try await send(.serverStatus) {
        case .serverInfo(let json): return try ServerStatus(json: json)
        case let other: throw unexpected(other, for: "SERVER_STATUS")
        }
    }

    /// A round trip to the server.
    public func ping() async throws {
        switch try await send(.ping(ByteBuffer())) {
        case .pong: return
        case let other: throw unexpected(other, for: "PING")
        }
    }

    /// Closes the connection; requests still in flight fail.
    public func close() async throws {
        try await channel.close()
    }

    /// Sends any request and returns the server's reply; ERROR replies throw.
    public func send(
        _ message: ClientMessage, onProgress: (@Sendable (UInt64, UInt64) -> Void)? = nil
    ) async throws -> ServerMessage {
        try await Self.send(message, on: channel, onProgress: onProgress)
    }

    private static func send(
        _ message: ClientMessage, on channel: Channel, onProgress: (@Sendable (UInt64, UInt64) -> Void)? = nil
    ) async throws -> ServerMessage {
        let promise = channel.eventLoop.makePromise(of: ServerMessage.self)
        channel.writeAndFlush(OutboundRequest(message: message, promise: promise, onProgress: onProgress), promise: nil)
        let reply = try await promise.futureResult.get()
        if case .error(let code, let taskID, let text) = reply {
            throw SwitchyardError(code: code, message: text, taskID: taskID == 0 ? nil : taskID)
        }
        return reply
    }

    private func unexpected(_ reply: ServerMessage, for request: String) -> SwitchyardError {
        .connection("the server answered \(request) with an unexpected \(reply)")
    }
}
