import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SwitchyardClient
import SwitchyardCore
import Testing

/// The task lifecycle against the real server with its real store: priorities,
/// delays, retries, timeouts, unique keys, cancel, backpressure and recovery.
@Suite struct TaskLifecycleTests {
    /// Order in which results arrive: one worker with a window of one runs tasks
    /// one at a time, so completion order is run order.
    final class Order: Sendable {
        let box = NIOLockedValueBox<[String]>([])
        func add(_ name: String) { box.withLockedValue { $0.append(name) } }
        var names: [String] { box.withLockedValue { $0 } }
    }

    /// Occupies the only worker until the returned task is awaited; returns once it runs.
    func block(_ client: SwitchyardClient, ms: Int, maxAttempts: UInt32? = nil) async -> Task<[UInt8], Error> {
        let (started, continuation) = AsyncStream<Void>.makeStream()
        let task = Task {
            try await client.submit(
                "sleep", payload: Array("\(ms)".utf8), options: SubmitOptions(maxAttempts: maxAttempts)
            ) { _, _ in continuation.yield() }
        }
        for await _ in started { break }
        return task
    }

    @Test func higherPriorityRunsFirstAndEqualPrioritiesInSubmitOrder() async throws {
        try await withServer(workers: 1, extraArguments: ["--prefetch", "1"]) { server in
            let client = try await server.connect()
            // Hold the only worker with a long task, and free it by killing that
            // worker once everything is queued: no race with the clock.
            let blocker = await block(client, ms: 600_000, maxAttempts: 1)
            let plan: [(String, Int32)] = [("a0", 0), ("b5", 5), ("c0", 0), ("d9", 9), ("e5", 5), ("f-3", -3)]
            // Submitted one by one (each ACCEPTED before the next), all while the worker is busy;
            // each sleeps 30 ms so their start times are distinct.
            var ids: [(String, TaskID)] = []
            for (name, priority) in plan {
                let id = try await client.submitBackground(
                    "sleep", payload: ByteBuffer(string: "30"), options: SubmitOptions(priority: priority))
                ids.append((name, id))
            }
            kill(try await client.serverStatus().workers[0].pid, SIGKILL)
            _ = await #expect(throws: SwitchyardError.self) { _ = try await blocker.value }
            var started: [(String, EpochMillis)] = []
            for (name, id) in ids {
                _ = try await client.wait(for: id)
                started.append((name, try await client.taskInfo(id).startedAt))
            }
            let order = started.sorted { $0.1 < $1.1 }.map(\.0)
            #expect(order == ["d9", "b5", "e5", "a0", "c0", "f-3"])
            try await client.close()
        }
    }

