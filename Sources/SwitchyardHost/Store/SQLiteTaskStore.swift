import Foundation
import GRDB
import NIOConcurrencyHelpers
import NIOCore
import SwitchyardCore

/// A `TaskStore` in one SQLite file, `<directory>/tasks.sqlite`, in WAL mode,
/// written through GRDB.
///
/// - One connection (a GRDB `DatabaseQueue`) does every read and write; each
///   `commit` is one `BEGIN IMMEDIATE` transaction using cached prepared
///   statements.
/// - The layout is versioned with GRDB's `DatabaseMigrator`; a file written by
///   a newer Switchyard (a migration this code does not know, or a larger
///   `PRAGMA user_version`) is refused at `open()`, never misread.
/// - `<directory>/lock` is held with an exclusive `flock` from `open()` to
///   `close()`, so two servers cannot run on one data directory. SQLite's own
///   locking stays in its normal mode, so other processes (the `sqlite3`
///   shell, a backup) may still read the file while the server runs.
/// - Besides `tasks.sqlite`, SQLite keeps `tasks.sqlite-wal` and
///   `tasks.sqlite-shm` next to it while open; a copy or move of the store
///   takes all three (after `close()` the WAL is folded back into the file).
/// - When a task reaches a final state (succeeded, dead, cancelled) its
///   payload is no longer needed to run it: the update that makes it final
///   also replaces the stored payload with an empty BLOB, which keeps the file
///   small. `fetch` and `list` of a final task return an empty payload; its
///   result and error stay. A task inserted in a final state is stored without
///   its payload likewise.
/// - Task ids are stored as the `Int64` bit pattern of the `TaskID`; ids must
///   be below 2^63 (the host counts up from 1), which `commit` checks.
///
/// Calls come from one thread at a time (see `TaskStore`); a lock makes
/// concurrent calls safe anyway, one after the other.
public final class SQLiteTaskStore: TaskStore {
    /// How hard a commit pushes its data to the disk before returning.
    public enum Sync: String, CaseIterable, Sendable, CustomStringConvertible {
        /// fsync on every group commit (`PRAGMA synchronous=FULL`): an
        /// acknowledged submit survives power loss.
        case full
        /// WAL with `PRAGMA synchronous=NORMAL`: survives a crash of the
        /// process (kill -9), but the last commits may be lost on power loss
        /// or an OS crash.
        case normal

        /// The raw value, as `--sync` takes it: "full" or "normal".
        public var description: String { rawValue }
    }

    /// The data directory given at init.
    public let directory: String
    /// The database file, `<directory>/tasks.sqlite`.
    public let path: String
    /// How commits are synced.
    public let sync: Sync

    /// For logs and status: `sqlite <path> (sync=full)`.
    public var description: String { "sqlite \(path) (sync=\(sync.rawValue))" }

    private let schema: SQLiteSchema
    private let state = NIOLockedValueBox<Phase>(.notOpened)

    private enum Phase: Sendable {
        case notOpened
        case open(OpenStore)
        case closed
    }

    private struct OpenStore: Sendable {
        var database: DatabaseQueue
        var lock: DataDirectoryLock
        /// The largest id ever inserted, as `meta.max_id` holds it.
        var maxID: TaskID
    }

    /// A store for `directory`; nothing is touched on disk until `open()`.
    ///
    /// - Parameters:
    ///   - directory: The data directory; created (mode 0700) at `open()` if missing.
    ///   - sync: `full` or `normal`; see `Sync`.
    public convenience init(directory: String, sync: Sync) {
        self.init(directory: directory, sync: sync, schema: .current)
    }

    /// A store with another layout (tests simulate a newer Switchyard with it).
    init(directory: String, sync: Sync, schema: SQLiteSchema) {
        self.directory = directory
        self.path = directory.hasSuffix("/") ? directory + "tasks.sqlite" : directory + "/tasks.sqlite"
        self.sync = sync
        self.schema = schema
    }

    deinit {
        close()
    }

    // MARK: - TaskStore

