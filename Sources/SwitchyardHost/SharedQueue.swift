#if PostgreSQL
import Logging
import NIOCore
import PostgresNIO
import SwitchyardCore

/// What a host hears from the shared queue; called on the host's event loop.
protocol SharedQueueDelegate: AnyObject {
    /// A payload on channel `switchyard`: `w`, `d<ids>` or `c<id>`.
    func sharedQueue(notified payload: String)
    /// LISTEN is in force again (at start and after every reconnect):
    /// notifications sent while it was not may have been missed.
    func sharedQueueListening()
    /// The host's lease is gone (or may be): what it holds may run elsewhere.
    /// Returns the claimed tasks it dropped without starting them, to give back
    /// (harmless if another host already took them over).
    func sharedQueueLostLease(_ reason: String) -> [TaskID]
    /// Held tasks that another host asked to cancel (the heartbeat's check).
    func sharedQueue(cancelsRequested ids: [TaskID])
    /// The tasks the database says this host holds (each heartbeat); returns
    /// those it does not hold, to give back (see `SharedQueue.heartbeat`).
    func sharedQueue(heldInDatabase ids: [TaskID]) -> [TaskID]
    /// This host's summary for the hosts table (JSON).
    func sharedQueueSummary() -> String
}

/// The host's side of a PostgreSQL queue: its lease and heartbeat, the
/// LISTEN connection, and one write lane that groups submits and task changes
/// into as few statements as the load allows (as `StoreWriter` does for
/// SQLite). A statement that fails because the database is out of reach is
/// retried with backoff, with the same task ids, until it goes through;
/// meanwhile the host claims nothing (`isConnected` is false).
///
/// Confined to the event loop; statements run in Swift tasks and report back
/// on the loop.
final class SharedQueue: @unchecked Sendable {
    // @unchecked Sendable: every mutable property is used on `loop` only.
    let store: PostgresTaskQueue
    let loop: EventLoop
    let logger: Logger
    let leaseMillis: Int64
    let heartbeatMillis: Int64
    let pollMillis: Int64
    weak var delegate: SharedQueueDelegate?

    /// This host's row in `switchyard_hosts`; a new one after a lost lease.
    private(set) var hostID: Int64 = 0
    private let hostName: String
    /// False from a failed statement until the next one that succeeds.
    private(set) var isConnected = true
    private var lastHeartbeat = NIODeadline.now()
    private var leaseLostReported = false
    private var closing = false

    private var runTask: Task<Void, Never>?
    private var listenTask: Task<Void, Never>?
    private var heartbeatTask: RepeatedTask?

    /// A submit waiting for its insert.
    private struct Submit {
        var record: TaskRecord
        var done: (Result<PostgresTaskQueue.Inserted, Error>) -> Void
    }
    private var pendingSubmits: [Submit] = []
    private var pendingChanges: [StoreChange] = []
    private var pendingReleases: [TaskID] = []
    /// Run once the changes queued before them are written, with the ids whose
    /// change was not written because this host no longer owns the task.
    private var pendingAcks: [(Result<Set<TaskID>, Error>) -> Void] = []
    private var writing = false
    private var idleWaiters: [EventLoopPromise<Void>] = []
    /// Statements and changes written, for status.
    private(set) var writes: UInt64 = 0

    init(
        store: PostgresTaskQueue, loop: EventLoop, logger: Logger, hostName: String, leaseMillis: Int64,
        heartbeatMillis: Int64, pollMillis: Int64
    ) {
        self.store = store
        self.loop = loop
        self.logger = logger
        self.hostName = hostName
        self.leaseMillis = leaseMillis
        self.heartbeatMillis = heartbeatMillis
        self.pollMillis = pollMillis
    }

    // MARK: Start and stop

    /// Starts the pool, migrates, registers this host. Not on the loop.
    func start() async throws {
        let store = self.store
        // Detached: a task made here would inherit the service group's graceful
        // shutdown, and PostgresClient.run() ends at once on it, before this
        // host has written its last changes and left the hosts table.
        runTask = Task.detached { await store.run() }
        do {
            let (from, to) = try await store.migrate()
            if from != to {
                logger.info("\(store.description): schema version \(to) (was \(from))")
            }
            hostID = try await store.register(name: hostName, leaseMillis: leaseMillis)
        } catch {
            runTask?.cancel()
            throw store.describe(error, doing: "connecting to")
        }
        logger.info("joined the shared queue \(store.displayURL) as host \(hostID) (\(hostName))")
    }

