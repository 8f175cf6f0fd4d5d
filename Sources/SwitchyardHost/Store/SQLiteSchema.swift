import Foundation
import GRDB
import NIOCore
import SwitchyardCore

/// The versioned layout of `tasks.sqlite`: the migrations that build it, the
/// markers that identify it, and the SQL the store runs against it.
///
/// Two markers say which layout a file has: GRDB's `grdb_migrations` table
/// (one row per applied migration identifier) and `PRAGMA user_version` (the
/// layout version the last migration wrote). A file with an identifier this
/// code does not know, or a larger `user_version`, was written by a newer
/// Switchyard and is refused rather than misread.
struct SQLiteSchema: Sendable {
    /// One step of the layout, applied once, in a transaction, in order.
    struct Migration: Sendable {
        var identifier: String
        var apply: @Sendable (Database) throws -> Void
    }

    var migrations: [Migration]
    /// The `PRAGMA user_version` the last migration writes.
    var version: Int32

    /// `PRAGMA application_id` of a Switchyard task store: "SWYD".
    static let applicationID: Int32 = 0x5357_5944

    /// The layout this code writes and reads.
    static let current = SQLiteSchema(
        migrations: [
            Migration(identifier: "v1-tasks", apply: createTasksV1),
            Migration(identifier: "v2-submitter", apply: addSubmitterV2),
        ],
        version: 2)

    /// This layout plus a migration that changes nothing but is unknown to
    /// `current`: what a newer Switchyard leaves behind (tests).
    func appendingNoOpMigration(_ identifier: String) -> SQLiteSchema {
        var schema = self
        schema.migrations.append(Migration(identifier: identifier, apply: { _ in }))
        return schema
    }