    /// Prepares the data directory, takes its lock, opens (creating or
    /// migrating) `tasks.sqlite`, and returns every task that is not final
    /// (queued, running, failed, scheduled) in id order with its payload, and
    /// the largest id ever stored (also when `prune` deleted that task).
    ///
    /// Throws `StoreError` naming the path and the fix when the directory
    /// cannot be created or written, another server holds it, the file is not
    /// a Switchyard database or is damaged, or a newer Switchyard wrote it.
    /// After a failed `open()` nothing stays open and `open()` may be retried.
    public func open() throws -> (unfinished: [TaskRecord], maxID: TaskID) {
        try state.withLockedValue { phase in
            switch phase {
            case .notOpened: break
            case .open: throw StoreError("\(path) is already open in this store; open() is called once")
            case .closed: throw StoreError("\(path): this store was closed; make a new SQLiteTaskStore to open it again")
            }
            try DataDirectory.prepare(directory)
            let lock = try DataDirectoryLock.acquire(in: directory)
            var database: DatabaseQueue?
            do {
                try DataDirectory.checkDatabaseFile(path)
                let opened = try openDatabase()
                database = opened
                try checkAndMigrate(opened)
                let (unfinished, maxID) = try opened.read { db in
                    let records = try Row.fetchCursor(db.cachedStatement(sql: SQLiteSchema.unfinishedSQL))
                        .map { try SQLiteSchema.decodeRecord($0, path: self.path) }
                    return (try Array(records), try self.readMaxID(db))
                }
                phase = .open(OpenStore(database: opened, lock: lock, maxID: maxID))
                return (unfinished, maxID)
            } catch {
                try? database?.close()
                lock.release()
                throw storeError(error, doing: "opening")
            }
        }
    }

    /// Applies every change in one transaction, in order: all or none.
    ///
    /// An insert of an id that is already stored, and an update of an id that
    /// is not, are programming errors in the caller: the whole group is rolled
    /// back and a `StoreError` names the change. So are I/O failures (disk
    /// full, permissions); the store stays usable after any of them.
    public func commit(_ changes: [StoreChange]) throws {
        guard !changes.isEmpty else { return }
        try state.withLockedValue { phase in
            guard case .open(var store) = phase else { throw notOpenError() }
            var groupMaxID = store.maxID
            do {
                try store.database.writeWithoutTransaction { db in
                    try db.inTransaction(.immediate) {
                        var statements = GroupStatements(db: db)
                        for (index, change) in changes.enumerated() {
                            try apply(change, at: index, of: changes.count, &statements, maxID: &groupMaxID)
                        }
                        if groupMaxID > store.maxID {
                            let statement = try db.cachedStatement(sql: SQLiteSchema.writeMaxIDSQL)
                            statement.setUncheckedArguments([Int64(bitPattern: groupMaxID)])
                            try statement.execute()
                        }
                        return .commit
                    }
                }
            } catch {
                throw storeError(error, doing: "committing \(changes.count) change(s) (none were written) to")
            }
            store.maxID = groupMaxID
            phase = .open(store)
        }
    }

    /// One task's record, final or not; nil if unknown or pruned. A final
    /// task's payload is empty (see the type's documentation).
    public func fetch(_ id: TaskID) throws -> TaskRecord? {
        try withDatabase(doing: "reading task \(id) from") { database in
            try database.read { db in
                let statement = try db.cachedStatement(sql: SQLiteSchema.fetchSQL)
                return try Row.fetchCursor(statement, arguments: [Int64(bitPattern: id)])
                    .map { try SQLiteSchema.decodeRecord($0, path: self.path) }
                    .next()
            }
        }
    }

    /// Tasks with an id above `query.afterID` that match its state and handler
    /// filters, in id order, at most `query.limit` (none when it is 0 or less).
    public func list(_ query: TaskListQuery) throws -> [TaskRecord] {
        guard query.limit > 0 else { return [] }
        return try withDatabase(doing: "listing tasks in") { database in
            try database.read { db in
                let sql = SQLiteSchema.listSQL(byState: query.state != nil, byHandler: query.handler != nil)
                var arguments: StatementArguments = [Int64(bitPattern: query.afterID)]
                if let state = query.state { arguments += [Int64(state.rawValue)] }
                if let handler = query.handler { arguments += [SQLiteSchema.text(handler)] }
                arguments += [Int64(query.limit)]
                let rows = try Row.fetchCursor(db.cachedStatement(sql: sql), arguments: arguments)
                return try Array(rows.map { try SQLiteSchema.decodeRecord($0, path: self.path) })
            }
        }
    }

    /// Deletes the final tasks (succeeded, dead, cancelled) whose
    /// `finishedAt` is before `cutoff`, in one transaction; returns how many.
    /// Unfinished tasks are never deleted, and the largest id ever stored is
    /// kept (ids are never reused). Freed pages are reused by later inserts;
    /// the file does not shrink.
    public func prune(finishedBefore cutoff: EpochMillis) throws -> Int {
        try withDatabase(doing: "pruning") { database in
            try database.write { db in
                let statement = try db.cachedStatement(sql: SQLiteSchema.pruneSQL)
                statement.setUncheckedArguments([cutoff])
                try statement.execute()
                return db.changesCount
            }
        }
    }

