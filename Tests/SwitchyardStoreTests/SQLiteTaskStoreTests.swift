import Foundation
import NIOCore
import SwitchyardCore
import Testing

@testable import SwitchyardHost

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fresh directory under the system's temporary directory, removed after `body`.
func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("switchyard-store-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer {
        // Restore permissions a test may have taken away, so removal works.
        try? FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: url.path)
        try? FileManager.default.removeItem(at: url)
    }
    return try body(url.path)
}

/// A store on `directory`'s `data` subdirectory (created by `open()`).
func makeStore(_ directory: String, sync: SQLiteTaskStore.Sync = .normal) -> SQLiteTaskStore {
    SQLiteTaskStore(directory: directory + "/data", sync: sync)
}

/// A queued task with a small payload.
func task(_ id: TaskID, handler: String = "echo", state: TaskState = .queued, finishedAt: EpochMillis = 0) -> TaskRecord {
    TaskRecord(
        id: id, handler: handler, payload: ByteBuffer(string: "payload \(id)"), state: state, createdAt: 1_000 &+ Int64(truncatingIfNeeded: id),
        finishedAt: finishedAt)
}

/// `record` moved to `state`, as the scheduler would.
func update(_ record: TaskRecord, to state: TaskState, at time: EpochMillis = 5_000, result: ByteBuffer? = nil)
    -> TaskUpdate
{
    var record = record
    record.state = state
    record.attempts += state == .running ? 1 : 0
    if state == .running { record.startedAt = time }
    if state.isFinal { record.finishedAt = time }
    record.result = result
    return TaskUpdate(record)
}

/// `record` as a store returns it after it became final: without its payload.
func withoutPayload(_ record: TaskRecord) -> TaskRecord {
    var record = record
    record.payload = ByteBuffer()
    return record
}

/// Bytes that are not UTF-8 and include zeros.
func binary(_ count: Int) -> ByteBuffer {
    ByteBuffer(bytes: (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 7919) >> 3) })
}

@Suite("SQLiteTaskStore")
struct SQLiteTaskStoreTests {
    @Test("every field survives a write and a reopen")
    func roundTrip() throws {
        try withTemporaryDirectory { dir in
            let everything = TaskRecord(
                id: 7, handler: "resize.image-v2", payload: ByteBuffer(bytes: [0, 1, 0, 255, 0, 0, 128, 0]),
                priority: -42, key: "Schlüssel 🔑 ключ", uniqueKey: "ユニーク\u{0}key", state: .failed,
                attempts: UInt32.max, maxAttempts: 3, timeoutMillis: 60_000, runAt: -1, createdAt: Int64.max,
                startedAt: Int64.min, finishedAt: 0, errorCode: ErrorCode(rawValue: UInt16.max),
                errorMessage: "échec: \u{1F4A5} «boom»", result: ByteBuffer(bytes: [0, 0, 0]))
            let nothing = TaskRecord(
                id: 8, handler: "h", payload: ByteBuffer(), priority: Int32.min, key: nil, uniqueKey: nil,
                state: .queued, errorCode: nil, errorMessage: nil, result: nil)
            let emptyResult = TaskRecord(
                id: 9, handler: "h", payload: binary(100), state: .running, result: ByteBuffer())
            let large = TaskRecord(id: 10, handler: "big", payload: binary(1 << 20), priority: Int32.max, state: .scheduled)
            // Empty strings stay empty strings (not nil); NUL bytes inside strings are kept.
            let strings = TaskRecord(
                id: 11, handler: "nul\u{0}inside", payload: ByteBuffer(bytes: [0]), key: "", uniqueKey: "\u{0}",
                state: .failed, errorCode: .internalError, errorMessage: "")
            let records = [everything, nothing, emptyResult, large, strings]

            let store = makeStore(dir)
            let opened = try store.open()
            #expect(opened.unfinished.isEmpty)
            #expect(opened.maxID == 0)
            try store.commit(records.map { .insert($0) })
            for record in records {
                #expect(try store.fetch(record.id) == record)
            }
            #expect(try store.fetch(12) == nil)
            #expect(try store.list(TaskListQuery(handler: "nul\u{0}inside")) == [strings])
            #expect(try store.list(TaskListQuery(handler: "nul")).isEmpty)
            let message = TaskUpdate(
                id: 11, state: .failed, attempts: 1, runAt: 0, startedAt: 0, finishedAt: 0, errorCode: .internalError,
                errorMessage: "a\u{0}b", result: nil)
            try store.commit([.update(message)])
            #expect(try store.fetch(11)?.errorMessage == "a\u{0}b")
            try store.commit([.update(TaskUpdate(strings))])
            #expect(try store.fetch(emptyResult.id)?.result == ByteBuffer())
            #expect(try store.fetch(nothing.id)?.result == nil)
            store.close()

            let reopened = makeStore(dir)
            let recovered = try reopened.open()
            #expect(recovered.unfinished == records)
            #expect(recovered.maxID == 11)
            reopened.close()
        }
    }

