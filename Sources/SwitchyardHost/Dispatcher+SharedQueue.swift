#if PostgreSQL
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
import Logging
import NIOCore
import SwitchyardCore

/// The dispatcher's side of a PostgreSQL queue shared by several hosts.
///
/// The database is the queue of record: a submit is an insert, whichever host
/// takes it. The local scheduler holds only what this host claimed, at most as
/// many tasks as its workers have room for, and runs them as usual; their
/// changes go back to the database through `SharedQueue`. A retry that waits
/// is given back, so any host may run it. Clients waiting for a task, on any
/// host, are answered from the database once its final state is written:
/// this host answers its own waiters when the write returns, and other hosts
/// hear of it through LISTEN/NOTIFY (and, should a notification be lost, the
/// poll that re-reads what they still wait for).
extension Dispatcher {
    /// What a task ended with here, kept until the database has it.
    enum LocalEnding {
        case result(ByteBuffer)
        case error(ErrorCode, String)
    }

    // MARK: Start

    func attachShared(_ queue: SharedQueue) {
        loop.preconditionInEventLoop()
        shared = queue
        queue.delegate = self
    }

    /// After the server listens: heartbeat, LISTEN, polling, first claim.
    func activateShared() {
        guard let shared else { return }
        shared.activate()
        let every = TimeAmount.milliseconds(shared.pollMillis)
        loop.scheduleRepeatedTask(initialDelay: every, delay: every) { [self] _ in
            guard phase == .running else { return }
            claimIfRoom(woken: true)
            recheckWaiters(olderThan: .milliseconds(shared.pollMillis * 2))
        }
        claimIfRoom(woken: true)
    }

    // MARK: Claims

    /// Claims as many runnable tasks as the ready workers have room for: half
    /// their windows at least, unless nothing is queued here (then any room).
    /// `woken`: there may be new runnable tasks in the database (else it
    /// claims only while the last claim found as many as it asked for).
    func claimIfRoom(woken: Bool = false) {
        if woken {
            mayHaveWork = true
            wakes &+= 1
        }
        guard let shared, shared.isConnected, phase == .running, mayHaveWork else { return }
        guard !claiming else {
            claimAgain = true
            return
        }
        let capacity = scheduler.workers.reduce(0) { $0 + ($1.state == .ready ? $1.window : 0) }
        let room = capacity - scheduler.liveCount
        guard room > 0, scheduler.queue.isEmpty || room * 2 >= capacity else { return }
        let handlers = loadedHandlerNames
        guard !handlers.isEmpty else { return }
        claiming = true
        claimAgain = false
        let wakesBefore = wakes
        let host = shared.hostID
        shared.run { try await $0.claim(host: host, limit: room, handlers: handlers, now: wallMillis()) }
            .whenComplete { [self] result in
                claiming = false
                switch result {
                case .success(let claim):
                    adopt(claim.records)
                    if claim.records.count == room {
                        claimAgain = true
                    } else if wakes == wakesBefore {
                        mayHaveWork = false
                    }
                    if let due = claim.nextRunAt { wake(at: due) }
                    pump()
                    if claimAgain { claimIfRoom() }
                case .failure(let error):
                    logger.debug("claim failed: \(SharedQueue.brief(error))")
                }
            }
    }

    /// Claims again when a delayed task in the database comes due, if that is
    /// sooner than the poll: no notification says so, and an idle host claims
    /// only when woken.
    private func wake(at due: EpochMillis) {
        guard let shared else { return }
        let delay = max(0, due - wallMillis())
        guard delay < shared.pollMillis else { return }
        if let pending = dueWake, pending.at <= due { return }
        dueWake?.task.cancel()
        let task = loop.scheduleTask(in: .milliseconds(delay)) { [self] in
            dueWake = nil
            claimIfRoom(woken: true)
        }
        dueWake = (due, task)
    }