    /// Closes the database and releases the data directory's lock. Later
    /// calls throw (`open()` too); closing twice does nothing.
    public func close() {
        state.withLockedValue { phase in
            if case .open(let store) = phase {
                // Lets SQLite refresh the statistics its planner uses, if worth it (cheap).
                try? store.database.writeWithoutTransaction { try $0.execute(sql: "PRAGMA optimize") }
                // Closing checkpoints the WAL into the main file. It fails only
                // if statements are still running, which the lock rules out;
                // GRDB closes the connection when the queue is released anyway.
                try? store.database.close()
                store.lock.release()
            }
            phase = .closed
        }
    }

    // MARK: - Test support

    /// `PRAGMA journal_mode` and `PRAGMA synchronous` as the open connection
    /// has them (tests check that the sync mode took effect).
    func effectivePragmas() throws -> (journalMode: String, synchronous: Int) {
        try withDatabase(doing: "reading pragmas of") { database in
            try database.writeWithoutTransaction { db in
                (
                    try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "",
                    try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
                )
            }
        }
    }

    // MARK: - Internals

    private func openDatabase() throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.label = "switchyard.store"
        configuration.foreignKeysEnabled = false
        // A reader such as the sqlite3 shell may hold a lock for a moment;
        // wait for it rather than fail a commit. Another server cannot be
        // the holder: the directory lock rules that out.
        configuration.busyMode = .timeout(5)
        // The journal mode and synchronous level are set here, per
        // connection, and not with `configuration.journalMode = .wal`: GRDB's
        // WAL setup would set synchronous=NORMAL after this closure ran.
        let sync = self.sync
        let path = self.path
        configuration.prepareDatabase { db in
            let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            guard mode == "wal" else {
                throw StoreError(
                    "\(path): SQLite could not switch to WAL mode (journal mode is \(mode ?? "unknown")); "
                        + "the file system may not support it (network file systems often do not): "
                        + "put the data directory on a local disk")
            }
            switch sync {
            case .full:
                try db.execute(sql: "PRAGMA synchronous = FULL")
                #if canImport(Darwin)
                // On Darwin, fsync does not flush the drive's cache; F_FULLFSYNC does.
                try db.execute(sql: "PRAGMA fullfsync = ON; PRAGMA checkpoint_fullfsync = ON")
                #endif
            case .normal:
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
            // After a large prune or burst, trim the WAL back to 64 MiB once it is checkpointed.
            try db.execute(sql: "PRAGMA journal_size_limit = 67108864")
        }
        return try DatabaseQueue(path: path, configuration: configuration)
    }

    /// Refuses files this code must not touch (another program's database, a
    /// newer layout), then applies the migrations this file lacks.
    private func checkAndMigrate(_ database: DatabaseQueue) throws {
        let migrator = schema.migrator
        try database.writeWithoutTransaction { db in
            let applicationID = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
            let fileVersion = try Int32.fetchOne(db, sql: "PRAGMA user_version") ?? 0
            let objects = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") ?? 0
            let isOurs = applicationID == SQLiteSchema.applicationID
            if !isOurs && (applicationID != 0 || objects > 0) {
                throw StoreError(
                    "\(path) is an SQLite database but not a Switchyard task store (application_id \(applicationID)): "
                        + "it belongs to another program. Move it out of the data directory, "
                        + "or choose another data directory (switchyard serve --data-dir DIR)")
            }
            let unknown = try migrator.appliedIdentifiers(db)
                .subtracting(schema.migrations.map(\.identifier))
            if fileVersion > schema.version || !unknown.isEmpty {
                let detail =
                    unknown.isEmpty
                    ? "schema version \(fileVersion); this one knows up to \(schema.version)"
                    : "migration(s) \(unknown.sorted().joined(separator: ", ")) that this one does not know"
                throw StoreError(
                    "\(path) was written by a newer Switchyard (\(detail)). Run that newer version on this data "
                        + "directory; an older one cannot read it safely. To start this version anyway, choose "
                        + "another data directory (switchyard serve --data-dir DIR); the tasks in this one stay there.")
            }
        }
        try migrator.migrate(database)
    }

    private func readMaxID(_ db: Database) throws -> TaskID {
        guard let raw = try Int64.fetchOne(db.cachedStatement(sql: SQLiteSchema.readMaxIDSQL)) else {
            throw StoreError(
                "\(path) has no max_id row in its meta table: the file was changed outside Switchyard. "
                    + "Move it aside (with its -wal and -shm files) or restore a backup.")
        }
        return TaskID(bitPattern: raw)
    }

    /// The statements of one group, each looked up in GRDB's statement cache
    /// at most once per group rather than once per change (the lookup hashes
    /// the SQL text).
    private struct GroupStatements {
        let db: Database
        private var insert: Statement?
        private var update: Statement?
        private var updateToFinal: Statement?

        init(db: Database) { self.db = db }