    @Test("a group of inserts and updates, then a new store on the same directory recovers the unfinished tasks")
    func groupCommitThenReopen() throws {
        try withTemporaryDirectory { dir in
            let store = makeStore(dir)
            _ = try store.open()
            let tasks = (1...6).map { task(TaskID($0)) }
            let retry = TaskUpdate(
                id: 4, state: .failed, attempts: 1, runAt: 9_000, startedAt: 5_000, finishedAt: 0,
                errorCode: .handlerFailed, errorMessage: "try again", result: nil)
            try store.commit(
                tasks.map { .insert($0) } + [
                    .update(update(tasks[0], to: .running)),
                    .update(update(tasks[1], to: .running)),
                    .update(update(tasks[1], to: .succeeded, result: ByteBuffer(string: "done"))),
                    .update(update(tasks[2], to: .cancelled)),
                    .update(retry),
                    .update(update(tasks[4], to: .dead)),
                ])
            store.close()

            let reopened = makeStore(dir)
            let recovered = try reopened.open()
            var running = tasks[0]
            running.state = .running
            running.attempts = 1
            running.startedAt = 5_000
            var failed = tasks[3]
            failed.state = .failed
            failed.attempts = 1
            failed.runAt = 9_000
            failed.startedAt = 5_000
            failed.errorCode = .handlerFailed
            failed.errorMessage = "try again"
            #expect(recovered.unfinished == [running, failed, tasks[5]])
            #expect(recovered.maxID == 6)

            // Final tasks are still there to fetch, without their payload.
            let succeeded = try #require(try reopened.fetch(2))
            #expect(succeeded.state == .succeeded)
            #expect(succeeded.payload.readableBytes == 0)
            #expect(succeeded.result == ByteBuffer(string: "done"))
            #expect(succeeded.finishedAt == 5_000)
            #expect(try reopened.fetch(3)?.state == .cancelled)
            #expect(try reopened.fetch(5)?.state == .dead)
            reopened.close()
        }
    }

    @Test("an update to a final state drops the payload and keeps everything else; other updates keep it")
    func finalUpdateDropsPayload() throws {
        try withTemporaryDirectory { dir in
            let store = makeStore(dir)
            _ = try store.open()
            let record = TaskRecord(id: 1, handler: "h", payload: binary(4096), key: "k", uniqueKey: "u")
            try store.commit([.insert(record), .update(update(record, to: .running, at: 10))])
            #expect(try store.fetch(1)?.payload == binary(4096))

            let dead = TaskUpdate(
                id: 1, state: .dead, attempts: 1, runAt: 0, startedAt: 10, finishedAt: 20,
                errorCode: .workerCrashed, errorMessage: "worker died", result: nil)
            try store.commit([.update(dead)])
            var expected = withoutPayload(record)
            expected.state = .dead
            expected.attempts = 1
            expected.startedAt = 10
            expected.finishedAt = 20
            expected.errorCode = .workerCrashed
            expected.errorMessage = "worker died"
            #expect(try store.fetch(1) == expected)

            // Inserted already final: stored without its payload too.
            try store.commit([.insert(task(2, state: .cancelled, finishedAt: 30))])
            #expect(try store.fetch(2) == withoutPayload(task(2, state: .cancelled, finishedAt: 30)))
            store.close()
        }
    }

