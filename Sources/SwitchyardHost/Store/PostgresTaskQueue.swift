#if PostgreSQL
import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import SwitchyardCore

/// The queue of record in PostgreSQL, shared by any number of hosts: every
/// statement a host runs against it. It keeps no state of its own beyond the
/// connection pool; `SharedQueue` decides when each statement runs.
///
/// - Submits insert rows (`insert`); each host claims runnable rows in
///   batches with `FOR UPDATE SKIP LOCKED`, highest priority first, oldest
///   first within a priority (`claim`), which sets `owner` to the host's id.
/// - A host's row in `switchyard_hosts` is the lease of every task it holds;
///   `heartbeat` renews it, `rescue` (run by every host) puts back the tasks
///   of hosts whose lease ran out.
/// - Changes to held tasks (`apply`) are written only while the host still
///   owns them, so a host that lost its lease cannot overwrite the work of
///   the host that took the task over.
/// - Channel `switchyard` carries wake-ups: `w` (new work), `d<ids>` (tasks
///   that finished, comma-separated), `c<id>` (a cancel for the task's owner).
public final class PostgresTaskQueue: Sendable {
    /// The URL as given, for messages (the password is never shown).
    public let displayURL: String
    let client: PostgresClient
    /// The same settings for one connection outside the pool (`probe`).
    let probeConfiguration: PostgresConnection.Configuration
    let logger: Logger
    let schema: PostgresSchema
    static let channel = "switchyard"

    /// Parses `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require]`).
    /// Nothing connects until `run()` runs.
    public convenience init(url: String, logger: Logger) throws {
        try self.init(url: url, logger: logger, schema: .current)
    }

    init(url: String, logger: Logger, schema: PostgresSchema) throws {
        let (configuration, probeConfiguration, display) = try Self.configuration(parsing: url)
        self.probeConfiguration = probeConfiguration
        self.displayURL = display
        self.logger = logger
        self.schema = schema
        self.client = PostgresClient(configuration: configuration, backgroundLogger: logger)
    }

