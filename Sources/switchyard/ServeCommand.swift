import ArgumentParser
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import SwitchyardCore
import SwitchyardHost

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the server and its worker processes.",
        discussion: """
            Workers load every plugin in --plugins DIR (default: the shipped plugins next to \
            this executable). Tasks are kept in SQLite in --data-dir unless --store memory. \
            SIGINT or SIGTERM stops accepting and finishes running tasks (up to \
            --shutdown-timeout); with SQLite, queued tasks stay stored for the next start, with \
            the memory store they are run first. Then it stops the workers and exits 0. \
            Every flag can also be set in --config-file (YAML; keys are the flag names without \
            the dashes); a flag on the command line wins. C functions bound as handlers \
            (`bindings:`) can only be declared there. SIGHUP, `switchyard reload` or, with \
            --watch, a changed .so in --plugins DIR reload the plugins with no task lost. See \
            docs/OPERATIONS.md and docs/BINDINGS.md.
            """
    )

    @Option(help: "A YAML file of serve settings and C function bindings; flags given here win over it.")
    var configFile: String?

    @Option(help: "Address to listen on, HOST:PORT (port 0 picks a free one).")
    var listen: String = "127.0.0.1:7400"

    @Option(help: "Worker processes (default: the number of cores).")
    var workers: Int?

    @Option(help: "Directory of plugin .so files to load (default: the shipped plugins).")
    var plugins: String?

    @Flag(
        inversion: .prefixedNo, exclusivity: .chooseLast,
        help: "Reload when a .so in --plugins DIR is added, replaced or removed (needs --plugins).")
    var watch = false

    @Option(help: "Directory for the server's state: the SQLite store (created if missing).")
    var dataDir: String = "switchyard-data"

    @Option(
        help: """
            Where tasks are kept: sqlite (durable, in --data-dir), memory (fastest; lost on restart), or a \
            postgres://USER@HOST:PORT/DATABASE URL: a queue shared by every host given that database (docs/DEPLOY.md).
            """)
    var store: StoreChoice = .sqlite

    @Option(help: "With --store postgres://...: how long this host's claim on its tasks lasts without a heartbeat; then other hosts take them over.")
    var lease: String = "30s"

    @Option(help: "With --store postgres://...: how often this host renews its lease and rescues the tasks of hosts whose lease ran out.")
    var heartbeat: String = "10s"

    @Option(help: "With --store postgres://...: how often an idle host looks for work without a notification.")
    var pollInterval: String = "1s"

    @Option(
        help: """
            SQLite durability: full (fsync every group commit: acknowledged tasks survive power loss) \
            or normal (survive a crash of the server, not of the machine).
            """)
    var sync: SQLiteTaskStore.Sync = .full

    @Option(help: "Most tasks queued or waiting at once; past it a submit gets QUEUE_FULL.")
    var maxQueue: Int = 1_000_000

    @Option(help: "Per-attempt time limit when a submit names none (\(DurationArgument.help); 0s for none).")
    var defaultTimeout: String = "30m"

    @Option(help: "Wait before the first retry; each later one doubles it (\(DurationArgument.help)).")
    var retryBase: String = "1s"

    @Option(help: "Longest wait between retries.")
    var retryMax: String = "10m"

    @Option(help: "Random shortening of each retry wait, as a fraction from 0 to 1.")
    var retryJitter: Double = 0.25

    @Option(help: "Waiting this long raises a queued task's priority by one, so low priorities are not starved (0s: off).")
    var aging: String = "10s"

    @Option(help: "How long finished tasks and their results are kept.")
    var keepResults: String = "24h"

    @Option(
        name: .customLong("strategy"),
        help: "Dispatch strategy: NAME for every handler, or HANDLER=NAME for one (repeatable; default round_robin).")
    var strategies: [String] = []

    @Option(help: "Faulty picks a strategy may make before the server switches it off and restores the one it replaced (0: never).")
    var strategyFaultLimit: UInt64 = 100

    @Option(help: "After a reload, how long old workers may take to finish their tasks before they are killed and the tasks retried on the new plugins.")
    var drainTimeout: String = "30s"

    @Option(name: .customLong("config"), help: "A key=value pair plugins read with config_get (repeatable).")
    var config: [String] = []

    @Option(help: "Tasks each worker may hold at once; with --max-prefetch above it, the least.")
    var prefetch: Int = HostConfiguration.defaultPrefetch

    @Option(help: "The most tasks a worker's window grows to when its tasks are short: it holds about --window-budget of the worker's work. Default 256 with the default --prefetch, else --prefetch (no growth). Not with a postgres:// store.")
    var maxPrefetch: Int?

    @Option(help: "How much of a worker's measured work a grown window holds: about the longest a task waits on a worker behind the tasks sent there before it.")
    var windowBudget: String = "5ms"

    @Option(help: "Attempts per task when a submit names none (crashes and retryable errors are retried).")
    var maxAttempts: UInt32 = 2

    @Option(help: "Largest frame accepted, in bytes.")
    var maxFrameSize: Int = 16 * 1024 * 1024

    @Option(help: "Largest SUBMIT payload accepted, in bytes; past it PAYLOAD_TOO_LARGE.")
    var maxPayloadSize: Int = 16 * 1024 * 1024

    @Option(help: "Longest handler name a request may carry, in bytes (1-255).")
    var maxHandlerName: Int = 255

    @Option(help: "Client connections open at once; one more is refused with TOO_MANY_CONNECTIONS.")
    var maxConnections: Int = 1024

    @Option(help: "Client connections open at once from one IP address.")
    var maxConnectionsPerAddress: Int = 256

    @Option(help: "Requests one connection may have in flight; at the limit the server stops reading from it (the client is slowed, not refused).")
    var maxInFlight: Int = 1024

    @Option(help: "How long a new connection may take to send HELLO before it is closed (\(DurationArgument.help)).")
    var handshakeTimeout: String = "10s"

    @Option(help: "How long a connection with no request in flight stays open (0s: for ever).")
    var idleTimeout: String = "5m"

    @Option(help: "Seconds a graceful shutdown waits for running tasks (and, with --store memory, queued ones).")
    var shutdownTimeout: Int = 30

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Flag(
        inversion: .prefixedNo, exclusivity: .chooseLast,
        help: """
            Load plugin files and directories, strategy plugins and bound libraries that someone other than root \
            or the server's user could have written (refused by default). For development only.
            """)
    var allowInsecurePlugins = false

    @Option(
        help: """
            Memory limit of each worker (RLIMIT_DATA), such as 512M or 2G (K, M, G: powers of 1024), at \
            least 32M; a task that runs its worker out of memory fails with WORKER_LIMIT (default: none).
            """)
    var workerMemory: String?

    @Option(
        help: """
            CPU seconds each task may use on its worker (RLIMIT_CPU, re-armed before each task; a task gets \
            between N and N+1); past it the task fails with WORKER_LIMIT (default: none).
            """)
    var workerCpu: UInt64?

    @Option(
        name: .customLong("worker-env"),
        help: """
            An environment variable workers get besides PATH, HOME, USER, LOGNAME, LANG, LANGUAGE, LC_*, TZ, \
            TMPDIR, LD_LIBRARY_PATH and SWIFT_BACKTRACE: a name, or a prefix ending in * (repeatable).
            """)
    var workerEnv: [String] = []

    @Option(
        help: """
            A file of `role:token` lines (roles submit, admin; mode 0600): TCP clients must present one. \
            Without it clients are not authenticated and --listen must be a loopback address.
            """)
    var auth: String?

    @Option(help: "Failed authentications from one address before it is refused for a while.")
    var authMaxFailures: Int = 3

    @Option(help: "How long an address is first refused after --auth-max-failures failures; doubles each time, up to 1h.")
    var authPenalty: String = "10s"

    @Flag(
        inversion: .prefixedNo, exclusivity: .chooseLast,
        help: "Allow listening on an address other than loopback without --auth (anyone who can reach it may do everything).")
    var insecure = false

    @Option(help: "PEM certificate (chain) for TLS on the TCP listener; needs --tls-key.")
    var tlsCert: String?

    @Option(help: "PEM private key of --tls-cert.")
    var tlsKey: String?

    func validate() throws {
        do { _ = try HostPort(parsing: listen) } catch { throw ValidationError("--listen: \(error)") }
        guard (1...1024).contains(workers ?? System.coreCount) else { throw ValidationError("--workers must be from 1 to 1024") }
        guard (1...4096).contains(prefetch) else { throw ValidationError("--prefetch must be from 1 to 4096") }
        if let maxPrefetch, !(prefetch...4096).contains(maxPrefetch) {
            throw ValidationError("--max-prefetch must be from --prefetch (\(prefetch)) to 4096, not \(maxPrefetch)")
        }
        guard WireProtocol.maxAttemptsRange.contains(maxAttempts) else {
            throw ValidationError("--max-attempts must be from 1 to 100")
        }
        guard maxFrameSize >= 1024 && maxFrameSize <= 1 << 30 else {
            throw ValidationError("--max-frame-size must be from 1024 to 1073741824")
        }
        guard (0...(1 << 30)).contains(maxPayloadSize) else {
            throw ValidationError("--max-payload-size must be from 0 to 1073741824")
        }
        guard (1...255).contains(maxHandlerName) else { throw ValidationError("--max-handler-name must be from 1 to 255") }
        for (flag, value) in [
            ("--max-connections", maxConnections), ("--max-connections-per-address", maxConnectionsPerAddress),
            ("--max-in-flight", maxInFlight),
        ] where !(1...1_000_000).contains(value) {
            throw ValidationError("\(flag) must be from 1 to 1000000")
        }
        if let timeout = try? DurationArgument(parsing: handshakeTimeout), timeout.milliseconds == 0 {
            throw ValidationError("--handshake-timeout must be above 0s")
        }
        guard shutdownTimeout >= 0 else { throw ValidationError("--shutdown-timeout must be 0 or more") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        guard maxQueue >= 1 else { throw ValidationError("--max-queue must be 1 or more") }
        if let timeout = try? DurationArgument(parsing: defaultTimeout),
            timeout.milliseconds > UInt64(WireProtocol.timeoutMillisRange.upperBound)
        {
            throw ValidationError("--default-timeout must be at most 7d (or 0s for none)")
        }
        guard (0...1).contains(retryJitter) else { throw ValidationError("--retry-jitter must be from 0 to 1") }
        for (flag, text) in [
            ("--default-timeout", defaultTimeout), ("--retry-base", retryBase), ("--retry-max", retryMax),
            ("--aging", aging), ("--keep-results", keepResults), ("--handshake-timeout", handshakeTimeout),
            ("--idle-timeout", idleTimeout), ("--lease", lease), ("--heartbeat", heartbeat),
            ("--poll-interval", pollInterval),
        ] {
            do { _ = try DurationArgument(parsing: text) } catch { throw ValidationError("\(flag): \(error)") }
        }
        for pair in config where !pair.contains("=") || pair.hasPrefix("=") {
            throw ValidationError("--config takes key=value, not `\(pair)`")
        }
        if let workerMemory {
            guard let bytes = ByteCount.parse(workerMemory) else {
                throw ValidationError("--worker-memory takes a size such as 512M or 2G, not `\(workerMemory)`")
            }
            guard bytes >= SwitchyardHost.minimumWorkerMemory else {
                throw ValidationError("--worker-memory must be at least 32M: a worker uses about 6 MiB before it loads any plugin")
            }
        }
        if workerCpu == 0 { throw ValidationError("--worker-cpu must be 1 or more seconds") }
        for name in workerEnv where !WorkerEnvironment.isValidPattern(name) {
            throw ValidationError("--worker-env takes a variable name (letters, digits and _) or a prefix ending in *, not `\(name)`")
        }
        guard (1...1000).contains(authMaxFailures) else { throw ValidationError("--auth-max-failures must be from 1 to 1000") }
        do {
            guard try DurationArgument(parsing: authPenalty).milliseconds >= 1000 else {
                throw ValidationError("--auth-penalty must be at least 1s")
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            throw ValidationError("--auth-penalty: \(error)")
        }
        if (tlsCert == nil) != (tlsKey == nil) {
            throw ValidationError("TLS needs both --tls-cert FILE and --tls-key FILE")
        }
    }

    func run() async throws {
        guard let configFile else { return try await serve(bindings: []) }
        let file: ServeConfigFile
        do {
            file = try ServeConfigFile(path: configFile)
            // The file's values alone first, so a bad one is blamed on the file.
            _ = try ServeCommand.parse(file.arguments)
        } catch let error as ServeConfigFile.Invalid {
            throw ValidationError(error.description)
        } catch {
            throw ValidationError("config file \(configFile): \(ServeCommand.message(for: error))")
        }
        // The file's flags, then the command line's: for a flag given both ways the later, the
        // command line's, is the one kept (repeatable flags add up, command line last).
        let commandLine = Array(CommandLine.arguments.drop { $0 != Self.configuration.commandName }.dropFirst())
        let merged = try ServeCommand.parse(file.arguments + commandLine)
        try await merged.serve(bindings: file.bindings)
    }

    private func serve(bindings: [BindingSpec]) async throws {
        // Checked here, not in validate(): --plugins may come from the config file.
        if watch && plugins == nil {
            throw ValidationError(
                "--watch needs --plugins DIR, the directory to watch; the shipped plugins next to the executable change only with the executable itself, which a reload cannot replace (restart for those)"
            )
        }
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "switchyard")
        let address = try HostPort(parsing: listen)
        // The SQLite store creates --data-dir itself (mode 0700) and names any problem with it.
        var pluginConfig: [String: String] = [:]
        for pair in config {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            pluginConfig[String(parts[0])] = String(parts[1])
        }
        let configuration = HostConfiguration(
            host: address.host, port: address.port, workers: workers ?? System.coreCount,
            plugins: plugins.map { .directory($0) } ?? .shipped, pluginConfig: pluginConfig,
            maxFrameSize: maxFrameSize, prefetch: prefetch, defaultMaxAttempts: maxAttempts,
            shutdownTimeout: .seconds(Int64(shutdownTimeout)),
            store: store.kind(dataDir: dataDir, sync: sync),
            maxQueue: maxQueue,
            defaultTimeout: try millis(defaultTimeout) == 0 ? nil : .milliseconds(try millis(defaultTimeout)),
            retry: RetryPolicy(baseMillis: try millis(retryBase), maxMillis: try millis(retryMax), jitter: retryJitter),
            aging: try millis(aging) == 0 ? nil : .milliseconds(try millis(aging)),
            keepResults: .milliseconds(try millis(keepResults)))
        var withStrategies = configuration
        withStrategies.strategyFaultLimit = strategyFaultLimit
        withStrategies.maxPrefetch = maxPrefetch
        let budget = try millis(windowBudget)
        guard budget > 0 else { throw ValidationError("--window-budget must be above 0, such as 5ms, not \(windowBudget)") }
        withStrategies.windowBudget = .milliseconds(budget)
        withStrategies.drainTimeout = .milliseconds(try millis(drainTimeout))
        withStrategies.watchPlugins = watch
        withStrategies.allowInsecurePlugins = allowInsecurePlugins
        withStrategies.workerMemoryLimit = workerMemory.flatMap(ByteCount.parse)
        withStrategies.workerCPULimit = workerCpu
        withStrategies.workerEnvironment = workerEnv
        withStrategies.leaseDuration = .milliseconds(try millis(lease))
        withStrategies.heartbeatInterval = .milliseconds(try millis(heartbeat))
        withStrategies.pollInterval = .milliseconds(try millis(pollInterval))
        withStrategies.bindings = bindings
        withStrategies.allowInsecure = insecure
        withStrategies.adminSocket = dataDir + "/switchyard.sock"
        if let tlsCert, let tlsKey { withStrategies.tls = TLSFiles(certificateChain: tlsCert, privateKey: tlsKey) }
        if let auth {
            let penalty = try millis(authPenalty)
            do {
                withStrategies.auth = try AuthConfiguration.load(
                    file: auth,
                    throttle: AuthThrottle.Policy(
                        maxFailures: authMaxFailures, penaltyMillis: penalty, maxPenaltyMillis: max(penalty, 3_600_000)))
            } catch let error as ConfigurationError {
                printError("error: \(error.description)")
                throw ExitCode(2)
            }
        }
        // Exit 64 (usage), like every other refused flag.
        if let problem = withStrategies.exposureProblem() { throw ValidationError(problem) }
        withStrategies.maxPayloadSize = maxPayloadSize
        withStrategies.maxHandlerName = maxHandlerName
        withStrategies.maxConnections = maxConnections
        withStrategies.maxConnectionsPerAddress = maxConnectionsPerAddress
        withStrategies.maxInFlight = maxInFlight
        withStrategies.handshakeTimeout = .milliseconds(try millis(handshakeTimeout))
        withStrategies.idleTimeout = try millis(idleTimeout) == 0 ? nil : .milliseconds(try millis(idleTimeout))
        withStrategies.strategies = strategies.map { text in
            let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return parts.count == 2
                ? StrategySetRequest(name: String(parts[1]), handler: String(parts[0]))
                : StrategySetRequest(name: text)
        }
        let host = SwitchyardHost(configuration: withStrategies, logger: logger)
        // SIGHUP (and SIGUSR1, which Workerman users reach for) reload the plugins.
        let reloadSignals = [SIGHUP, SIGUSR1].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                Task { _ = try? await host.reload(trigger: number == SIGHUP ? "SIGHUP" : "SIGUSR1") }
            }
            source.resume()
            return source
        }
        defer { reloadSignals.forEach { $0.cancel() } }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: host)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch let error as ConfigurationError {
            printError("error: \(error.description)")
            throw ExitCode(2)
        } catch let error as StoreError {
            printError("error: \(error.description)")
            throw ExitCode(2)
        }
    }

    private func millis(_ text: String) throws -> Int64 {
        Int64(clamping: try DurationArgument(parsing: text).milliseconds)
    }

    /// `--store`: sqlite, memory, or a PostgreSQL URL.
    enum StoreChoice: ExpressibleByArgument, Equatable {
        case sqlite, memory
        case postgres(String)

        init?(argument: String) {
            switch argument {
            case "sqlite": self = .sqlite
            case "memory": self = .memory
            case let url where HostConfiguration.StoreKind.isPostgresURL(url): self = .postgres(url)
            default: return nil
            }
        }

        static var allValueStrings: [String] { ["sqlite", "memory", "postgres://USER@HOST:PORT/DATABASE"] }

        func kind(dataDir: String, sync: SQLiteTaskStore.Sync) -> HostConfiguration.StoreKind {
            switch self {
            case .sqlite: .sqlite(directory: dataDir, sync: sync)
            case .memory: .memory
            case .postgres(let url): .postgres(url: url)
            }
        }
    }
}

extension SQLiteTaskStore.Sync: ExpressibleByArgument {}