    @Test func ageingLetsALowPriorityTaskThroughASteadyHighPriorityStream() async throws {
        // One level per 50 ms of waiting: the low task catches up with priority 40 after about 2 s.
        try await withServer(workers: 1, extraArguments: ["--prefetch", "1", "--aging", "50ms"]) { server in
            let client = try await server.connect()
            let blocker = await block(client, ms: 600_000, maxAttempts: 1)
            let low = try await client.submitBackground(
                "sleep", payload: ByteBuffer(string: "1"), options: SubmitOptions(priority: 0))
            // Three lanes keep priority-40 tasks always queued behind the running one:
            // without ageing the low task would wait for all 300 of them.
            let highsRun = NIOLockedValueBox(0)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        for _ in 0..<100 {
                            if try await client.taskInfo(low).state == .succeeded { return }
                            _ = try await client.submit(
                                "sleep", payload: Array("20".utf8), options: SubmitOptions(priority: 40))
                            highsRun.withLockedValue { $0 += 1 }
                        }
                    }
                }
                // Free the worker once the stream is queued behind the blocker.
                while try await client.serverStatus().queued < 4 { await Task.yield() }
                kill(try await client.serverStatus().workers[0].pid, SIGKILL)
                _ = await #expect(throws: SwitchyardError.self) { _ = try await blocker.value }
                try await group.waitForAll()
            }
            let ran = highsRun.withLockedValue { $0 }
            #expect(try await client.taskInfo(low).state == .succeeded)
            #expect(ran < 300, "the low task ran while the stream went on (\(ran) high tasks ran)")
            #expect(ran >= 3, "but only after the stream had gone first for a while (\(ran))")
            try await client.close()
        }
    }

    @Test func aDelayedTaskIsScheduledThenRunsAfterItsTime() async throws {
        try await withServer { server in
            let client = try await server.connect()
            let far = try await client.submitBackground(
                "echo", payload: ByteBuffer(string: "tomorrow"), options: SubmitOptions(delay: .seconds(86_400)))
            #expect(try await client.taskInfo(far).state == .scheduled)
            let id = try await client.submitBackground(
                "echo", payload: ByteBuffer(string: "later"), options: SubmitOptions(delay: .milliseconds(400)))
            // Any connection may wait for it.
            let other = try await server.connect()
            let result = try await other.wait(for: id)
            #expect(String(buffer: result) == "later")
            let info = try await client.taskInfo(id)
            #expect(info.state == .succeeded)
            #expect(info.runAt >= info.createdAt + 400)
            #expect(info.startedAt >= info.runAt, "not run before its time")
            #expect(try await client.taskInfo(far).state == .scheduled)
            try await other.close()
            try await client.close()
        }
    }

    @Test func retryableFailuresBackOffThenSucceedOrDie() async throws {
        try await withServer(extraArguments: ["--retry-base", "50ms", "--retry-jitter", "0"]) { server in
            let client = try await server.connect()
            let ok = try await client.submit("fail", payload: Array("until 3".utf8), options: SubmitOptions(maxAttempts: 5))
            #expect(String(decoding: ok, as: UTF8.self) == "succeeded on attempt 3")

            let id = try await client.submitBackground(
                "fail", payload: ByteBuffer(string: "retry"), options: SubmitOptions(maxAttempts: 3))
            let error = await #expect(throws: SwitchyardError.self) { _ = try await client.wait(for: id) }
            #expect(error?.code == .handlerFailed)
            #expect(error?.message.contains("attempt 3 of 3") == true, "\(error?.message ?? "")")
            let info = try await client.taskInfo(id)
            #expect(info.state == .dead)
            #expect(info.attempts == 3)
            // Two waits of 50 ms and 100 ms passed between the first and last attempts.
            #expect(info.startedAt - info.createdAt >= 150)
            try await client.close()
        }
    }

    @Test func aPermanentFailureIsDeadAfterOneAttempt() async throws {
        try await withServer { server in
            let client = try await server.connect()
            let id = try await client.submitBackground(
                "fail", payload: ByteBuffer(string: "no"), options: SubmitOptions(maxAttempts: 5))
            _ = await #expect(throws: SwitchyardError.self) { _ = try await client.wait(for: id) }
            let info = try await client.taskInfo(id)
            #expect(info.state == .dead)
            #expect(info.attempts == 1)
            #expect(info.errorMessage == "fail: no")
            try await client.close()
        }
    }

    @Test func aTimeoutKillsTheOverrunningWorkerAndTheNextTaskRunsOnAFreshOne() async throws {
        try await withServer(workers: 1) { server in
            let client = try await server.connect()
            let before = try await client.serverStatus()
            let error = await #expect(throws: SwitchyardError.self) {
                _ = try await client.submit(
                    "sleep", payload: Array("60000".utf8), options: SubmitOptions(maxAttempts: 1, timeout: .milliseconds(200)))
            }
            #expect(error?.code == .timeout)
            #expect(error?.message.contains("200 ms") == true)
            #expect(try await client.submit("echo", payload: Array("next".utf8)) == Array("next".utf8))
            let after = try await client.serverStatus()
            #expect(after.workerRestarts == before.workerRestarts + 1)
            #expect(after.workers[0].pid != before.workers[0].pid)
            try await client.close()
        }
    }

    @Test func aUniqueKeyGivesTheExistingTask() async throws {
        try await withServer { server in
            let client = try await server.connect()
            let options = SubmitOptions(delay: .seconds(3600), uniqueKey: "nightly-report")
            let first = try await client.submitBackground("echo", payload: ByteBuffer(string: "1"), options: options)
            let second = try await client.submitBackground("echo", payload: ByteBuffer(string: "2"), options: options)
            #expect(first == second)
            let other = try await client.submitBackground(
                "echo", payload: ByteBuffer(string: "3"), options: SubmitOptions(delay: .seconds(3600), uniqueKey: "other"))
            #expect(other != first)
            // Once cancelled, the key is free for a new task.
            _ = try await client.cancel(first)
            let third = try await client.submitBackground("echo", payload: ByteBuffer(string: "4"), options: options)
            #expect(third != first)
            try await client.close()
        }
    }

    @Test func cancelAQueuedAndARunningTask() async throws {
        try await withServer(workers: 1, extraArguments: ["--prefetch", "1"]) { server in
            let client = try await server.connect()
            let queued = try await client.submitBackground(
                "echo", payload: ByteBuffer(string: "x"), options: SubmitOptions(delay: .seconds(3600)))
            let cancelled = try await client.cancel(queued)
            #expect(cancelled.state == .cancelled)
            #expect(try await client.taskInfo(queued).state == .cancelled)

            // A running task is marked, not interrupted; its waiter learns it was
            // cancelled when the attempt ends (here: its worker is killed).
            let running = await block(client, ms: 600_000)
            let list = try await client.listTasks(TaskListQuery(state: .running, handler: "sleep"))
            let id = try #require(list.first?.id)
            let marked = try await client.cancel(id)
            #expect(marked.state == .running, "a running task is not interrupted")
            kill(try await client.serverStatus().workers[0].pid, SIGKILL)
            let error = await #expect(throws: SwitchyardError.self) { _ = try await running.value }
            #expect(error?.code == .cancelled, "not retried after the crash: it was cancelled")
            #expect(try await client.taskInfo(id).state == .cancelled)
            let gone = await #expect(throws: SwitchyardError.self) { _ = try await client.cancel(999_999) }
            #expect(gone?.code == .unknownTask)
            try await client.close()
        }
    }

    @Test func pastMaxQueueSubmitsGetQueueFull() async throws {
        try await withServer(extraArguments: ["--max-queue", "3"]) { server in
            let client = try await server.connect()
            for i in 0..<3 {
                _ = try await client.submitBackground(
                    "echo", payload: ByteBuffer(string: "\(i)"), options: SubmitOptions(delay: .seconds(3600)))
            }
            let error = await #expect(throws: SwitchyardError.self) {
                _ = try await client.submitBackground(
                    "echo", payload: ByteBuffer(string: "x"), options: SubmitOptions(delay: .seconds(3600)))
            }
            #expect(error?.code == .queueFull)
            #expect(error?.message.contains("--max-queue") == true)
            try await client.ping()
            try await client.close()
        }
    }

    @Test func absurdValuesAreRefusedWithTheFieldNamed() async throws {
        try await withServer { server in
            let client = try await server.connect()
            let cases: [(SubmitOptions, String)] = [
                (SubmitOptions(priority: 5_000_000), "priority"),
                (SubmitOptions(delay: .seconds(400 * 86_400)), "delay"),
                (SubmitOptions(delay: .seconds(-5)), "delay"),
                (SubmitOptions(timeout: .seconds(30 * 86_400)), "timeout"),
                (SubmitOptions(timeout: .zero), "timeout"),
                (SubmitOptions(maxAttempts: 0), "attempts"),
            ]
            for (options, field) in cases {
                let error = await #expect(throws: SwitchyardError.self) {
                    _ = try await client.submitBackground("echo", payload: ByteBuffer(), options: options)
                }
                #expect(error?.code == .badRequest, "\(options)")
                #expect(error?.message.lowercased().contains(field) == true, "\(error?.message ?? "") names \(field)")
            }
            // A raw frame skips the client's own checks: the server refuses it too.
            var request = SubmitRequest(handler: "echo", payload: ByteBuffer(), priority: 0, background: true)
            request.delayMillis = 400 * 86_400_000
            let raw = await #expect(throws: SwitchyardError.self) { _ = try await client.send(.submit(request)) }
            #expect(raw?.code == .badRequest)
            // A run-at far in the future passes the codec (it has no clock) but not the server.
            var far = SubmitRequest(handler: "echo", payload: ByteBuffer(), priority: 0, background: true)
            far.runAt = EpochMillis(Date().timeIntervalSince1970 * 1000) + 400 * 86_400_000
            let tooFar = await #expect(throws: SwitchyardError.self) { _ = try await client.send(.submit(far)) }
            #expect(tooFar?.code == .badRequest)
            #expect(tooFar?.message.contains("366 days") == true, "\(tooFar?.message ?? "")")
            try await client.ping()
            try await client.close()
        }
    }
}