    static func configuration(
        parsing url: String
    ) throws -> (PostgresClient.Configuration, PostgresConnection.Configuration, String) {
        func bad(_ why: String) -> StoreError {
            StoreError(
                "--store \(url.replacingOccurrences(of: #":[^:@/]*@"#, with: ":***@", options: .regularExpression)): \(why); "
                    + "write it as postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require]")
        }
        guard HostConfiguration.StoreKind.isPostgresURL(url), let components = URLComponents(string: url) else { throw bad("not a PostgreSQL URL") }
        guard let host = components.host, !host.isEmpty else { throw bad("no host") }
        guard let user = components.user, !user.isEmpty else { throw bad("no user") }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty else { throw bad("no database name after the host") }
        var tls = PostgresClient.Configuration.TLS.prefer(.makeClientConfiguration())
        var sslmode = "prefer"
        for item in components.queryItems ?? [] {
            switch (item.name, item.value ?? "") {
            case ("sslmode", "disable"): tls = .disable
            case ("sslmode", "prefer"): break
            case ("sslmode", "require"): tls = .require(.makeClientConfiguration())
            case ("sslmode", let other): throw bad("sslmode `\(other)` is not one of disable, prefer, require")
            case (let name, _): throw bad("unknown parameter `\(name)`")
            }
            if item.name == "sslmode" { sslmode = item.value ?? sslmode }
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: user, password: components.password,
            database: database, tls: tls)
        configuration.options.connectTimeout = .seconds(5)
        // One for LISTEN, one for writes, one for claims, one for reads.
        configuration.options.maximumConnections = 6
        configuration.options.keepAliveBehavior = .init(frequency: .seconds(10))
        let probeTLS: PostgresConnection.Configuration.TLS
        switch sslmode {
        case "disable": probeTLS = .disable
        case "require": probeTLS = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        default: probeTLS = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        var probe = PostgresConnection.Configuration(
            host: host, port: components.port ?? 5432, username: user, password: components.password,
            database: database, tls: probeTLS)
        probe.options.connectTimeout = .seconds(5)
        let display = "postgres://\(user)@\(host):\(components.port ?? 5432)/\(database) (sslmode=\(sslmode))"
        return (configuration, probe, display)
    }

    /// For logs and status.
    public var description: String { "postgres \(displayURL)" }

    /// Runs the connection pool until the task is cancelled. Every other call
    /// waits for a connection while this runs.
    public func run() async {
        await client.run()
    }

    /// Listens on channel `switchyard` on a connection of its own until that
    /// connection fails or the task is cancelled. `onReady` runs once LISTEN
    /// is in force; `body` gets each payload.
    func listen(onReady: @Sendable () -> Void, _ body: @Sendable (String) -> Void) async throws {
        try await client.withConnection { connection in
            try await connection.listen(on: Self.channel) { notifications in
                onReady()
                for try await notification in notifications { body(notification.payload) }
            }
        }
    }

    // MARK: - Schema

    /// Applies the migrations the database lacks; throws when it is newer than this code.
    @discardableResult
    public func migrate() async throws -> (from: Int32, to: Int32) {
        do {
            try await probe()
        } catch {
            throw describe(error, doing: "connecting to")
        }
        do {
            return try await schema.migrate(client, logger: logger, describe: "the database \(displayURL)")
        } catch let error as StoreError {
            throw error
        } catch {
            throw describe(error, doing: "migrating the schema of")
        }
    }

    /// Opens one connection outside the pool and closes it again. The pool
    /// retries a connection that fails for about a minute and then says only
    /// that it gave up; one plain connection fails at once with the cause:
    /// refused, no such database or user, a wrong password, no TLS.
    func probe() async throws {
        let connection = try await PostgresConnection.connect(
            configuration: probeConfiguration, id: 0, logger: logger)
        try await connection.close()
    }

    /// Runs the pool just long enough to migrate (`switchyard migrate`).
    public func migrateOnce() async throws -> (from: Int32, to: Int32) {
        try await withThrowingTaskGroup(of: (from: Int32, to: Int32)?.self) { group in
            group.addTask {
                await self.run()
                return nil
            }
            group.addTask { try await self.migrate() }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let result { return result }
            }
            throw StoreError("\(displayURL): the connection pool stopped before the migration ran")
        }
    }

    /// Turns a driver error into a message that names the database and the fix.
    func describe(_ error: Error, doing operation: String) -> StoreError {
        if let error = error as? StoreError { return error }
        if let psql = error as? PSQLError {
            if let server = psql.serverInfo {
                let message = server[.message] ?? "?"
                let code = server[.sqlState] ?? "?"
                return StoreError("\(operation) \(displayURL) failed: PostgreSQL said \(message) (SQLSTATE \(code))")
            }
            if psql.code == .sslUnsupported {
                return StoreError(
                    "\(operation) \(displayURL) failed: the server does not offer TLS, and the URL says sslmode=require; "
                        + "enable ssl on the server, or use sslmode=prefer or sslmode=disable on a trusted network")
            }
            return StoreError(
                "\(operation) \(displayURL) failed: \(psql.code) \(psql.underlying.map { "(\($0))" } ?? ""); "
                    + "check that PostgreSQL runs there and accepts this user (pg_hba.conf), and the URL's host, port and database")
        }
        return StoreError("\(operation) \(displayURL) failed: \(error)")
    }

    // MARK: - Hosts

    /// Adds this host's row; returns its id, the id every task it claims carries.
    func register(name: String, leaseMillis: Int64) async throws -> Int64 {
        let rows = try await client.query(
            """
            INSERT INTO switchyard_hosts (name, lease_until) VALUES (\(name), now() + \(leaseMillis) * interval '1 millisecond')
            RETURNING id
            """, logger: logger)
        var ids: [Int64] = []
        for try await id in rows.decode(Int64.self) { ids.append(id) }
        guard let id = ids.first else { throw StoreError("registering this host in \(displayURL) returned no id") }
        return id
    }

