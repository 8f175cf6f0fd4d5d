import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SwitchyardClient
import SwitchyardCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Hot reload of handler plugins on the real server: plugin files rebuilt or
/// copied into its plugin directory during the test.
@Suite struct ReloadTests {
    @Test func fiveReloadsUnderAStreamOf20000TasksLoseNothingAndNewTasksGetTheNewVersion() async throws {
        let plugins = try await VersionedPlugins(versions: [1, 2])
        try await withServer(workers: 2, plugins: plugins.plugins.path) { server in
            let client = try await server.connect()
            // Reloads completed and reloads started, read before each submit and after its reply.
            let progress = NIOLockedValueBox((completed: 0, started: 0))
            let (milestones, reachedMilestone) = AsyncStream<Int>.makeStream()
            let total = 20_000
            let reloader = Task {
                var done = 0
                for await submitted in milestones where submitted >= (done + 1) * 3_000 && done < 5 {
                    progress.withLockedValue { $0.started += 1 }
                    try plugins.install(version: done % 2 == 0 ? 2 : 1)
                    let report = try await client.reload()
                    #expect(report.outcome == "reloaded")
                    #expect(report.generation == done + 2)
                    done += 1
                    progress.withLockedValue { $0.completed = done }
                }
                return done
            }
            let replies = try await withThrowingTaskGroup(of: (Int, Int, Int, String).self) { group in
                var outstanding = 0
                var replies: [Int: (Int, Int, String)] = [:]
                func collect(_ reply: (Int, Int, Int, String)) {
                    #expect(replies.updateValue((reply.1, reply.2, reply.3), forKey: reply.0) == nil, "answered twice")
                }
                for i in 0..<total {
                    if outstanding >= 256, let reply = try await group.next() {
                        collect(reply)
                        outstanding -= 1
                    }
                    group.addTask {
                        let before = progress.withLockedValue { $0.completed }
                        let reply = try await client.submit("vecho", payload: Array("\(i)".utf8))
                        let startedBy = progress.withLockedValue { $0.started }
                        return (i, before, startedBy, String(decoding: reply, as: UTF8.self))
                    }
                    outstanding += 1
                    if i % 500 == 0 { reachedMilestone.yield(i) }
                }
                reachedMilestone.finish()
                for try await reply in group { collect(reply) }
                return replies
            }
            #expect(try await reloader.value == 5, "five reloads ran during the stream")
            #expect(replies.count == total)
            func version(afterReloads completed: Int) -> Int { completed % 2 == 0 ? 1 : 2 }
            var checked = 0
            for (i, (completed, startedBy, reply)) in replies {
                let expected = version(afterReloads: completed)
                if startedBy == completed {
                    // No reload began between the submit and the reply: only the version of the
                    // last completed reload may answer.
                    #expect(reply == "v\(expected):\(i)", "task \(i), after \(completed) reloads: \(reply)")
                    checked += 1
                } else {
                    // A reload ran meanwhile: the version before it or after it.
                    #expect(reply == "v1:\(i)" || reply == "v2:\(i)", "task \(i): \(reply)")
                }
            }
            #expect(checked > total / 2, "most tasks ran between reloads: \(checked)")
            let status = try await client.serverStatus()
            #expect(status.pluginGeneration == 6)
            #expect(status.failed == 0)
            #expect(status.workers.count == 2 && status.workers.allSatisfy { $0.pluginGeneration == 6 })
            #expect(status.handlers.first { $0.name == "vecho" }?.pluginVersion == "2")
            try await client.close()
        }
    }