    /// Takes claimed tasks into the local scheduler. The claim counted their
    /// attempt; the scheduler counts it again when it sends them, so it gets
    /// them one lower.
    private func adopt(_ records: [TaskRecord]) {
        guard !records.isEmpty else { return }
        let local = records.map { record in
            var record = record
            record.state = .queued
            record.attempts = record.attempts &- 1
            return record
        }
        _ = scheduler.restore(local, maxID: 0, now: wallMillis()) { handlerID(for: $0) }
    }

    // MARK: Submits

    func sharedSubmit(
        _ request: SubmitRequest, runAt: EpochMillis?, now: EpochMillis, requestID: UInt32,
        from connection: ClientConnection
    ) {
        guard let shared else { return }
        let runAt = max(runAt ?? now, now)
        let record = TaskRecord(
            id: 0, handler: request.handler, payload: request.payload, priority: request.priority, key: request.key,
            uniqueKey: request.uniqueKey, state: runAt > now ? .scheduled : .queued, attempts: 0,
            maxAttempts: request.maxAttempts ?? scheduler.configuration.defaultMaxAttempts,
            timeoutMillis: request.timeoutMillis ?? scheduler.configuration.defaultTimeoutMillis, runAt: runAt,
            createdAt: now, submitter: connection.identity?.name)
        let background = request.background
        shared.submit(record) { [self] result in
            switch result {
            case .success(.created(let id)):
                if background {
                    connection.send(.accepted(id), requestID: requestID)
                } else {
                    addSharedWaiter(Waiter(connection: connection, requestID: requestID), for: id, check: false)
                }
            case .success(.existing(let id)):
                if background {
                    connection.send(.accepted(id), requestID: requestID)
                } else {
                    addSharedWaiter(Waiter(connection: connection, requestID: requestID), for: id, check: true)
                }
            case .success(.retry):
                break  // SharedQueue inserts it again; never reported
            case .failure(let error):
                connection.send(
                    .error(
                        .internalError, taskID: 0,
                        message: "the task could not be stored in \(shared.store.displayURL) (\(error)); it was not accepted"),
                    requestID: requestID)
            }
        }
    }

    // MARK: Waiting

    /// Waits for task `id`, wherever it runs. With `check`, reads it first: it
    /// may have finished already.
    func addSharedWaiter(_ waiter: Waiter, for id: TaskID, check: Bool) {
        if remoteWaiters[id] == nil {
            remoteWaiters[id] = (NIODeadline.now(), [waiter])
        } else {
            remoteWaiters[id]!.waiters.append(waiter)
        }
        // A notification for it may have come before its insert returned here.
        let check = check || recentlyFinished.contains(id)
        guard check, scheduler.handler(of: id) == nil, unconfirmed[id] == nil, let shared else { return }
        shared.run { try await $0.fetch(id) }.whenComplete { [self] result in
            switch result {
            case .success(let record?) where record.state.isFinal:
                answerWaiters(record)
            case .success(nil):
                guard var entry = remoteWaiters[id] else { return }
                entry.waiters.removeAll { $0.connection === waiter.connection && $0.requestID == waiter.requestID }
                remoteWaiters[id] = entry.waiters.isEmpty ? nil : entry
                waiter.connection.send(unknownTask(id), requestID: waiter.requestID)
            case .success:
                break
            case .failure(let error):
                logger.warning("cannot read task \(id) for a waiting client: \(SharedQueue.brief(error)); the poll retries")
            }
        }
    }

    /// Answers everyone waiting for `record`, a final task read from the database.
    private func answerWaiters(_ record: TaskRecord) {
        guard let entry = remoteWaiters.removeValue(forKey: record.id) else { return }
        for waiter in entry.waiters { answer(record, requestID: waiter.requestID, connection: waiter.connection) }
    }