    /// Renews the lease of host `id` and stores its summary. False: the row is
    /// gone (another host found the lease expired and rescued its tasks).
    /// Also returns the held tasks someone asked to cancel.
    func heartbeat(host id: Int64, leaseMillis: Int64, summary: String) async throws -> (alive: Bool, cancels: [TaskID]) {
        let rows = try await client.query(
            """
            UPDATE switchyard_hosts SET heartbeat_at = now(), lease_until = now() + \(leaseMillis) * interval '1 millisecond',
                summary = \(summary)
            WHERE id = \(id) RETURNING id
            """, logger: logger)
        var alive = false
        for try await _ in rows { alive = true }
        guard alive else { return (false, []) }
        var cancels: [TaskID] = []
        for try await taskID in try await client.query(
            """
            SELECT id FROM switchyard_tasks
            WHERE owner = \(id) AND cancel_requested AND state IN \(unescaped: PostgresSchema.unfinishedStates)
            """, logger: logger
        ).decode(Int64.self) {
            cancels.append(TaskID(bitPattern: taskID))
        }
        return (true, cancels)
    }

    /// The unfinished tasks host `id` holds in the database.
    func held(host id: Int64) async throws -> [TaskID] {
        var ids: [TaskID] = []
        for try await taskID in try await client.query(
            "SELECT id FROM switchyard_tasks WHERE owner = \(id) AND state IN \(unescaped: PostgresSchema.unfinishedStates)",
            logger: logger
        ).decode(Int64.self) {
            ids.append(TaskID(bitPattern: taskID))
        }
        return ids
    }

    /// Deletes the rows of hosts whose lease expired and puts their unfinished
    /// tasks back: a task that was claimed (its attempt counted at the claim)
    /// is queued again, or ends dead with WORKER_CRASHED when that was its
    /// last attempt. Returns the hosts rescued and how many tasks each held.
    func rescue(now: EpochMillis) async throws -> [(host: Int64, name: String, requeued: Int, dead: [TaskID])] {
        let rows = try await client.query(
            """
            WITH deleted AS (
                DELETE FROM switchyard_hosts WHERE lease_until < now() RETURNING id, name
            ), expired AS (
                SELECT id, name FROM deleted
                UNION ALL
                -- Tasks of a host with no row: claimed by a claim that ended after its row was deleted.
                SELECT DISTINCT t.owner, 'a host with no row' FROM switchyard_tasks t
                WHERE t.owner IS NOT NULL AND t.state IN \(unescaped: PostgresSchema.unfinishedStates)
                    AND NOT EXISTS (SELECT 1 FROM switchyard_hosts h WHERE h.id = t.owner)
            ), rescued AS (
                UPDATE switchyard_tasks t SET
                    owner = NULL,
                    cancel_requested = false,
                    state = CASE
                        WHEN t.cancel_requested THEN 6
                        WHEN t.state = 2 AND t.attempts >= t.max_attempts THEN 5
                        ELSE 1 END,
                    error_code = CASE
                        WHEN t.cancel_requested THEN \(Int32(ErrorCode.cancelled.rawValue))
                        WHEN t.state = 2 THEN \(Int32(ErrorCode.workerCrashed.rawValue))
                        ELSE t.error_code END,
                    error_message = CASE
                        WHEN t.cancel_requested THEN 'task ' || t.id || ' was cancelled'
                        WHEN t.state = 2 THEN 'host ' || expired.id || ' (' || expired.name
                            || ') stopped renewing its lease while it held attempt ' || t.attempts || ' of '
                            || t.max_attempts
                        ELSE t.error_message END,
                    finished_at = CASE WHEN t.cancel_requested OR (t.state = 2 AND t.attempts >= t.max_attempts)
                        THEN \(now) ELSE t.finished_at END
                FROM expired
                WHERE t.owner = expired.id AND t.state IN \(unescaped: PostgresSchema.unfinishedStates)
                RETURNING t.id, t.state, expired.id AS host
            )
            SELECT expired.id, expired.name, rescued.id, rescued.state
            FROM expired LEFT JOIN rescued ON rescued.host = expired.id
            """, logger: logger)
        var byHost: [Int64: (name: String, requeued: Int, dead: [TaskID])] = [:]
        for try await (host, name, task, state) in rows.decode((Int64, String, Int64?, Int16?).self) {
            var entry = byHost[host] ?? (name, 0, [])
            if let task, let state {
                if state == Int16(TaskState.queued.rawValue) {
                    entry.requeued += 1
                } else {
                    entry.dead.append(TaskID(bitPattern: task))
                }
            }
            byHost[host] = entry
        }
        return byHost.sorted { $0.key < $1.key }.map { ($0.key, $0.value.name, $0.value.requeued, $0.value.dead) }
    }