    @Test func aBrokenNewPluginIsRefusedWithItsReasonAndTheOldOnesKeepServing() async throws {
        let plugins = try await VersionedPlugins(versions: [1])
        let bad = try TemporaryDirectory()
        try await compilePlugin(Paths.fixture("start_crashes.c"), to: bad.file("start_crashes.so"))
        try await compilePlugin(Paths.fixture("wrong_abi.c"), to: bad.file("wrong_abi.so"))
        try await withServer(workers: 2, plugins: plugins.plugins.path) { server in
            let client = try await server.connect()
            let cases: [(file: String, name: String, says: String)] = [
                (bad.file("start_crashes.so"), "start_crashes.so", "on_worker_start of handler `start_crashes`"),
                (bad.file("wrong_abi.so"), "wrong_abi.so", "ABI"),
                (Paths.fixture("not_a_plugin.so.txt"), "not_a_plugin.so", "not_a_plugin.so"),
            ]
            for bad in cases {
                try plugins.place(bad.file, as: bad.name)
                let refused = await #expect(throws: SwitchyardError.self) { try await client.reload() }
                #expect(refused?.code == .reloadFailed)
                #expect(refused?.message.contains(plugins.plugins.file(bad.name)) == true, "\(refused?.message ?? "")")
                #expect(refused?.message.contains(bad.says) == true, "\(refused?.message ?? "")")
                // Nothing changed: the same workers, the same generation, still serving.
                #expect(try await client.submit("vecho", payload: Array("x".utf8)) == Array("v1:x".utf8))
                let status = try await client.serverStatus()
                #expect(status.pluginGeneration == 1)
                #expect(status.lastReload?.outcome == "failed")
                #expect(status.workerRestarts == 0)
                try plugins.remove(bad.name)
            }
            #expect(try await client.reload().outcome == "unchanged")
            #expect(server.log.contains { $0.contains("reload (request) refused") && $0.contains("start_crashes") })

            // A new version whose self-test fails: refused with the plugin's own words.
            try await compilePlugin(
                Paths.fixture("versioned_echo.c"), to: bad.file("vecho-selftest.so"),
                defines: ["-DVERSION=2", "-DSELF_TEST_FAILS"])
            try plugins.place(bad.file("vecho-selftest.so"), as: "vecho.so")
            let selfTest = await #expect(throws: SwitchyardError.self) { try await client.reload() }
            #expect(selfTest?.code == .reloadFailed)
            #expect(selfTest?.message.contains("self-test failed: vecho: the reply table is empty") == true, "\(selfTest?.message ?? "")")
            #expect(try await client.submit("vecho", payload: Array("y".utf8)) == Array("v1:y".utf8))
            // One whose self-test passes goes in.
            try await compilePlugin(
                Paths.fixture("versioned_echo.c"), to: bad.file("vecho-selftest-ok.so"),
                defines: ["-DVERSION=2", "-DSELF_TEST_PASSES"])
            try plugins.place(bad.file("vecho-selftest-ok.so"), as: "vecho.so")
            #expect(try await client.reload().outcome == "reloaded")
            #expect(try await client.submit("vecho", payload: Array("z".utf8)) == Array("v2:z".utf8))
            try await client.close()
        }
    }

