import Foundation
import NIOCore

/// The document SERVER_INFO carries (JSON, keys as below). `switchyard status`
/// prints it; scripts may parse it.
public struct ServerStatus: Codable, Sendable, Hashable {
    public struct Worker: Codable, Sendable, Hashable {
        public var id: Int
        public var pid: Int32
        public var generation: Int
        /// "starting", "ready", "stopping"
        public var state: String
        public var tasksDone: UInt64
        public var inFlight: Int
        public var handlers: [String]
        /// Moving average of the time a task takes on this worker, in ns
        /// (measured between completions while busy); nil before the first.
        public var serviceNanosAverage: UInt64?
        /// The plugin generation this worker loaded (see `ReloadReport.generation`).
        public var pluginGeneration: Int?
        /// How many tasks it may hold at once now: `--prefetch`, grown up to
        /// `--max-prefetch` while its tasks are short. Nil from servers before it.
        public var window: Int?
        public init(
            id: Int, pid: Int32, generation: Int, state: String, tasksDone: UInt64, inFlight: Int, handlers: [String],
            serviceNanosAverage: UInt64? = nil, pluginGeneration: Int? = nil, window: Int? = nil
        ) {
            self.window = window
            self.serviceNanosAverage = serviceNanosAverage
            self.pluginGeneration = pluginGeneration
            self.id = id
            self.pid = pid
            self.generation = generation
            self.state = state
            self.tasksDone = tasksDone
            self.inFlight = inFlight
            self.handlers = handlers
        }
    }

    public struct Handler: Codable, Sendable, Hashable {
        public var name: String
        public var plugin: String
        public var pluginVersion: String
        public var file: String
        public var workers: Int
        /// SHA-256 of the plugin file when it was loaded, the plugin generation
        /// that loaded it, and when (seconds since the epoch).
        public var sha256: String?
        public var generation: Int?
        public var loadedAt: Double?
        public init(
            name: String, plugin: String, pluginVersion: String, file: String, workers: Int, sha256: String? = nil,
            generation: Int? = nil, loadedAt: Double? = nil
        ) {
            self.sha256 = sha256
            self.generation = generation
            self.loadedAt = loadedAt
            self.name = name
            self.plugin = plugin
            self.pluginVersion = pluginVersion
            self.file = file
            self.workers = workers
        }
    }

    /// A C function bound as a handler (`serve --config-file`, `bindings:`).
    public struct Binding: Codable, Sendable, Hashable {
        public var name: String
        public var library: String
        public var symbol: String
        /// As configured, in normal form when it parses (`int64(int64, int64)`).
        public var signature: String
        /// Workers that have it.
        public var workers: Int
        /// Why workers left it out (library or symbol not found, bad signature); nil when loaded.
        public var skipped: String?
        /// The file the dynamic linker opened for `library`, and its SHA-256, once a worker loaded it.
        public var path: String?
        public var sha256: String?
        public init(
            name: String, library: String, symbol: String, signature: String, workers: Int, skipped: String?,
            path: String? = nil, sha256: String? = nil
        ) {
            self.name = name
            self.library = library
            self.symbol = symbol
            self.signature = signature
            self.workers = workers
            self.skipped = skipped
            self.path = path
            self.sha256 = sha256
        }
    }

    /// A strategy plugin file loaded into the host: shipped, or by STRATEGY_LOAD.
    public struct StrategyFile: Codable, Sendable, Hashable {
        /// The path it was loaded from (for STRATEGY_LOAD, the path the request named).
        public var file: String
        public var plugin: String
        public var version: String
        /// SHA-256 of the content loaded.
        public var sha256: String
        /// The strategies it made available.
        public var strategies: [String]
        /// When (seconds since the epoch).
        public var loadedAt: Double
        public init(file: String, plugin: String, version: String, sha256: String, strategies: [String], loadedAt: Double) {
            self.file = file
            self.plugin = plugin
            self.version = version
            self.sha256 = sha256
            self.strategies = strategies
            self.loadedAt = loadedAt
        }
    }

    public var server: String
    public var pid: Int32
    public var listen: String
    public var uptimeSeconds: Double
    public var strategy: String
    public var queued: Int
    public var running: Int
    public var succeeded: UInt64
    public var failed: UInt64
    public var workerRestarts: UInt64
    public var workers: [Worker]
    /// The strategy in use for every handler ("default") and for each
    /// handler with its own, with faults counted; nil from older servers.
    public var strategies: [StrategyReport.Active]?
    /// Strategies the server switched off by itself, newest last.
    public var strategyNotices: [String]?
    public var handlers: [Handler]
    public var skippedPlugins: [SkippedPlugin]
    /// The configured bindings, loaded or skipped; nil from servers older than bindings.
    public var bindings: [Binding]?
    /// The plugin generation new tasks go to (1 at start, one more per reload).
    public var pluginGeneration: Int?
    /// The outcome of the last reload, if any.
    public var lastReload: ReloadReport?
    /// Strategy plugin files loaded into the host, in load order; nil from older servers.
    public var strategyFiles: [StrategyFile]?
    /// The per-worker limits (`serve --worker-memory`, `--worker-cpu`); nil when unset.
    public var workerMemoryLimit: UInt64?
    public var workerCPULimitSeconds: UInt64?
    /// Where tasks are kept, with a shared (PostgreSQL) store; nil otherwise.
    public var store: String?
    /// Every live host sharing the queue, this one included, as each said at
    /// its last heartbeat; nil unless the store is shared.
    public var hosts: [SharedHost]?

    /// One host sharing a PostgreSQL queue.
    public struct SharedHost: Codable, Sendable, Hashable {
        /// Its id in the database (a new one after it lost its lease).
        public var id: Int64 = 0
        /// Machine name and pid.
        public var name: String
        public var listen: String = ""
        public var pid: Int32 = 0
        /// Ready workers.
        public var workers: Int = 0
        /// Tasks it holds: claimed and not finished.
        public var held: Int = 0
        public var running: Int = 0
        public var succeeded: UInt64 = 0
        public var failed: UInt64 = 0
        /// Whether it reached the database at its last heartbeat.
        public var connected: Bool = true
        /// Seconds since its last heartbeat.
        public var heartbeatAgeSeconds: Double = 0
        /// The host that answered this status.
        public var isThisHost: Bool = false
        public init(name: String) { self.name = name }
    }

    public init(
        server: String, pid: Int32, listen: String, uptimeSeconds: Double, strategy: String, queued: Int,
        running: Int, succeeded: UInt64, failed: UInt64, workerRestarts: UInt64, workers: [Worker],
        strategies: [StrategyReport.Active]? = nil, strategyNotices: [String]? = nil,
        handlers: [Handler], skippedPlugins: [SkippedPlugin], bindings: [Binding]? = nil
    ) {
        self.strategies = strategies
        self.strategyNotices = strategyNotices
        self.bindings = bindings
        self.server = server
        self.pid = pid
        self.listen = listen
        self.uptimeSeconds = uptimeSeconds
        self.strategy = strategy
        self.queued = queued
        self.running = running
        self.succeeded = succeeded
        self.failed = failed
        self.workerRestarts = workerRestarts
        self.workers = workers
        self.handlers = handlers
        self.skippedPlugins = skippedPlugins
    }

    public func encoded() -> ByteBuffer { encodeJSON(self) }

    public init(json: ByteBuffer) throws {
        self = try decodeJSON(ServerStatus.self, from: json, frame: "SERVER_INFO")
    }
}