/// The SQLite store: what was acknowledged survives kill -9; bad data dirs are
/// refused clearly.
@Suite struct DurableStoreTests {
    @Test(arguments: ["full", "normal"])
    func everyAcknowledgedTaskFinishesAcrossAKillNine(sync: String) async throws {
        let data = try TemporaryDirectory()
        let arguments = ["--sync", sync]
        let server = try await ServerProcess.start(workers: 2, dataDirectory: data.path, extraArguments: arguments)
        let client = try await server.connect()
        // A stream of background tasks, each a few ms of work; kill -9 the host
        // once 300 are acknowledged, with more on the wire.
        let acknowledged = NIOLockedValueBox<[TaskID: String]>([:])
        let (enough, enoughContinuation) = AsyncStream<Void>.makeStream()
        let submitter = Task {
            await withTaskGroup(of: Void.self) { group in
                for i in 0..<2_000 {
                    group.addTask {
                        let payload = "\(i)"
                        // Half sleep a little so a backlog builds; all have a checkable result.
                        let handler = i % 2 == 0 ? "sleep" : "echo"
                        let body = i % 2 == 0 ? "3" : payload
                        guard let id = try? await client.submitBackground(handler, payload: ByteBuffer(string: body))
                        else { return }
                        let count = acknowledged.withLockedValue {
                            $0[id] = handler == "sleep" ? "slept 3 ms" : payload
                            return $0.count
                        }
                        if count == 300 { enoughContinuation.yield() }
                    }
                }
            }
        }
        for await _ in enough { break }
        server.signal(SIGKILL)
        #expect(await server.waitForExit() != 0)
        await submitter.value
        // Its workers notice their host is gone and exit; a new host takes the data dir.
        let restarted = try await ServerProcess.start(workers: 2, dataDirectory: data.path, extraArguments: arguments)
        let checker = try await restarted.connect()
        let expected = acknowledged.withLockedValue { $0 }
        #expect(expected.count >= 300)
        var finished = 0
        for (id, result) in expected.sorted(by: { $0.key < $1.key }) {
            let reply = try await checker.wait(for: id)
            #expect(String(buffer: reply) == result, "task \(id)")
            finished += 1
        }
        #expect(finished == expected.count, "every acknowledged task finished: none lost")
        #expect(restarted.log.contains { $0.contains("recovered") } || expected.count == finished)
        try await checker.close()
        await restarted.stop()
    }