    /// Removes this host's row (at a clean stop, after releasing its tasks).
    func deregister(host id: Int64) async throws {
        try await execute("DELETE FROM switchyard_hosts WHERE id = \(id)", logger: logger)
    }

    /// Every live host's row: id, name, started, last heartbeat, summary.
    func hosts() async throws -> [(id: Int64, name: String, startedAt: Date, heartbeatAt: Date, summary: String)] {
        var out: [(Int64, String, Date, Date, String)] = []
        for try await row in try await client.query(
            "SELECT id, name, started_at, heartbeat_at, summary FROM switchyard_hosts ORDER BY id", logger: logger
        ).decode((Int64, String, Date, Date, String).self) {
            out.append(row)
        }
        return out
    }

    // MARK: - Submits

    /// A submit to insert; `id` is allocated beforehand (`allocateIDs`), so a
    /// retried insert after a lost reply does not create the task twice.
    struct NewTask: Sendable {
        var record: TaskRecord
    }

    enum Inserted: Sendable, Equatable {
        case created(TaskID)
        /// A live task holds the unique key.
        case existing(TaskID)
        /// The live task holding the unique key finished meanwhile: insert again.
        case retry
    }

    func allocateIDs(_ count: Int) async throws -> [TaskID] {
        var ids: [TaskID] = []
        ids.reserveCapacity(count)
        for try await id in try await client.query(
            "SELECT nextval('switchyard_tasks_id_seq') FROM generate_series(1, \(count))", logger: logger
        ).decode(Int64.self) {
            ids.append(TaskID(bitPattern: id))
        }
        return ids
    }

    /// Inserts `tasks` (ids already set) in one statement; one answer per task, in order.
    func insert(_ tasks: [TaskRecord]) async throws -> [Inserted] {
        guard !tasks.isEmpty else { return [] }
        let ids = tasks.map { Int64(bitPattern: $0.id) }
        let keys = tasks.map { $0.key.map { ByteBuffer(string: $0) } ?? ByteBuffer() }
        let uniqueKeys = tasks.map { $0.uniqueKey.map { ByteBuffer(string: $0) } ?? ByteBuffer() }
        let rows = try await client.query(
            """
            INSERT INTO switchyard_tasks (id, state, handler, priority, key, unique_key, attempts, max_attempts,
                timeout_ms, run_at, created_at, started_at, finished_at, payload, submitter)
            SELECT u.id, u.state, u.handler, u.priority, CASE WHEN u.has_key THEN u.key END,
                CASE WHEN u.has_unique THEN u.unique_key END, 0, u.max_attempts, u.timeout_ms, u.run_at, u.created_at,
                0, 0, u.payload, CASE WHEN u.has_submitter THEN u.submitter END
            FROM unnest(\(ids)::bigint[], \(tasks.map { Int16($0.state.rawValue) })::smallint[],
                \(tasks.map(\.handler))::text[], \(tasks.map(\.priority))::integer[], \(keys)::bytea[],
                \(tasks.map { $0.key != nil })::boolean[], \(uniqueKeys)::bytea[],
                \(tasks.map { $0.uniqueKey != nil })::boolean[], \(tasks.map { Int32($0.maxAttempts) })::integer[],
                \(tasks.map { Int64($0.timeoutMillis) })::bigint[], \(tasks.map(\.runAt))::bigint[],
                \(tasks.map(\.createdAt))::bigint[], \(tasks.map(\.payload))::bytea[],
                \(tasks.map { $0.submitter ?? "" })::text[], \(tasks.map { $0.submitter != nil })::boolean[])
                AS u(id, state, handler, priority, key, has_key, unique_key, has_unique, max_attempts, timeout_ms,
                    run_at, created_at, payload, submitter, has_submitter)
            ON CONFLICT DO NOTHING
            RETURNING id
            """, logger: logger)
        var inserted = Set<Int64>()
        for try await id in rows.decode(Int64.self) { inserted.insert(id) }
        if inserted.count == tasks.count { return tasks.map { .created($0.id) } }
        // Not inserted: either an earlier try of this same insert stored it (its
        // reply was lost), or a live task holds its unique key.
        let missing = ids.filter { !inserted.contains($0) }
        for try await id in try await client.query(
            "SELECT id FROM switchyard_tasks WHERE id = ANY(\(missing)::bigint[])", logger: logger
        ).decode(Int64.self) {
            inserted.insert(id)
        }
        let wanted = tasks.filter { !inserted.contains(Int64(bitPattern: $0.id)) }.compactMap(\.uniqueKey)
        var holders: [String: TaskID] = [:]
        if !wanted.isEmpty {
            for try await (id, key) in try await client.query(
                """
                SELECT id, unique_key FROM switchyard_tasks
                WHERE unique_key = ANY(\(wanted.map { ByteBuffer(string: $0) })::bytea[])
                    AND state IN \(unescaped: PostgresSchema.unfinishedStates)
                """, logger: logger
            ).decode((Int64, ByteBuffer).self) {
                holders[String(buffer: key)] = TaskID(bitPattern: id)
            }
        }
        return tasks.map { task in
            if inserted.contains(Int64(bitPattern: task.id)) { return .created(task.id) }
            if let key = task.uniqueKey, let holder = holders[key] { return .existing(holder) }
            return .retry
        }
    }

