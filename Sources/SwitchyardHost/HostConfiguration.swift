import NIOCore
import SwitchyardCore

/// Everything a host needs to run. The CLI fills it from flags; a program that
/// embeds the host builds one directly. Every field has a working default.
public struct HostConfiguration: Sendable {
    /// Address to listen on (default `127.0.0.1`).
    public var host: String
    /// TCP port (default 7400; 0 picks a free port, see `SwitchyardHost.localAddress`).
    public var port: Int
    /// Worker processes (default: the number of cores).
    public var workers: Int
    /// Where plugins come from (default: the shipped plugins next to the executable).
    public var plugins: PluginSource
    /// The program run as a worker (default: this process's own executable, which
    /// must call `WorkerProcess.runIfRequested()` first thing in `main`).
    public var workerExecutable: String?
    /// Values plugins read with `config_get` (`--config key=value`).
    public var pluginConfig: [String: String]
    /// C functions bound as handlers through libffi, after the plugins' handlers
    /// (`bindings:` in `serve --config-file`); default none. Workers open the
    /// libraries; one that cannot be prepared is skipped and reported in status.
    public var bindings: [BindingSpec] = []
    /// Largest frame accepted from clients and workers, header included (default 16 MiB).
    public var maxFrameSize: Int
    /// Tasks each worker may hold at once (default 16): enough that a worker's
    /// socket never idles, few enough that a slow task delays little behind it.
    /// The least a worker's window holds when `maxPrefetch` is above it.
    public var prefetch: Int
    /// The most a worker's window grows to when its tasks are short: it holds
    /// about `windowBudget` of the worker's measured work, never fewer than
    /// `prefetch` tasks. nil (the default): 256 while `prefetch` is at its
    /// default (`defaultPrefetch`, 16), else
    /// `prefetch`, so a window set by hand stays as set. Equal to `prefetch`
    /// turns growth off. With the PostgreSQL store windows do not grow: a host
    /// claims tasks for its free window, and deep windows would let one host
    /// take work others could run.
    public var maxPrefetch: Int?

    /// How much of a worker's measured work a grown window holds (default 5 ms):
    /// about the longest a task sent to a worker waits there behind the tasks
    /// sent before it, beyond `prefetch` of them.
    public var windowBudget: TimeAmount = .milliseconds(5)

    /// `maxPrefetch`, or what nil stands for.
    public var effectiveMaxPrefetch: Int { maxPrefetch ?? (prefetch == Self.defaultPrefetch ? 256 : prefetch) }