        mutating func forInsert() throws -> Statement {
            if let insert { return insert }
            let statement = try db.cachedStatement(sql: SQLiteSchema.insertSQL)
            insert = statement
            return statement
        }

        mutating func forUpdate(toFinal: Bool) throws -> Statement {
            if toFinal {
                if let updateToFinal { return updateToFinal }
                let statement = try db.cachedStatement(sql: SQLiteSchema.updateToFinalSQL)
                updateToFinal = statement
                return statement
            }
            if let update { return update }
            let statement = try db.cachedStatement(sql: SQLiteSchema.updateSQL)
            update = statement
            return statement
        }
    }

    /// One change of a group, inside the group's transaction.
    private func apply(
        _ change: StoreChange, at index: Int, of count: Int, _ statements: inout GroupStatements, maxID: inout TaskID
    ) throws {
        func fail(_ what: String) -> StoreError {
            StoreError(
                "\(path): change \(index + 1) of \(count) in a commit \(what); the whole group was rolled back")
        }
        switch change {
        case .insert(let record):
            guard record.id <= TaskID(Int64.max) else {
                throw fail("inserts task id \(record.id), above the store's limit 2^63-1 (a bug in the caller)")
            }
            let statement = try statements.forInsert()
            statement.setUncheckedArguments(SQLiteSchema.insertArguments(record))
            do {
                try statement.execute()
            } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY {
                throw fail("inserts task \(record.id), which is already stored (a bug in the caller: ids are never reused)")
            }
            maxID = max(maxID, record.id)
        case .update(let update):
            let statement = try statements.forUpdate(toFinal: update.state.isFinal)
            statement.setUncheckedArguments(SQLiteSchema.updateArguments(update))
            // An update of a task that is not stored changes nothing and is not an
            // error: its insert was in a group that failed to commit (the host
            // told that submitter so), or it was pruned. Failing here would make
            // every later group that touches the task fail too.
            try statement.execute()
        }
    }

    /// Runs `body` with the open database, holding the state lock so that a
    /// concurrent `close()` waits for it.
    private func withDatabase<T>(doing operation: String, _ body: (DatabaseQueue) throws -> T) throws -> T {
        try state.withLockedValue { phase in
            guard case .open(let store) = phase else { throw notOpenError() }
            do {
                return try body(store.database)
            } catch {
                throw storeError(error, doing: operation)
            }
        }
    }

    private func notOpenError() -> StoreError {
        StoreError("\(path) is not open: call open() first (and not after close())")
    }

    /// Turns what SQLite, GRDB or the system reported into a `StoreError` that
    /// names the file and says what to do. `StoreError`s pass unchanged.
    private func storeError(_ error: Error, doing operation: String) -> StoreError {
        if let error = error as? StoreError { return error }
        guard let error = error as? DatabaseError else {
            return StoreError("\(operation) \(path) failed: \(error)")
        }
        let sqlite = "SQLite error \(error.extendedResultCode.rawValue): \(error.message ?? "no message")"
        let moveAside =
            "Move it aside (mv \(path) \(path).bad, and its -wal and -shm files if present) and start again to "
            + "begin with an empty store, or restore a backup; the server cannot read the tasks in it"
        switch error.resultCode {
        case .SQLITE_NOTADB:
            return StoreError("\(path) is not a database (\(sqlite)): it is damaged or another kind of file. \(moveAside).")
        case .SQLITE_CORRUPT:
            return StoreError(
                "\(path) is corrupt (\(sqlite)). \(moveAside); `sqlite3 \(path) .recover` may save some of them.")
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return StoreError(
                "\(operation) \(path) failed: the file is locked by another process (\(sqlite)). Stop the other "
                    + "program using it (another Switchyard server, or a tool with the file open in a transaction), "
                    + "or choose another data directory.")
        case .SQLITE_READONLY, .SQLITE_PERM, .SQLITE_AUTH:
            return StoreError(
                "\(operation) \(path) failed: no permission to write it (\(sqlite)). Give this user (uid \(getuid())) "
                    + "write access to the file and its directory, or choose another data directory.")
        case .SQLITE_CANTOPEN:
            return StoreError(
                "\(operation) \(path) failed: SQLite cannot open the file (\(sqlite)). Check that the data directory "
                    + "exists and this user (uid \(getuid())) may read and write it and the files in it.")
        case .SQLITE_FULL:
            return StoreError("\(operation) \(path) failed: the disk is full (\(sqlite)). Free some space.")
        case .SQLITE_IOERR:
            return StoreError(
                "\(operation) \(path) failed: an I/O error (\(sqlite)). Check the disk and the kernel log (dmesg).")
        default:
            return StoreError("\(operation) \(path) failed: \(sqlite)")
        }
    }
}
