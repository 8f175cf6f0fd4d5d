#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
import Logging
import NIOCore
import CSwitchyardSystem
import NIOPosix
import SwitchyardCore

/// Who waits for a task's result: a connection and the request id to answer.
struct Waiter {
    let connection: ClientConnection
    let requestID: UInt32
}

/// The host's heart: owns the scheduler, the worker processes and the client
/// connections, and carries out what the scheduler decides.
///
/// Everything here runs on one event loop; no method is called from anywhere
/// else, so none of its state needs a lock.
final class Dispatcher: @unchecked Sendable {
    // @unchecked Sendable: confined to `loop`; every entry point from outside hops onto it.

    let loop: EventLoop
    let configuration: HostConfiguration
    let logger: Logger
    let serverName: String
    private let executable: String
    /// The environment workers and probes start with (`WorkerEnvironment`).
    private let workerEnvironment: [String]
    /// Plugin files workers load: the configured ones minus any that crashed a
    /// worker while loading.
    private var pluginFiles: [String]
    var scheduler: Scheduler<Waiter>

    // Handlers: ids for every name seen (loaded, or named by a restored task);
    // what the workers loaded, learned from their hellos.
    private var handlerIDs: [String: HandlerID] = [:]
    private var handlerNames: [String] = []
    private var loadedHandlers: [HandlerID: LoadedHandler] = [:]
    private var skipped: [SkippedPlugin] = []
    private var reportedSkips: Set<SkippedPlugin> = []
    /// Why each skipped binding was left out, by binding name (first reason seen).
    private var skippedBindings: [String: String] = [:]
    /// Bindings workers prepare: the configured ones minus any whose library
    /// crashed a worker while it was being opened.
    private var bindings: [BindingSpec]

    private struct Worker {
        enum State: String { case starting, ready, stopping, exited }
        var generation: Int
        var pid: pid_t
        var link: OutboundLink?
        var board: WorkerBoard?
        var state: State
        var startedAt: NIODeadline
        var handlerNames: [String] = []
        var exit: WorkerSpawner.Exit?
        /// Consecutive deaths before saying hello: drives the restart backoff.
        var failedStarts = 0
        /// What the worker said it was loading last, until its hello.
        var loading: (file: String, handler: String)?
        /// The plugin generation it loaded.
        var pluginGeneration = 1
        /// An old-generation worker on its way out after a reload: it takes no
        /// new task, stops once its tasks are done, and is not replaced.
        var retiring = false
    }
    private var workers: [Worker?] = []
    private var generationCounter = 0

    // Plugin generations (hot reload): what new workers load.
    /// 1 at start, one more per reload that changed something.
    private var pluginGeneration = 1
    private var pluginLoadedAt = Date().timeIntervalSince1970
    /// SHA-256 of each plugin file, as the current generation loaded it.
    private var pluginHashes: [String: String] = [:]
    private var lastReload: ReloadReport?
    private var reloading: ReloadInProgress?
    private var queuedReloads: [(trigger: String, promise: EventLoopPromise<ReloadReport>)] = []

    private struct ReloadInProgress {
        var trigger: String
        var promises: [EventLoopPromise<ReloadReport>]
        var startedAt: Double
        var startNanos: UInt64
        var report: ReloadReport?
        var newSlots: [Int] = []
        var oldSlots: [Int] = []
        var retiring: Set<Int> = []
        var killed: Set<Int> = []
        var drainTimer: Scheduled<Void>?
        /// The outcome once the retiring workers are gone.
        var finalOutcome = "reloaded"
        // Canary reloads.
        var canaryOptions: CanaryOptions?
        var canaryHandlers: Set<HandlerID> = []
        var canaryStarted = false
        var newTasks = 0, newFailures = 0, oldTasks = 0, oldFailures = 0
        /// What to put back if the canary is rolled back.
        var previous: (generation: Int, files: [String], hashes: [String: String], loadedAt: Double,
            handlers: [HandlerID: LoadedHandler])?
    }
    private var workerRestarts: UInt64 = 0

    private var connections: [ObjectIdentifier: ClientConnection] = [:]
    private var dirty: [OutboundLink] = []
    private var flushScheduled = false

    enum Phase { case starting, running, draining, stoppingWorkers, stopped }
    private(set) var phase = Phase.starting
    private let startedAt = NIODeadline.now()
    var listenAddress = ""
    private var readyPromise: EventLoopPromise<Void>?
    let stopped: EventLoopPromise<Void>

