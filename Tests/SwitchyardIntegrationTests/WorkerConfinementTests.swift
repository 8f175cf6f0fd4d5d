import Foundation
import NIOCore
import SwitchyardClient
import SwitchyardCore
import Testing

/// What a worker holds (docs/SECURITY.md, "Worker confinement"): its
/// descriptors and environment, seen from inside by a real plugin, and the
/// per-worker limits, broken by real tasks on a real server.
@Suite struct WorkerConfinementTests {
    @Test func aWorkerHoldsOnlyItsSocketAndTheAllowedEnvironment() async throws {
        let plugins = try await confinedPlugins()
        let environment = [
            "SWITCHYARD_TEST_SECRET": "hunter2", "SWITCHYARD_TOKEN": "admin-token", "PASS_ME": "yes",
            "PASS_PREFIX_A": "a", "LC_TIME": "C.UTF-8", "TZ": "UTC",
        ]
        try await withServer(
            workers: 1, plugins: plugins.path, extraArguments: ["--worker-env", "PASS_ME", "--worker-env", "PASS_PREFIX_*"],
            environment: environment
        ) { server in
            let client = try await server.connect()
            let report = String(decoding: try await client.submit("introspect"), as: UTF8.self)
            try await client.close()
            let lines = report.split(separator: "\n").map(String.init)

            // Descriptors: standard input is /dev/null, 1 and 2 are the server's
            // output, 3 is the link to the host, close-on-exec so nothing the
            // plugin starts inherits it. Nothing else: not the board (mapped,
            // then closed), not the host's sockets, store or event loop.
            let descriptors = lines.filter { $0.hasPrefix("fd ") }.map { $0.split(separator: " ").map(String.init) }
            #expect(descriptors.map { $0[1] } == ["0", "1", "2", "3"], "\(report)")
            #expect(descriptors.first?[2] == "/dev/null")
            #expect(descriptors.last?[2].hasPrefix("socket:") == true)
            #expect(descriptors.last?[3] == "cloexec=1")

            // Environment: the allow list, the names passed with --worker-env, nothing else.
            let variables = Dictionary(
                lines.filter { $0.hasPrefix("env ") }.map { line -> (String, String) in
                    let entry = line.dropFirst(4)
                    let name = String(entry.prefix { $0 != "=" })
                    return (name, String(entry.dropFirst(name.count + 1)))
                }, uniquingKeysWith: { first, _ in first })
            #expect(variables["SWITCHYARD_TEST_SECRET"] == nil, "a secret of the server reached the worker")
            #expect(variables["SWITCHYARD_TOKEN"] == nil, "the client token reached the worker")
            #expect(variables["PASS_ME"] == "yes")
            #expect(variables["PASS_PREFIX_A"] == "a")
            #expect(variables["LC_TIME"] == "C.UTF-8")
            #expect(variables["TZ"] == "UTC")
            #expect(variables["SWIFT_BACKTRACE"] == "enable=no")
            #expect(variables["PATH"] != nil)
            let allowed: Set = [
                "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "LD_LIBRARY_PATH",
                "SWIFT_BACKTRACE", "PASS_ME",
            ]
            let others = variables.keys.filter { !allowed.contains($0) && !$0.hasPrefix("LC_") && !$0.hasPrefix("PASS_PREFIX_") }
            #expect(others.isEmpty, "variables outside the allow list: \(others.sorted())")
        }
    }

    @Test func aTaskPastItsCPULimitFailsWithWorkerLimitAndIsNotRetried() async throws {
        let plugins = try await confinedPlugins()
        // One worker: the echo tasks queued behind the burner can only be
        // answered by the worker that replaces it.
        try await withServer(
            workers: 1, plugins: plugins.path, extraArguments: ["--worker-cpu", "1", "--store", "memory"]
        ) { server in
            let client = try await server.connect()
            let before = try await client.serverStatus()
            let burner = try await client.submitBackground("burn_cpu", payload: ByteBuffer(string: "60"), maxAttempts: 3)
            let echoes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<20 {
                    group.addTask { try await client.submit("echo", payload: Array("\(i)".utf8)) == Array("\(i)".utf8) }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            let error = await #expect(throws: SwitchyardError.self) { try await client.wait(for: burner) }
            #expect(error?.code == .workerLimit, "\(String(describing: error))")
            #expect(error?.message.contains("CPU time limit of 1 s per task (serve --worker-cpu 1)") == true)
            #expect(error?.message.contains("SIGXCPU") == true)
            #expect(echoes == 20, "every other task was answered")

            let record = try await client.taskInfo(burner)
            #expect(record.state == .dead)
            #expect(record.attempts == 1, "a broken limit is not retried")
            let after = try await client.serverStatus()
            #expect(after.workerRestarts == 1)
            #expect(after.workers.first?.pid != before.workers.first?.pid, "a replacement worker took the slot")
            #expect(after.workerCPULimitSeconds == 1)
            #expect(try await client.submit("echo", payload: Array("after".utf8)) == Array("after".utf8))
            try await client.close()
            #expect(server.log.contains { $0.contains("SIGXCPU") && $0.contains("--worker-cpu 1") && $0.contains("starting a replacement") })
        }
    }

    @Test func aTaskThatRunsItsWorkerOutOfMemoryFailsWithWorkerLimit() async throws {
        let plugins = try await confinedPlugins(shipped: ["echo", "crash"])
        try await withServer(
            workers: 1, plugins: plugins.path, extraArguments: ["--worker-memory", "64M", "--store", "memory"]
        ) { server in
            let client = try await server.connect()
            let hog = try await client.submitBackground("hog_memory", payload: ByteBuffer(string: "512"), maxAttempts: 3)
            let error = await #expect(throws: SwitchyardError.self) { try await client.wait(for: hog) }
            #expect(error?.code == .workerLimit, "\(String(describing: error))")
            #expect(error?.message.contains("memory limit of 64 MiB (serve --worker-memory 64M)") == true)
            #expect(try await client.taskInfo(hog).attempts == 1, "a broken limit is not retried")
            #expect(try await client.submit("echo", payload: Array("after".utf8)) == Array("after".utf8))

            // A crash that is not about memory is still a crash, retried as one.
            let crash = try await client.submitBackground("crash", payload: ByteBuffer(), maxAttempts: 2)
            let crashed = await #expect(throws: SwitchyardError.self) { try await client.wait(for: crash) }
            #expect(crashed?.code == .workerCrashed, "\(String(describing: crashed))")
            #expect(try await client.taskInfo(crash).attempts == 2)
            #expect(try await client.serverStatus().workerRestarts == 3)
            try await client.close()
        }
    }

    @Test func limitsAndWorkerEnvironmentNamesAreChecked() async throws {
        for (arguments, message) in [
            (["--worker-memory", "lots"], "--worker-memory takes a size such as 512M or 2G, not `lots`"),
            (["--worker-memory", "16M"], "--worker-memory must be at least 32M"),
            (["--worker-cpu", "0"], "--worker-cpu must be 1 or more seconds"),
            (["--worker-env", "BAD-NAME"], "--worker-env takes a variable name"),
        ] {
            // Were the check missing, the missing plugin directory would end it (status 2), not hang.
            let result = try await run(
                Paths.switchyard, ["serve", "--listen", "127.0.0.1:0", "--plugins", "/nonexistent"] + arguments)
            #expect(result.status == 64, "\(arguments)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
    }
}
