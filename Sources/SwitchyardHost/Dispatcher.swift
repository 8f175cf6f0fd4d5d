#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
import Logging
import NIOCore
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
    /// Plugin files workers load: the configured ones minus any that crashed a
    /// worker while loading.
    private var pluginFiles: [String]
    private var scheduler: Scheduler<Waiter>

    // Handlers, learned from the workers' hellos.
    private var handlerIDs: [String: HandlerID] = [:]
    private var handlers: [LoadedHandler] = []
    private var skipped: [SkippedPlugin] = []
    private var reportedSkips: Set<SkippedPlugin> = []

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
    }
    private var workers: [Worker?] = []
    private var generationCounter = 0
    private var workerRestarts: UInt64 = 0

    private var connections: [ObjectIdentifier: ClientConnection] = [:]
    private var dirty: [OutboundLink] = []
    private var flushScheduled = false

    private enum Phase { case starting, running, draining, stoppingWorkers, stopped }
    private var phase = Phase.starting
    private let startedAt = NIODeadline.now()
    var listenAddress = ""
    private var readyPromise: EventLoopPromise<Void>?
    let stopped: EventLoopPromise<Void>

    init(loop: EventLoop, configuration: HostConfiguration, logger: Logger, executable: String, pluginFiles: [String]) {
        self.loop = loop
        self.configuration = configuration
        self.logger = logger
        self.executable = executable
        self.pluginFiles = pluginFiles
        self.serverName = "switchyard/\(SwitchyardHost.version)"
        self.scheduler = Scheduler(
            configuration: SchedulerConfiguration(
                prefetch: configuration.prefetch, defaultMaxAttempts: configuration.defaultMaxAttempts,
                retainFinished: configuration.retainFinished))
        self.stopped = loop.makePromise()
    }

    // MARK: Start

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
        generationCounter += 1
        let generation = generationCounter
        let failedStarts = workers[slot]?.failedStarts ?? 0
        let spawned: WorkerSpawner.Spawned
        do {
            spawned = try WorkerSpawner.spawn(executable: executable)
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
            failedStarts: failedStarts)
        let config = WorkerConfig(
            workerID: slot, generation: generation, plugins: pluginFiles, config: configuration.pluginConfig,
            maxResultSize: configuration.maxFrameSize - 64)
        let maxFrame = configuration.maxFrameSize + 64
        ClientBootstrap(group: loop)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(FrameDecoder(maxFrameSize: maxFrame)),
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
            guard let outcome = scheduler.attemptFinished(slot: slot, id: id, status: status, body: body) else {
                logger.warning("worker \(slot) reported task \(id), which it was not holding")
                return
            }
            deliver(outcome)
            pump()
        case .progress(let id, let done, let total):
            if let waiter = scheduler.waiter(of: id) {
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

    /// A worker died while opening `file` or running one of its handlers'
    /// `on_worker_start`: leave the file out of every later worker, so one bad
    /// plugin cannot keep the others from serving.
    private func excludeCrashingPlugin(file: String, handler: String, exit: WorkerSpawner.Exit) {
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
        var ids: [HandlerID] = []
        for handler in hello.handlers {
            if let id = handlerIDs[handler.name] {
                ids.append(id)
                handlers[id] = handler
            } else {
                let id = handlers.count
                handlers.append(handler)
                handlerIDs[handler.name] = id
                ids.append(id)
            }
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
        let expected = phase == .stoppingWorkers || phase == .stopped
        let description = "worker \(slot) (pid \(pid)) \(exit)"
        if expected {
            logger.debug("\(description)")
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
        let running = workers[slot]!.board?.running
        workers[slot]!.board = nil
        for outcome in scheduler.workerLost(slot: slot, running: running, reason: "\(description) while running this task") {
            deliver(outcome)
        }
        if !expected {
            workerRestarts += 1
            scheduleRestart(slot: slot)
        }
        pump()
        checkStopped()
    }

    // MARK: Client requests

    func connectionOpened(_ connection: ClientConnection) {
        connections[ObjectIdentifier(connection)] = connection
    }

    func connectionClosed(_ connection: ClientConnection) {
        connections[ObjectIdentifier(connection)] = nil
    }

    func handle(_ message: ClientMessage, requestID: UInt32, from connection: ClientConnection) {
        switch message {
        case .submit(let request):
            submit(request, requestID: requestID, from: connection)
        case .taskStatus(let id):
            if let info = scheduler.info(id, handlerName: { handlers[$0].name }) {
                connection.send(.taskInfo(info), requestID: requestID)
            } else {
                connection.send(
                    .error(
                        .unknownTask, taskID: id,
                        message:
                            "no task \(id): it never existed or its record expired (the last \(configuration.retainFinished) finished tasks are kept)"
                    ), requestID: requestID)
            }
        case .serverStatus:
            connection.send(.serverInfo(status().encoded()), requestID: requestID)
        case .ping(let body):
            connection.send(.pong(body), requestID: requestID)
        case .hello:
            connection.fail(ProtocolError(.badRequest, "HELLO was already received on this connection"), requestID: requestID)
        }
    }

    private func submit(_ request: SubmitRequest, requestID: UInt32, from connection: ClientConnection) {
        guard phase == .running || phase == .starting else {
            connection.send(
                .error(.shuttingDown, taskID: 0, message: "the server is shutting down and takes no new tasks"),
                requestID: requestID)
            return
        }
        guard let handler = handlerIDs[request.handler] else {
            let known = handlers.map(\.name).sorted().joined(separator: ", ")
            connection.send(
                .error(
                    .unknownHandler, taskID: 0,
                    message:
                        "no loaded plugin has a handler named `\(request.handler)`; loaded handlers: \(known.isEmpty ? "none" : known)"
                ), requestID: requestID)
            return
        }
        let waiter = request.background ? nil : Waiter(connection: connection, requestID: requestID)
        let id = scheduler.submit(
            handler: handler, priority: request.priority, payload: request.payload, maxAttempts: request.maxAttempts,
            waiter: waiter)
        if request.background {
            connection.send(.accepted(id), requestID: requestID)
        }
        pump()
    }

    // MARK: Dispatch

    /// Sends every task that can go now.
    private func pump() {
        while let dispatch = scheduler.nextDispatch() {
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
        }
        checkDrained()
    }

    private func deliver(_ outcome: Scheduler<Waiter>.Outcome) {
        switch outcome {
        case .succeeded(let id, let waiter, let result):
            waiter?.connection.send(.result(id, result), requestID: waiter!.requestID)
        case .failed(let id, let waiter, let code, let message):
            if let waiter {
                waiter.connection.send(.error(code, taskID: id, message: message), requestID: waiter.requestID)
            } else {
                logger.info("task \(id) failed: \(code): \(message)")
            }
        case .retrying(let id, let attempt, let code, let message):
            logger.info("task \(id) attempt \(attempt) failed (\(code): \(message)); retrying")
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

    /// Stops taking tasks, lets accepted ones finish (up to the timeout), stops
    /// the workers, then closes every connection. `stopped` completes at the end.
    func beginShutdown() {
        guard phase == .starting || phase == .running else { return }
        phase = .draining
        if let ready = readyPromise {
            readyPromise = nil
            ready.fail(ConfigurationError("shut down before every worker started"))
        }
        logger.info(
            "shutting down: finishing \(scheduler.liveCount) accepted tasks (timeout \(configuration.shutdownTimeout.nanoseconds / 1_000_000_000) s)"
        )
        loop.scheduleTask(in: configuration.shutdownTimeout) { [self] in
            guard phase == .draining else { return }
            logger.warning("shutdown timeout: \(scheduler.liveCount) tasks did not finish")
            for outcome in scheduler.failQueued(
                code: .shuttingDown, message: "the server shut down before this task ran")
            {
                deliver(outcome)
            }
            stopWorkers()
        }
        checkDrained()
    }

    private func checkDrained() {
        if phase == .draining && scheduler.liveCount == 0 { stopWorkers() }
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
        // Tasks a killed worker held cannot run any more.
        for outcome in scheduler.failQueued(code: .shuttingDown, message: "the server shut down before this task ran") {
            deliver(outcome)
        }
        phase = .stopped
        flushAll()
        for connection in connections.values { connection.close() }
        logger.info("stopped")
        stopped.succeed()
    }

    // MARK: Status

    func status() -> ServerStatus {
        var perHandlerWorkers = [Int](repeating: 0, count: handlers.count)
        var workerList: [ServerStatus.Worker] = []
        for (slot, worker) in workers.enumerated() {
            guard let worker else { continue }
            let slotState = scheduler.workers[slot]
            for handler in 0..<handlers.count where slotState.has(handler: handler) {
                perHandlerWorkers[handler] += 1
            }
            workerList.append(
                ServerStatus.Worker(
                    id: slot, pid: worker.pid, generation: worker.generation, state: worker.state.rawValue,
                    tasksDone: slotState.tasksDone, inFlight: slotState.inFlight.count,
                    handlers: worker.handlerNames))
        }
        let uptime = Double((NIODeadline.now() - startedAt).nanoseconds) / 1e9
        return ServerStatus(
            server: serverName, pid: getpid(), listen: listenAddress, uptimeSeconds: uptime,
            strategy: scheduler.strategy.name, queued: scheduler.queue.count, running: scheduler.runningCount,
            succeeded: scheduler.succeededCount, failed: scheduler.failedCount, workerRestarts: workerRestarts,
            workers: workerList,
            handlers: handlers.enumerated().map { index, handler in
                ServerStatus.Handler(
                    name: handler.name, plugin: handler.plugin, pluginVersion: handler.pluginVersion,
                    file: handler.file, workers: perHandlerWorkers[index])
            }.sorted { $0.name < $1.name },
            skippedPlugins: skipped)
    }
}