    var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for migration in migrations {
            // No foreign keys in this schema: skip GRDB's deferred foreign key check.
            migrator.registerMigration(migration.identifier, foreignKeyChecks: .immediate, migrate: migration.apply)
        }
        return migrator
    }

    /// Version 1: one narrow `tasks` table and a `meta` table.
    ///
    /// Column order puts the fixed-size columns first and the two BLOBs last,
    /// so reading a row's small fields never walks a large payload's overflow
    /// pages. `STRICT` makes SQLite enforce the declared types, so what
    /// decoding reads back is what was written.
    ///
    /// Indexes, each chosen for one reader and kept few because every index
    /// is extra work on the commit path:
    /// - `tasks_by_state (state)`: `open()` (the non-final states) and
    ///   `list` by state. SQLite appends the rowid (`id`) to every index
    ///   entry, so this serves `state = ? AND id > ? ORDER BY id` directly.
    /// - `tasks_by_handler (handler)`: `list` by handler, likewise in id
    ///   order; written at insert and delete only (a handler never changes).
    /// - `tasks_final_by_finished_at (finished_at) WHERE state = 3 OR state = 5
    ///   OR state = 6`: `prune`; partial, so only final tasks are in it. The
    ///   condition is spelled with `OR`, not `IN (3, 5, 6)`: SQLite evaluates
    ///   it on every insert and update, and compiles an `IN` list of three
    ///   constants into a temporary B-tree built per execution, which cost
    ///   about a third of the time of a commit.
    ///
    /// `meta.max_id` is the largest task id ever inserted: `prune` may delete
    /// the rows with the largest ids, and ids must never be reused.
    @Sendable static func createTasksV1(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE tasks (
                    id INTEGER PRIMARY KEY,
                    state INTEGER NOT NULL,
                    handler TEXT NOT NULL,
                    priority INTEGER NOT NULL,
                    key TEXT,
                    unique_key TEXT,
                    attempts INTEGER NOT NULL,
                    max_attempts INTEGER NOT NULL,
                    timeout_ms INTEGER NOT NULL,
                    run_at INTEGER NOT NULL,
                    created_at INTEGER NOT NULL,
                    started_at INTEGER NOT NULL,
                    finished_at INTEGER NOT NULL,
                    error_code INTEGER,
                    error_message TEXT,
                    payload BLOB NOT NULL,
                    result BLOB
                ) STRICT;
                CREATE INDEX tasks_by_state ON tasks(state);
                CREATE INDEX tasks_by_handler ON tasks(handler);
                CREATE INDEX tasks_final_by_finished_at ON tasks(finished_at) WHERE state = 3 OR state = 5 OR state = 6;
                CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) STRICT, WITHOUT ROWID;
                INSERT INTO meta (name, value) VALUES ('max_id', 0);
                PRAGMA application_id = \(applicationID);
                PRAGMA user_version = 1;
                """)
    }

    /// Version 2: who submitted each task (`TaskRecord.submitter`), so that a
    /// client with the submit role may cancel its own tasks after a restart
    /// too. NULL for tasks stored before, which only an admin may cancel.
    @Sendable static func addSubmitterV2(_ db: Database) throws {
        try db.execute(
            sql: """
                ALTER TABLE tasks ADD COLUMN submitter TEXT;
                PRAGMA user_version = 2;
                """)
    }

    // MARK: - Statements

    /// The states `open()` returns; must match `TaskState.isFinal` (and the
    /// partial index's condition for the final ones).
    static let unfinishedStates: [TaskState] = TaskState.allCases.filter { !$0.isFinal }

    /// Every column, in the order `insertSQL` writes them.
    static let columns = """
        id, state, handler, priority, key, unique_key, attempts, max_attempts, timeout_ms, \
        run_at, created_at, started_at, finished_at, error_code, error_message, payload, result, submitter
        """

    /// Every column, in the order `decodeRecord` reads them. Text columns are
    /// read as their bytes (`CAST(... AS BLOB)`): GRDB reads text up to the
    /// first NUL byte, and a key may contain one.
    static let selectColumns = """
        id, state, CAST(handler AS BLOB), priority, CAST(key AS BLOB), CAST(unique_key AS BLOB), attempts, \
        max_attempts, timeout_ms, run_at, created_at, started_at, finished_at, error_code, \
        CAST(error_message AS BLOB), payload, result, CAST(submitter AS BLOB)
        """

    /// Two details of binding shape these statements:
    /// - A zero-length BLOB is bound as NULL by SQLite (`sqlite3_bind_blob`
    ///   with no bytes), so the SQL turns a NULL payload back into `x''`, and a
    ///   result is stored as `x''` when its flag says it is present but empty.
    /// - GRDB binds text up to the first NUL byte, so a string that contains
    ///   one is bound as its UTF-8 bytes and `CAST(? AS TEXT)` stores all of
    ///   them as text (see `text(_:)`).
    static let insertSQL = """
        INSERT INTO tasks (\(columns))
        VALUES (?, ?, CAST(? AS TEXT), ?, CAST(? AS TEXT), CAST(? AS TEXT), ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS TEXT), \
        coalesce(?, x''), CASE WHEN ? THEN coalesce(?, x'') END, CAST(? AS TEXT))
        """

    /// An update to a state that is not final: the payload stays.
    static let updateSQL = """
        UPDATE tasks SET state = ?, attempts = ?, run_at = ?, started_at = ?, finished_at = ?, error_code = ?, \
        error_message = CAST(? AS TEXT), result = CASE WHEN ? THEN coalesce(?, x'') END WHERE id = ?
        """

    /// An update to a final state: the payload is no longer needed and is
    /// replaced by an empty BLOB in the same write.
    static let updateToFinalSQL = """
        UPDATE tasks SET state = ?, attempts = ?, run_at = ?, started_at = ?, finished_at = ?, error_code = ?, \
        error_message = CAST(? AS TEXT), result = CASE WHEN ? THEN coalesce(?, x'') END, payload = x'' WHERE id = ?
        """

    static let fetchSQL = "SELECT \(selectColumns) FROM tasks WHERE id = ?"

    static let unfinishedSQL = """
        SELECT \(selectColumns) FROM tasks \
        WHERE state IN (\(unfinishedStates.map { String($0.rawValue) }.joined(separator: ", "))) ORDER BY id
        """

    /// The partial index's condition, word for word: `state = 3 OR state = 5 OR state = 6`.
    static let finalStatesSQL = TaskState.allCases.filter(\.isFinal).map { "state = \($0.rawValue)" }
        .joined(separator: " OR ")

    /// Without statistics SQLite would pick `tasks_by_state` and visit every
    /// final task; `INDEXED BY` pins the partial index (a range on
    /// `finished_at`), and makes preparing the statement fail loudly should
    /// the condition ever stop matching the index's.
    static let pruneSQL = """
        DELETE FROM tasks INDEXED BY tasks_final_by_finished_at WHERE (\(finalStatesSQL)) AND finished_at < ?
        """

    static let readMaxIDSQL = "SELECT value FROM meta WHERE name = 'max_id'"
    static let writeMaxIDSQL = "UPDATE meta SET value = ? WHERE name = 'max_id'"

    /// `list`: one statement per combination of filters, each cached.
    static func listSQL(byState: Bool, byHandler: Bool) -> String {
        var conditions = ["id > ?"]
        if byState { conditions.append("state = ?") }
        if byHandler { conditions.append("handler = CAST(? AS TEXT)") }
        return "SELECT \(selectColumns) FROM tasks WHERE \(conditions.joined(separator: " AND ")) ORDER BY id LIMIT ?"
    }

    // MARK: - Binding and decoding

    static func blob(_ buffer: ByteBuffer) -> Data {
        Data(buffer.readableBytesView)
    }

    /// A string to bind where the SQL says `CAST(? AS TEXT)`: the string
    /// itself, or its UTF-8 bytes when it contains a NUL byte (which GRDB's
    /// text binding would cut off). An empty string stays a string: empty
    /// bytes would bind as NULL.
    static func text(_ string: String) -> any DatabaseValueConvertible {
        string.utf8.contains(0) ? Data(string.utf8) : string
    }

    /// The arguments of `insertSQL`. A task inserted in a final state is
    /// stored without its payload, as an update to a final state would.
    static func insertArguments(_ record: TaskRecord) -> StatementArguments {
        let payload: Data = record.state.isFinal ? Data() : blob(record.payload)
        return [
            Int64(bitPattern: record.id), Int64(record.state.rawValue), text(record.handler), Int64(record.priority),
            record.key.map(text), record.uniqueKey.map(text), Int64(record.attempts), Int64(record.maxAttempts),
            Int64(record.timeoutMillis), record.runAt, record.createdAt, record.startedAt, record.finishedAt,
            record.errorCode.map { Int64($0.rawValue) }, record.errorMessage.map(text),
            payload, record.result != nil, record.result.map(blob), record.submitter.map(text),
        ]
    }

    /// The arguments of `updateSQL` and `updateToFinalSQL`.
    static func updateArguments(_ update: TaskUpdate) -> StatementArguments {
        [
            Int64(update.state.rawValue), Int64(update.attempts), update.runAt, update.startedAt, update.finishedAt,
            update.errorCode.map { Int64($0.rawValue) }, update.errorMessage.map(text),
            update.result != nil, update.result.map(blob), Int64(bitPattern: update.id),
        ]
    }

    /// Reads one row of `columns`. Values that do not fit the model (a state
    /// this code does not know, a negative attempt count) throw a
    /// `StoreError` naming the file and the task instead of trapping.
    static func decodeRecord(_ row: Row, path: String) throws -> TaskRecord {
        let rawID = try row.decode(Int64.self, atIndex: 0)
        let id = TaskID(bitPattern: rawID)

        func integer<T: FixedWidthInteger>(_ index: Int, _ column: String, as type: T.Type = T.self) throws -> T {
            let value = try row.decode(Int64.self, atIndex: index)
            guard let converted = T(exactly: value) else {
                throw StoreError(
                    "\(path): task \(id) has \(column) = \(value), which does not fit; the file was changed "
                        + "outside Switchyard or is damaged. Move it aside (with its -wal and -shm files) or restore a backup.")
            }
            return converted
        }
        // The Data handed to these closures borrows SQLite's memory; it is
        // copied once, into the ByteBuffer or String, before the closure returns.
        func bytes(_ index: Int) throws -> ByteBuffer? {
            try row.withUnsafeData(atIndex: index) { data in data.map { ByteBuffer(bytes: $0) } }
        }
        func string(_ index: Int) throws -> String? {
            try row.withUnsafeData(atIndex: index) { data in data.map { String(decoding: $0, as: UTF8.self) } }
        }

        let rawState: UInt8 = try integer(1, "state")
        guard let state = TaskState(rawValue: rawState) else {
            throw StoreError(
                "\(path): task \(id) has state \(rawState), which this Switchyard does not know; the file was "
                    + "written by a newer Switchyard or changed by hand. Run the newer Switchyard, or move the file aside.")
        }
        let errorCode: ErrorCode?
        if try row.decode(Int64?.self, atIndex: 13) == nil {
            errorCode = nil
        } else {
            errorCode = ErrorCode(rawValue: try integer(13, "error_code"))
        }
        return TaskRecord(
            id: id,
            handler: try string(2) ?? "",
            payload: try bytes(15) ?? ByteBuffer(),
            priority: try integer(3, "priority"),
            key: try string(4),
            uniqueKey: try string(5),
            state: state,
            attempts: try integer(6, "attempts"),
            maxAttempts: try integer(7, "max_attempts"),
            timeoutMillis: try integer(8, "timeout_ms"),
            runAt: try row.decode(Int64.self, atIndex: 9),
            createdAt: try row.decode(Int64.self, atIndex: 10),
            startedAt: try row.decode(Int64.self, atIndex: 11),
            finishedAt: try row.decode(Int64.self, atIndex: 12),
            errorCode: errorCode,
            errorMessage: try string(14),
            result: try bytes(16),
            submitter: try string(17))
    }
}