    /// `prefetch` when none is given: the value `effectiveMaxPrefetch` takes for "not set by hand".
    public static let defaultPrefetch = 16
    /// Attempts per task when the submit names none (default 2: one retry after a crash).
    public var defaultMaxAttempts: UInt32
    /// Finished tasks whose record and result stay queryable (default 10,000).
    public var retainFinished: Int
    /// How long a graceful shutdown waits for accepted tasks to finish (default 30 s).
    public var shutdownTimeout: TimeAmount
    /// How long a stopping worker may take to exit before it is killed (default 10 s).
    public var workerStopTimeout: TimeAmount
    /// Where tasks are kept (default: memory; `switchyard serve` defaults to SQLite in its data dir).
    public var store: StoreKind
    /// Most tasks queued or waiting for their time at once; past it a submit gets
    /// QUEUE_FULL (default 1,000,000).
    public var maxQueue: Int
    /// Per-attempt time limit when a submit names none (default 30 minutes; nil for none).
    public var defaultTimeout: TimeAmount?
    /// Waits between attempts after a retryable failure (default 1 s doubling to 10 min, 25% jitter).
    public var retry: RetryPolicy
    /// Waiting this long raises a queued task's priority by one, so low
    /// priorities are not starved (default 10 s; nil turns ageing off).
    public var aging: TimeAmount?
    /// How long finished tasks and their results are kept (default 24 h).
    public var keepResults: TimeAmount
    /// Strategies to use from the start (`--strategy NAME` or `--strategy HANDLER=NAME`);
    /// default: round_robin for everything.
    public var strategies: [StrategySetRequest] = []
    /// Strategies written in Swift that STRATEGY_SET (and `strategies`) can name,
    /// besides the built-in ones.
    public var customStrategies: [String: StrategyRegistration] = [:]
    /// Faulty picks (a worker that cannot take the task) a strategy may make
    /// before it is switched off and the one it replaced restored; 0 never
    /// switches one off (default 100).
    public var strategyFaultLimit: UInt64 = 100
    /// After a reload, how long old-generation workers may take to finish the
    /// tasks they hold before they are killed and those tasks retried on the
    /// new generation (default 30 s).
    public var drainTimeout: TimeAmount = .seconds(30)
    /// Watch the plugin directory with inotify and reload (trigger "watch")
    /// when a `*.so` in it is added, replaced or removed (default off). Needs
    /// `plugins: .directory(DIR)`: the shipped plugins change only with the
    /// executable itself, which a reload cannot replace.
    public var watchPlugins = false
    /// With `watchPlugins`, the quiet time after the last change before the
    /// reload starts, so that a burst of changes is one reload (default 250 ms).
    public var watchQuiet: TimeAmount = .milliseconds(250)
    /// Load plugin files and directories (and strategy plugins, and libraries
    /// of bindings) that someone other than root or the server's user could
    /// have written (default false: such a file is refused, naming it and the
    /// fix). For development only; each such file is logged as a warning.
    public var allowInsecurePlugins = false
    /// Each worker's memory limit in bytes (RLIMIT_DATA: its heap and other
    /// private writable memory), from 32 MiB; default nil, no limit. A task
    /// whose worker runs out of memory fails with WORKER_LIMIT.
    public var workerMemoryLimit: UInt64?
    /// CPU seconds each task may use on its worker (RLIMIT_CPU, re-armed
    /// before each task), from 1; default nil, no limit. A task past it fails
    /// with WORKER_LIMIT (its worker is ended by SIGXCPU and replaced).
    public var workerCPULimit: UInt64?
    /// Environment variables workers get besides the allow list of
    /// `WorkerEnvironment` (PATH, HOME, LANG, LC_*, TZ, TMPDIR, ...): names, or
    /// prefixes ending in `*` (default none).
    public var workerEnvironment: [String] = []
    /// Client authentication (`serve --auth FILE`): the tokens and the failure
    /// throttle. Default nil: no one is authenticated, every TCP client may do
    /// everything, and the host listens only on a loopback address unless
    /// `allowInsecure`.
    public var auth: AuthConfiguration?
    /// Allows listening on an address other than loopback without `auth`
    /// (`serve --insecure`; default false: such a start is refused).
    public var allowInsecure = false
    /// TLS for the TCP listener (`serve --tls-cert`/`--tls-key`); default nil:
    /// plaintext. A server with TLS answers a plaintext client TLS_REQUIRED.
    public var tls: TLSFiles?
    /// A Unix socket (mode 0600) on which clients are admins without a token
    /// (`serve` puts it in its data dir: `DATA_DIR/switchyard.sock`). Always
    /// plaintext. Default nil: none.
    public var adminSocket: String?

    // What one client may hold (docs/OPERATIONS.md, "Limits"). Each refusal is
    // an ERROR naming the limit, its value and the serve flag that changes it.
    /// Largest SUBMIT payload, in bytes (default 16 MiB, so that with the default
    /// frame limit the frame limit binds first); past it a submit gets PAYLOAD_TOO_LARGE.
    public var maxPayloadSize = 16 * 1024 * 1024
    /// Longest handler name a request may carry, in bytes, 1-255 (default 255,
    /// what the wire allows); past it BAD_REQUEST.
    public var maxHandlerName = 255
    /// Client connections open at once (default 1024); one more is answered
    /// TOO_MANY_CONNECTIONS and closed.
    public var maxConnections = 1024
    /// Client connections open at once from one IP address (default 256).
    public var maxConnectionsPerAddress = 256
    /// Requests one connection may have in flight, sent and not finally
    /// answered (default 1024). At the limit the server stops reading from the
    /// connection until a reply goes out; requests it had already read wait, in
    /// order. A client over the limit is slowed, never refused.
    public var maxInFlight = 1024
    /// How long a new connection may take to complete its handshake (default 10 s);
    /// then it gets HANDSHAKE_TIMEOUT and is closed.
    public var handshakeTimeout: TimeAmount = .seconds(10)
    /// How long a greeted connection with no request in flight stays open
    /// (default 5 min; nil: for ever); then it gets IDLE_TIMEOUT and is closed.
    /// A connection waiting for results it asked for is not idle.
    public var idleTimeout: TimeAmount? = .minutes(5)