    @Test("maxID survives a prune that deleted the largest ids, and a failed group does not move it")
    func maxIDSurvivesPrune() throws {
        try withTemporaryDirectory { dir in
            let store = makeStore(dir)
            _ = try store.open()
            try store.commit([.insert(task(1)), .insert(task(50)), .insert(task(20))])
            try store.commit([.update(update(task(50), to: .succeeded, at: 100))])
            #expect(try store.prune(finishedBefore: 101) == 1)
            #expect(try store.fetch(50) == nil)
            // Would raise maxID to 99, but fails as a whole.
            #expect(throws: StoreError.self) {
                try store.commit([.insert(task(99)), .insert(task(1))])
            }
            store.close()

            let reopened = makeStore(dir)
            let recovered = try reopened.open()
            #expect(recovered.maxID == 50)
            #expect(recovered.unfinished.map(\.id) == [1, 20])
            // A smaller id later does not lower it.
            try reopened.commit([.insert(task(30))])
            reopened.close()
            let again = makeStore(dir)
            #expect(try again.open().maxID == 50)
            again.close()
        }
    }

    @Test("prune deletes only final tasks that finished before the cutoff")
    func pruneOnlyFinalBeforeCutoff() throws {
        try withTemporaryDirectory { dir in
            let store = makeStore(dir)
            _ = try store.open()
            let states: [TaskState] = [.queued, .running, .failed, .scheduled, .succeeded, .dead, .cancelled]
            var changes: [StoreChange] = []
            var id: TaskID = 0
            // Every state, finished just before, at, and after the cutoff (1000).
            for state in states {
                for finishedAt: EpochMillis in [999, 1_000, 1_001] {
                    id += 1
                    changes.append(.insert(task(id, state: state, finishedAt: finishedAt)))
                }
            }
            try store.commit(changes)
            #expect(try store.prune(finishedBefore: 1_000) == 3)
            let left = try store.list(TaskListQuery(limit: 1_000))
            let gone = Set(left.map(\.id)).symmetricDifference(1...id)
            #expect(gone == [13, 16, 19])  // succeeded, dead, cancelled at 999
            #expect(try store.prune(finishedBefore: 1_000) == 0)
            #expect(try store.prune(finishedBefore: Int64.max) == 6)
            #expect(try store.list(TaskListQuery(limit: 1_000)).allSatisfy { !$0.state.isFinal })
            #expect(try store.list(TaskListQuery(limit: 1_000)).count == 12)
            store.close()
        }
    }

    @Test("list filters by state and handler and pages by id")
    func listFiltersAndPaging() throws {
        try withTemporaryDirectory { dir in
            let store = makeStore(dir)
            _ = try store.open()
            let handlers = ["echo", "sha256", "sleep"]
            let states: [TaskState] = [.queued, .succeeded]
            let records = (1...30).map { n in
                task(TaskID(n), handler: handlers[n % 3], state: states[n % 2], finishedAt: n % 2 == 1 ? 10 : 0)
            }
            try store.commit(records.map { .insert($0) })

            #expect(try store.list(TaskListQuery()).map(\.id) == Array(1...30))
            #expect(try store.list(TaskListQuery(limit: 0)).isEmpty)
            #expect(try store.list(TaskListQuery(limit: -1)).isEmpty)
            #expect(try store.list(TaskListQuery(state: .queued)).map(\.id) == Array(stride(from: 2, through: 30, by: 2)))
            #expect(try store.list(TaskListQuery(state: .running)).isEmpty)
            #expect(try store.list(TaskListQuery(handler: "sha256")).map(\.id) == Array(stride(from: 1, through: 28, by: 3)))
            #expect(try store.list(TaskListQuery(handler: "nope")).isEmpty)
            #expect(
                try store.list(TaskListQuery(state: .succeeded, handler: "echo")).map(\.id) == [3, 9, 15, 21, 27])

            // Pages of 4 through the queued echo/sha256/sleep tasks, resuming after the last id seen.
            var pages: [[TaskID]] = []
            var after: TaskID = 0
            while true {
                let page = try store.list(TaskListQuery(state: .queued, afterID: after, limit: 4)).map(\.id)
                if page.isEmpty { break }
                pages.append(page)
                after = page[page.count - 1]
            }
            #expect(pages == [[2, 4, 6, 8], [10, 12, 14, 16], [18, 20, 22, 24], [26, 28, 30]])
            #expect(try store.list(TaskListQuery(handler: "sleep", afterID: 20, limit: 2)).map(\.id) == [23, 26])
            // A listed final task comes without its payload, like fetch.
            #expect(try store.list(TaskListQuery(state: .succeeded, limit: 1)).first == withoutPayload(records[0]))
            store.close()
        }
    }

    @Test("a failed group writes nothing and the store stays usable")
    func failedGroupIsAtomic() throws {
        try withTemporaryDirectory { dir in
            let store = makeStore(dir)
            _ = try store.open()
            try store.commit([.insert(task(1)), .insert(task(2))])

            // Duplicate insert in the middle of a group.
            let duplicate = #expect(throws: StoreError.self) {
                try store.commit([
                    .insert(task(3)), .update(update(task(1), to: .running)), .insert(task(2)), .insert(task(4)),
                ])
            }
            #expect(duplicate?.description.contains("change 3 of 4") == true)
            #expect(duplicate?.description.contains("task 2, which is already stored") == true)
            #expect(duplicate?.description.contains(store.path) == true)
            #expect(try store.fetch(3) == nil)
            #expect(try store.fetch(4) == nil)
            #expect(try store.fetch(1) == task(1))

            // An update of a task that is not stored (its insert was in a failed
            // group) changes nothing and does not fail the group.
            try store.commit([.insert(task(5)), .update(update(task(77), to: .running))])
            #expect(try store.fetch(5) == task(5))
            #expect(try store.fetch(77) == nil)

            // An id past the signed 64-bit range.
            #expect(throws: StoreError.self) { try store.commit([.insert(task(TaskID(Int64.max) + 1))]) }

            // Still usable, and the failed groups left nothing on disk either.
            try store.commit([.insert(task(3)), .update(update(task(1), to: .running))])
            store.close()
            let reopened = makeStore(dir)
            let recovered = try reopened.open()
            #expect(recovered.unfinished.map(\.id) == [1, 2, 3, 5])
            #expect(recovered.unfinished.first?.state == .running)
            #expect(recovered.maxID == 5)
            reopened.close()
        }
    }

    @Test("both sync modes commit and recover, with the pragmas they promise", arguments: SQLiteTaskStore.Sync.allCases)
    func syncModes(_ mode: SQLiteTaskStore.Sync) throws {
        try withTemporaryDirectory { dir in
            let store = makeStore(dir, sync: mode)
            #expect(store.description == "sqlite \(dir)/data/tasks.sqlite (sync=\(mode.rawValue))")
            _ = try store.open()
            let pragmas = try store.effectivePragmas()
            #expect(pragmas.journalMode == "wal")
            #expect(pragmas.synchronous == (mode == .full ? 2 : 1))  // FULL = 2, NORMAL = 1
            for id in 1...50 {
                try store.commit([.insert(task(TaskID(id)))])
            }
            try store.commit((1...50).map { .update(update(task(TaskID($0)), to: .running)) })
            store.close()

            let reopened = makeStore(dir, sync: mode)
            let recovered = try reopened.open()
            #expect(recovered.unfinished.count == 50)
            #expect(recovered.unfinished.allSatisfy { $0.state == .running && $0.attempts == 1 })
            reopened.close()
        }
        #expect(SQLiteTaskStore.Sync(rawValue: "full") == .full)
        #expect(SQLiteTaskStore.Sync(rawValue: "normal") == .normal)
        #expect(SQLiteTaskStore.Sync.allCases.map(\.rawValue) == ["full", "normal"])
    }

    @Test("a file that is not a database is refused, naming it and how to move it aside")
    func corruptFile() throws {
        try withTemporaryDirectory { dir in
            let store = makeStore(dir)
            try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
            let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
            try garbage.write(to: URL(fileURLWithPath: store.path))
            let error = #expect(throws: StoreError.self) { try store.open() }
            let message = error?.description ?? ""
            #expect(message.contains(store.path))
            #expect(message.contains("not a database"))
            #expect(message.contains("mv \(store.path) \(store.path).bad"))
            // The garbage is left as it was, and the failed open released the lock:
            // once the file is moved aside, the same store opens.
            #expect(try Data(contentsOf: URL(fileURLWithPath: store.path)) == garbage)
            try FileManager.default.moveItem(atPath: store.path, toPath: store.path + ".bad")
            #expect(try store.open().unfinished.isEmpty)
            store.close()
        }
    }

    @Test("an unwritable data directory is refused", .enabled(if: getuid() != 0, "root ignores file permissions"))
    func unwritableDirectory() throws {
        try withTemporaryDirectory { dir in
            let data = dir + "/data"
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            #expect(chmod(data, 0o500) == 0)
            let error = #expect(throws: StoreError.self) { try makeStore(dir).open() }
            #expect(error?.description.contains(data) == true)
            #expect(error?.description.contains("not writable") == true)

            // Nor can a missing directory be created inside a read-only one.
            let nested = SQLiteTaskStore(directory: data + "/sub", sync: .normal)
            let nestedError = #expect(throws: StoreError.self) { try nested.open() }
            #expect(nestedError?.description.contains(data + "/sub") == true)
            #expect(nestedError?.description.contains("cannot be created") == true)

            // A database file this user may not write, in a writable directory.
            #expect(chmod(data, 0o700) == 0)
            let store = makeStore(dir)
            _ = try store.open()
            store.close()
            #expect(chmod(store.path, 0o400) == 0)
            let fileError = #expect(throws: StoreError.self) { try makeStore(dir).open() }
            #expect(fileError?.description.contains("\(store.path) is not readable and writable") == true)
        }
    }

    @Test("a data directory that cannot exist is refused, as any user (root too)")
    func impossibleDirectory() throws {
        try withTemporaryDirectory { dir in
            let file = dir + "/plain-file"
            try Data("not a directory".utf8).write(to: URL(fileURLWithPath: file))

            // Its parent is a regular file: mkdir fails with ENOTDIR.
            let underFile = SQLiteTaskStore(directory: file + "/data", sync: .full)
            let error = #expect(throws: StoreError.self) { try underFile.open() }
            #expect(error?.description.contains(file + "/data") == true)
            #expect(error?.description.contains("cannot be created") == true)
            #expect(error?.description.contains("--data-dir") == true)

            // It is a regular file itself.
            let isFile = SQLiteTaskStore(directory: file, sync: .full)
            let fileError = #expect(throws: StoreError.self) { try isFile.open() }
            #expect(fileError?.description.contains("\(file) exists but is not a directory") == true)

            // tasks.sqlite is a directory.
            let data = dir + "/data"
            try FileManager.default.createDirectory(atPath: data + "/tasks.sqlite", withIntermediateDirectories: true)
            let dbError = #expect(throws: StoreError.self) { try makeStore(dir).open() }
            #expect(dbError?.description.contains("\(data)/tasks.sqlite is a directory") == true)
        }
    }

    @Test("missing parent directories are created")
    func createsDirectories() throws {
        try withTemporaryDirectory { dir in
            let store = SQLiteTaskStore(directory: dir + "/a/b/c/", sync: .normal)
            #expect(store.path == dir + "/a/b/c/tasks.sqlite")
            _ = try store.open()
            try store.commit([.insert(task(1))])
            store.close()
            #expect(FileManager.default.fileExists(atPath: dir + "/a/b/c/tasks.sqlite"))
        }
    }

    @Test("a file whose schema version is newer than this code is refused")
    func newerUserVersion() throws {
        try withTemporaryDirectory { dir in
            let store = makeStore(dir)
            _ = try store.open()
            try store.commit([.insert(task(1))])
            store.close()
            // Closing checkpointed the WAL into the file; bump PRAGMA user_version,
            // a 4-byte big-endian integer at offset 60 of the SQLite header.
            let wal = (try? FileManager.default.attributesOfItem(atPath: store.path + "-wal")[.size] as? Int) ?? 0
            #expect(wal == 0)
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: store.path))
            try handle.seek(toOffset: 60)
            try handle.write(contentsOf: Data([0, 0, 0, 99]))
            try handle.close()

            let newer = makeStore(dir)
            let error = #expect(throws: StoreError.self) { try newer.open() }
            let message = error?.description ?? ""
            #expect(message.contains(store.path))
            #expect(message.contains("written by a newer Switchyard"))
            #expect(message.contains("schema version 99"))
        }
    }

    @Test("a file migrated by a newer Switchyard (an unknown migration) is refused and left untouched")
    func newerMigration() throws {
        try withTemporaryDirectory { dir in
            let future = SQLiteTaskStore(
                directory: dir + "/data", sync: .normal,
                schema: SQLiteSchema.current.appendingNoOpMigration("v9-from-the-future"))
            _ = try future.open()
            try future.commit([.insert(task(1))])
            future.close()

            let store = makeStore(dir)
            let error = #expect(throws: StoreError.self) { try store.open() }
            let message = error?.description ?? ""
            #expect(message.contains(store.path))
            #expect(message.contains("written by a newer Switchyard"))
            #expect(message.contains("v9-from-the-future"))

            // The newer version still opens it, with its task.
            let again = SQLiteTaskStore(
                directory: dir + "/data", sync: .normal,
                schema: SQLiteSchema.current.appendingNoOpMigration("v9-from-the-future"))
            #expect(try again.open().unfinished.map(\.id) == [1])
            again.close()
        }
    }

    @Test("a second store on the same directory is refused while the first is open")
    func directoryLock() throws {
        try withTemporaryDirectory { dir in
            let first = makeStore(dir)
            _ = try first.open()
            try first.commit([.insert(task(1))])

            let second = makeStore(dir)
            let error = #expect(throws: StoreError.self) { try second.open() }
            let message = error?.description ?? ""
            #expect(message.contains("\(dir)/data is in use"))
            #expect(message.contains("process \(getpid())"))
            #expect(message.contains("\(dir)/data/lock"))

            // The refused store did not disturb the first one.
            try first.commit([.insert(task(2))])
            first.close()
            let recovered = try second.open()
            #expect(recovered.unfinished.map(\.id) == [1, 2])
            second.close()
        }
    }

    @Test("calls before open and after close throw; close twice is harmless")
    func lifecycle() throws {
        try withTemporaryDirectory { dir in
            let store = makeStore(dir)
            #expect(throws: StoreError.self) { try store.commit([.insert(task(1))]) }
            #expect(throws: StoreError.self) { try store.fetch(1) }
            _ = try store.open()
            #expect(throws: StoreError.self) { try store.open() }
            store.close()
            store.close()
            #expect(throws: StoreError.self) { try store.list(TaskListQuery()) }
            #expect(throws: StoreError.self) { try store.prune(finishedBefore: 0) }
            #expect(throws: StoreError.self) { try store.open() }
            // An empty group needs no transaction (and no open store).
            try store.commit([])
        }
    }
}