    /// Starts the LISTEN connection and the heartbeat; on the loop.
    func activate() {
        loop.preconditionInEventLoop()
        lastHeartbeat = .now()
        startListening()
        heartbeatTask = loop.scheduleRepeatedTask(
            initialDelay: .milliseconds(heartbeatMillis), delay: .milliseconds(heartbeatMillis)
        ) { [self] _ in heartbeat() }
    }

    /// Writes what is pending, gives back `release`, removes this host's row
    /// and closes the pool.
    func close(releasing release: [TaskID]) -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        heartbeatTask?.cancel()
        heartbeatTask = nil
        closing = true
        self.release(release)
        let promise = loop.makePromise(of: Void.self)
        idle().whenComplete { [self] _ in
            listenTask?.cancel()
            let (store, host, runTask) = (self.store, hostID, self.runTask)
            promise.completeWithTask {
                do {
                    try await store.deregister(host: host)
                } catch {
                    self.logger.warning(
                        "could not remove this host's row from \(store.displayURL) (\(error)); other hosts drop it when its lease expires")
                }
                runTask?.cancel()
            }
        }
        return promise.futureResult
    }

    // MARK: Writes

    /// Queues a submit for the next insert; `done` runs on the loop once it is
    /// stored (or can never be).
    func submit(_ record: TaskRecord, done: @escaping (Result<PostgresTaskQueue.Inserted, Error>) -> Void) {
        pendingSubmits.append(Submit(record: record, done: done))
        startWriteIfIdle()
    }

    /// Queues the scheduler's changes to held tasks.
    func write(_ changes: [StoreChange], ack: ((Result<Set<TaskID>, Error>) -> Void)? = nil) {
        pendingChanges += changes
        if let ack { pendingAcks.append(ack) }
        startWriteIfIdle()
    }

    /// Gives back claimed tasks that did not start.
    func release(_ ids: [TaskID]) {
        guard !ids.isEmpty else { return }
        pendingReleases += ids
        startWriteIfIdle()
    }

    /// Completes when everything queued so far is written.
    func idle() -> EventLoopFuture<Void> {
        if !writing && pendingSubmits.isEmpty && pendingChanges.isEmpty && pendingReleases.isEmpty {
            return loop.makeSucceededVoidFuture()
        }
        let promise = loop.makePromise(of: Void.self)
        idleWaiters.append(promise)
        return promise.futureResult
    }

    private func startWriteIfIdle() {
        guard !writing else { return }
        guard !pendingSubmits.isEmpty || !pendingChanges.isEmpty || !pendingReleases.isEmpty || !pendingAcks.isEmpty
        else {
            let waiters = idleWaiters
            idleWaiters.removeAll()
            for waiter in waiters { waiter.succeed() }
            return
        }
        writing = true
        var submits = pendingSubmits
        let changes = pendingChanges
        let releases = pendingReleases
        let acks = pendingAcks
        pendingSubmits = []
        pendingChanges = []
        pendingReleases = []
        pendingAcks = []
        let store = self.store
        // Ids first, in a step of their own, kept across retries of the insert:
        // a retried insert whose first try was stored after all is then
        // recognised by its ids rather than stored twice.
        let needIDs = submits.indices.filter { submits[$0].record.id == 0 }
        guard needIDs.isEmpty else {
            writeGroup(attempt: 0) { try await store.allocateIDs(needIDs.count) } completion: { [self] result in
                switch result {
                case .success(let ids):
                    for (index, id) in zip(needIDs, ids) { submits[index].record.id = id }
                    writeGroup(submits, changes, releases, acks)
                case .failure(let error):
                    writeGroupFailed(error, submits, changes, acks)
                }
            }
            return
        }
        writeGroup(submits, changes, releases, acks)
    }

    private func writeGroupFailed(
        _ error: Error, _ submits: [Submit], _ changes: [StoreChange], _ acks: [(Result<Set<TaskID>, Error>) -> Void]
    ) {
        writing = false
        logger.critical("cannot write \(submits.count) submits and \(changes.count) task changes to \(store.displayURL): \(error)")
        for submit in submits { submit.done(.failure(error)) }
        for ack in acks { ack(.failure(error)) }
        startWriteIfIdle()
    }

    /// One group: the inserts, then the changes, then the releases.
    private func writeGroup(
        _ submits: [Submit], _ changes: [StoreChange], _ releases: [TaskID],
        _ acks: [(Result<Set<TaskID>, Error>) -> Void]
    ) {
        let (store, host) = (self.store, hostID)
        let records = submits.map(\.record)
        writeGroup(attempt: 0) {
            let inserted = try await store.insert(records)
            let notApplied = try await store.apply(host: host, changes, now: wallMillis())
            try await store.release(host: host, releases)
            return (inserted, notApplied)
        } completion: { [self] (result: Result<([PostgresTaskQueue.Inserted], [TaskID]), Error>) in
            switch result {
            case .success(let (inserted, notApplied)):
                writing = false
                writes += 1
                for (submit, outcome) in zip(submits, inserted) {
                    if outcome == .retry {
                        var again = submit
                        again.record.id = 0
                        pendingSubmits.append(again)
                    } else {
                        submit.done(.success(outcome))
                    }
                }
                let lost = Set(notApplied)
                for ack in acks { ack(.success(lost)) }
                startWriteIfIdle()
            case .failure(let error):
                writeGroupFailed(error, submits, changes, acks)
            }
        }
    }

    /// Runs `body` in a task until it succeeds or fails for a reason other
    /// than the database being out of reach; backs off between tries.
    ///
    /// A try that has not ended after the lease (5 s at least) is given up
    /// and tried again: after PostgreSQL restarted under load, a statement's
    /// reply sometimes never came, neither rows nor an error, and every later
    /// write of this host queued behind it for ever (its heartbeat went on, so
    /// no other host took its tasks over). A late reply of the abandoned try
    /// is ignored; running the group twice is safe (same task ids; changes
    /// only while this host owns the task).
    private func writeGroup<T: Sendable>(
        attempt: Int, _ body: @escaping @Sendable () async throws -> T,
        completion: @escaping (Result<T, Error>) -> Void
    ) {
        var ended = false
        let limit = max(leaseMillis, 5_000)
        let watchdog = loop.scheduleTask(in: .milliseconds(limit)) { [self] in
            guard !ended else { return }
            ended = true
            logger.warning(
                "a write to \(store.displayURL) got no reply in \(limit) ms; writing it again (the same task ids: nothing is stored twice)")
            writeGroup(attempt: attempt + 1, body, completion: completion)
        }
        let future = loop.makeFutureWithTask { try await body() }
        future.whenComplete { [self] result in
            guard !ended else { return }
            ended = true
            watchdog.cancel()
            switch result {
            case .success:
                markConnected()
                completion(result)
            case .failure(let error) where Self.isConnectionLoss(error) && (!closing || attempt < 12):
                markDisconnected(error)
                let delay = Self.backoff(attempt)
                loop.scheduleTask(in: .milliseconds(delay)) { [self] in
                    writeGroup(attempt: attempt + 1, body, completion: completion)
                }
            case .failure:
                completion(result)
            }
        }
    }

    // MARK: Reads and claims

    /// Runs a statement that needs no retry (a claim, a read); marks the
    /// connection lost or found; completes on the loop.
    func run<T: Sendable>(_ body: @escaping @Sendable (PostgresTaskQueue) async throws -> T) -> EventLoopFuture<T> {
        let store = self.store
        let future = loop.makeFutureWithTask { try await body(store) }
        return future.always { [self] result in
            switch result {
            case .success: markConnected()
            case .failure(let error) where Self.isConnectionLoss(error): markDisconnected(error)
            case .failure: break
            }
        }
    }

    // MARK: Connection state

    private func markConnected() {
        guard !isConnected else { return }
        isConnected = true
        logger.notice("reconnected to \(store.displayURL); claiming tasks again")
    }

    private func markDisconnected(_ error: Error) {
        guard isConnected else { return }
        isConnected = false
        logger.error(
            "lost the connection to \(store.displayURL) (\(Self.brief(error))); claiming no tasks and retrying with backoff; running tasks carry on and their results are kept until it is back"
        )
    }

    /// Whether `error` means the database is out of reach (retry), not that it refused the statement.
    static func isConnectionLoss(_ error: Error) -> Bool {
        guard let psql = error as? PSQLError else { return !(error is CancellationError || error is StoreError) }
        if let state = psql.serverInfo?[.sqlState] {
            // 08: connection exception; 57: operator intervention (shutdown, restart); 53: resources.
            return state.hasPrefix("08") || state.hasPrefix("57") || state.hasPrefix("53")
        }
        return true
    }

    static func brief(_ error: Error) -> String {
        if let psql = error as? PSQLError {
            if let message = psql.serverInfo?[.message] { return message }
            return "\(psql.code)"
        }
        return "\(error)"
    }

    /// 100 ms doubling to 5 s.
    static func backoff(_ attempt: Int) -> Int64 { min(5_000, 100 << min(attempt, 6)) }

    // MARK: LISTEN

    private func startListening() {
        let store = self.store
        let loop = self.loop
        // The task ends when `close` cancels it; until then it holds self.
        listenTask = Task.detached { [self] in
            var attempt = 0
            let clock = ContinuousClock()
            while !Task.isCancelled {
                let started = clock.now
                do {
                    try await store.listen(onReady: {
                        loop.execute { self.delegate?.sharedQueueListening() }
                    }) { payload in
                        loop.execute { self.delegate?.sharedQueue(notified: payload) }
                    }
                } catch {
                    if Task.isCancelled { return }
                    loop.execute { self.markDisconnected(error) }
                }
                if Task.isCancelled { return }
                // A connection that listened for a while starts the backoff afresh.
                if clock.now - started > .seconds(5) { attempt = 0 }
                try? await Task.sleep(for: .milliseconds(Self.backoff(attempt)))
                attempt += 1
            }
        }
    }

    // MARK: Heartbeat

    /// Renews the lease, rescues the tasks of hosts whose lease ran out, and
    /// picks up cancels. A host that cannot renew for longer than the lease
    /// says so: other hosts may be running what it holds.
    private func heartbeat() {
        let (host, lease, summary) = (hostID, leaseMillis, delegate?.sharedQueueSummary() ?? "")
        let now = wallMillis()
        run { store in
            let beat = try await store.heartbeat(host: host, leaseMillis: lease, summary: summary)
            let rescued = beat.alive ? try await store.rescue(now: now) : []
            let held = beat.alive ? try await store.held(host: host) : []
            return (beat, rescued, held)
        }.whenComplete { [self] result in
            switch result {
            case .success(let (beat, rescued, held)):
                guard beat.alive else {
                    lostLease(
                        "this host's row (host \(host)) is gone from \(store.displayURL): another host found its lease expired and put back the tasks it held"
                    )
                    reregister()
                    return
                }
                lastHeartbeat = .now()
                leaseLostReported = false
                if !beat.cancels.isEmpty { delegate?.sharedQueue(cancelsRequested: beat.cancels) }
                // A claim whose reply was lost (the connection died after its
                // commit) left tasks owned here that this host never took in:
                // give them back, after every change already queued.
                let stray = delegate?.sharedQueue(heldInDatabase: held) ?? []
                if !stray.isEmpty {
                    logger.warning(
                        "\(stray.count) tasks are held by this host in the database but were never taken in (a claim's reply was lost); giving them back")
                    release(stray)
                }
                reportRescues(rescued)
            case .failure(let error):
                let silent = (NIODeadline.now() - lastHeartbeat).nanoseconds / 1_000_000
                logger.warning("cannot renew this host's lease in \(store.displayURL): \(Self.brief(error))")
                if silent > leaseMillis && !leaseLostReported {
                    lostLease(
                        "this host could not renew its lease for \(silent) ms, longer than the lease of \(leaseMillis) ms: other hosts may take over the tasks it holds"
                    )
                }
            }
        }
    }

    private func lostLease(_ reason: String) {
        leaseLostReported = true
        release(delegate?.sharedQueueLostLease(reason) ?? [])
    }

    /// Joins again under a new host id after the old row was removed.
    private func reregister() {
        let (name, lease) = (hostName, leaseMillis)
        run { store in try await store.register(name: name, leaseMillis: lease) }.whenComplete { [self] result in
            switch result {
            case .success(let id):
                logger.notice("joined the shared queue again as host \(id) (was \(hostID))")
                hostID = id
                lastHeartbeat = .now()
                leaseLostReported = false
            case .failure(let error):
                logger.error("cannot join the shared queue again: \(Self.brief(error)); retrying at the next heartbeat")
            }
        }
    }

    private func reportRescues(_ rescued: [(host: Int64, name: String, requeued: Int, dead: [TaskID])]) {
        guard !rescued.isEmpty else { return }
        for host in rescued {
            logger.warning(
                "host \(host.host) (\(host.name)) stopped renewing its lease: put back \(host.requeued) of its tasks for any host to run, \(host.dead.count) were on their last attempt and end dead"
            )
        }
        let dead = rescued.flatMap(\.dead)
        _ = run { store in
            try await store.notifyWork()
            try await store.notifyFinished(dead)
        }
    }
}
#endif