    @Test func scheduledTasksSurviveAGracefulRestart() async throws {
        let data = try TemporaryDirectory()
        let first = try await ServerProcess.start(dataDirectory: data.path)
        let client = try await first.connect()
        let id = try await client.submitBackground(
            "echo", payload: ByteBuffer(string: "tomorrow"), options: SubmitOptions(delay: .seconds(86_400)))
        #expect(await first.stop() == 0)
        let second = try await ServerProcess.start(dataDirectory: data.path)
        let again = try await second.connect()
        let info = try await again.taskInfo(id)
        #expect(info.state == .scheduled)
        // New ids never reuse old ones.
        let next = try await again.submitBackground("echo", payload: ByteBuffer(string: "now"))
        #expect(next > id)
        try await again.close()
        await second.stop()
    }

    @Test func aCorruptStoreFileIsAClearErrorNamingThePath() async throws {
        let data = try TemporaryDirectory()
        try Data(repeating: 0x5A, count: 8192).write(to: URL(fileURLWithPath: data.file("tasks.sqlite")))
        let result = try await run(
            Paths.switchyard, ["serve", "--listen", "127.0.0.1:0", "--workers", "1", "--data-dir", data.path])
        #expect(result.status != 0)
        #expect(result.stderr.contains(data.file("tasks.sqlite")), "\(result.stderr)")
        #expect(!result.stderr.contains("Fatal error"), "no crash: \(result.stderr)")
    }

    @Test func aDataDirThatCannotBeCreatedIsAClearError() async throws {
        let data = try TemporaryDirectory()
        try Data("not a directory".utf8).write(to: URL(fileURLWithPath: data.file("file")))
        let path = data.file("file/inside")
        let result = try await run(Paths.switchyard, ["serve", "--listen", "127.0.0.1:0", "--workers", "1", "--data-dir", path])
        #expect(result.status != 0)
        #expect(result.stderr.contains(path), "\(result.stderr)")
    }