    // MARK: - Claims and changes

    /// Claims up to `limit` runnable tasks of `handlers` for host `host`, highest priority
    /// first, oldest first within one: they become `running` with the attempt
    /// counted and `owner = host`. Rows another host is claiming at the same
    /// moment are skipped, not waited for.
    /// What a claim took, and, when it took fewer than it asked for, when the
    /// next task it could take comes due (nil: none is waiting).
    struct Claim {
        var records: [TaskRecord]
        var nextRunAt: EpochMillis?
    }

    func claim(host: Int64, limit: Int, handlers: [String], now: EpochMillis) async throws -> Claim {
        guard limit > 0 else { return Claim(records: [], nextRunAt: nil) }
        let rows = try await client.query(
            """
            WITH picked AS (
                SELECT id FROM switchyard_tasks
                WHERE owner IS NULL AND state IN \(unescaped: PostgresSchema.claimableStates) AND run_at <= \(now)
                    AND handler = ANY(\(handlers)::text[])
                ORDER BY priority DESC, id
                LIMIT \(Int64(limit))
                FOR UPDATE SKIP LOCKED
            )
            UPDATE switchyard_tasks t SET owner = \(host), state = 2, attempts = t.attempts + 1, started_at = \(now)
            FROM picked WHERE t.id = picked.id
            RETURNING \(unescaped: Self.columns("t"))
            """, logger: logger)
        var records: [TaskRecord] = []
        records.reserveCapacity(limit)
        for try await row in rows { records.append(try decode(row)) }
        records.sort { ($0.priority, -Int64(bitPattern: $0.id)) > ($1.priority, -Int64(bitPattern: $1.id)) }
        guard records.count < limit else { return Claim(records: records, nextRunAt: nil) }
        // Short: nothing else is runnable now. Delayed tasks and retries come
        // due without a notification, so say when the next one does.
        var nextRunAt: EpochMillis?
        for try await due in try await client.query(
            """
            SELECT min(run_at) FROM switchyard_tasks
            WHERE owner IS NULL AND state IN \(unescaped: PostgresSchema.claimableStates) AND run_at > \(now)
                AND handler = ANY(\(handlers)::text[])
            """, logger: logger
        ).decode(Int64?.self) {
            nextRunAt = due
        }
        return Claim(records: records, nextRunAt: nextRunAt)
    }