    /// The durable store's writer; nil with the memory store.
    private var writer: StoreWriter?
    /// The PostgreSQL queue shared with other hosts; nil with the other stores.
    /// See Dispatcher+SharedQueue.swift.
    var shared: SharedQueue?
    /// Clients waiting for a task of the shared queue, wherever it runs.
    var remoteWaiters: [TaskID: (since: NIODeadline, waiters: [Waiter])] = [:]
    /// Endings of held tasks not yet written to the shared queue.
    var unconfirmed: [TaskID: LocalEnding] = [:]
    /// Tasks other hosts said finished that nobody here waited for (yet).
    var recentlyFinished: Set<TaskID> = []
    var claiming = false
    var claimAgain = false
    /// False once a claim found fewer runnable tasks than it asked for: until
    /// something says there may be more (`claimIfRoom(woken: true)`: a
    /// notification, the poll, a new LISTEN), a freed worker slot claims
    /// nothing. Else every claim's completion pumped, and every pump claimed:
    /// an idle host ran about 1,000 empty claims a second.
    var mayHaveWork = true
    /// A wake-up set for when the next delayed task in the database comes due
    /// (sooner than the poll), and that time.
    var dueWake: (at: EpochMillis, task: Scheduled<Void>)?
    /// Counts wake-ups, so a claim knows whether one came while it ran.
    var wakes: UInt64 = 0
    /// How this host is named in the shared queue's hosts table.
    var sharedHostName: String { Self.hostName }
    /// "MACHINE pid PID".
    static var hostName: String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count)
        return "\(String(cString: name)) pid \(getpid())"
    }
    /// Tasks stay in a durable store at shutdown (SQLite, or the shared queue).
    private var durable: Bool { writer != nil || shared != nil }
    var loadedHandlerNames: [String] { loadedHandlers.values.map(\.name).sorted() }
    /// Background submits to acknowledge once the current changes are committed.
    private var pendingAcks: [(ClientConnection, UInt32, TaskID)] = []
    private var storePassScheduled = false
    private var delayTimer: (deadline: EpochMillis, task: Scheduled<Void>)?
    private var timeoutSweepScheduled = false
    /// Strategies that STRATEGY_SET can name.
    private var strategyRegistry: [String: StrategyRegistration] = [
        "round_robin": StrategyRegistration(source: "built-in") { _ in RoundRobinStrategy() }
    ]
    /// The config each scope's strategy was created with, for STRATEGY_INFO.
    private var strategyConfigs: [StrategyScope: [String: String]] = [:]
    /// Strategies switched off by the scheduler, newest last (at most 50).
    private var strategyNotices: [String] = []
    /// Strategy files loaded by STRATEGY_LOAD so far (numbers each copy).
    private var strategyLoads = 0
    /// Every strategy plugin file loaded into the host, with its SHA-256.
    private var strategyFiles: [ServerStatus.StrategyFile] = []
    /// Bound libraries whose file and SHA-256 were logged (name, path, hash).
    private var loggedLibraries: Set<[String]> = []
    /// Why a worker was killed on purpose, to report when it is reaped.
    private var killedForTimeout: [Int: (task: TaskID, timeoutMillis: UInt32)] = [:]
    /// What every connection's handshake checks and says.
    let handshakeSettings: ServerHandshake.Settings
    /// Failed authentications per address, shared by every connection's handshake.
    let authThrottle: AuthThrottle

    init(loop: EventLoop, configuration: HostConfiguration, logger: Logger, executable: String, pluginFiles: [String]) {
        self.loop = loop
        self.configuration = configuration
        self.bindings = configuration.bindings
        self.logger = logger
        self.executable = executable
        self.workerEnvironment = WorkerEnvironment.build(passing: configuration.workerEnvironment)
        self.pluginFiles = pluginFiles
        for file in pluginFiles {
            pluginHashes[file] = try? sha256Hex(ofFile: file)
            logger.info("plugin \(file): sha256 \(pluginHashes[file] ?? "unreadable")")
        }
        self.serverName = "switchyard/\(SwitchyardHost.version)"
        self.handshakeSettings = ServerHandshake.Settings(
            tokens: configuration.auth?.tokens, serverName: serverName, maxFrameSize: UInt32(configuration.maxFrameSize))
        self.authThrottle = AuthThrottle(policy: configuration.auth?.throttle ?? AuthThrottle.Policy())
        self.scheduler = Scheduler(
            configuration: SchedulerConfiguration(
                prefetch: configuration.prefetch, defaultMaxAttempts: configuration.defaultMaxAttempts,
                defaultTimeoutMillis: configuration.defaultTimeout.map { UInt32(clamping: $0.nanoseconds / 1_000_000) }
                    ?? 0,
                maxQueue: configuration.maxQueue, retry: configuration.retry,
                agingMillis: configuration.aging.map { $0.nanoseconds / 1_000_000 } ?? 0,
                retainFinished: configuration.retainFinished,
                keepFinishedMillis: configuration.keepResults.nanoseconds / 1_000_000,
                recordChanges: configuration.store != .memory,
                maxStrategyFaults: configuration.strategyFaultLimit,
                maxPrefetch: configuration.store.isShared ? configuration.prefetch : configuration.effectiveMaxPrefetch,
                windowBudgetNanos: UInt64(max(0, configuration.windowBudget.nanoseconds))))
        self.stopped = loop.makePromise()
    }

    /// What a worker (or a reload's probe worker) is told to load, and its limits.
    private func workerConfig(workerID: Int, generation: Int, plugins: [String]) -> WorkerConfig {
        var config = WorkerConfig(
            workerID: workerID, generation: generation, plugins: plugins, config: configuration.pluginConfig,
            maxResultSize: configuration.maxFrameSize - 64, bindings: bindings.isEmpty ? nil : bindings)
        config.memoryLimit = configuration.workerMemoryLimit
        config.cpuLimitSeconds = configuration.workerCPULimit
        config.allowInsecurePlugins = configuration.allowInsecurePlugins ? true : nil
        return config
    }

    // MARK: Start

    /// Takes the durable store and brings back what it kept: queued and waiting
    /// tasks resume; tasks that were running when the host stopped count that
    /// attempt as failed and are retried. Call before `startWorkers`.
    func attachStore(_ store: any TaskStore, unfinished: [TaskRecord], maxID: TaskID) {
        loop.preconditionInEventLoop()
        writer = StoreWriter(store: store, loop: loop, logger: logger)
        let outcomes = scheduler.restore(unfinished, maxID: maxID, now: wallMillis()) { handlerID(for: $0) }
        let interrupted = outcomes.count
        if !unfinished.isEmpty {
            logger.info(
                "recovered \(unfinished.count) unfinished tasks from \(store.description); \(interrupted) were running when the host stopped and count that attempt as failed"
            )
        }
        for outcome in outcomes { deliver(outcome) }
        scheduleStorePass()
    }

    /// Starts every worker; the future completes when each has said hello (or
    /// failed to start, which is logged and retried in the background).
    func startWorkers() -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        let ready = loop.makePromise(of: Void.self)
        readyPromise = ready
        scheduler.setWorkerCount(configuration.workers)
        workers = Array(repeating: nil, count: configuration.workers)
        for slot in 0..<configuration.workers { spawnWorker(slot: slot) }
        return ready.futureResult
    }

    private func spawnWorker(slot: Int) {
        if workers[slot]?.retiring == true {
            // A retired slot's restart was pending: the new generation replaces it.
            retired(slot: slot)
            return
        }
        generationCounter += 1
        let generation = generationCounter
        let failedStarts = workers[slot]?.failedStarts ?? 0
        let spawned: WorkerSpawner.Spawned
        do {
            spawned = try WorkerSpawner.spawn(executable: executable, environment: workerEnvironment)
        } catch {
            logger.error("cannot start worker \(slot): \(error)")
            workers[slot] = Worker(
                generation: generation, pid: 0, link: nil, state: .exited, startedAt: .now(),
                failedStarts: failedStarts + 1)
            scheduleRestart(slot: slot)
            return
        }
        workers[slot] = Worker(
            generation: generation, pid: spawned.pid, link: nil, board: spawned.board, state: .starting,
            startedAt: .now(),
            failedStarts: failedStarts, pluginGeneration: pluginGeneration)
        // During a canary, a replacement in an old-version slot runs the old files.
        var files = pluginFiles
        if let reload = reloading, reload.canaryStarted, reload.oldSlots.contains(slot), let previous = reload.previous {
            files = previous.files
            workers[slot]!.pluginGeneration = previous.generation
        }
        let config = workerConfig(workerID: slot, generation: generation, plugins: files)
        let maxFrame = configuration.maxFrameSize + 64
        ClientBootstrap(group: loop)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(FrameBatchDecoder(maxFrameSize: maxFrame)),
                        WorkerLink(dispatcher: self, slot: slot, generation: generation))
                }
            }
            .withConnectedSocket(spawned.socket)
            .whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    guard workers[slot]?.generation == generation else { return }
                    let link = OutboundLink(channel: channel)
                    workers[slot]!.link = link
                    HostToWorker.config(config).write(to: &link.buffer)
                    markDirty(link)
                case .failure(let error):
                    logger.error("cannot attach to worker \(slot) (pid \(spawned.pid)): \(error)")
                    close(spawned.socket)
                    WorkerSpawner.kill(spawned.pid)
                    workerLinkClosed(slot: slot, generation: generation)
                }
            }
    }

    private func scheduleRestart(slot: Int) {
        guard phase == .starting || phase == .running else { return }
        let failures = workers[slot]?.failedStarts ?? 0
        if failures == 0 {
            spawnWorker(slot: slot)
            return
        }
        // A worker that dies before it says hello will likely die again: back off.
        let delay = TimeAmount.milliseconds(min(5_000, 50 << min(failures - 1, 7)))
        loop.scheduleTask(in: delay) { [self] in
            if phase == .starting || phase == .running { spawnWorker(slot: slot) }
        }
    }

    // MARK: Worker events

    func workerSaid(_ message: WorkerToHost, slot: Int, generation: Int) {
        guard let worker = workers[slot], worker.generation == generation else { return }
        switch message {
        case .done(let id, let status, let body):
            countCanary(task: id, generation: worker.pluginGeneration, failed: status != .ok)
            guard
                let outcome = scheduler.attemptFinished(
                    slot: slot, id: id, status: status, body: body, now: wallMillis(), nanos: swy_monotonic_ns())
            else {
                logger.warning("worker \(slot) reported task \(id), which it was not holding")
                return
            }
            deliver(outcome)
            if worker.retiring && scheduler.workers[slot].inFlight.isEmpty { stop(slot: slot) }
            pump()
        case .progress(let id, let done, let total):
            for waiter in scheduler.waiters(of: id) {
                waiter.connection.send(.progress(id, done: done, total: total), requestID: waiter.requestID)
            }
        case .log(let level, let text):
            let logLevel: Logger.Level =
                switch level {
                case .debug: .debug
                case .info: .info
                case .warning: .warning
                case .error: .error
                }
            logger.log(level: logLevel, "\(text)", metadata: ["worker": "\(slot)", "pid": "\(worker.pid)"])
        case .hello(let hello):
            workers[slot]!.loading = nil
            workerHello(hello, slot: slot)
        case .loading(let file, let handler):
            workers[slot]!.loading = (file, handler)
        }
    }

    /// The host-wide id of a handler name, assigned on first sight.
    func handlerID(for name: String) -> HandlerID {
        if let id = handlerIDs[name] { return id }
        let id = handlerNames.count
        handlerNames.append(name)
        handlerIDs[name] = id
        return id
    }

    /// A worker died while opening `file` or running one of its handlers'
    /// `on_worker_start`: leave the file out of every later worker, so one bad
    /// plugin cannot keep the others from serving.
    private func excludeCrashingPlugin(file: String, handler: String, exit: WorkerSpawner.Exit) {
        if let name = BindingLoader.bindingName(loading: handler) {
            // Opening a bound library ran code that killed the worker (a constructor, say).
            guard bindings.contains(where: { $0.name == name }) else { return }
            bindings.removeAll { $0.name == name }
            let reason = "the worker \(exit) while opening library `\(file)`; fix the library and restart the server"
            if skippedBindings[name] == nil { skippedBindings[name] = reason }
            logger.error("skipped binding \(name): \(reason)")
            return
        }
        guard pluginFiles.contains(file) else { return }
        pluginFiles.removeAll { $0 == file }
        let during = handler.isEmpty ? "while the file was being opened" : "in on_worker_start of handler `\(handler)`"
        let skip = SkippedPlugin(
            file: file, reason: "the worker \(exit) \(during); fix the plugin and restart the server")
        reportedSkips.insert(skip)
        skipped.append(skip)
        logger.error("skipped plugin \(skip.file): \(skip.reason)")
    }

    private func workerHello(_ hello: WorkerHello, slot: Int) {
        for skip in hello.skipped where !reportedSkips.contains(skip) {
            reportedSkips.insert(skip)
            skipped.append(skip)
            logger.warning("skipped plugin \(skip.file): \(skip.reason)")
        }
        for skip in hello.skippedBindings ?? [] where skippedBindings[skip.name] == nil {
            skippedBindings[skip.name] = skip.reason
            logger.warning("skipped binding \(skip.name): \(skip.reason)")
        }
        var ids: [HandlerID] = []
        for handler in hello.handlers {
            if let path = handler.resolvedFile, let sha256 = handler.sha256,
                loggedLibraries.insert([handler.name, path, sha256]).inserted
            {
                logger.info("binding \(handler.name): library \(path): sha256 \(sha256)")
            }
            let id = handlerID(for: handler.name)
            loadedHandlers[id] = handler
            ids.append(id)
        }
        workers[slot]!.state = .ready
        workers[slot]!.failedStarts = 0
        workers[slot]!.handlerNames = hello.handlers.map(\.name)
        scheduler.workerReady(slot: slot, handlers: ids)
        logger.debug("worker \(slot) ready", metadata: ["pid": "\(hello.pid)", "handlers": "\(hello.handlers.count)"])
        if let ready = readyPromise, workers.allSatisfy({ $0?.state == .ready }) {
            readyPromise = nil
            ready.succeed()
        }
        if phase == .stoppingWorkers {
            stop(slot: slot)
        } else {
            if reloading != nil { reloadWorkerReady() }
            pump()
        }
    }

    /// The worker's socket closed: the process exited or is about to.
    func workerLinkClosed(slot: Int, generation: Int) {
        guard var worker = workers[slot], worker.generation == generation, worker.state != .exited else { return }
        let wasReady = worker.state == .ready || worker.state == .stopping
        worker.state = .exited
        worker.link = nil
        workers[slot] = worker
        scheduler.drainWorker(slot: slot)
        reap(slot: slot, generation: generation, pid: worker.pid, wasReady: wasReady, tries: 0)
    }

    private func reap(slot: Int, generation: Int, pid: pid_t, wasReady: Bool, tries: Int) {
        guard let exit = WorkerSpawner.reap(pid) else {
            // The socket closes a moment before the process becomes reapable.
            if tries == 1_000 { WorkerSpawner.kill(pid) }
            loop.scheduleTask(in: .milliseconds(tries < 50 ? 1 : 10)) { [self] in
                reap(slot: slot, generation: generation, pid: pid, wasReady: wasReady, tries: tries + 1)
            }
            return
        }
        guard workers[slot]?.generation == generation else { return }
        workers[slot]!.exit = exit
        let retiring = workers[slot]!.retiring
        let expected = phase == .stoppingWorkers || phase == .stopped || retiring
        let limit = WorkerLimit.broken(by: exit, board: workers[slot]!.board)
        let description = "worker \(slot) (pid \(pid)) \(exit)" + (limit.map { ", \($0.brief(configuration))" } ?? "")
        if retiring {
            let killed = reloading?.killed.contains(slot) == true
            logger.info(
                "\(description): generation \(workers[slot]!.pluginGeneration) \(killed ? "killed at the drain timeout" : "drained")")
        } else if expected {
            logger.debug("\(description)")
        } else if killedForTimeout[slot] != nil {
            logger.warning("\(description) after a task timeout; starting a replacement")
        } else if limit != nil && wasReady && phase != .draining {
            logger.warning("\(description); starting a replacement")
        } else if phase == .draining {
            logger.error("\(description) while the server is shutting down; it is not replaced")
        } else if wasReady {
            logger.error("\(description); starting a replacement")
        } else if let loading = workers[slot]!.loading {
            // Blame the file it was loading and retry at once without it.
            logger.error("\(description) before it finished loading plugins")
            excludeCrashingPlugin(file: loading.file, handler: loading.handler, exit: exit)
            workers[slot]!.loading = nil
        } else {
            workers[slot]!.failedStarts += 1
            logger.error("\(description) before it finished loading plugins; retrying with backoff")
        }
        var running = workers[slot]!.board?.running
        workers[slot]!.board = nil
        var code = ErrorCode.workerCrashed
        var reason = "\(description) while running this task"
        var retryable = true
        if let timedOut = killedForTimeout.removeValue(forKey: slot) {
            running = timedOut.task
            code = .timeout
            reason =
                "the attempt ran past its timeout of \(timedOut.timeoutMillis) ms; worker \(slot) (pid \(pid)) was killed and replaced"
        } else if let limit {
            code = .workerLimit
            reason = limit.reason(worker: "worker \(slot) (pid \(pid))", exit: exit, configuration: configuration)
            retryable = false
        }
        if let running { countCanary(task: running, generation: workers[slot]!.pluginGeneration, failed: true) }
        for outcome in scheduler.workerLost(
            slot: slot, running: running, code: code, reason: reason, retryable: retryable, now: wallMillis())
        {
            deliver(outcome)
        }
        if !expected {
            workerRestarts += 1
            scheduleRestart(slot: slot)
        }
        if retiring { retired(slot: slot) }
        pump()
        checkStopped()
    }

    // MARK: Client requests

    func connectionOpened(_ connection: ClientConnection) {
        connections[ObjectIdentifier(connection)] = connection
    }

    func connectionClosed(_ connection: ClientConnection) {
        connections[ObjectIdentifier(connection)] = nil
        scheduler.dropWaiters { $0.connection === connection }
        if shared != nil { dropSharedWaiters(of: connection) }
    }

    func handle(_ message: ClientMessage, requestID: UInt32, from connection: ClientConnection) {
        switch message {
        case .submit(let request):
            if refused(configuration.refusal(forSubmit: request), requestID: requestID, connection: connection) { return }
            submit(request, requestID: requestID, from: connection)
        case .taskStatus(let id):
            withRecord(id, requestID: requestID, connection: connection) { record in
                connection.send(.taskInfo(TaskInfo(record)), requestID: requestID)
            }
        case .wait(let id):
            wait(for: id, requestID: requestID, from: connection)
        case .cancel(let id):
            cancel(id, requestID: requestID, from: connection)
        case .listTasks(let query):
            let refusal = configuration.refusal(forHandler: query.handler, in: "LIST_TASKS")
            if refused(refusal, requestID: requestID, connection: connection) { return }
            listTasks(query, requestID: requestID, from: connection)
        case .strategyList:
            connection.send(.strategyInfo(strategyReport().encoded()), requestID: requestID)
        case .strategySet(let request):
            let refusal = configuration.refusal(forHandler: request.handler, in: "STRATEGY_SET")
            if refused(refusal, requestID: requestID, connection: connection) { return }
            do {
                try setStrategy(request)
                connection.send(.strategyInfo(strategyReport().encoded()), requestID: requestID)
            } catch let error as ProtocolError {
                connection.send(.error(error.code, taskID: 0, message: error.message), requestID: requestID)
            } catch {
                connection.send(.error(.badRequest, taskID: 0, message: "\(error)"), requestID: requestID)
            }
        case .strategyLoad(let request):
            loadStrategy(request, requestID: requestID, from: connection)
        case .reload(let canary):
            reload(trigger: "request", canary: canary).whenComplete { result in
                switch result {
                case .success(let report):
                    connection.send(.reloadInfo(report.encoded()), requestID: requestID)
                case .failure(let error as ProtocolError):
                    connection.send(.error(error.code, taskID: 0, message: error.message), requestID: requestID)
                case .failure(let error):
                    connection.send(.error(.reloadFailed, taskID: 0, message: "\(error)"), requestID: requestID)
                }
            }
        case .serverStatus:
            if shared != nil {
                sharedStatus(requestID: requestID, connection: connection)
            } else {
                connection.send(.serverInfo(status().encoded()), requestID: requestID)
            }
        case .ping(let body):
            connection.send(.pong(body), requestID: requestID)
        case .hello:
            connection.fail(ProtocolError(.badRequest, "HELLO was already received on this connection"), requestID: requestID)
        }
    }

    /// Answers a request that breaks a limit (`HostConfiguration.refusal`); true when it did.
    private func refused(_ refusal: ProtocolError?, requestID: UInt32, connection: ClientConnection) -> Bool {
        guard let refusal else { return false }
        connection.send(.error(refusal.code, taskID: 0, message: refusal.message), requestID: requestID)
        return true
    }

    func unknownTask(_ id: TaskID) -> ServerMessage {
        .error(
            .unknownTask, taskID: id,
            message:
                "no task \(id): it never existed or its record expired (finished tasks are kept for \(configuration.keepResults.nanoseconds / 1_000_000_000) s)"
        )
    }

    /// Finds a task's record in memory, else in the store, and hands it to `body` on the loop.
    private func withRecord(
        _ id: TaskID, requestID: UInt32, connection: ClientConnection, _ body: @escaping (TaskRecord) -> Void
    ) {
        if let record = scheduler.record(id), shared == nil {
            body(record)
            return
        }
        // Either store answers the same way: the record, UNKNOWN_TASK, or the read's failure.
        let deliver = { (result: Result<TaskRecord?, Error>, store: String) in
            switch result {
            case .success(let record?): body(record)
            case .success(nil): connection.send(self.unknownTask(id), requestID: requestID)
            case .failure(let error):
                connection.send(
                    .error(.internalError, taskID: id, message: "cannot read task \(id) from \(store): \(error)"),
                    requestID: requestID)
            }
        }
        if shared != nil {
            sharedRecord(id) { deliver($0, "the shared queue") }
            return
        }
        guard let writer else {
            connection.send(unknownTask(id), requestID: requestID)
            return
        }
        writer.read { try $0.fetch(id) }.whenComplete { deliver($0, "the store") }
    }

    private func submit(_ request: SubmitRequest, requestID: UInt32, from connection: ClientConnection) {
        guard phase == .running || phase == .starting else {
            connection.send(
                .error(.shuttingDown, taskID: 0, message: "the server is shutting down and takes no new tasks"),
                requestID: requestID)
            return
        }
        guard let handler = handlerIDs[request.handler], loadedHandlers[handler] != nil else {
            let known = loadedHandlers.values.map(\.name).sorted().joined(separator: ", ")
            connection.send(
                .error(
                    .unknownHandler, taskID: 0,
                    message:
                        "no loaded plugin has a handler named `\(request.handler)`; loaded handlers: \(known.isEmpty ? "none" : known)"
                ), requestID: requestID)
            return
        }
        let now = wallMillis()
        var runAt = request.runAt
        if let delay = request.delayMillis { runAt = now + Int64(clamping: delay) }
        if let runAt, runAt > now + Int64(WireProtocol.maxDelayMillis) {
            connection.send(
                .error(
                    .badRequest, taskID: 0,
                    message:
                        "SUBMIT run_at is more than 366 days after the server's clock (\(now) ms since the epoch); schedule it closer"
                ), requestID: requestID)
            return
        }
        if shared != nil {
            sharedSubmit(request, runAt: runAt, now: now, requestID: requestID, from: connection)
            return
        }
        let waiter = request.background ? nil : Waiter(connection: connection, requestID: requestID)
        let submission = TaskSubmission(
            handler: handler, handlerName: request.handler, payload: request.payload, priority: request.priority,
            key: request.key, uniqueKey: request.uniqueKey, maxAttempts: request.maxAttempts,
            timeoutMillis: request.timeoutMillis, runAt: runAt, submitter: connection.identity?.name)
        switch scheduler.submit(submission, waiter: waiter, now: now) {
        case .created(let id), .existing(let id):
            if request.background { acknowledge(id, requestID: requestID, connection: connection) }
        case .queueFull(let limit):
            connection.send(
                .error(
                    .queueFull, taskID: 0,
                    message:
                        "the queue holds its limit of \(limit) tasks; retry later, add workers, or raise serve --max-queue"
                ), requestID: requestID)
            return
        }
        pump()
    }

    /// Sends ACCEPTED once the task is durable (at once with the memory store).
    private func acknowledge(_ id: TaskID, requestID: UInt32, connection: ClientConnection) {
        guard writer != nil else {
            connection.send(.accepted(id), requestID: requestID)
            return
        }
        pendingAcks.append((connection, requestID, id))
        scheduleStorePass()
    }

    private func wait(for id: TaskID, requestID: UInt32, from connection: ClientConnection) {
        if shared != nil {
            addSharedWaiter(Waiter(connection: connection, requestID: requestID), for: id, check: true)
            return
        }
        switch scheduler.addWaiter(Waiter(connection: connection, requestID: requestID), to: id) {
        case .waiting:
            return
        case .finished(let record):
            answer(record, requestID: requestID, connection: connection)
        case .unknown:
            withRecord(id, requestID: requestID, connection: connection) { [self] record in
                if record.state.isFinal {
                    answer(record, requestID: requestID, connection: connection)
                } else if case .waiting = scheduler.addWaiter(Waiter(connection: connection, requestID: requestID), to: id)
                {
                    return
                } else {
                    connection.send(unknownTask(id), requestID: requestID)
                }
            }
        }
    }

    /// Answers a waiter from a finished task's record.
    func answer(_ record: TaskRecord, requestID: UInt32, connection: ClientConnection) {
        if record.state == .succeeded {
            connection.send(.result(record.id, record.result ?? ByteBuffer()), requestID: requestID)
        } else {
            connection.send(
                .error(
                    record.errorCode ?? .internalError, taskID: record.id,
                    message: record.errorMessage ?? "task \(record.id) ended \(record.state)"), requestID: requestID)
        }
    }

    /// Cancels for an admin at once; for anyone else, after checking that the
    /// task is theirs (FORBIDDEN if not).
    private func cancel(_ id: TaskID, requestID: UInt32, from connection: ClientConnection) {
        guard let identity = connection.identity, identity.role != .admin else {
            return cancelNow(id, requestID: requestID, from: connection)
        }
        withRecord(id, requestID: requestID, connection: connection) { [self] record in
            guard identity.mayCancel(taskSubmittedBy: record.submitter) else {
                logger.notice(
                    "refused to cancel a task for a client that did not submit it",
                    metadata: ["client": "\(connection.remote)", "identity": "\(identity)", "task": "\(id)"])
                connection.send(
                    .error(
                        .forbidden, taskID: id,
                        message:
                            "task \(id) was submitted by another client; with the \(identity.role) role you may cancel only the tasks you submitted: use an admin token, or the server's admin socket on its machine (--server unix:DATA_DIR/switchyard.sock)"
                    ), requestID: requestID)
                return
            }
            cancelNow(id, requestID: requestID, from: connection)
        }
    }

    private func cancelNow(_ id: TaskID, requestID: UInt32, from connection: ClientConnection) {
        if shared != nil {
            sharedCancel(id, requestID: requestID, from: connection)
            return
        }
        switch scheduler.cancel(id, now: wallMillis()) {
        case .cancelled(let record, let waiters):
            logger.info("task \(id) cancelled while \(record.state == .cancelled ? "waiting" : "\(record.state)")")
            for waiter in waiters {
                waiter.connection.send(
                    .error(.cancelled, taskID: id, message: record.errorMessage ?? "task \(id) was cancelled"),
                    requestID: waiter.requestID)
            }
            connection.send(.taskInfo(TaskInfo(record)), requestID: requestID)
            scheduleStorePass()
            pump()
        case .willCancel(let record), .alreadyFinished(let record):
            connection.send(.taskInfo(TaskInfo(record)), requestID: requestID)
        case .unknown:
            withRecord(id, requestID: requestID, connection: connection) { record in
                connection.send(.taskInfo(TaskInfo(record)), requestID: requestID)
            }
        }
    }

    private func listTasks(_ query: TaskListQuery, requestID: UInt32, from connection: ClientConnection) {
        if shared != nil {
            sharedList(query, requestID: requestID, from: connection)
            return
        }
        guard let writer else {
            connection.send(
                .taskList(scheduler.list(query).map { TaskInfo($0, includingResult: false) }), requestID: requestID)
            return
        }
        writer.readAfterWrites(scheduler.takeChanges()) { try $0.list(query) }.whenComplete { [self] result in
            switch result {
            case .success(let stored):
                // The store may lag the last few changes: prefer what memory holds.
                let records = stored.map { scheduler.record($0.id) ?? $0 }
                connection.send(.taskList(records.map { TaskInfo($0, includingResult: false) }), requestID: requestID)
            case .failure(let error):
                connection.send(
                    .error(.internalError, taskID: 0, message: "cannot list tasks from the store: \(error)"),
                    requestID: requestID)
            }
        }
    }

    // MARK: Hot reload

    /// Reloads the handler plugins: a probe worker loads the plugin directory
    /// as it is now; if that succeeds, a new generation of workers starts on
    /// it, new tasks go to them, and the old workers finish what they hold and
    /// exit (killed at the drain timeout, their tasks retried on the new
    /// generation). Completes when the old workers are gone. A reload asked
    /// for while one runs follows it (all such requests share that one).
    func reload(trigger: String, canary: CanaryOptions? = nil) -> EventLoopFuture<ReloadReport> {
        loop.preconditionInEventLoop()
        let promise = loop.makePromise(of: ReloadReport.self)
        guard phase == .running else {
            promise.fail(ProtocolError(.shuttingDown, "the server is \(phase == .starting ? "starting" : "shutting down"); no reload"))
            return promise.futureResult
        }
        if reloading != nil {
            guard canary == nil else {
                promise.fail(ProtocolError(.reloadFailed, "a reload is in progress; ask for the canary reload after it"))
                return promise.futureResult
            }
            queuedReloads.append((trigger, promise))
        } else {
            beginReload(trigger: trigger, promises: [promise], canary: canary)
        }
        return promise.futureResult
    }

    private func beginReload(trigger: String, promises: [EventLoopPromise<ReloadReport>], canary: CanaryOptions? = nil) {
        reloading = ReloadInProgress(
            trigger: trigger, promises: promises, startedAt: Date().timeIntervalSince1970,
            startNanos: swy_monotonic_ns(), canaryOptions: canary)
        logger.info("reload (\(trigger)): probing the plugins in a probe worker")
        let source = configuration.plugins
        let executable = self.executable
        let environment = workerEnvironment
        let (bindings, allowInsecure, logger) = (bindings, configuration.allowInsecurePlugins, logger)
        var probeConfig = workerConfig(workerID: -1, generation: 0, plugins: [])
        probeConfig.runSelfTests = true
        let config = probeConfig
        NIOThreadPool.singleton.runIfActive(eventLoop: loop) { () throws -> PluginProbe.Result in
            let files = try PluginDiscovery.files(for: source)
            // The same trust rule as at start: an untrusted file refuses the reload.
            try PluginTrust.enforce(
                PluginTrust.problems(
                    directory: try PluginDiscovery.directory(for: source), files: files, bindings: bindings),
                allowInsecure: allowInsecure, logger: logger)
            var withFiles = config
            withFiles.plugins = files
            return try PluginProbe.run(files: files, executable: executable, environment: environment, config: withFiles)
        }.whenComplete { [self] result in
            switch result {
            case .failure(let error): finishReload(outcome: "failed", reason: "\(error)")
            case .success(let probe): probeSucceeded(probe)
            }
        }
    }

    private func probeSucceeded(_ probe: PluginProbe.Result) {
        guard phase == .running, reloading != nil else { return }
        // A file the probe skipped refuses the set, unless this very content
        // was already skipped before (a known-bad file must not block reloads).
        let fresh = probe.hello.skipped.filter { skip in
            !(reportedSkips.contains(skip) && pluginHashes[skip.file] != nil
                && pluginHashes[skip.file] == probe.hashes[skip.file])
        }
        if !fresh.isEmpty {
            let reasons = fresh.map { "plugin \($0.file): \($0.reason)" }.joined(separator: "; ")
            finishReload(outcome: "failed", reason: reasons)
            return
        }
        var files: [String: ReloadReport.File] = [:]
        for handler in probe.hello.handlers where handler.plugin != BindingLoader.pluginName {
            files[handler.file, default: ReloadReport.File(
                file: handler.file, sha256: probe.hashes[handler.file] ?? "", plugin: handler.plugin,
                version: handler.pluginVersion, handlers: [])].handlers.append(handler.name)
        }
        let oldNames = Set(loadedHandlers.values.map(\.name))
        let newNames = Set(probe.hello.handlers.map(\.name))
        reloading!.report = ReloadReport(
            outcome: "reloaded", trigger: reloading!.trigger, generation: pluginGeneration + 1,
            files: files.values.sorted { $0.file < $1.file }, added: newNames.subtracting(oldNames).sorted(),
            removed: oldNames.subtracting(newNames).sorted(), startedAt: reloading!.startedAt, durationMillis: 0)
        if probe.files == pluginFiles && probe.hashes == pluginHashes {
            reloading!.report!.generation = pluginGeneration
            finishReload(outcome: "unchanged", reason: nil)
            return
        }
        // A canary compares the handlers whose file changed (and that both versions have).
        if reloading!.canaryOptions != nil {
            for handler in probe.hello.handlers {
                guard let id = handlerIDs[handler.name], let old = loadedHandlers[id],
                    pluginHashes[old.file] != probe.hashes[handler.file] || old.file != handler.file
                else { continue }
                reloading!.canaryHandlers.insert(id)
            }
            if reloading!.canaryHandlers.isEmpty {
                logger.info("reload: no handler both versions have changed; no canary, a plain reload")
                reloading!.canaryOptions = nil
            } else {
                reloading!.previous = (pluginGeneration, pluginFiles, pluginHashes, pluginLoadedAt, loadedHandlers)
            }
        }
        pluginGeneration += 1
        pluginFiles = probe.files
        pluginHashes = probe.hashes
        pluginLoadedAt = Date().timeIntervalSince1970
        // Gone handlers take no new task from now on; queued ones fail once the
        // new workers are ready (no ready worker has them).
        for name in oldNames.subtracting(newNames) {
            if let id = handlerIDs[name] { loadedHandlers[id] = nil }
        }
        var old: [Int] = []
        for (slot, worker) in workers.enumerated() {
            guard let worker, worker.pluginGeneration < pluginGeneration else { continue }
            old.append(slot)
        }
        var newSlots: [Int] = []
        var slot = 0
        while newSlots.count < configuration.workers {
            if slot == workers.count { workers.append(nil) }
            if workers[slot] == nil { newSlots.append(slot) }
            slot += 1
        }
        scheduler.setWorkerCount(workers.count)
        reloading!.newSlots = newSlots
        reloading!.oldSlots = old
        logger.info(
            "reload: generation \(pluginGeneration) probed fine (\(probe.hello.handlers.count) handlers); starting \(newSlots.count) workers on it"
        )
        for slot in newSlots { spawnWorker(slot: slot) }
    }

    /// A worker said hello during a reload: once every new one has, the old
    /// generation starts draining.
    private func reloadWorkerReady() {
        guard let reload = reloading, reload.report != nil, reload.retiring.isEmpty, reload.drainTimer == nil,
            !reload.canaryStarted, reload.newSlots.allSatisfy({ workers[$0]?.state == .ready })
        else { return }
        if let options = reload.canaryOptions, !reload.oldSlots.isEmpty {
            reloading!.canaryStarted = true
            scheduler.canary = CanaryRoute(
                handlers: reload.canaryHandlers, canarySlots: Set(reload.newSlots), permille: options.percent * 10)
            let names = reload.canaryHandlers.map { handlerNames[$0] }.sorted().joined(separator: ", ")
            logger.info(
                "reload: canary: generation \(pluginGeneration) gets \(options.percent)% of the tasks of \(names) until it has finished \(options.tasks)"
            )
            return
        }
        retire(reload.oldSlots)
    }

    /// A task finished (or its worker died) on a worker of `generation`:
    /// during a canary, one of the changed handlers' counts for its version.
    private func countCanary(task: TaskID, generation: Int, failed: Bool) {
        guard var reload = reloading, reload.canaryStarted, let options = reload.canaryOptions,
            let handler = scheduler.handler(of: task), reload.canaryHandlers.contains(handler)
        else { return }
        if generation == pluginGeneration {
            reload.newTasks += 1
            if failed { reload.newFailures += 1 }
        } else {
            reload.oldTasks += 1
            if failed { reload.oldFailures += 1 }
        }
        reloading = reload
        guard reload.newTasks >= options.tasks else { return }
        // Decide: failure rates in percent of tasks, old over the same time.
        let newRate = Double(reload.newFailures) * 100 / Double(reload.newTasks)
        let oldRate = reload.oldTasks == 0 ? 0 : Double(reload.oldFailures) * 100 / Double(reload.oldTasks)
        let rollBack = newRate > oldRate + Double(options.marginPercent)
        scheduler.canary = nil
        reloading!.canaryStarted = false
        reloading!.canaryOptions = nil
        reloading!.report?.canary = CanaryResult(
            options: options, newTasks: reload.newTasks, newFailures: reload.newFailures, oldTasks: reload.oldTasks,
            oldFailures: reload.oldFailures, decision: rollBack ? "rolled back" : "promoted")
        let figures = String(
            format: "the new version failed %.1f%% of %d tasks, the old %.1f%% of %d (margin %d points)", newRate,
            reload.newTasks, oldRate, reload.oldTasks, options.marginPercent)
        if rollBack, let previous = reload.previous {
            logger.error("reload: canary rolled back: \(figures)")
            let newSlots = reload.newSlots
            pluginGeneration = previous.generation
            pluginFiles = previous.files
            pluginHashes = previous.hashes
            pluginLoadedAt = previous.loadedAt
            loadedHandlers = previous.handlers
            reloading!.finalOutcome = "rolled back"
            reloading!.report?.generation = previous.generation
            reloading!.report?.reason = "canary: \(figures)"
            retire(newSlots)
        } else {
            logger.info("reload: canary promoted: \(figures)")
            retire(reload.oldSlots)
        }
    }

    /// Takes these workers out of service: nothing new goes to them, each stops
    /// once its tasks are done, and past the drain timeout they are killed.
    private func retire(_ slots: [Int]) {
        guard reloading != nil else { return }
        if slots.allSatisfy({ workers[$0] == nil }) {
            finishReload(outcome: reloading!.finalOutcome, reason: reloading!.report?.reason)
            return
        }
        for slot in slots {
            guard workers[slot] != nil else { continue }
            workers[slot]!.retiring = true
            reloading!.retiring.insert(slot)
            switch workers[slot]!.state {
            case .ready, .starting:
                scheduler.drainWorker(slot: slot)
                if scheduler.workers[slot].inFlight.isEmpty { stop(slot: slot) }
            case .stopping:
                break
            case .exited:
                // Waiting for a restart that will not come now.
                if workers[slot]!.exit != nil { retired(slot: slot) }
            }
        }
        guard reloading != nil, !reloading!.retiring.isEmpty else { return }
        let timeout = configuration.drainTimeout
        logger.info(
            "reload: \(reloading!.retiring.count) workers going out of service finish their tasks (drain timeout \(timeout.nanoseconds / 1_000_000) ms)"
        )
        reloading!.drainTimer = loop.scheduleTask(in: timeout) { [self] in
            guard let reload = reloading else { return }
            for slot in reload.retiring {
                guard let worker = workers[slot], worker.state != .exited || worker.exit == nil else { continue }
                reloading!.killed.insert(slot)
                logger.warning(
                    "reload: worker \(slot) (pid \(worker.pid)) of generation \(worker.pluginGeneration) still busy at the drain timeout; killed, its tasks go to the new generation"
                )
                WorkerSpawner.kill(worker.pid)
            }
        }
    }

    /// An old-generation worker is gone for good: its slot is free.
    private func retired(slot: Int) {
        workers[slot] = nil
        guard reloading != nil, reloading!.retiring.remove(slot) != nil else { return }
        if reloading!.killed.contains(slot) {
            reloading!.report?.killedAtDrainTimeout += 1
        } else {
            reloading!.report?.drained += 1
        }
        if reloading!.retiring.isEmpty {
            finishReload(outcome: reloading!.finalOutcome, reason: reloading!.report?.reason)
        }
    }

    private func finishReload(outcome: String, reason: String?) {
        guard var reload = reloading else { return }
        reload.drainTimer?.cancel()
        scheduler.canary = nil
        var report =
            reload.report
            ?? ReloadReport(
                outcome: outcome, trigger: reload.trigger, generation: pluginGeneration, startedAt: reload.startedAt,
                durationMillis: 0)
        report.outcome = outcome
        report.reason = reason
        if outcome == "failed" { report.generation = pluginGeneration }
        report.durationMillis = Double(swy_monotonic_ns() - reload.startNanos) / 1e6
        reloading = nil
        lastReload = report
        let took = String(format: "%.1f", report.durationMillis)
        switch outcome {
        case "failed":
            logger.error(
                "reload (\(report.trigger)) refused: \(reason ?? "?"); generation \(pluginGeneration) keeps serving")
            for promise in reload.promises { promise.fail(ProtocolError(.reloadFailed, reason ?? "reload failed")) }
        default:
            let changes =
                outcome == "unchanged"
                ? "no file changed, no worker replaced"
                : "handlers added: \(report.added.isEmpty ? "none" : report.added.joined(separator: ", ")); removed: \(report.removed.isEmpty ? "none" : report.removed.joined(separator: ", ")); \(report.drained) old workers drained, \(report.killedAtDrainTimeout) killed at the drain timeout"
            logger.info(
                "reload (\(report.trigger)) done in \(took) ms: generation \(report.generation) serving; \(changes)")
            for file in report.files where outcome == "reloaded" {
                logger.info("generation \(report.generation): \(file.file) \(file.plugin) \(file.version) sha256 \(file.sha256)")
            }
            for promise in reload.promises { promise.succeed(report) }
        }
        if !queuedReloads.isEmpty, phase == .running {
            let next = queuedReloads
            queuedReloads = []
            beginReload(trigger: next[0].trigger, promises: next.map(\.promise))
        }
        pump()
    }

    /// Shutdown: reloads in progress or queued end here (the workers stop anyway).
    private func abandonReloads() {
        let error = ProtocolError(.shuttingDown, "the server is shutting down; the reload was abandoned")
        if let reload = reloading {
            reload.drainTimer?.cancel()
            for promise in reload.promises { promise.fail(error) }
            reloading = nil
        }
        for queued in queuedReloads { queued.promise.fail(error) }
        queuedReloads = []
    }

    // MARK: Strategies

    /// Loads the shipped strategy plugins (`libswystrategy-*.so` next to the
    /// executable) and makes each of their strategies available by name.
    /// They are part of this build, so they load in the host directly.
    func registerShippedStrategies() {
        for file in PluginDiscovery.shippedStrategyFiles() {
            do {
                let library = try StrategyLibrary.load(file)
                loadedStrategyFile(file, library: library, sha256: try? sha256Hex(ofFile: file))
                for name in library.strategyNames {
                    registerStrategy(
                        name,
                        StrategyRegistration(source: file) { [self] config in
                            PluginDispatch(try library.makeInstance(name, config: config)) { self.handlerNames[$0] }
                        })
                }
                for problem in library.refused { logger.warning("strategy plugin \(file): \(problem)") }
            } catch {
                logger.warning("skipped strategy plugin \(file): \(error)")
            }
        }
    }

    /// STRATEGY_LOAD: copies the file under a name this process never loaded
    /// (dlopen caches by path, so a changed file at the same path must not
    /// come back as the old code), tries the copy in a probe process, and only
    /// then loads it here. Each strategy of the file becomes available by
    /// name, replacing one of the same name for later STRATEGY_SETs; strategies
    /// in use keep the code they were created from (nothing is ever unloaded).
    /// The probe runs on a thread-pool thread: dispatch goes on meanwhile.
    private func loadStrategy(_ request: StrategyLoadRequest, requestID: UInt32, from connection: ClientConnection) {
        strategyLoads += 1
        let serial = strategyLoads
        let executable = self.executable
        let environment = workerEnvironment
        let (allowInsecure, logger) = (configuration.allowInsecurePlugins, logger)
        let work = NIOThreadPool.singleton.runIfActive(eventLoop: loop) {
            () throws -> (StrategyLibrary, StrategyProbe.Report, String) in
            // The source, before it is copied: the copy is ours whoever wrote the source.
            if let problem = PluginTrust.check(request.path, as: "strategy plugin") {
                try PluginTrust.enforce([problem], allowInsecure: allowInsecure, logger: logger)
            }
            let copy = try StrategyFiles.privateCopy(of: request.path, serial: serial)
            defer { StrategyFiles.remove(copy) }
            do {
                let sha256 = try sha256Hex(ofFile: copy)
                let report = try StrategyProbe.run(
                    file: copy, config: request.config, executable: executable, environment: environment)
                return (try StrategyLibrary.load(copy), report, sha256)
            } catch let error as StrategyLoadError {
                throw StrategyLoadError(file: request.path, reason: error.reason)
            }
        }
        work.whenComplete { [self] result in
            switch result {
            case .success(let (library, probe, sha256)):
                loadedStrategyFile(request.path, library: library, sha256: sha256)
                let source = "\(request.path) (\(library.pluginName) \(library.pluginVersion), load #\(serial))"
                for name in library.strategyNames {
                    let replaced = strategyRegistry[name]?.source
                    registerStrategy(
                        name,
                        StrategyRegistration(source: source) { [self] config in
                            PluginDispatch(try library.makeInstance(name, config: config)) { self.handlerNames[$0] }
                        })
                    if let replaced { logger.info("strategy \(name) from \(source) replaces the one from \(replaced)") }
                }
                for problem in library.refused { logger.warning("strategy plugin \(request.path): \(problem)") }
                for note in probe.notes { logger.warning("strategy plugin \(request.path): \(note)") }
                logger.info(
                    "loaded strategy plugin \(request.path) (\(library.pluginName) \(library.pluginVersion)): \(library.strategyNames.joined(separator: ", ")); its probe made \(probe.picks) picks; sha256 \(sha256)"
                )
                var report = strategyReport()
                report.loaded = StrategyReport.Loaded(
                    file: request.path, plugin: library.pluginName, version: library.pluginVersion,
                    strategies: library.strategyNames, notes: library.refused + probe.notes, probePicks: probe.picks,
                    sha256: sha256)
                connection.send(.strategyInfo(report.encoded()), requestID: requestID)
            case .failure(let error):
                logger.warning("refused strategy plugin \(request.path): \(error)")
                connection.send(.error(.strategyRefused, taskID: 0, message: "\(error)"), requestID: requestID)
            }
        }
    }

    /// Records a strategy plugin file loaded into the host, for `status`, and logs its SHA-256.
    private func loadedStrategyFile(_ file: String, library: StrategyLibrary, sha256: String?) {
        strategyFiles.append(
            ServerStatus.StrategyFile(
                file: file, plugin: library.pluginName, version: library.pluginVersion, sha256: sha256 ?? "",
                strategies: library.strategyNames, loadedAt: Date().timeIntervalSince1970))
        logger.info("strategy plugin \(file): sha256 \(sha256 ?? "unreadable")")
    }

    /// Makes a strategy available to STRATEGY_SET under `name`.
    func registerStrategy(_ name: String, _ registration: StrategyRegistration) {
        strategyRegistry[name] = registration
    }

    /// Creates the named strategy and installs it between two dispatch decisions.
    func setStrategy(_ request: StrategySetRequest) throws {
        guard let registration = strategyRegistry[request.name] else {
            let known = strategyRegistry.keys.sorted().joined(separator: ", ")
            throw ProtocolError(.unknownStrategy, "no strategy named `\(request.name)`; available: \(known)")
        }
        var scope = StrategyScope.default
        if let name = request.handler {
            guard let id = handlerIDs[name], loadedHandlers[id] != nil else {
                let known = loadedHandlers.values.map(\.name).sorted().joined(separator: ", ")
                throw ProtocolError(
                    .unknownHandler, "no loaded plugin has a handler named `\(name)`; loaded handlers: \(known)")
            }
            scope = .handler(id)
        }
        let strategy: any DispatchStrategy
        do {
            strategy = try registration.make(request.config)
        } catch {
            throw ProtocolError(.badRequest, "strategy `\(request.name)` refused its config: \(error)")
        }
        let previous = strategyName(scope)
        scheduler.setStrategy(strategy, scope: scope)
        strategyConfigs[scope] = request.config
        logger.info("strategy for \(scopeName(scope)) is now \(strategy.name) (was \(previous))")
        pump()
    }

    private func strategyName(_ scope: StrategyScope) -> String {
        switch scope {
        case .default: scheduler.strategy.name
        case .handler(let id): scheduler.handlerStrategies[id]?.name ?? scheduler.strategy.name
        }
    }

    private func scopeName(_ scope: StrategyScope) -> String {
        switch scope {
        case .default: "default"
        case .handler(let id): handlerNames[id]
        }
    }

    func strategyReport() -> StrategyReport {
        var active = [
            StrategyReport.Active(
                scope: "default", name: scheduler.strategy.name, config: strategyConfigs[.default] ?? [:],
                faults: scheduler.faultsByScope[.default] ?? 0)
        ]
        for (id, strategy) in scheduler.handlerStrategies.sorted(by: { handlerNames[$0.key] < handlerNames[$1.key] }) {
            active.append(
                StrategyReport.Active(
                    scope: handlerNames[id], name: strategy.name, config: strategyConfigs[.handler(id)] ?? [:],
                    faults: scheduler.faultsByScope[.handler(id)] ?? 0))
        }
        return StrategyReport(
            available: strategyRegistry.map { StrategyReport.Available(name: $0.key, source: $0.value.source) }
                .sorted { $0.name < $1.name },
            active: active, notices: strategyNotices)
    }

    private func logStrategyNotices() {
        for notice in scheduler.takeStrategyNotices() {
            let text =
                "strategy \(notice.disabled) for \(scopeName(notice.scope)) switched off: \(notice.reason); \(notice.restored) restored"
            logger.error("\(text)")
            strategyNotices.append(text)
            if strategyNotices.count > 50 { strategyNotices.removeFirst() }
            strategyConfigs[notice.scope] = nil
        }
    }

    // MARK: Dispatch

    /// Sends every task that can go now, then re-arms the timers.
    func pump() {
        guard phase != .draining || !durable, phase != .stoppingWorkers, phase != .stopped else {
            checkDrained()
            return
        }
        let now = wallMillis()
        scheduler.promoteDue(now: now)
        var sent = false
        let nanos = swy_monotonic_ns()
        while let step = scheduler.nextStep(now: now, nanos: nanos) {
            switch step {
            case .outcome(let outcome):
                deliver(outcome)
            case .dispatch(let dispatch):
                guard let link = workers[dispatch.slot]?.link else {
                    // Cannot happen: the scheduler only picks ready workers, and ready workers have links.
                    logger.critical("scheduler picked worker \(dispatch.slot), which has no link")
                    return
                }
                let payload = dispatch.payload
                HostToWorker.writeTaskHeader(
                    id: dispatch.taskID, attempt: dispatch.attempt, priority: dispatch.priority,
                    handlerIndex: dispatch.localHandlerIndex, payloadLength: payload.readableBytes, to: &link.buffer)
                if payload.readableBytes > OutboundLink.copyLimit {
                    link.appendLarge(payload)
                } else {
                    var payload = payload
                    link.buffer.writeBuffer(&payload)
                }
                markDirty(link)
                sent = true
            }
        }
        if sent { scheduleTimeoutSweep() }
        if scheduler.strategyFaults > 0 { logStrategyNotices() }
        armDelayTimer()
        scheduleStorePass()
        if shared != nil { claimIfRoom() }
        checkDrained()
    }

    private func deliver(_ outcome: Scheduler<Waiter>.Outcome) {
        if shared != nil {
            sharedDeliver(outcome)
            scheduleStorePass()
            return
        }
        switch outcome {
        case .succeeded(let id, let waiters, let result):
            for waiter in waiters { waiter.connection.send(.result(id, result), requestID: waiter.requestID) }
        case .failed(let id, let waiters, let code, let message):
            for waiter in waiters {
                waiter.connection.send(.error(code, taskID: id, message: message), requestID: waiter.requestID)
            }
            if waiters.isEmpty { logger.info("task \(id) failed: \(code): \(message)") }
        case .retrying(let id, let attempt, let code, let message, let runAt):
            let wait = max(0, runAt - wallMillis())
            logger.info("task \(id) attempt \(attempt) failed (\(code): \(message)); retrying in \(wait) ms")
        }
        scheduleStorePass()
    }

    // MARK: Timers

    /// Arms one timer for the earliest delayed task, if it is earlier than the armed one.
    private func armDelayTimer() {
        guard let deadline = scheduler.nextDeadline() else { return }
        if let armed = delayTimer, armed.deadline <= deadline { return }
        delayTimer?.task.cancel()
        let wait = max(0, deadline - wallMillis())
        let task = loop.scheduleTask(in: .milliseconds(wait)) { [self] in
            delayTimer = nil
            pump()
        }
        delayTimer = (deadline, task)
    }

    /// While tasks are in flight, checks the workers' boards for a task past its
    /// timeout, and kills that worker (it is replaced; the attempt fails with TIMEOUT).
    private func scheduleTimeoutSweep() {
        guard !timeoutSweepScheduled else { return }
        timeoutSweepScheduled = true
        loop.scheduleTask(in: .milliseconds(nextSweepDelay())) { [self] in
            timeoutSweepScheduled = false
            sweepTimeouts()
        }
    }

    private func nextSweepDelay() -> Int64 {
        var delay: Int64 = 100
        let now = swy_monotonic_ns()
        for (slot, worker) in workers.enumerated() {
            guard let worker, let board = worker.board, let id = board.running else { continue }
            let timeout = Int64(scheduler.timeoutMillis(of: id))
            guard timeout > 0, slot < scheduler.workers.count else { continue }
            let started = board.startedNanoseconds
            let elapsed = now > started ? Int64((now - started) / 1_000_000) : 0
            delay = min(delay, max(1, timeout - elapsed + 1))
        }
        return delay
    }

    private func sweepTimeouts() {
        var busy = false
        for (slot, worker) in workers.enumerated() {
            guard let worker, worker.state == .ready || worker.state == .stopping else { continue }
            guard slot < scheduler.workers.count, !scheduler.workers[slot].inFlight.isEmpty else { continue }
            busy = true
            guard killedForTimeout[slot] == nil, let board = worker.board, let id = board.running else { continue }
            let timeout = scheduler.timeoutMillis(of: id)
            // Read the clock after the board: the worker may start its next task
            // meanwhile, and a start later than `now` must not wrap around into
            // an enormous elapsed time (it did: a fresh task "ran past" 30 min).
            let started = board.startedNanoseconds
            let now = swy_monotonic_ns()
            guard timeout > 0, now > started, now - started >= UInt64(timeout) * 1_000_000 else { continue }
            logger.warning(
                "task \(id) ran past its timeout of \(timeout) ms on worker \(slot) (pid \(worker.pid)); killing the worker")
            killedForTimeout[slot] = (id, timeout)
            WorkerSpawner.kill(worker.pid)
        }
        if busy { scheduleTimeoutSweep() }
    }

    // MARK: Store

    /// At the end of this tick, hands the scheduler's changes (and the
    /// acknowledgements that wait for them) to the store writer.
    func scheduleStorePass() {
        guard durable, !storePassScheduled, scheduler.hasChanges || !pendingAcks.isEmpty else { return }
        storePassScheduled = true
        loop.execute { [self] in
            storePassScheduled = false
            if shared != nil { return sharedStorePass() }
            guard let writer else { return }
            let acks = pendingAcks
            pendingAcks = []
            writer.write(scheduler.takeChanges()) { [self] result in
                for (connection, requestID, id) in acks {
                    switch result {
                    case .success:
                        connection.send(.accepted(id), requestID: requestID)
                    case .failure(let error):
                        connection.send(
                            .error(
                                .internalError, taskID: id,
                                message: "task \(id) could not be stored (\(error)); it was not accepted durably"),
                            requestID: requestID)
                    }
                }
            }
        }
    }

    /// Forgets finished tasks past the retention time, in memory and in the store.
    func schedulePruning() {
        let every = TimeAmount.milliseconds(min(60_000, max(1_000, configuration.keepResults.nanoseconds / 10_000_000)))
        loop.scheduleRepeatedTask(initialDelay: every, delay: every) { [self] _ in
            guard phase == .running else { return }
            let now = wallMillis()
            scheduler.pruneFinished(now: now)
            let cutoff = now - configuration.keepResults.nanoseconds / 1_000_000
            sharedPrune(before: cutoff)
            writer?.read { try $0.prune(finishedBefore: cutoff) }.whenComplete { [self] result in
                switch result {
                case .success(let count) where count > 0: logger.debug("pruned \(count) finished tasks")
                case .success: break
                case .failure(let error): logger.error("cannot prune finished tasks: \(error)")
                }
            }
        }
    }

    // MARK: Flushing

    /// Marks a link to be flushed at the end of this event-loop tick.
    func markDirty(_ link: OutboundLink) {
        guard !link.isDirty else { return }
        link.isDirty = true
        dirty.append(link)
        if !flushScheduled {
            flushScheduled = true
            // Runs after every read of this tick: one write per channel per tick.
            loop.execute { [self] in flushAll() }
        }
    }

    private func flushAll() {
        flushScheduled = false
        let links = dirty
        dirty.removeAll(keepingCapacity: true)
        for link in links { link.flush() }
    }

    // MARK: Shutdown

    func markRunning() {
        if phase == .starting { phase = .running }
    }

    /// Stops taking tasks, lets running ones finish (up to the timeout), stops
    /// the workers, then closes every connection. `stopped` completes at the end.
    ///
    /// With a durable store, queued and waiting tasks stay in it and run after
    /// the next start: only tasks already on a worker are finished. With the
    /// memory store, queued tasks are run too (nothing would keep them), and
    /// tasks waiting for a later time end with SHUTTING_DOWN.
    func beginShutdown() {
        guard phase == .starting || phase == .running else { return }
        phase = .draining
        abandonReloads()
        if let ready = readyPromise {
            readyPromise = nil
            ready.fail(ConfigurationError("shut down before every worker started"))
        }
        let timeout = configuration.shutdownTimeout.nanoseconds / 1_000_000_000
        if durable {
            logger.info(
                "shutting down: finishing \(scheduler.runningCount) running tasks (timeout \(timeout) s); \(scheduler.liveCount - scheduler.runningCount) queued or scheduled tasks stay in the store"
            )
        } else {
            let waiting = scheduler.failWaiting(
                code: .shuttingDown, message: "the server shut down before this task's run-at time",
                now: wallMillis())
            for outcome in waiting { deliver(outcome) }
            logger.info("shutting down: finishing \(scheduler.liveCount) accepted tasks (timeout \(timeout) s)")
        }
        loop.scheduleTask(in: configuration.shutdownTimeout) { [self] in
            guard phase == .draining else { return }
            logger.warning("shutdown timeout: \(scheduler.runningCount) running tasks did not finish")
            stopWorkers()
        }
        checkDrained()
    }

    private func checkDrained() {
        guard phase == .draining else { return }
        let remaining = durable ? scheduler.runningCount : scheduler.liveCount
        if remaining == 0 { stopWorkers() }
    }

    private func stopWorkers() {
        guard phase == .draining else { return }
        phase = .stoppingWorkers
        for slot in workers.indices { stop(slot: slot) }
        loop.scheduleTask(in: configuration.workerStopTimeout) { [self] in
            for case let worker? in workers where worker.state != .exited {
                logger.warning("worker (pid \(worker.pid)) did not stop in time; killing it")
                WorkerSpawner.kill(worker.pid)
            }
        }
        checkStopped()
    }

    private func stop(slot: Int) {
        guard let worker = workers[slot], worker.state == .ready || worker.state == .starting, let link = worker.link
        else { return }
        workers[slot]!.state = .stopping
        scheduler.drainWorker(slot: slot)
        HostToWorker.stop.write(to: &link.buffer)
        markDirty(link)
    }

    private func checkStopped() {
        guard phase == .stoppingWorkers else { return }
        guard workers.allSatisfy({ $0 == nil || ($0!.state == .exited && $0!.exit != nil) }) else { return }
        phase = .stopped
        delayTimer?.task.cancel()
        delayTimer = nil
        if durable {
            // Everything left stays in the store; tell whoever still waits.
            for (id, waiters) in scheduler.detachAllWaiters() {
                for waiter in waiters {
                    waiter.connection.send(
                        .error(
                            .shuttingDown, taskID: id,
                            message:
                                "the server stopped; task \(id) stays in the store and runs after the next start (wait for it with `switchyard task \(id) --wait`)"
                        ), requestID: waiter.requestID)
                }
            }
        } else {
            // Tasks a killed worker held cannot run any more.
            for outcome in scheduler.failQueued(
                code: .shuttingDown, message: "the server shut down before this task ran", now: wallMillis())
            {
                deliver(outcome)
            }
        }
        let closed: EventLoopFuture<Void>
        if let writer {
            writer.write(scheduler.takeChanges())
            closed = writer.close()
        } else if shared != nil {
            closed = closeShared()
        } else {
            closed = loop.makeSucceededVoidFuture()
        }
        closed.whenComplete { [self] _ in
            flushAll()
            for connection in connections.values { connection.close() }
            logger.info("stopped")
            stopped.succeed()
        }
    }

    // MARK: Status

    func status() -> ServerStatus {
        var perHandlerWorkers = [Int](repeating: 0, count: handlerNames.count)
        var workerList: [ServerStatus.Worker] = []
        for (slot, worker) in workers.enumerated() {
            guard let worker else { continue }
            let slotState = scheduler.workers[slot]
            for handler in 0..<handlerNames.count where slotState.has(handler: handler) {
                perHandlerWorkers[handler] += 1
            }
            workerList.append(
                ServerStatus.Worker(
                    id: slot, pid: worker.pid, generation: worker.generation, state: worker.state.rawValue,
                    tasksDone: slotState.tasksDone, inFlight: slotState.inFlight.count,
                    handlers: worker.handlerNames,
                    serviceNanosAverage: slotState.serviceNanosAverage == 0 ? nil : slotState.serviceNanosAverage,
                    pluginGeneration: worker.pluginGeneration, window: slotState.window))
        }
        let uptime = Double((NIODeadline.now() - startedAt).nanoseconds) / 1e9
        var status = ServerStatus(
            server: serverName, pid: getpid(), listen: listenAddress, uptimeSeconds: uptime,
            strategy: scheduler.strategy.name, queued: scheduler.queue.count, running: scheduler.runningCount,
            succeeded: scheduler.succeededCount, failed: scheduler.failedCount, workerRestarts: workerRestarts,
            workers: workerList,
            strategies: strategyReport().active, strategyNotices: strategyNotices,
            handlers: loadedHandlers.map { id, handler in
                ServerStatus.Handler(
                    name: handler.name, plugin: handler.plugin, pluginVersion: handler.pluginVersion,
                    file: handler.file, workers: perHandlerWorkers[id], sha256: pluginHashes[handler.file],
                    generation: pluginGeneration, loadedAt: pluginLoadedAt)
            }.sorted { $0.name < $1.name },
            skippedPlugins: skipped,
            bindings: configuration.bindings.isEmpty ? nil : bindingStatus(perHandlerWorkers))
        status.pluginGeneration = pluginGeneration
        status.lastReload = lastReload
        status.strategyFiles = strategyFiles
        status.workerMemoryLimit = configuration.workerMemoryLimit
        status.workerCPULimitSeconds = configuration.workerCPULimit
        return status
    }

    private func bindingStatus(_ perHandlerWorkers: [Int]) -> [ServerStatus.Binding] {
        configuration.bindings.map { spec in
            var workers = 0
            var loaded: LoadedHandler?
            if let id = handlerIDs[spec.name], loadedHandlers[id]?.plugin == BindingLoader.pluginName {
                workers = perHandlerWorkers[id]
                loaded = loadedHandlers[id]
            }
            let signature = (try? BindingSignature(parsing: spec.signature))?.description ?? spec.signature
            return ServerStatus.Binding(
                name: spec.name, library: spec.library, symbol: spec.symbol, signature: signature, workers: workers,
                skipped: skippedBindings[spec.name], path: loaded?.resolvedFile, sha256: loaded?.sha256)
        }
    }
}

/// A strategy the host can create by name, with a config.
public struct StrategyRegistration: Sendable {
    /// "built-in", or the file it came from.
    public var source: String
    public var make: @Sendable ([String: String]) throws -> any DispatchStrategy

    public init(source: String, make: @escaping @Sendable ([String: String]) throws -> any DispatchStrategy) {
        self.source = source
        self.make = make
    }
}

/// Wall-clock milliseconds since the Unix epoch: the scheduler's time.
func wallMillis() -> EpochMillis {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return EpochMillis(ts.tv_sec) * 1_000 + EpochMillis(ts.tv_nsec / 1_000_000)
}
