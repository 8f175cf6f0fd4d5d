import NIOCore
import NIOPosix
import NIOSSL
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
    /// Why the connection closed, once it has: what requests written after that fail with.
    private let closeReason: CloseReason
    /// What the server said in its handshake.
    public let serverName: String
    public let protocolVersion: UInt16
    public let maxFrameSize: Int

    private init(
        channel: Channel, closeReason: CloseReason, serverName: String, protocolVersion: UInt16, maxFrameSize: Int
    ) {
        self.channel = channel
        self.closeReason = closeReason
        self.serverName = serverName
        self.protocolVersion = protocolVersion
        self.maxFrameSize = maxFrameSize
    }

    /// Connects over plaintext TCP and performs the version handshake.
    public static func connect(
        to address: HostPort = .defaultServer,
        clientName: String = "switchyard-swift",
        eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> SwitchyardClient {
        try await connect(to: .tcp(address), options: ConnectOptions(clientName: clientName), eventLoopGroup: eventLoopGroup)
    }

    /// Connects, over TLS if `options.tls` says so, and performs the handshake,
    /// presenting `options.token` to a server that authenticates clients.
    ///
    /// - Throws: `SwitchyardError`: without a code when the server cannot be
    ///   reached or TLS fails; with the server's code when it refuses the
    ///   handshake: AUTH_REQUIRED (no token), AUTH_FAILED (a wrong one),
    ///   AUTH_LOCKED (this address failed too often; the message says how
    ///   long to wait), TLS_REQUIRED (the server wants TLS: set `options.tls`),
    ///   TLS_UNAVAILABLE (the server does not speak TLS: drop `options.tls`).
    public static func connect(
        to address: ServerAddress,
        options: ConnectOptions,
        eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> SwitchyardClient {
        var token: String?
        if case .tcp = address, let presented = options.token {
            guard WireProtocol.tokenLengthRange.contains(presented.utf8.count) else {
                throw SwitchyardError(
                    code: .badRequest,
                    message:
                        "the token is \(presented.utf8.count) bytes; tokens are \(WireProtocol.tokenLengthRange.lowerBound)-\(WireProtocol.tokenLengthRange.upperBound) bytes (check the token file or SWITCHYARD_TOKEN)"
                )
            }
            token = presented
        }
        let closeReason = CloseReason()
        let channel = try await openChannel(
            to: address, tls: options.tls, closeReason: closeReason, eventLoopGroup: eventLoopGroup)
        let reply: ServerMessage
        do {
            reply = try await send(
                .hello(
                    minVersion: WireProtocol.minVersion, maxVersion: WireProtocol.maxVersion,
                    clientName: options.clientName, token: token),
                on: channel, closeReason: closeReason)
        } catch {
            channel.close(promise: nil)
            throw error
        }
        guard case .helloOK(let version, let maxFrame, let name) = reply else {
            channel.close(promise: nil)
            throw SwitchyardError.connection("the server answered HELLO with \(reply)")
        }
        return SwitchyardClient(
            channel: channel, closeReason: closeReason, serverName: name, protocolVersion: version,
            maxFrameSize: Int(maxFrame))
    }

    private static func openChannel(
        to address: ServerAddress, tls: ClientTLS?, closeReason: CloseReason, eventLoopGroup: EventLoopGroup
    ) async throws -> Channel {
        let bootstrap = ClientBootstrap(group: eventLoopGroup)
        switch address {
        case .unix(let path):
            do {
                return try await bootstrap.channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers(
                            ByteToMessageHandler(FrameBatchDecoder(maxFrameSize: 1 << 30)),
                                ClientChannelHandler(closeReason: closeReason))
                    }
                }.connect(unixDomainSocketPath: path).get()
            } catch {
                throw SwitchyardError.connection(
                    "cannot connect to the admin socket \(path): \(error); is `switchyard serve` running with that data dir, and are you its user?"
                )
            }
        case .tcp(let hostPort):
            let context = try tls?.makeContext()
            let expectedName = tls?.expectedName(host: hostPort.host)
            do {
                return try await bootstrap.channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            let pipeline = channel.pipeline.syncOperations
                            if let context {
                                try pipeline.addHandler(PlaintextServerDetector(address: hostPort.description))
                                try pipeline.addHandler(NIOSSLClientHandler(context: context, serverHostname: expectedName))
                            }
                            try pipeline.addHandlers(
                                ByteToMessageHandler(FrameBatchDecoder(maxFrameSize: 1 << 30)),
                                ClientChannelHandler(closeReason: closeReason))
                        }
                    }
                    .connect(host: hostPort.host, port: hostPort.port).get()
            } catch {
                throw SwitchyardError.connection(
                    "cannot connect to \(hostPort): \(error); is `switchyard serve` running there? (set --server or SWITCHYARD_SERVER)"
                )
            }
        }
    }

    /// Runs a task and waits for its result.
    ///
    /// - Throws: `SwitchyardError` with the server's code (`UNKNOWN_HANDLER`,
    ///   `HANDLER_FAILED`, `WORKER_CRASHED`, ...) and message.
    public func submit(
        _ handler: String, payload: ByteBuffer, priority: Int32 = 0, maxAttempts: UInt32? = nil,
        onProgress: (@Sendable (_ done: UInt64, _ total: UInt64) -> Void)? = nil
    ) async throws -> ByteBuffer {
        try await submit(
            handler, payload: payload, options: SubmitOptions(priority: priority, maxAttempts: maxAttempts),
            onProgress: onProgress)
    }

    /// Runs a task and waits for its result, with the payload as bytes.
    public func submit(
        _ handler: String, payload: some Sequence<UInt8> = [], priority: Int32 = 0, maxAttempts: UInt32? = nil,
        onProgress: (@Sendable (_ done: UInt64, _ total: UInt64) -> Void)? = nil
    ) async throws -> [UInt8] {
        try await submit(
            handler, payload: payload, options: SubmitOptions(priority: priority, maxAttempts: maxAttempts),
            onProgress: onProgress)
    }

    /// Runs a task as `options` say and waits for its result.
    ///
    /// With a delay or run-at time the wait includes that time. With a unique
    /// key that matches a live task, the result is that task's.
    ///
    /// - Throws: `SwitchyardError`: `.badRequest` (before anything is sent) when
    ///   an option is out of range; otherwise the server's code (`UNKNOWN_HANDLER`,
    ///   `HANDLER_FAILED`, `WORKER_CRASHED`, `WORKER_LIMIT`, `TIMEOUT`, `CANCELLED`, `QUEUE_FULL`, ...)
    ///   and message.
    public func submit(
        _ handler: String, payload: ByteBuffer, options: SubmitOptions,
        onProgress: (@Sendable (_ done: UInt64, _ total: UInt64) -> Void)? = nil
    ) async throws -> ByteBuffer {
        let request = try options.request(handler: handler, payload: payload, background: false)
        switch try await send(.submit(request), onProgress: onProgress) {
        case .result(_, let result): return result
        case let other: throw unexpected(other, for: "SUBMIT")
        }
    }

    /// Runs a task as `options` say and waits for its result, with the payload as bytes.
    public func submit(
        _ handler: String, payload: some Sequence<UInt8> = [], options: SubmitOptions,
        onProgress: (@Sendable (_ done: UInt64, _ total: UInt64) -> Void)? = nil
    ) async throws -> [UInt8] {
        let result = try await submit(
            handler, payload: ByteBuffer(bytes: payload), options: options, onProgress: onProgress)
        return Array(result.readableBytesView)
    }

    /// Queues a task and returns its id without waiting for it to run.
    public func submitBackground(
        _ handler: String, payload: ByteBuffer, priority: Int32 = 0, maxAttempts: UInt32? = nil
    ) async throws -> TaskID {
        try await submitBackground(
            handler, payload: payload, options: SubmitOptions(priority: priority, maxAttempts: maxAttempts))
    }

    /// Queues (or schedules) a task as `options` say and returns its id
    /// without waiting for it to run. With a unique key that matches a live
    /// task, the id is that task's.
    ///
    /// - Throws: `SwitchyardError`: `.badRequest` (before anything is sent) when
    ///   an option is out of range; otherwise the server's code (`UNKNOWN_HANDLER`,
    ///   `QUEUE_FULL`, `SHUTTING_DOWN`, ...) and message.
    public func submitBackground(
        _ handler: String, payload: ByteBuffer, options: SubmitOptions
    ) async throws -> TaskID {
        let request = try options.request(handler: handler, payload: payload, background: true)
        switch try await send(.submit(request)) {
        case .accepted(let id): return id
        case let other: throw unexpected(other, for: "SUBMIT")
        }
    }

    /// Waits for a task submitted earlier (by anyone) and returns its result.
    /// Returns at once when it already succeeded and its record is retained.
    ///
    /// - Throws: `SwitchyardError` with `UNKNOWN_TASK` when the server does not
    ///   know the id, or the code and message the task ended with
    ///   (`HANDLER_FAILED`, `WORKER_CRASHED`, `WORKER_LIMIT`, `TIMEOUT`, `CANCELLED`, `SHUTTING_DOWN`).
    public func wait(
        for id: TaskID, onProgress: (@Sendable (_ done: UInt64, _ total: UInt64) -> Void)? = nil
    ) async throws -> ByteBuffer {
        switch try await send(.wait(id), onProgress: onProgress) {
        case .result(_, let result): return result
        case let other: throw unexpected(other, for: "WAIT")
        }
    }

    /// Cancels a task and returns its record after the cancel.
    ///
    /// A queued, scheduled or retry-waiting task is cancelled at once (state
    /// `.cancelled`). A running one keeps state `.running`: its attempt runs to
    /// the end on its worker, the result is discarded and the task then ends
    /// `.cancelled`. A task already finished is left as it was: check `state`.
    ///
    /// - Throws: `SwitchyardError` with `UNKNOWN_TASK` when the server does not know the id.
    public func cancel(_ id: TaskID) async throws -> TaskInfo {
        switch try await send(.cancel(id)) {
        case .taskInfo(let info): return info
        case let other: throw unexpected(other, for: "CANCEL")
        }
    }

    /// One page of task records (without results), in id order. For the next
    /// page pass the last id as `afterID`; a page shorter than `limit` is the last.
    ///
    /// - Throws: `SwitchyardError` with `.badRequest` (before anything is sent)
    ///   when `limit` is outside 1...1000.
    public func listTasks(_ query: TaskListQuery) async throws -> [TaskInfo] {
        try SwitchyardError.checkLocally { try query.validate() }
        switch try await send(.listTasks(query)) {
        case .taskList(let infos): return infos
        case let other: throw unexpected(other, for: "LIST_TASKS")
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

    /// The strategies the server has, which it uses where, and what it switched off.
    public func strategies() async throws -> StrategyReport {
        switch try await send(.strategyList) {
        case .strategyInfo(let json): return try StrategyReport(json: json)
        case let other: throw unexpected(other, for: "STRATEGY_LIST")
        }
    }

    /// Uses strategy `name` (created with `config`) for `handler`, or for every
    /// handler without its own when nil. Returns the server's report after the change.
    @discardableResult
    public func setStrategy(_ name: String, handler: String? = nil, config: [String: String] = [:]) async throws
        -> StrategyReport
    {
        switch try await send(.strategySet(StrategySetRequest(name: name, handler: handler, config: config))) {
        case .strategyInfo(let json): return try StrategyReport(json: json)
        case let other: throw unexpected(other, for: "STRATEGY_SET")
        }
    }

    /// Loads the strategy plugin at `path` (an absolute path on the server's
    /// machine) into the server, after a probe process on the server has
    /// loaded it and exercised each strategy (created with `config`). The
    /// report's `loaded` says what the file provides; `setStrategy` uses it.
    /// A refused file throws `SwitchyardError` with code STRATEGY_REFUSED.
    @discardableResult
    public func loadStrategy(path: String, config: [String: String] = [:]) async throws -> StrategyReport {
        switch try await send(.strategyLoad(StrategyLoadRequest(path: path, config: config))) {
        case .strategyInfo(let json): return try StrategyReport(json: json)
        case let other: throw unexpected(other, for: "STRATEGY_LOAD")
        }
    }

    /// Reloads the server's handler plugins: a probe worker loads the plugin
    /// directory again; if it succeeds, new workers start on the new files and
    /// the old ones finish what they hold and exit. Returns when that is done.
    /// A refused plugin set throws `SwitchyardError` with RELOAD_FAILED (the
    /// old set keeps serving).
    @discardableResult
    public func reload(canary: CanaryOptions? = nil) async throws -> ReloadReport {
        if let canary { try SwitchyardError.checkLocally { try canary.validate() } }
        switch try await send(.reload(canary)) {
        case .reloadInfo(let json): return try ReloadReport(json: json)
        case let other: throw unexpected(other, for: "RELOAD")
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
        try await Self.send(message, on: channel, closeReason: closeReason, onProgress: onProgress)
    }

    private static func send(
        _ message: ClientMessage, on channel: Channel, closeReason: CloseReason,
        onProgress: (@Sendable (UInt64, UInt64) -> Void)? = nil
    ) async throws -> ServerMessage {
        let promise = channel.eventLoop.makePromise(of: ServerMessage.self)
        // A write on a closed channel never reaches the handler, which would
        // leave the request unanswered forever: fail it from the write's promise.
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in
            // The handler saw why it closed (e.g. the server's ERROR before it closed): say that.
            promise.fail(closeReason.error ?? SwitchyardError.connection("the connection to the server is closed (\(error))"))
        }
        channel.writeAndFlush(OutboundRequest(message: message, promise: promise, onProgress: onProgress), promise: written)
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