    /// Reads the tasks clients wait for that ended elsewhere, and answers them.
    private func answerFinished(_ ids: [TaskID]) {
        if recentlyFinished.count > 100_000 { recentlyFinished.removeAll(keepingCapacity: true) }
        for id in ids where remoteWaiters[id] == nil { recentlyFinished.insert(id) }
        let wanted = ids.filter { remoteWaiters[$0] != nil && unconfirmed[$0] == nil && scheduler.handler(of: $0) == nil }
        guard !wanted.isEmpty, let shared else { return }
        shared.run { try await $0.fetch(wanted) }.whenComplete { [self] result in
            guard case .success(let records) = result else { return }
            for record in records where record.state.isFinal { answerWaiters(record) }
        }
    }

    /// The polling fallback: waiters older than `age` whose task may have
    /// ended while a notification was missed.
    func recheckWaiters(olderThan age: TimeAmount) {
        let cutoff = NIODeadline.now() - age
        let wanted = remoteWaiters.compactMap { id, entry in entry.since < cutoff ? id : nil }
        guard !wanted.isEmpty else { return }
        answerFinished(wanted)
    }

    func dropSharedWaiters(of connection: ClientConnection) {
        for (id, entry) in remoteWaiters where entry.waiters.contains(where: { $0.connection === connection }) {
            let left = entry.waiters.filter { $0.connection !== connection }
            remoteWaiters[id] = left.isEmpty ? nil : (entry.since, left)
        }
    }

    // MARK: Endings

    /// Keeps what a task ended with until its final state is written; a retry
    /// that waits is given back to the database for any host.
    func sharedDeliver(_ outcome: Scheduler<Waiter>.Outcome) {
        switch outcome {
        case .succeeded(let id, _, let result):
            unconfirmed[id] = .result(result)
        case .failed(let id, _, let code, let message):
            unconfirmed[id] = .error(code, message)
        case .retrying(let id, let attempt, let code, let message, let runAt):
            let wait = max(0, runAt - wallMillis())
            if wait > 0 { scheduler.release(id) }
            logger.info(
                "task \(id) attempt \(attempt) failed (\(code): \(message)); retrying in \(wait) ms\(wait > 0 ? " on any host" : "")")
        }
    }

    /// Writes the scheduler's changes; then answers this host's waiters of the
    /// tasks whose final state went in.
    func sharedStorePass() {
        guard let shared else { return }
        let changes = scheduler.takeChanges()
        let ending = changes.compactMap { change -> TaskID? in
            switch change {
            case .update(let update) where update.state.isFinal: update.id
            case .insert(let record) where record.state.isFinal: record.id
            default: nil
            }
        }
        shared.write(changes) { [self] result in
            let lost = (try? result.get()) ?? []
            if case .failure(let error) = result {
                logger.critical("the results of \(ending.count) tasks could not be written: \(error)")
            }
            for id in ending {
                guard let ended = unconfirmed.removeValue(forKey: id) else { continue }
                if lost.contains(id) {
                    logger.warning(
                        "task \(id) finished here after this host lost its lease on it: another host owns it now, so this outcome was not stored and the task's result comes from that host's run"
                    )
                    continue
                }
                guard let entry = remoteWaiters.removeValue(forKey: id) else { continue }
                for waiter in entry.waiters {
                    switch ended {
                    case .result(let body): waiter.connection.send(.result(id, body), requestID: waiter.requestID)
                    case .error(let code, let message):
                        waiter.connection.send(.error(code, taskID: id, message: message), requestID: waiter.requestID)
                    }
                }
            }
            let others = lost.subtracting(ending)
            if !others.isEmpty {
                logger.warning(
                    "\(others.count) task changes were not stored: this host no longer holds those tasks (its lease was lost); tasks \(others.sorted().prefix(10).map(String.init).joined(separator: ", "))"
                )
            }
        }
    }

    // MARK: Cancel

