import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import SwitchyardCore

/// The Switchyard host: a TCP server and a pool of worker processes that run
/// task handlers from plugins.
///
/// Run it as a swift-service-lifecycle `Service` (SIGTERM/SIGINT through the
/// `ServiceGroup` shut it down gracefully), or call `start()` and `shutdown()`
/// yourself. A program that embeds the host must call
/// `WorkerProcess.runIfRequested()` first thing in `main`: the host starts its
/// workers by running the same executable.
public final class SwitchyardHost: Service, Sendable {
    /// This build's version.
    public static let version = "0.1.0"
    /// The smallest `workerMemoryLimit`.
    public static let minimumWorkerMemory: UInt64 = 32 << 20

    public let configuration: HostConfiguration
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let state: NIOLockedValueBox<State>

    private struct State {
        var dispatcher: Dispatcher?
        var serverChannel: Channel?
        var adminChannel: Channel?
        var localAddress: SocketAddress?
        var watch: PluginWatch?
    }

    public init(configuration: HostConfiguration, logger: Logger = Logger(label: "switchyard")) {
        self.configuration = configuration
        self.logger = logger
        // One event loop runs the whole host: the dispatcher's state never needs
        // a lock, and the other cores are left to the worker processes.
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.state = NIOLockedValueBox(State())
    }

    /// The address the server listens on, once started.
    public var localAddress: SocketAddress? { state.withLockedValue { $0.localAddress } }

    /// Starts the workers and the server; returns once every worker has loaded
    /// its plugins and the server is listening.
    @discardableResult
    public func start() async throws -> SocketAddress {
        let configuration = configuration
        guard configuration.workers >= 1 && configuration.workers <= 1024 else {
            throw ConfigurationError("--workers must be between 1 and 1024, not \(configuration.workers)")
        }
        guard configuration.prefetch >= 1 && configuration.prefetch <= 4096 else {
            throw ConfigurationError("prefetch must be between 1 and 4096, not \(configuration.prefetch)")
        }
        guard configuration.windowBudget.nanoseconds > 0 else {
            throw ConfigurationError("windowBudget must be above 0, not \(configuration.windowBudget)")
        }
        if let most = configuration.maxPrefetch, most < configuration.prefetch || most > 4096 {
            throw ConfigurationError("maxPrefetch must be between prefetch (\(configuration.prefetch)) and 4096, not \(most)")
        }
        if case .postgres = configuration.store {
            let lease = configuration.leaseDuration.nanoseconds, beat = configuration.heartbeatInterval.nanoseconds
            guard beat > 0, configuration.pollInterval.nanoseconds > 0, lease >= 2 * beat else {
                throw ConfigurationError(
                    "the lease (--lease) must be at least twice the heartbeat interval (--heartbeat), and both and --poll-interval above 0: a host renews its lease at each heartbeat, and one late heartbeat must not cost it its tasks"
                )
            }
        }
        guard configuration.maxFrameSize >= 1024 && configuration.maxFrameSize <= 1 << 30 else {
            throw ConfigurationError("the frame limit must be between 1 KiB and 1 GiB, not \(configuration.maxFrameSize)")
        }
        if let memory = configuration.workerMemoryLimit, memory < Self.minimumWorkerMemory {
            throw ConfigurationError(
                "the worker memory limit (--worker-memory) must be at least \(ByteCount.describe(Self.minimumWorkerMemory)), not \(ByteCount.describe(memory)): a worker uses about 6 MiB before it loads any plugin"
            )
        }
        if configuration.workerCPULimit == 0 {
            throw ConfigurationError("the CPU limit per task (--worker-cpu) must be at least 1 second")
        }
        for pattern in configuration.workerEnvironment where !WorkerEnvironment.isValidPattern(pattern) {
            throw ConfigurationError(
                "--worker-env takes a variable name (letters, digits and _) or a prefix ending in *, not `\(pattern)`")
        }
        if let problem = configuration.exposureProblem() { throw ConfigurationError(problem) }
        try configuration.validateLimits()
        raiseDescriptorLimit(for: configuration, logger: logger)
        let loop = group.next()
        // Watch before listing the directory, so no change after the listing is missed.
        let watch = try configuration.watchPlugins ? startWatching(loop: loop) : nil
        state.withLockedValue { $0.watch = watch }
        do {
            try await start(loop: loop, watch: watch)
        } catch {
            stopWatching()
            throw error
        }
        return state.withLockedValue { $0.localAddress! }
    }