    /// Writes the changes of tasks host `host` holds, in one statement, and
    /// notifies the ids that became final. Inserts are not expected here
    /// (submits go through `insert`). Returns the ids whose row this host no
    /// longer owns: their change was not written.
    ///
    /// A change to a waiting state (scheduled, failed: a retry after a pause)
    /// also gives the task up (`owner = NULL`), so any host may run the retry;
    /// if a cancel was asked for meanwhile, the task ends cancelled instead.
    func apply(host: Int64, _ changes: [StoreChange], now: EpochMillis) async throws -> [TaskID] {
        // One row per task, its last change (each carries the whole state):
        // UPDATE ... FROM applies only one of several joined rows, any one.
        var updates: [TaskUpdate] = []
        var position: [TaskID: Int] = [:]
        updates.reserveCapacity(changes.count)
        for change in changes {
            let update: TaskUpdate
            switch change {
            case .update(let changed): update = changed
            case .insert(let record): update = TaskUpdate(record)
            }
            if let at = position[update.id] {
                updates[at] = update
            } else {
                position[update.id] = updates.count
                updates.append(update)
            }
        }
        guard !updates.isEmpty else { return [] }
        let ids = updates.map { Int64(bitPattern: $0.id) }
        let rows = try await client.query(
            """
            UPDATE switchyard_tasks t SET
                state = CASE WHEN t.cancel_requested AND u.state IN (4, 7) THEN 6 ELSE u.state END,
                attempts = u.attempts, run_at = u.run_at, started_at = u.started_at,
                finished_at = CASE WHEN t.cancel_requested AND u.state IN (4, 7) THEN \(now) ELSE u.finished_at END,
                error_code = CASE WHEN t.cancel_requested AND u.state IN (4, 7) THEN \(Int32(ErrorCode.cancelled.rawValue))
                    ELSE NULLIF(u.error_code, -1) END,
                error_message = CASE WHEN t.cancel_requested AND u.state IN (4, 7) THEN 'task ' || t.id || ' was cancelled'
                    WHEN u.has_message THEN u.error_message END,
                result = CASE WHEN u.has_result THEN u.result END,
                payload = CASE WHEN u.state IN \(unescaped: PostgresSchema.finalStates) OR (t.cancel_requested AND u.state IN (4, 7))
                    THEN ''::bytea ELSE t.payload END,
                owner = CASE WHEN u.state IN (4, 7) THEN NULL ELSE t.owner END
            FROM unnest(\(ids)::bigint[], \(updates.map { Int16($0.state.rawValue) })::smallint[],
                \(updates.map { Int32($0.attempts) })::integer[], \(updates.map(\.runAt))::bigint[],
                \(updates.map(\.startedAt))::bigint[], \(updates.map(\.finishedAt))::bigint[],
                \(updates.map { $0.errorCode.map { Int32($0.rawValue) } ?? -1 })::integer[],
                \(updates.map { Self.text($0.errorMessage ?? "") })::text[], \(updates.map { $0.errorMessage != nil })::boolean[],
                \(updates.map { $0.result ?? ByteBuffer() })::bytea[], \(updates.map { $0.result != nil })::boolean[])
                AS u(id, state, attempts, run_at, started_at, finished_at, error_code, error_message, has_message,
                    result, has_result)
            WHERE t.id = u.id AND t.owner = \(host)
            RETURNING t.id, t.state
            """, logger: logger)
        var written = Set<Int64>()
        var finished: [Int64] = []
        var givenBack = false
        for try await (id, state) in rows.decode((Int64, Int16).self) {
            written.insert(id)
            let state = TaskState(rawValue: UInt8(clamping: state))
            if state?.isFinal == true { finished.append(id) }
            if state == .failed || state == .scheduled { givenBack = true }
        }
        try await notifyFinished(finished.map { TaskID(bitPattern: $0) })
        // A retry given back is claimable (at once, or at its run-at time):
        // hosts that found nothing to claim look again.
        if givenBack { try await notifyWork() }
        return ids.filter { !written.contains($0) }.map { TaskID(bitPattern: $0) }
    }