    func sharedCancel(_ id: TaskID, requestID: UInt32, from connection: ClientConnection) {
        guard let shared else { return }
        if scheduler.handler(of: id) != nil {
            let record = cancelHeld(id)
            if let record { connection.send(.taskInfo(TaskInfo(record)), requestID: requestID) }
            return
        }
        shared.run { try await $0.cancel(id, now: wallMillis()) }.whenComplete { [self] result in
            switch result {
            case .success(.cancelled(let record)):
                logger.info("task \(id) cancelled while waiting")
                answerWaiters(record)
                connection.send(.taskInfo(TaskInfo(record)), requestID: requestID)
            case .success(.requested(let record, let owner)):
                logger.info("task \(id) is held by host \(owner); asked it to cancel the task")
                connection.send(.taskInfo(TaskInfo(record)), requestID: requestID)
            case .success(.alreadyFinished(let record)):
                connection.send(.taskInfo(TaskInfo(record)), requestID: requestID)
            case .success(.unknown):
                connection.send(unknownTask(id), requestID: requestID)
            case .failure(let error):
                connection.send(
                    .error(.internalError, taskID: id, message: "cannot cancel task \(id) in the shared queue: \(error)"),
                    requestID: requestID)
            }
        }
    }

    /// Cancels a task this host holds: at once if it waits, at the end of its
    /// attempt if it runs. Returns its record.
    @discardableResult
    private func cancelHeld(_ id: TaskID) -> TaskRecord? {
        switch scheduler.cancel(id, now: wallMillis()) {
        case .cancelled(let record, _):
            logger.info("task \(id) cancelled before it started here")
            unconfirmed[id] = .error(.cancelled, record.errorMessage ?? "task \(id) was cancelled")
            scheduleStorePass()
            pump()
            return record
        case .willCancel(let record), .alreadyFinished(let record):
            return record
        case .unknown:
            return nil
        }
    }

    // MARK: Reads

    /// A task's record: what this host holds, else the database's.
    func sharedRecord(_ id: TaskID, _ body: @escaping (Result<TaskRecord?, Error>) -> Void) {
        guard let shared else { return }
        if scheduler.handler(of: id) != nil, let record = scheduler.record(id) {
            body(.success(record))
            return
        }
        shared.run { try await $0.fetch(id) }.whenComplete(body)
    }

    func sharedList(_ query: TaskListQuery, requestID: UInt32, from connection: ClientConnection) {
        guard let shared else { return }
        shared.write(scheduler.takeChanges())
        shared.run { try await $0.list(query) }.whenComplete { [self] result in
            switch result {
            case .success(let stored):
                let records = stored.map { record in
                    scheduler.handler(of: record.id) != nil ? (scheduler.record(record.id) ?? record) : record
                }
                connection.send(.taskList(records.map { TaskInfo($0, includingResult: false) }), requestID: requestID)
            case .failure(let error):
                connection.send(
                    .error(.internalError, taskID: 0, message: "cannot list tasks from \(shared.store.displayURL): \(error)"),
                    requestID: requestID)
            }
        }
    }

    func sharedPrune(before cutoff: EpochMillis) {
        shared?.run { try await $0.prune(finishedBefore: cutoff) }.whenComplete { [self] result in
            switch result {
            case .success(let count) where count > 0: logger.debug("pruned \(count) finished tasks")
            case .success: break
            case .failure(let error): logger.error("cannot prune finished tasks: \(SharedQueue.brief(error))")
            }
        }
    }

    // MARK: Status

    /// This host's status with every live host's row.
    func sharedStatus(requestID: UInt32, connection: ClientConnection) {
        guard let shared else { return }
        let me = shared.hostID
        shared.run { try await $0.hosts() }.whenComplete { [self] result in
            var status = self.status()
            status.store = shared.store.description
            switch result {
            case .success(let rows):
                let now = Date()
                status.hosts = rows.map { row in
                    var host =
                        (try? JSONDecoder().decode(ServerStatus.SharedHost.self, from: Data(row.summary.utf8)))
                        ?? ServerStatus.SharedHost(name: row.name)
                    host.id = row.id
                    host.name = row.name
                    host.heartbeatAgeSeconds = max(0, now.timeIntervalSince(row.heartbeatAt))
                    host.isThisHost = row.id == me
                    if row.id == me { host = summary(id: me, heartbeatAge: host.heartbeatAgeSeconds) }
                    return host
                }
            case .failure(let error):
                status.strategyNotices = (status.strategyNotices ?? []) + [
                    "cannot read the hosts sharing \(shared.store.displayURL): \(SharedQueue.brief(error))"
                ]
            }
            connection.send(.serverInfo(status.encoded()), requestID: requestID)
        }
    }

