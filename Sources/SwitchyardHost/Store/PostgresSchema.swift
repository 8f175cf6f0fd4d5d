#if PostgreSQL
import Logging
import PostgresNIO
import SwitchyardCore

/// The versioned layout of a shared queue in PostgreSQL: the migrations that
/// build it, in order, and the check that refuses a layout newer than this
/// code knows.
///
/// `switchyard_schema` holds one row per applied migration. Migrations run
/// in one transaction under an advisory lock, so hosts that start together
/// against an empty database do not race: the first applies them, the others
/// wait and then find nothing to do.
struct PostgresSchema: Sendable {
    struct Migration: Sendable {
        var version: Int32
        var description: String
        var statements: [String]
    }

    var migrations: [Migration]

    /// The newest version this code knows.
    var version: Int32 { migrations.last?.version ?? 0 }

    /// Key of the advisory lock migrations hold ("SWYD" and issue 9).
    static let migrationLock: Int64 = 0x5357_5944_0000_0009

    static let current = PostgresSchema(migrations: [
        Migration(version: 1, description: "tasks, hosts, wake-up trigger", statements: version1)
    ])

    /// This layout plus a version that changes nothing: what a newer Switchyard leaves behind (tests).
    func appendingNoOpVersion() -> PostgresSchema {
        var schema = self
        schema.migrations.append(Migration(version: version + 1, description: "a future layout", statements: []))
        return schema
    }

    /// The state codes, as `TaskState` has them.
    static let queued = TaskState.queued.rawValue
    static let running = TaskState.running.rawValue
    static let finalStates = "(3, 5, 6)"
    static let unfinishedStates = "(1, 2, 4, 7)"
    /// States a task may be claimed in when its owner is NULL and its time has come.
    static let claimableStates = "(1, 4, 7)"

    /// Version 1.
    ///
    /// `switchyard_tasks` has the columns of the SQLite store plus `owner`
    /// (the id of the host holding the task, NULL while no host does) and
    /// `cancel_requested` (a cancel asked on another host while this one runs
    /// it). `submitter`, as in SQLite's version 2, is the fingerprint of the
    /// token that submitted the task (NULL without `--auth`): every host
    /// checks it before a `submit`-role client cancels. Keys are `bytea`, so any bytes round-trip; ids come from the
    /// table's sequence, shared by every host.
    ///
    /// Indexes, one per reader:
    /// - `switchyard_tasks_claimable (priority DESC, id)`, partial on the
    ///   claimable rows: the claim query walks it in order, so claiming is
    ///   cheap however many tasks have finished.
    /// - `switchyard_tasks_live_unique (unique_key)`, unique and partial on
    ///   the unfinished rows: a unique key is held by at most one live task
    ///   across every host, enforced by the database.
    /// - `switchyard_tasks_held (owner)`, partial on the unfinished rows:
    ///   rescue and the heartbeat's cancel check.
    /// - `switchyard_tasks_by_state (state, id)`: `tasks --state`.
    /// - `switchyard_tasks_final (finished_at)`, partial on the final rows: pruning.
    ///
    /// `switchyard_hosts` has one row per live host; its `lease_until` is the
    /// lease of every task the host holds, renewed by the host's heartbeat.
    ///
    /// A statement-level trigger notifies channel `switchyard` with payload
    /// `w` after every insert, so idle hosts wake up, also for tasks inserted
    /// by hand with SQL.
    static let version1: [String] = [
        """
        CREATE TABLE switchyard_tasks (
            id bigserial PRIMARY KEY,
            state smallint NOT NULL,
            handler text NOT NULL,
            priority integer NOT NULL,
            key bytea,
            unique_key bytea,
            attempts integer NOT NULL,
            max_attempts integer NOT NULL,
            timeout_ms bigint NOT NULL,
            run_at bigint NOT NULL,
            created_at bigint NOT NULL,
            started_at bigint NOT NULL,
            finished_at bigint NOT NULL,
            error_code integer,
            error_message text,
            owner bigint,
            cancel_requested boolean NOT NULL DEFAULT false,
            payload bytea NOT NULL,
            result bytea,
            submitter text
        )
        """,
        """
        CREATE INDEX switchyard_tasks_claimable ON switchyard_tasks (priority DESC, id)
            WHERE owner IS NULL AND state IN \(claimableStates)
        """,
        // When the next delayed task comes due (a host that found nothing to
        // claim sets a timer for it).
        """
        CREATE INDEX switchyard_tasks_due ON switchyard_tasks (run_at)
            WHERE owner IS NULL AND state IN \(claimableStates)
        """,
        """
        CREATE UNIQUE INDEX switchyard_tasks_live_unique ON switchyard_tasks (unique_key)
            WHERE unique_key IS NOT NULL AND state IN \(unfinishedStates)
        """,
        "CREATE INDEX switchyard_tasks_held ON switchyard_tasks (owner) WHERE state IN \(unfinishedStates)",
        "CREATE INDEX switchyard_tasks_by_state ON switchyard_tasks (state, id)",
        "CREATE INDEX switchyard_tasks_final ON switchyard_tasks (finished_at) WHERE state IN \(finalStates)",
        """
        CREATE TABLE switchyard_hosts (
            id bigserial PRIMARY KEY,
            name text NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            heartbeat_at timestamptz NOT NULL DEFAULT now(),
            lease_until timestamptz NOT NULL,
            summary text NOT NULL DEFAULT ''
        )
        """,
        """
        CREATE FUNCTION switchyard_wake() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('switchyard', 'w');
            RETURN NULL;
        END
        $$
        """,
        """
        CREATE TRIGGER switchyard_tasks_inserted AFTER INSERT ON switchyard_tasks
            FOR EACH STATEMENT EXECUTE FUNCTION switchyard_wake()
        """,
    ]

    /// Brings the database to this layout. Returns the version found and the
    /// version left. Throws `StoreError` when a newer Switchyard migrated it.
    func migrate(_ client: PostgresClient, logger: Logger, describe: String) async throws -> (from: Int32, to: Int32) {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS switchyard_schema (
                    version integer PRIMARY KEY,
                    description text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """, logger: logger)
            var found: Int32 = 0
            for try await (version) in try await connection.query(
                "SELECT coalesce(max(version), 0)::integer FROM switchyard_schema", logger: logger
            ).decode(Int32.self) {
                found = version
            }
            try check(found: found, describe: describe)
            for migration in migrations where migration.version > found {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO switchyard_schema (version, description) VALUES (\(migration.version), \(migration.description))",
                    logger: logger)
                logger.info("\(describe): applied schema version \(migration.version) (\(migration.description))")
            }
            return (found, max(found, version))
        }
    }

    func check(found: Int32, describe: String) throws {
        guard found <= version else {
            throw StoreError(
                "\(describe) has Switchyard schema version \(found), but this switchyard \(SwitchyardHost.version) "
                    + "knows versions up to \(version): a newer Switchyard migrated it. Run the newer switchyard on "
                    + "this host too (every host sharing a database must know its schema), or point --store at another database")
        }
    }
}
#endif