    private func startWatching(loop: EventLoop) throws -> PluginWatch {
        guard case .directory(let directory) = configuration.plugins else {
            throw ConfigurationError(
                "watching the plugins (watchPlugins, serve --watch) needs a plugin directory (plugins: .directory(DIR), serve --plugins DIR): the shipped plugins change only with the executable, which a reload cannot replace; restart for those"
            )
        }
        do {
            return try PluginWatch(directory: directory, loop: loop, quiet: configuration.watchQuiet, logger: logger)
        } catch {
            // A missing directory is reported as without --watch.
            _ = try PluginDiscovery.files(for: configuration.plugins)
            throw ConfigurationError("cannot watch plugin directory \(directory): \(error)")
        }
    }

    private func stopWatching() {
        state.withLockedValue { $0.watch }?.stop()
    }

    private func start(loop: EventLoop, watch: PluginWatch?) async throws {
        let configuration = configuration
        let pluginFiles = try PluginDiscovery.files(for: configuration.plugins)
        try checkTrust(pluginFiles: pluginFiles)
        let executable = try configuration.workerExecutable ?? PluginDiscovery.executablePath()
        // Open the store first: a bad data dir fails here, before anything starts.
        var opened: (any TaskStore, [TaskRecord], TaskID)?
        var shared: SharedQueue?
        switch configuration.store {
        case .sqlite(let directory, let sync):
            let store = SQLiteTaskStore(directory: directory, sync: sync)
            let (unfinished, maxID) = try store.open()
            opened = (store, unfinished, maxID)
        case .postgres(let url):
            #if PostgreSQL
            let queue = SharedQueue(
                store: try PostgresTaskQueue(url: url, logger: logger), loop: loop, logger: logger,
                hostName: Dispatcher.hostName,
                leaseMillis: configuration.leaseDuration.nanoseconds / 1_000_000,
                heartbeatMillis: configuration.heartbeatInterval.nanoseconds / 1_000_000,
                pollMillis: configuration.pollInterval.nanoseconds / 1_000_000)
            try await queue.start()
            shared = queue
            #else
            _ = url
            throw ConfigurationError.postgresNotBuilt
            #endif
        case .memory:
            break
        }
        let dispatcher = Dispatcher(
            loop: loop, configuration: configuration, logger: logger, executable: executable, pluginFiles: pluginFiles)
        state.withLockedValue { $0.dispatcher = dispatcher }
        #if PostgreSQL
        if let shared {
            try await loop.submit { dispatcher.attachShared(shared) }.get()
        }
        #endif

        if let (store, unfinished, maxID) = opened {
            try await loop.submit { dispatcher.attachStore(store, unfinished: unfinished, maxID: maxID) }.get()
        }
        try await loop.submit {
            dispatcher.schedulePruning()
            dispatcher.registerShippedStrategies()
            for (name, registration) in configuration.customStrategies {
                dispatcher.registerStrategy(name, registration)
            }
        }.get()
        logger.info("starting \(configuration.workers) workers with \(pluginFiles.count) plugin files")

        try await loop.flatSubmit { dispatcher.startWorkers() }.get()
        // Handlers are known now: per-handler strategies can be checked.
        do {
            try await loop.submit { for request in configuration.strategies { try dispatcher.setStrategy(request) } }.get()
        } catch let error as ProtocolError {
            await shutdownAfterFailedStart(dispatcher)
            throw ConfigurationError("--strategy: \(error.message)")
        }

        var listening: Channel?
        let limits = ConnectionLimits(configuration: configuration, logger: logger)
        let channel: Channel
        var adminChannel: Channel?
        do {
            let tls = try configuration.tls?.makeServerContext()
            channel = try await listen(dispatcher: dispatcher, tls: tls, limits: limits)
            listening = channel
            if let path = configuration.adminSocket { adminChannel = try await listenLocally(at: path, dispatcher: dispatcher) }
        } catch {
            try? await listening?.close()
            await shutdownAfterFailedStart(dispatcher)
            throw error
        }
        let address = channel.localAddress!
        let shown = "\(address.ipAddress ?? configuration.host):\(address.port ?? configuration.port)"
        try await loop.submit {
            dispatcher.listenAddress = shown
            dispatcher.markRunning()
            dispatcher.activateShared()
            // The dispatcher logs each reload's outcome with its trigger; nobody else waits for it.
            watch?.activate { _ = dispatcher.reload(trigger: "watch") }
        }.get()
        state.withLockedValue {
            $0.serverChannel = channel
            $0.adminChannel = adminChannel
            $0.localAddress = address
        }
        logAccess(adminChannel: adminChannel)
        let handlers = try await loop.submit { dispatcher.status().handlers.map(\.name) }.get()
        logger.info(
            "listening on \(shown) with \(configuration.workers) workers; handlers: \(handlers.joined(separator: ", "))")
    }