    /// What this host tells the others at each heartbeat.
    func summary(id: Int64, heartbeatAge: Double = 0) -> ServerStatus.SharedHost {
        var host = ServerStatus.SharedHost(name: sharedHostName)
        host.id = id
        host.listen = listenAddress
        host.pid = getpid()
        host.workers = scheduler.workers.filter { $0.state == .ready }.count
        host.held = scheduler.liveCount
        host.running = scheduler.runningCount
        host.succeeded = scheduler.succeededCount
        host.failed = scheduler.failedCount
        host.connected = shared?.isConnected ?? false
        host.heartbeatAgeSeconds = heartbeatAge
        host.isThisHost = true
        return host
    }

    // MARK: Shutdown

    /// At the end of a shutdown: writes what is left, gives back the claimed
    /// tasks that did not start, tells the clients still waiting, leaves the
    /// hosts table.
    func closeShared() -> EventLoopFuture<Void> {
        guard let shared else { return loop.makeSucceededVoidFuture() }
        sharedStorePass()
        let release = scheduler.releaseAllWaiting()
        if !release.isEmpty { logger.info("giving back \(release.count) claimed tasks that did not start, for other hosts") }
        return shared.close(releasing: release).always { [self] _ in
            for (id, entry) in remoteWaiters {
                for waiter in entry.waiters {
                    waiter.connection.send(
                        .error(
                            .shuttingDown, taskID: id,
                            message:
                                "this server stopped; task \(id) stays in the shared queue and runs on another host (wait for it there with `switchyard task \(id) --wait`)"
                        ), requestID: waiter.requestID)
                }
            }
            remoteWaiters.removeAll()
        }
    }
}

extension Dispatcher: SharedQueueDelegate {
    func sharedQueue(notified payload: String) {
        guard let kind = payload.first else { return }
        switch kind {
        case "w":
            claimIfRoom(woken: true)
        case "d":
            answerFinished(payload.dropFirst().split(separator: ",").compactMap { TaskID($0) })
        case "c":
            if let id = TaskID(payload.dropFirst()), scheduler.handler(of: id) != nil { cancelHeld(id) }
        default:
            logger.debug("unknown notification `\(payload)` on channel switchyard")
        }
    }

    func sharedQueueListening() {
        // Anything sent while LISTEN was down is lost: look again.
        claimIfRoom(woken: true)
        recheckWaiters(olderThan: .zero)
    }

    func sharedQueueLostLease(_ reason: String) -> [TaskID] {
        let dropped = scheduler.releaseAllWaiting()
        let running = scheduler.runningIDs
        logger.warning(
            "\(reason). Dropped \(dropped.count) claimed tasks that had not started (another host runs them); \(running.count) running tasks carry on here and may also run on another host (at-least-once); their results are stored only if this host still holds them\(running.isEmpty ? "" : ": tasks \(running.prefix(20).map(String.init).joined(separator: ", "))\(running.count > 20 ? ", ..." : "")")"
        )
        return dropped
    }

    func sharedQueue(cancelsRequested ids: [TaskID]) {
        for id in ids where scheduler.handler(of: id) != nil { cancelHeld(id) }
    }

    func sharedQueue(heldInDatabase ids: [TaskID]) -> [TaskID] {
        // A claim in flight may own tasks not taken in yet: look again next time.
        guard !claiming else { return [] }
        return ids.filter { scheduler.handler(of: $0) == nil && unconfirmed[$0] == nil }
    }

    func sharedQueueSummary() -> String {
        let data = (try? JSONEncoder().encode(summary(id: shared?.hostID ?? 0))) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
#endif