    @Test func twoServersCannotShareADataDir() async throws {
        let data = try TemporaryDirectory()
        try await withServer(dataDirectory: data.path) { _ in
            let second = try await run(
                Paths.switchyard, ["serve", "--listen", "127.0.0.1:0", "--workers", "1", "--data-dir", data.path])
            #expect(second.status != 0)
            #expect(second.stderr.contains(data.path), "\(second.stderr)")
        }
    }

    @Test func theCLIListsAndShowsAndCancelsTasks() async throws {
        try await withServer { server in
            let env = ["SWITCHYARD_SERVER": "\(server.address)"]
            let dead = try await run(Paths.switchyard, ["submit", "fail", "boom"], environment: env)
            #expect(dead.status == 1)
            let later = try await run(Paths.switchyard, ["submit", "--background", "--delay", "1h", "echo", "x"], environment: env)
            let id = later.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let list = try await run(Paths.switchyard, ["tasks", "--state", "dead", "--handler", "fail"], environment: env)
            #expect(list.status == 0)
            #expect(list.stdout.contains("fail: boom"), "\(list.stdout)")
            #expect(!list.stdout.contains("echo"))
            let show = try await run(Paths.switchyard, ["task", id], environment: env)
            #expect(show.stdout.contains("scheduled"), "\(show.stdout)")
            let cancel = try await run(Paths.switchyard, ["cancel", id], environment: env)
            #expect(cancel.status == 0)
            #expect(cancel.stdout.contains("cancelled"), "\(cancel.stdout)")
            let done = try await run(Paths.switchyard, ["submit", "--background", "echo", "y"], environment: env)
            let doneID = done.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            _ = try await run(Paths.switchyard, ["task", doneID, "--wait"], environment: env)
            let finished = try await run(Paths.switchyard, ["cancel", doneID], environment: env)
            #expect(finished.status == 1, "already finished: \(finished.stderr)")
            #expect(finished.stderr.contains("succeeded"), "\(finished.stderr)")
        }
    }
}

/// Dispatch strategies through the admin requests, on the real server.
@Suite struct StrategyAdminTests {
    @Test func strategiesAreListedSetPerHandlerAndRefusedClearly() async throws {
        try await withServer(extraArguments: ["--strategy", "sha256=round_robin"]) { server in
            let client = try await server.connect()
            let report = try await client.strategies()
            #expect(report.available.map(\.name).contains("round_robin"))
            #expect(report.active.map(\.scope) == ["default", "sha256"])
            #expect(server.log.contains { $0.contains("strategy for sha256 is now round_robin") })

            let unknown = await #expect(throws: SwitchyardError.self) { try await client.setStrategy("no_such") }
            #expect(unknown?.code == .unknownStrategy)
            #expect(unknown?.message.contains("round_robin") == true, "lists what is available")
            let badHandler = await #expect(throws: SwitchyardError.self) {
                try await client.setStrategy("round_robin", handler: "nope")
            }
            #expect(badHandler?.code == .unknownHandler)
            let badConfig = await #expect(throws: SwitchyardError.self) {
                try await client.setStrategy("round_robin", config: ["note": "x"])
            }
            #expect(badConfig?.code == .badRequest)
            #expect(badConfig?.message.contains("note") == true, "names the key: \(badConfig?.message ?? "")")