    /// Tells every host's waiting clients that these tasks finished (`d1,2,3`,
    /// in payloads under PostgreSQL's 8000-byte limit).
    func notifyFinished(_ ids: [TaskID]) async throws {
        guard !ids.isEmpty else { return }
        var payloads: [String] = []
        var current = "d"
        for id in ids {
            let text = String(id)
            if current.utf8.count + text.utf8.count + 1 > 7_900 {
                payloads.append(current)
                current = "d"
            }
            current += current.count == 1 ? text : "," + text
        }
        payloads.append(current)
        try await execute(
            "SELECT pg_notify('switchyard', p) FROM unnest(\(payloads)::text[]) AS p", logger: logger)
    }

    /// Wakes idle hosts (tasks became claimable without an insert: a rescue).
    func notifyWork() async throws {
        try await execute("SELECT pg_notify('switchyard', 'w')", logger: logger)
    }

    /// Gives back tasks host `host` claimed but did not start (at shutdown, or
    /// when its workers went away): they become claimable at once, and the
    /// attempt the claim counted is taken back.
    func release(host: Int64, _ ids: [TaskID]) async throws {
        guard !ids.isEmpty else { return }
        try await execute(
            """
            UPDATE switchyard_tasks SET owner = NULL, state = 1,
                attempts = CASE WHEN state = 2 THEN greatest(attempts - 1, 0) ELSE attempts END
            WHERE id = ANY(\(ids.map { Int64(bitPattern: $0) })::bigint[]) AND owner = \(host)
                AND state IN \(unescaped: PostgresSchema.unfinishedStates)
            """, logger: logger)
        try await notifyWork()
    }

    // MARK: - Cancel

    enum CancelOutcome: Sendable {
        /// It was waiting for a host: cancelled now.
        case cancelled(TaskRecord)
        /// A host holds it: that host was asked to cancel it.
        case requested(TaskRecord, owner: Int64)
        case alreadyFinished(TaskRecord)
        case unknown
    }

    func cancel(_ id: TaskID, now: EpochMillis) async throws -> CancelOutcome {
        let raw = Int64(bitPattern: id)
        var cancelled: [TaskRecord] = []
        for try await row in try await client.query(
            """
            UPDATE switchyard_tasks SET state = 6, finished_at = \(now), error_code = \(Int32(ErrorCode.cancelled.rawValue)),
                error_message = \("task \(id) was cancelled"), payload = ''::bytea
            WHERE id = \(raw) AND owner IS NULL AND state IN \(unescaped: PostgresSchema.claimableStates)
            RETURNING \(unescaped: Self.columns(""))
            """, logger: logger)
        {
            cancelled.append(try decode(row))
        }
        if let record = cancelled.first {
            try await notifyFinished([id])
            return .cancelled(record)
        }
        var held: [(TaskRecord, Int64?)] = []
        for try await row in try await client.query(
            """
            UPDATE switchyard_tasks SET cancel_requested = true
            WHERE id = \(raw) AND owner IS NOT NULL AND state IN \(unescaped: PostgresSchema.unfinishedStates)
            RETURNING \(unescaped: Self.columns(""))
            """, logger: logger)
        {
            held.append(try decodeWithOwner(row))
        }
        if let (record, owner) = held.first {
            try await execute("SELECT pg_notify('switchyard', \("c\(id)"))", logger: logger)
            return .requested(record, owner: owner ?? 0)
        }
        guard let record = try await fetch(id) else { return .unknown }
        return record.state.isFinal ? .alreadyFinished(record) : .unknown
    }

    // MARK: - Reads

    func fetch(_ id: TaskID) async throws -> TaskRecord? {
        try await fetch([id]).first
    }

    func fetch(_ ids: [TaskID]) async throws -> [TaskRecord] {
        guard !ids.isEmpty else { return [] }
        var records: [TaskRecord] = []
        for try await row in try await client.query(
            """
            SELECT \(unescaped: Self.columns("")) FROM switchyard_tasks
            WHERE id = ANY(\(ids.map { Int64(bitPattern: $0) })::bigint[])
            """, logger: logger)
        {
            records.append(try decode(row))
        }
        return records
    }