    @Test func handlersComeAndGoWithTheirFilesAndSIGHUPReloads() async throws {
        let plugins = try await VersionedPlugins(versions: [1, 2])
        try plugins.place(Paths.shippedPlugin("echo"), as: "echo.so")
        try await withServer(workers: 2, plugins: plugins.plugins.path) { server in
            let client = try await server.connect()
            // Take echo away, add sleep: reported, and echo is refused from then on.
            try plugins.remove("echo.so")
            try plugins.place(Paths.shippedPlugin("sleep"), as: "sleep.so")
            let report = try await client.reload()
            #expect(report.removed == ["echo"])
            #expect(report.added == ["sleep"])
            #expect(report.files.map(\.plugin).sorted() == ["sleep", "versioned_echo"])
            #expect(report.files.allSatisfy { $0.sha256.count == 64 })
            let gone = await #expect(throws: SwitchyardError.self) {
                try await client.submit("echo", payload: Array("x".utf8))
            }
            #expect(gone?.code == .unknownHandler)
            _ = try await client.submit("sleep", payload: Array("1".utf8))

            // SIGHUP: the same reload, logged with its trigger.
            try plugins.install(version: 2)
            server.signal(SIGHUP)
            try await server.waitForLog { $0.contains("reload (SIGHUP) done") }
            #expect(try await client.submit("vecho", payload: Array("y".utf8)) == Array("v2:y".utf8))
            let status = try await client.serverStatus()
            #expect(status.lastReload?.trigger == "SIGHUP")
            let vecho = try #require(status.handlers.first { $0.name == "vecho" })
            #expect(vecho.generation == 3 && vecho.pluginVersion == "2")
            #expect(vecho.sha256 == status.lastReload?.files.first { $0.plugin == "versioned_echo" }?.sha256)
            try await client.close()
        }
    }

    @Test func aTaskLongerThanTheDrainTimeoutIsRetriedOnTheNewGeneration() async throws {
        let plugins = try await VersionedPlugins(versions: [1, 2])
        try plugins.place(Paths.shippedPlugin("sleep"), as: "sleep.so")
        try await withServer(workers: 1, plugins: plugins.plugins.path, extraArguments: ["--drain-timeout", "200ms"]) {
            server in
            let client = try await server.connect()
            let (started, continuation) = AsyncStream<Void>.makeStream()
            let long = Task {
                try await client.submit("sleep", payload: Array("600000".utf8), options: SubmitOptions(maxAttempts: 2)) {
                    _, _ in continuation.yield()
                }
            }
            for await _ in started { break }
            let id = try #require(try await client.listTasks(TaskListQuery(state: .running, limit: 10)).first?.id)
            try plugins.install(version: 2)
            let report = try await client.reload()
            #expect(report.killedAtDrainTimeout == 1)
            #expect(report.drained == 0)
            // It started on the old generation, so that attempt counts; it runs again on the new one.
            var info = try await client.taskInfo(id)
            while info.state != .running { info = try await client.taskInfo(id) }
            #expect(info.attempts == 2)
            let worker = try #require(try await client.serverStatus().workers.first { $0.inFlight == 1 })
            #expect(worker.pluginGeneration == 2)
            kill(worker.pid, SIGKILL)
            _ = await #expect(throws: SwitchyardError.self) { _ = try await long.value }
            #expect(try await client.submit("vecho", payload: Array("z".utf8)) == Array("v2:z".utf8))
            try await client.close()
        }
    }

    /// Reloads with a canary while eight loops submit vecho tasks, until the
    /// reload answers. Returns the report and the replies (or "failed").
    func reloadUnderTraffic(_ client: SwitchyardClient, canary: CanaryOptions) async throws -> (ReloadReport, [String]) {
        let stop = NIOLockedValueBox(false)
        let traffic = (0..<8).map { loop in
            Task {
                var seen: [String] = []
                var i = 0
                while !stop.withLockedValue({ $0 }) {
                    i += 1
                    do {
                        let reply = try await client.submit("vecho", payload: Array("\(loop)-\(i)".utf8))
                        seen.append(String(decoding: reply, as: UTF8.self).prefix { $0 != ":" }.description)
                    } catch let error as SwitchyardError where error.code == .handlerFailed {
                        seen.append("failed")
                    }
                }
                return seen
            }
        }
        let report = try await client.reload(canary: canary)
        stop.withLockedValue { $0 = true }
        var seen: [String] = []
        for loop in traffic { seen += try await loop.value }
        return (report, seen)
    }

    @Test func aCanaryThatFailsHalfItsTasksIsRolledBackAndAGoodOneIsPromoted() async throws {
        let plugins = try await VersionedPlugins(versions: [1, 2])
        try await compilePlugin(
            Paths.fixture("versioned_echo.c"), to: plugins.builds.file("vecho-bad.so"),
            defines: ["-DVERSION=3", "-DFAIL_EVERY=2"])
        try await withServer(workers: 2, plugins: plugins.plugins.path) { server in
            let client = try await server.connect()
            try plugins.place(plugins.builds.file("vecho-bad.so"), as: "vecho.so")
            let (bad, during) = try await reloadUnderTraffic(
                client, canary: CanaryOptions(percent: 50, tasks: 40, marginPercent: 10))
            #expect(bad.outcome == "rolled back")
            let verdict = try #require(bad.canary)
            #expect(verdict.decision == "rolled back")
            #expect(verdict.newTasks >= 40 && verdict.newFailures * 10 >= verdict.newTasks * 4, "\(verdict)")
            #expect(verdict.oldFailures == 0)
            #expect(during.contains("v3") && during.contains("v1"), "both versions served during the canary")
            #expect(bad.reason?.contains("canary") == true)
            // Back where it was: generation 1 on every worker, answering v1.
            var status = try await client.serverStatus()
            #expect(status.pluginGeneration == 1)
            #expect(status.workers.count == 2 && status.workers.allSatisfy { $0.pluginGeneration == 1 })
            #expect(status.handlers.first { $0.name == "vecho" }?.pluginVersion == "1")
            #expect(try await client.submit("vecho", payload: Array("a".utf8)) == Array("v1:a".utf8))
            #expect(server.log.contains { $0.contains("canary rolled back") })

            try plugins.install(version: 2)
            let (good, _) = try await reloadUnderTraffic(client, canary: CanaryOptions(percent: 50, tasks: 40))
            #expect(good.outcome == "reloaded")
            #expect(good.canary?.decision == "promoted")
            #expect(good.canary?.newFailures == 0)
            status = try await client.serverStatus()
            #expect(status.pluginGeneration == 2)
            #expect(status.workers.count == 2 && status.workers.allSatisfy { $0.pluginGeneration == 2 })
            #expect(try await client.submit("vecho", payload: Array("b".utf8)) == Array("v2:b".utf8))
            try await client.close()
        }
    }
}