    /// Refuses to start on a plugin directory or file, shipped strategy
    /// plugin, or library of a binding given as a path that someone other
    /// than root or the server's user could have written; with
    /// `allowInsecurePlugins`, warns about each instead.
    private func checkTrust(pluginFiles: [String]) throws {
        if configuration.allowInsecurePlugins {
            logger.warning(
                "--allow-insecure-plugins: plugin trust checks are off; code that anyone could have written may be loaded and run as the server's user. For development only"
            )
        }
        var problems = PluginTrust.problems(
            directory: try PluginDiscovery.directory(for: configuration.plugins), files: pluginFiles,
            bindings: configuration.bindings)
        for file in PluginDiscovery.shippedStrategyFiles() {
            if let problem = PluginTrust.check(file, as: "strategy plugin") { problems.append(problem) }
        }
        do {
            try PluginTrust.enforce(problems, allowInsecure: configuration.allowInsecurePlugins, logger: logger)
        } catch {
            throw ConfigurationError(error.description)
        }
    }

    /// Binds the TCP listener; each connection starts with the TLS sniffer.
    private func listen(dispatcher: Dispatcher, tls: NIOSSLContext?, limits: ConnectionLimits) async throws -> Channel {
        let configuration = configuration
        let maxFrameSize = configuration.maxFrameSize
        let logger = logger
        do {
            return try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let remote = channel.remoteAddress.map { "\($0)" } ?? "?"
                        let ip = channel.remoteAddress?.ipAddress ?? remote
                        try channel.pipeline.syncOperations.addHandlers(
                            // First: it counts the connection and holds reads below TLS too.
                            ConnectionGuard(limits: limits, configuration: configuration, logger: logger),
                            TransportSniffer(tls: tls, logger: logger, remote: remote),
                            ByteToMessageHandler(FrameBatchDecoder(maxFrameSize: maxFrameSize)),
                            ClientConnection(dispatcher: dispatcher, remote: remote, peer: .network(ip)))
                    }
                }
                .bind(host: configuration.host, port: configuration.port).get()
        } catch {
            throw ConfigurationError(
                "cannot listen on \(configuration.host):\(configuration.port): \(error); pick another address with --listen HOST:PORT"
            )
        }
    }

    /// Binds the admin socket (mode 0600, plaintext): its clients are admins without a token.
    private func listenLocally(at path: String, dispatcher: Dispatcher) async throws -> Channel {
        let maxFrameSize = configuration.maxFrameSize
        let logger = logger
        try await AdminSocket.prepare(path, group: group)
        let channel: Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 64)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers(
                            TransportSniffer(tls: nil, logger: logger, remote: "admin socket"),
                            ByteToMessageHandler(FrameBatchDecoder(maxFrameSize: maxFrameSize)),
                            ClientConnection(dispatcher: dispatcher, remote: "admin socket", peer: .local))
                    }
                }
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        } catch {
            throw ConfigurationError(
                "cannot listen on the admin socket \(path): \(error); choose a shorter or writable path (serve --data-dir DIR)")
        }
        do {
            try AdminSocket.restrict(path)
        } catch {
            try? await channel.close()
            throw error
        }
        return channel
    }

    /// Says at start who may do what: the log line the operator checks.
    private func logAccess(adminChannel: Channel?) {
        let configuration = configuration
        if let auth = configuration.auth {
            logger.info(
                "clients authenticate: \(auth.tokens.count(.admin)) admin and \(auth.tokens.count(.submit)) submit tokens; \(auth.throttle.maxFailures) failures from an address bar it for \(auth.throttle.penaltyMillis / 1000) s, doubling"
            )
        } else if HostConfiguration.isLoopback(configuration.host) {
            logger.notice(
                "no auth file (--auth): clients are not authenticated and may do everything, so the server binds a loopback address only (\(configuration.host))"
            )
        } else {
            logger.warning(
                "no auth file (--auth) and --insecure: anyone who can reach \(configuration.host) may submit tasks, reload plugins and load strategies; give --auth FILE (docs/SECURITY.md)"
            )
        }
        if let tls = configuration.tls {
            logger.info("TCP clients must use TLS (certificate \(tls.certificateChain))")
        }
        if let path = configuration.adminSocket, adminChannel != nil {
            logger.info("admin socket \(path) (mode 0600, plaintext): its clients are admins without a token")
        }
    }

    private func shutdownAfterFailedStart(_ dispatcher: Dispatcher) async {
        dispatcher.loop.execute { dispatcher.beginShutdown() }
        try? await dispatcher.stopped.futureResult.get()
        stopWatching()
        try? await group.shutdownGracefully()
    }

    /// The server's status (as `switchyard status` shows it).
    public func status() async throws -> ServerStatus {
        guard let dispatcher = state.withLockedValue({ $0.dispatcher }) else {
            throw ConfigurationError("the host has not been started")
        }
        return try await dispatcher.loop.submit { dispatcher.status() }.get()
    }

    /// Reloads the handler plugins (see `switchyard reload`): a probe worker
    /// loads the plugin directory again; if it succeeds, a new generation of
    /// workers takes over and the old one drains. Returns when that is done.
    /// Throws a `ProtocolError` with code RELOAD_FAILED (nothing changed) or
    /// SHUTTING_DOWN. `trigger` names the cause in the log and the report.
    @discardableResult
    public func reload(trigger: String = "request", canary: CanaryOptions? = nil) async throws -> ReloadReport {
        guard let dispatcher = state.withLockedValue({ $0.dispatcher }) else {
            throw ConfigurationError("the host has not been started")
        }
        return try await dispatcher.loop.flatSubmit { dispatcher.reload(trigger: trigger, canary: canary) }.get()
    }

    /// Makes a strategy written in Swift available under `name`, in process.
    public func registerStrategy(_ name: String, _ registration: StrategyRegistration) async throws {
        guard let dispatcher = state.withLockedValue({ $0.dispatcher }) else {
            throw ConfigurationError("the host has not been started; put the strategy in HostConfiguration.customStrategies")
        }
        try await dispatcher.loop.submit { dispatcher.registerStrategy(name, registration) }.get()
    }

    /// Uses strategy `request.name` for `request.handler` (or every handler),
    /// from the next dispatch decision on; tasks already sent are untouched.
    @discardableResult
    public func setStrategy(_ request: StrategySetRequest) async throws -> StrategyReport {
        guard let dispatcher = state.withLockedValue({ $0.dispatcher }) else {
            throw ConfigurationError("the host has not been started; put the strategy in HostConfiguration.strategies")
        }
        return try await dispatcher.loop.submit {
            try dispatcher.setStrategy(request)
            return dispatcher.strategyReport()
        }.get()
    }

    /// Stops accepting, finishes accepted tasks (within the shutdown timeout),
    /// stops the workers (each runs its handlers' on_worker_stop) and closes
    /// every connection. Returns when all of that is done.
    public func shutdown() async throws {
        let (dispatcher, channel) = state.withLockedValue { ($0.dispatcher, $0.serverChannel) }
        guard let dispatcher else { return }
        try? await channel?.close()
        await closeAdminSocket()
        dispatcher.loop.execute { dispatcher.beginShutdown() }
        try await dispatcher.stopped.futureResult.get()
        stopWatching()
        try await group.shutdownGracefully()
    }

    /// `Service`: starts, runs until graceful shutdown or cancellation, then shuts down.
    public func run() async throws {
        try await start()
        let dispatcher = state.withLockedValue { $0.dispatcher }!
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await dispatcher.stopped.futureResult.get()
        } onCancelOrGracefulShutdown: { [self] in
            let (channel, admin) = state.withLockedValue { ($0.serverChannel, $0.adminChannel) }
            channel?.close(promise: nil)
            admin?.close(promise: nil)
            dispatcher.loop.execute { dispatcher.beginShutdown() }
        }
        stopWatching()
        await closeAdminSocket()
        try await group.shutdownGracefully()
    }

    /// Stops listening on the admin socket and removes its file.
    private func closeAdminSocket() async {
        guard let channel = state.withLockedValue({ $0.adminChannel }), let path = configuration.adminSocket else { return }
        try? await channel.close()
        AdminSocket.remove(path)
    }
}