    func list(_ query: TaskListQuery) async throws -> [TaskRecord] {
        guard query.limit > 0 else { return [] }
        var sql = PostgresQuery(
            unsafeSQL: "SELECT \(Self.columns("")) FROM switchyard_tasks WHERE id > $1")
        sql.binds.append(Int64(bitPattern: query.afterID))
        if let state = query.state {
            sql.binds.append(Int16(state.rawValue))
            sql.sql += " AND state = $\(sql.binds.count)"
        }
        if let handler = query.handler {
            sql.binds.append(handler)
            sql.sql += " AND handler = $\(sql.binds.count)"
        }
        sql.binds.append(Int64(query.limit))
        sql.sql += " ORDER BY id LIMIT $\(sql.binds.count)"
        var records: [TaskRecord] = []
        for try await row in try await client.query(sql, logger: logger) {
            var record = try decode(row)
            record.payload = ByteBuffer()
            records.append(record)
        }
        return records
    }

    /// Deletes final tasks that finished before `cutoff`; returns how many.
    func prune(finishedBefore cutoff: EpochMillis) async throws -> Int {
        var count = 0
        for try await _ in try await client.query(
            """
            DELETE FROM switchyard_tasks WHERE state IN \(unescaped: PostgresSchema.finalStates)
                AND finished_at < \(cutoff) RETURNING id
            """, logger: logger)
        {
            count += 1
        }
        return count
    }

    /// Runs a statement and reads its reply to the end: a reply left unread
    /// keeps its pooled connection leased (the pool ran dry that way).
    func execute(_ query: PostgresQuery, logger: Logger) async throws {
        for try await _ in try await client.query(query, logger: logger) {}
    }

    // MARK: - Rows

    /// Every column `decode` reads, in order, optionally qualified by a table alias.
    static func columns(_ alias: String) -> String {
        let prefix = alias.isEmpty ? "" : alias + "."
        return [
            "id", "state", "handler", "priority", "key", "unique_key", "attempts", "max_attempts", "timeout_ms",
            "run_at", "created_at", "started_at", "finished_at", "error_code", "error_message", "payload", "result",
            "owner", "submitter",
        ].map { prefix + $0 }.joined(separator: ", ")
    }

    /// PostgreSQL text cannot hold a NUL byte: it is replaced by U+FFFD.
    static func text(_ string: String) -> String {
        string.utf8.contains(0) ? string.replacingOccurrences(of: "\0", with: "\u{FFFD}") : string
    }

    func decode(_ row: PostgresRow) throws -> TaskRecord {
        try decodeWithOwner(row).record
    }

    /// A row of `columns`, and the host holding the task (nil: none).
    func decodeWithOwner(_ row: PostgresRow) throws -> (record: TaskRecord, owner: Int64?) {
        let (
            id, state, handler, priority, key, uniqueKey, attempts, maxAttempts, timeout, runAt, createdAt,
            startedAt, finishedAt, errorCode, errorMessage, payload, result, owner, submitter
        ) = try row.decode(
            (
                Int64, Int16, String, Int32, ByteBuffer?, ByteBuffer?, Int32, Int32, Int64, Int64, Int64, Int64,
                Int64, Int32?, String?, ByteBuffer, ByteBuffer?, Int64?, String?
            ).self)
        let taskID = TaskID(bitPattern: id)
        guard let taskState = TaskState(rawValue: UInt8(clamping: state)), state >= 0, state <= 255 else {
            throw StoreError(
                "\(displayURL): task \(taskID) has state \(state), which this Switchyard does not know; the row was "
                    + "written by a newer Switchyard or changed by hand")
        }
        let record = TaskRecord(
            id: taskID, handler: handler, payload: payload, priority: priority,
            key: key.map { String(buffer: $0) }, uniqueKey: uniqueKey.map { String(buffer: $0) }, state: taskState,
            attempts: UInt32(clamping: attempts), maxAttempts: UInt32(clamping: maxAttempts),
            timeoutMillis: UInt32(clamping: timeout), runAt: runAt, createdAt: createdAt, startedAt: startedAt,
            finishedAt: finishedAt, errorCode: errorCode.map { ErrorCode(rawValue: UInt16(clamping: $0)) },
            errorMessage: errorMessage, result: result, submitter: submitter)
        return (record, owner)
    }
}
#endif