            // A swap in the middle of a stream: every task answered exactly once.
            let results = try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
                for i in 0..<10_000 {
                    group.addTask { (i, try await client.submit("echo", payload: Array("\(i)".utf8))) }
                }
                let swapped = try await client.setStrategy("two_choices", handler: "echo", config: ["seed": "7"])
                #expect(swapped.active.contains { $0.scope == "echo" && $0.name == "two_choices" && $0.config == ["seed": "7"] })
                var seen: [Int: [UInt8]] = [:]
                for try await (i, result) in group {
                    #expect(seen.updateValue(result, forKey: i) == nil, "task \(i) answered twice")
                }
                return seen
            }
            #expect(results.count == 10_000)
            #expect(results.allSatisfy { $0.value == Array("\($0.key)".utf8) })
            try await client.close()
        }
    }

    @Test func anUnknownStrategyAtStartIsAConfigurationError() async throws {
        let data = try TemporaryDirectory()
        let result = try await run(
            Paths.switchyard,
            ["serve", "--listen", "127.0.0.1:0", "--workers", "1", "--data-dir", data.path, "--strategy", "nope"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--strategy") && result.stderr.contains("nope"), "\(result.stderr)")
    }
}

/// The shipped strategy plugins on the real server with real workers.
@Suite struct ShippedStrategyTests {
    @Test func theFourShippedStrategiesAreAvailableAndEachRunsEveryTaskOnce() async throws {
        try await withServer { server in
            let client = try await server.connect()
            let available = try await client.strategies().available
            for name in ["round_robin", "least_loaded", "key_affinity", "two_choices"] {
                #expect(available.contains { $0.name == name }, "\(name) in \(available)")
            }
            #expect(available.contains { $0.source.hasSuffix("libswystrategy-key_affinity.so") })
            // The shipped plugin replaces the in-process round_robin the server starts with.
            #expect(available.first { $0.name == "round_robin" }?.source.hasSuffix("libswystrategy-round_robin.so") == true)
            for name in ["least_loaded", "key_affinity", "two_choices", "round_robin"] {
                try await client.setStrategy(name)
                let results = try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
                    for i in 0..<300 {
                        group.addTask {
                            let options = SubmitOptions(key: "tenant-\(i % 7)")
                            return (i, try await client.submit("echo", payload: Array("\(i)".utf8), options: options))
                        }
                    }
                    var seen: [Int: [UInt8]] = [:]
                    for try await (i, result) in group { seen[i] = result }
                    return seen
                }
                #expect(results.count == 300, "\(name)")
                #expect(results.allSatisfy { $0.value == Array("\($0.key)".utf8) }, "\(name)")
            }
            #expect(try await client.strategies().active.allSatisfy { $0.faults == 0 })
            try await client.close()
        }
    }

    @Test func eachWorkersServiceTimeIsMeasured() async throws {
        try await withServer(workers: 1) { server in
            let client = try await server.connect()
            #expect(try await client.serverStatus().workers[0].serviceNanosAverage == nil)
            for _ in 0..<3 { _ = try await client.submit("sleep", payload: Array("60".utf8)) }
            let average = try #require(try await client.serverStatus().workers[0].serviceNanosAverage)
            #expect(average >= 60_000_000, "a 60 ms task takes at least 60 ms: \(average) ns")
            try await client.close()
        }
    }

    @Test func keyAffinityKeepsAKeyOnOneWorker() async throws {
        try await withServer(extraArguments: ["--strategy", "key_affinity"]) { server in
            let client = try await server.connect()
            let before = try await tasksDone(client)
            for _ in 0..<40 {
                _ = try await client.submit("echo", payload: Array("x".utf8), options: SubmitOptions(key: "one-key"))
            }
            let after = try await tasksDone(client)
            let added = zip(after, before).map { $0 - $1 }
            #expect(added.sorted() == [0, 40], "all 40 tasks of one key ran on one worker: \(added)")
            try await client.close()
        }
    }

    @Test func leastLoadedSteersAroundAWorkerBusyWithALongTask() async throws {
        try await withServer(extraArguments: ["--strategy", "least_loaded"]) { server in
            let client = try await server.connect()
            let (started, continuation) = AsyncStream<Void>.makeStream()
            // A task that runs until its worker is killed at the end: no race with the clock.
            let long = Task {
                try await client.submit(
                    "sleep", payload: Array("600000".utf8), options: SubmitOptions(maxAttempts: 1)
                ) { _, _ in continuation.yield() }
            }
            for await _ in started { break }
            let before = try await tasksDone(client)
            for i in 0..<30 { _ = try await client.submit("echo", payload: Array("\(i)".utf8)) }
            let after = try await tasksDone(client)
            let added = zip(after, before).map { $0 - $1 }
            // Round-robin would have put half behind the sleep; least_loaded sends none there.
            #expect(added.sorted() == [0, 30], "\(added)")
            let busy = try await client.serverStatus().workers.first { $0.inFlight == 1 }
            kill(try #require(busy).pid, SIGKILL)
            _ = await #expect(throws: SwitchyardError.self) { _ = try await long.value }
            try await client.close()
        }
    }
}