    /// With a PostgreSQL store: how long a host's claim on its tasks lasts
    /// without a heartbeat; when it runs out, other hosts put those tasks back
    /// (counting the attempt) and run them (default 30 s).
    public var leaseDuration: TimeAmount = .seconds(30)
    /// With a PostgreSQL store: how often a host renews its lease, rescues the
    /// tasks of hosts whose lease ran out and publishes its status (default 10 s;
    /// keep it well under `leaseDuration`).
    public var heartbeatInterval: TimeAmount = .seconds(10)
    /// With a PostgreSQL store: how often an idle host looks for work without
    /// being woken, and re-reads tasks its clients wait for, in case a
    /// notification was lost; also how late a delayed task may start (default 1 s).
    public var pollInterval: TimeAmount = .seconds(1)

    /// Where the host keeps tasks.
    public enum StoreKind: Sendable, Hashable {
        /// In memory only: fastest; nothing survives a restart.
        case memory
        /// SQLite in WAL mode, `tasks.sqlite` in this directory.
        case sqlite(directory: String, sync: SQLiteTaskStore.Sync)
        /// A queue in PostgreSQL shared by every host given the same database:
        /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...]`.
        case postgres(url: String)

        /// `postgres://` or `postgresql://` URLs, as libpq writes them.
        public static func isPostgresURL(_ text: String) -> Bool {
            text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
        }

        /// Whether other hosts share the queue (PostgreSQL).
        var isShared: Bool {
            if case .postgres = self { return true }
            return false
        }
    }

    public enum PluginSource: Sendable, Hashable {
        /// `libswyplugin-*.so` in the directory of the running executable.
        case shipped
        /// Every `*.so` in this directory, by name.
        case directory(String)
        /// Exactly these files, in this order.
        case files([String])
    }

    public init(
        host: String = "127.0.0.1",
        port: Int = 7400,
        workers: Int = System.coreCount,
        plugins: PluginSource = .shipped,
        workerExecutable: String? = nil,
        pluginConfig: [String: String] = [:],
        maxFrameSize: Int = 16 * 1024 * 1024,
        prefetch: Int = HostConfiguration.defaultPrefetch,
        defaultMaxAttempts: UInt32 = 2,
        retainFinished: Int = 10_000,
        shutdownTimeout: TimeAmount = .seconds(30),
        workerStopTimeout: TimeAmount = .seconds(10),
        store: StoreKind = .memory,
        maxQueue: Int = 1_000_000,
        defaultTimeout: TimeAmount? = .minutes(30),
        retry: RetryPolicy = RetryPolicy(),
        aging: TimeAmount? = .seconds(10),
        keepResults: TimeAmount = .hours(24)
    ) {
        self.host = host
        self.port = port
        self.workers = workers
        self.plugins = plugins
        self.workerExecutable = workerExecutable
        self.pluginConfig = pluginConfig
        self.maxFrameSize = maxFrameSize
        self.prefetch = prefetch
        self.defaultMaxAttempts = defaultMaxAttempts
        self.retainFinished = retainFinished
        self.shutdownTimeout = shutdownTimeout
        self.workerStopTimeout = workerStopTimeout
        self.store = store
        self.maxQueue = maxQueue
        self.defaultTimeout = defaultTimeout
        self.retry = retry
        self.aging = aging
        self.keepResults = keepResults
    }
}

extension HostConfiguration {
    /// Why the host must not listen as configured, or nil: an address other
    /// than loopback without `auth` needs `allowInsecure`.
    public func exposureProblem() -> String? {
        guard auth == nil, !allowInsecure, !Self.isLoopback(host) else { return nil }
        return "refusing to listen on \(host) without authentication: anyone who can reach it could submit tasks, reload plugins and load strategies. Give --auth FILE (lines of `role:token`; see docs/SECURITY.md), listen on 127.0.0.1, or pass --insecure to allow it anyway"
    }

    /// Whether `host` names only loopback addresses (127.0.0.0/8, ::1, `localhost`).
    public static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" { return true }
        let addresses: [SocketAddress]
        if let literal = try? SocketAddress(ipAddress: host, port: 0) {
            addresses = [literal]
        } else if let resolved = try? SocketAddress.makeAddressResolvingHost(host, port: 0) {
            addresses = [resolved]
        } else {
            return false
        }
        return addresses.allSatisfy { address in
            guard let ip = address.ipAddress else { return false }
            return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
        }
    }
}

/// A configuration the host cannot run with; the message names the setting and the fix.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }

    /// A postgres:// store asked of a build without the `PostgreSQL` trait.
    public static let postgresNotBuilt = ConfigurationError(
        "this switchyard was built without the PostgreSQL shared queue (the package's `PostgreSQL` trait was off); build it with the default traits (`swift build`) to use --store postgres:// or `switchyard migrate`")
}
