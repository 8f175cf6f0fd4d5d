import Foundation
import NIOCore
import SwitchyardClient
import SwitchyardCore
import Testing

/// The PostgreSQL server the shared-queue tests use: `.ci/postgres start`
/// prints the two variables (`.ci/run` exports them). In CI a missing server
/// fails these tests; elsewhere they are skipped without one.
enum TestPostgres {
    static let url = ProcessInfo.processInfo.environment["SWITCHYARD_TEST_POSTGRES"]
    static let directory = ProcessInfo.processInfo.environment["SWITCHYARD_TEST_POSTGRES_DIR"]
    static let required = ProcessInfo.processInfo.environment["CI"] != nil
    static var enabled: Bool { url != nil || required }

    /// A new, empty database on the test server; its URL.
    static func freshDatabase() async throws -> String {
        guard let url else {
            throw TestFailure(
                "SWITCHYARD_TEST_POSTGRES is not set: start a server with `eval \"$(.ci/postgres start)\"` (CI's .ci/run does)")
        }
        let name = "switchyard_test_\(UUID().uuidString.prefix(8).lowercased())"
        try await psql(url, "CREATE DATABASE \(name)")
        return url.replacingOccurrences(of: #"/[^/?]*(\?|$)"#, with: "/\(name)$1", options: .regularExpression)
    }

    /// Runs one SQL statement; returns its rows, unaligned (`psql -At`).
    @discardableResult
    static func psql(_ url: String, _ sql: String) async throws -> String {
        let result = try await run("/usr/bin/env", ["psql", url, "-v", "ON_ERROR_STOP=1", "-Atc", sql])
        guard result.status == 0 else { throw TestFailure("psql \(sql): \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Several real `switchyard serve --store postgres://...` processes sharing one
/// real PostgreSQL database. Serialized: one test restarts the database server.
@Suite(.serialized, .enabled(if: TestPostgres.enabled))
struct SharedQueueTests {
    /// A directory with the `record` fixture plugin (counts executions in a file).
    final class Fixture: Sendable {
        let directory: TemporaryDirectory
        let database: String
        var plugins: String { directory.file("plugins") }
        var recordFile: String { directory.file("executions") }

        private init(directory: TemporaryDirectory, database: String) {
            self.directory = directory
            self.database = database
        }

        static func make() async throws -> Fixture {
            let database = try await TestPostgres.freshDatabase()
            let directory = try TemporaryDirectory()
            try FileManager.default.createDirectory(atPath: directory.file("plugins"), withIntermediateDirectories: true)
            try await compilePlugin(Paths.fixture("record.c"), to: directory.file("plugins/record.so"))
            return Fixture(directory: directory, database: database)
        }

        /// Starts a host named `name` on the shared database.
        func host(
            _ name: String, workers: Int = 1, lease: String = "2s", heartbeat: String = "300ms",
            sleepMicros: Int = 0, extra: [String] = []
        ) async throws -> ServerProcess {
            try await ServerProcess.start(
                workers: workers, plugins: plugins,
                extraArguments: [
                    "--store", database, "--lease", lease, "--heartbeat", heartbeat, "--poll-interval", "200ms",
                    "--retry-base", "100ms", "--config", "record.file=\(recordFile)", "--config", "record.host=\(name)",
                    "--config", "record.sleep_us=\(sleepMicros)",
                ] + extra)
        }

        /// Every execution so far: (task id, attempt, host).
        func executions() throws -> [(id: TaskID, attempt: Int, host: String)] {
            guard let text = try? String(contentsOfFile: recordFile, encoding: .utf8) else { return [] }
            return text.split(separator: "\n").map { line in
                let parts = line.split(separator: " ")
                return (TaskID(parts[0])!, Int(parts[1])!, String(parts[2]))
            }
        }
    }

    @Test("three hosts, 30,000 tasks submitted round them: each runs exactly once and is answered to its submitter")
    func threeHostsExactlyOnce() async throws {
        let fixture = try await Fixture.make()
        let hosts = [try await fixture.host("A"), try await fixture.host("B"), try await fixture.host("C")]
        let lanes = 50, perLane = 200
        try await withThrowingTaskGroup(of: Int.self) { group in
            for (index, host) in hosts.enumerated() {
                let client = try await host.connect()
                for lane in 0..<lanes {
                    group.addTask {
                        var answered = 0
                        for task in 0..<perLane {
                            let payload = "h\(index)-l\(lane)-t\(task)"
                            let reply = try await client.submit("record", payload: Array(payload.utf8))
                            #expect(String(decoding: reply, as: UTF8.self) == payload)
                            answered += 1
                        }
                        return answered
                    }
                }
            }
            var answered = 0
            for try await count in group { answered += count }
            #expect(answered == hosts.count * lanes * perLane)
        }
        let runs = try fixture.executions()
        let ids = Set(runs.map(\.id))
        #expect(runs.count == 30_000, "executions: \(runs.count)")
        #expect(ids.count == 30_000, "distinct tasks executed: \(ids.count)")
        #expect(Set(runs.map(\.host)) == ["A", "B", "C"], "every host ran some of them")
        let stored = try await TestPostgres.psql(
            fixture.database, "SELECT count(*), min(attempts), max(attempts), count(*) FILTER (WHERE state = 3) FROM switchyard_tasks")
        #expect(stored == "30000|1|1|30000")
        // Every host shows every live host.
        let status = try await hosts[0].connect().serverStatus()
        #expect(status.hosts?.count == 3)
        #expect(status.hosts?.filter(\.isThisHost).count == 1)
        for host in hosts { await host.stop() }
        #expect(try await TestPostgres.psql(fixture.database, "SELECT count(*) FROM switchyard_hosts") == "0")
    }

    @Test("kill -9 of a host mid-run: the tasks it held run on the others after its lease expires, none lost")
    func killedHostIsRescued() async throws {
        let fixture = try await Fixture.make()
        // 20 ms tasks: the three hosts run fewer per second than the test
        // submits, so a queue builds up and C holds a full window when killed.
        let a = try await fixture.host("A", sleepMicros: 20_000)
        let b = try await fixture.host("B", sleepMicros: 20_000)
        let c = try await fixture.host("C", sleepMicros: 20_000)
        let count = 1_500
        let client = try await a.connect()
        let ids = try await withThrowingTaskGroup(of: [(Int, TaskID)].self) { group in
            for lane in 0..<30 {
                group.addTask {
                    var ids: [(Int, TaskID)] = []
                    for index in stride(from: lane, to: count, by: 30) {
                        ids.append((index, try await client.submitBackground("record", payload: ByteBuffer(string: "\(index)"))))
                    }
                    return ids
                }
            }
            return try await group.reduce(into: [TaskID](repeating: 0, count: count)) { ids, lane in
                for (index, id) in lane { ids[index] = id }
            }
        }
        // Kill C once it is running tasks: it holds claimed ones then.
        try await eventually("host C ran 20 tasks") { try fixture.executions().filter { $0.host == "C" }.count >= 20 }
        c.signal(SIGKILL)
        _ = await c.waitForExit()
        // The others put C's tasks back once its lease ran out.
        try await eventually("A or B rescued C's tasks") {
            (a.log + b.log).contains { $0.contains("stopped renewing its lease: put back") }
        }
        // Every task succeeds; any host answers for any task.
        let waiters = [try await a.connect(), try await b.connect()]
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<30 {
                group.addTask {
                    for index in stride(from: lane, to: count, by: 30) {
                        let result = try await waiters[index % 2].wait(for: ids[index])
                        #expect(String(buffer: result) == "\(index)")
                    }
                }
            }
            try await group.waitForAll()
        }
        let stored = try await TestPostgres.psql(
            fixture.database, "SELECT count(*) FILTER (WHERE state = 3), count(*) FROM switchyard_tasks")
        #expect(stored == "\(count)|\(count)")
        let runs = try fixture.executions()
        #expect(Set(runs.map(\.id)) == Set(ids), "every task ran")
        // Only what C had started can have run twice.
        var seen: [TaskID: Int] = [:]
        for run in runs { seen[run.id, default: 0] += 1 }
        let ranByC = Set(runs.filter { $0.host == "C" }.map(\.id))
        let twice = Set(seen.filter { $0.value > 1 }.map(\.key))
        #expect(twice.isSubset(of: ranByC))
        // What C held was rescued: counted as an attempt, then run by A or B.
        let rescued = try await TestPostgres.psql(
            fixture.database, "SELECT count(*) FROM switchyard_tasks WHERE attempts = 2")
        #expect(Int(rescued)! > 0)
        #expect((a.log + b.log).contains { $0.contains("put back") && !$0.contains("put back 0 of") })
        await a.stop()
        await b.stop()
    }

    @Test("the database restarted under load: hosts reconnect, nothing acknowledged is lost")
    func databaseRestart() async throws {
        guard let directory = TestPostgres.directory else {
            throw TestFailure("SWITCHYARD_TEST_POSTGRES_DIR is not set (see .ci/postgres start)")
        }
        let fixture = try await Fixture.make()
        let a = try await fixture.host("A", lease: "20s", heartbeat: "300ms", sleepMicros: 500)
        let b = try await fixture.host("B", lease: "20s", heartbeat: "300ms", sleepMicros: 500)
        let clients = [try await a.connect(), try await b.connect()]
        // Submit in the background while the database restarts; keep every acknowledged id.
        let submitter = Task { () -> [TaskID: Int] in
            try await withThrowingTaskGroup(of: [TaskID: Int].self) { group in
                for lane in 0..<20 {
                    group.addTask {
                        var acknowledged: [TaskID: Int] = [:]
                        for index in stride(from: lane, to: 3_000, by: 20) {
                            do {
                                let id = try await clients[index % 2].submitBackground(
                                    "record", payload: ByteBuffer(string: "\(index)"))
                                acknowledged[id] = index
                            } catch {
                                // Refused, never acknowledged: allowed while the database is down.
                            }
                        }
                        return acknowledged
                    }
                }
                return try await group.reduce(into: [:]) { $0.merge($1) { first, _ in first } }
            }
        }
        try await eventually("200 tasks ran") { try fixture.executions().count >= 200 }
        let restart = try await run(Paths.root.appendingPathComponent(".ci/postgres").path, ["restart", directory])
        #expect(restart.status == 0, "restart: \(restart.stderr)")
        let acknowledged = try await submitter.value
        try await a.waitForLog { $0.contains("reconnected to") }
        try await b.waitForLog { $0.contains("reconnected to") }
        for (id, index) in acknowledged {
            let result = try await clients[Int(id % 2)].wait(for: id)
            #expect(String(buffer: result) == "\(index)")
        }
        #expect(acknowledged.count > 200)
        let executed = Set(try fixture.executions().map(\.id))
        #expect(Set(acknowledged.keys).isSubset(of: executed))
        await a.stop()
        await b.stop()
    }

    @Test("priority order holds across hosts; a unique key is unique across hosts; cancel works from any host")
    func priorityAndUniqueKeys() async throws {
        let fixture = try await Fixture.make()
        let a = try await fixture.host("A", extra: ["--prefetch", "1"])
        let b = try await fixture.host("B", extra: ["--prefetch", "1"])
        let (clientA, clientB) = (try await a.connect(), try await b.connect())

        // 40 tasks, shuffled priorities, all due at one moment: every host claims
        // highest first, so each host's own run order never rises in priority.
        let due = Date().addingTimeInterval(3)
        var priorityOf: [TaskID: Int32] = [:]
        for (index, priority) in (0..<40).shuffled().enumerated() {
            let client = index % 2 == 0 ? clientA : clientB
            let id = try await client.submitBackground(
                "record", payload: ByteBuffer(string: "p\(priority)"),
                options: SubmitOptions(priority: Int32(priority), runAt: due))
            priorityOf[id] = Int32(priority)
        }
        #expect(Date() < due, "the submits took longer than the delay; the order below proves nothing")
        for id in priorityOf.keys { _ = try await clientA.wait(for: id) }
        let runs = try fixture.executions()
        for host in ["A", "B"] {
            let order = runs.filter { $0.host == host }.map { priorityOf[$0.id]! }
            #expect(!order.isEmpty, "host \(host) ran none")
            #expect(order == order.sorted(by: >), "host \(host) ran priorities \(order)")
        }

        // One live task per unique key, whichever hosts the submits reach.
        let later = SubmitOptions(delay: .seconds(600), uniqueKey: "report-42")
        let ids = try await withThrowingTaskGroup(of: TaskID.self) { group in
            for index in 0..<20 {
                let client = index % 2 == 0 ? clientA : clientB
                group.addTask { try await client.submitBackground("record", payload: ByteBuffer(), options: later) }
            }
            return try await group.reduce(into: Set<TaskID>()) { $0.insert($1) }
        }
        #expect(ids.count == 1)
        let id = ids.first!
        // Cancelled through the other host, the key is free again.
        let cancelled = try await clientB.cancel(id)
        #expect(cancelled.state == .cancelled)
        let next = try await clientA.submitBackground("record", payload: ByteBuffer(), options: later)
        #expect(next != id)
        await #expect(throws: SwitchyardError.self) { try await clientA.wait(for: id) }
        await a.stop()
        await b.stop()
    }

    @Test("with --auth on every host: a submit token cancels only its own tasks, from any host; an admin any")
    func cancelRolesAcrossHosts() async throws {
        let fixture = try await Fixture.make()
        let auth = try TestTokens.file(in: fixture.directory)
        let a = try await fixture.host("A", extra: ["--auth", auth])
        let b = try await fixture.host("B", extra: ["--auth", auth])
        let later = SubmitOptions(delay: .seconds(3600))
        // Submitted on A; the submitter's fingerprint goes into the database with the task.
        let mine = try await a.connect(token: TestTokens.submit).submitBackground(
            "record", payload: ByteBuffer(), options: later)
        let theirs = try await b.connect(token: TestTokens.otherSubmit).submitBackground(
            "record", payload: ByteBuffer(), options: later)

        // On B, another submit token may not cancel it; B read the submitter from the database.
        let otherOnB = try await b.connect(token: TestTokens.otherSubmit)
        await expectRefusal(.forbidden, mentioning: "task \(mine) was submitted by another client") {
            _ = try await otherOnB.cancel(mine)
        }
        let adminOnA = try await a.connect(token: TestTokens.admin)
        #expect(try await adminOnA.taskInfo(mine).state == .scheduled, "the refused cancel changed nothing")

        // Its own submitter may, through the other host; an admin may cancel anyone's.
        #expect(try await b.connect(token: TestTokens.submit).cancel(mine).state == .cancelled)
        #expect(try await adminOnA.cancel(theirs).state == .cancelled)
        let stamped = try await TestPostgres.psql(
            fixture.database, "SELECT count(DISTINCT submitter), count(*) FILTER (WHERE submitter IS NULL) FROM switchyard_tasks")
        #expect(stamped == "2|0", "two tasks, two submitters, both stored")
        await a.stop()
        await b.stop()
    }

    @Test("schema: migrate creates it once; a host refuses a schema newer than it knows")
    func schemaVersions() async throws {
        let database = try await TestPostgres.freshDatabase()
        let first = try await run(Paths.switchyard, ["migrate", database])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("schema version 1 (was 0)"))
        let again = try await run(Paths.switchyard, ["migrate", database])
        #expect(again.stdout.contains("schema version 1; nothing to do"))
        try await TestPostgres.psql(database, "INSERT INTO switchyard_schema (version, description) VALUES (2, 'from the future')")
        let refused = try await run(
            Paths.switchyard, ["serve", "--listen", "127.0.0.1:0", "--workers", "1", "--store", database])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("has Switchyard schema version 2"), "\(refused.stderr)")
        #expect(refused.stderr.contains("knows versions up to 1"))
    }

    @Test("a database that is not there: migrate and serve stop with PostgreSQL's reason, not the pool's")
    func missingDatabaseIsNamed() async throws {
        let fresh = try await TestPostgres.freshDatabase()
        let missing = fresh.replacingOccurrences(of: "switchyard_test_", with: "switchyard_missing_")
        let name = String(missing.split(separator: "/").last!.split(separator: "?").first!)
        let migrate = try await run(Paths.switchyard, ["migrate", missing])
        #expect(migrate.status == 2)
        #expect(migrate.stderr.contains("database \"\(name)\" does not exist"), "\(migrate.stderr)")
        let data = try TemporaryDirectory()
        let serve = try await run(
            Paths.switchyard,
            ["serve", "--listen", "127.0.0.1:0", "--workers", "1", "--data-dir", data.path, "--store", missing])
        #expect(serve.status == 2)
        #expect(serve.stderr.contains("connecting to"), "\(serve.stderr)")
        #expect(serve.stderr.contains("database \"\(name)\" does not exist"), "\(serve.stderr)")
    }
}

/// Returns once `condition` holds, checking it every 10 ms (it reads a file or
/// a log that another process writes); fails after `limit`.
func eventually(
    _ what: String, limit: Duration = .seconds(120), _ condition: () throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + limit
    while try !condition() {
        guard clock.now < deadline else { throw TestFailure("gave up waiting: \(what)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}
