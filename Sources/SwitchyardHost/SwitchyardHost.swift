import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
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
        if case .sqlite(let directory, let sync) = configuration.store {
            let store = SQLiteTaskStore(directory: directory, sync: sync)
            let (unfinished, maxID) = try store.open()
            opened = (store, unfinished, maxID)
        }
        let dispatcher = Dispatcher(
            loop: loop, configuration: configuration, logger: logger, executable: executable, pluginFiles: pluginFiles)
        state.withLockedValue { $0.dispatcher = dispatcher }

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

        let maxFrameSize = configuration.maxFrameSize
        let channel: Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let remote = channel.remoteAddress.map { "\($0)" } ?? "?"
                        try channel.pipeline.syncOperations.addHandlers(
                            ByteToMessageHandler(FrameBatchDecoder(maxFrameSize: maxFrameSize)),
                            ClientConnection(dispatcher: dispatcher, remote: remote))
                    }
                }
                .bind(host: configuration.host, port: configuration.port).get()
        } catch {
            await shutdownAfterFailedStart(dispatcher)
            throw ConfigurationError(
                "cannot listen on \(configuration.host):\(configuration.port): \(error); pick another address with --listen HOST:PORT"
            )
        }
        let address = channel.localAddress!
        let shown = "\(address.ipAddress ?? configuration.host):\(address.port ?? configuration.port)"
        try await loop.submit {
            dispatcher.listenAddress = shown
            dispatcher.markRunning()
            // The dispatcher logs each reload's outcome with its trigger; nobody else waits for it.
            watch?.activate { _ = dispatcher.reload(trigger: "watch") }
        }.get()
        state.withLockedValue {
            $0.serverChannel = channel
            $0.localAddress = address
        }
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
            let channel = state.withLockedValue { $0.serverChannel }
            channel?.close(promise: nil)
            dispatcher.loop.execute { dispatcher.beginShutdown() }
        }
        stopWatching()
        try await group.shutdownGracefully()
    }
}
