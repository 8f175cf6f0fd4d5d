import NIOCore
import SwitchyardClient
import SwitchyardCore
import Testing

/// Workers' windows on a real server: grown for short tasks within the flags' bounds, pinned when
/// --prefetch is set by hand, and shown by status.
@Suite struct WorkerWindowTests {
    /// Runs 2,000 echo tasks, 200 in flight, with `switchyard bench` (a client that keeps the
    /// workers busy, so their measured time per task is the echo's, not the client's pauses);
    /// returns the workers' windows after.
    private func windowsAfterEchoBurst(_ server: ServerProcess) async throws -> [Int] {
        let bench = try await run(
            Paths.switchyard, ["bench", "--server", "\(server.address)", "-n", "2000", "-c", "200", "--handler", "echo"])
        #expect(bench.status == 0, "\(bench.stderr)")
        #expect(bench.stdout.contains("2000 tasks in") && bench.stdout.contains(" 0 errors"), "\(bench.stdout)")
        let client = try await server.connect()
        let workers = try await client.serverStatus().workers
        try await client.close()
        return try workers.map { try #require($0.window, "status names each worker's window") }
    }

    @Test func shortTasksGrowTheWindowInPowersOfTwoUpToMaxPrefetch() async throws {
        // A budget of 10 s: the window grows unless a task takes over a second, so a loaded
        // machine (where the measured time includes the host's own delays) still shows it.
        try await withServer(extraArguments: ["--prefetch", "4", "--max-prefetch", "64", "--window-budget", "10s"]) {
            server in
            let windows = try await windowsAfterEchoBurst(server)
            #expect(windows.contains { $0 > 4 }, "windows \(windows)")
            #expect(windows.allSatisfy { [4, 8, 16, 32, 64].contains($0) }, "windows \(windows)")
        }
    }

    @Test func aPrefetchSetByHandPinsTheWindow() async throws {
        // The same budget as above, where the windows grow: here they must not.
        try await withServer(extraArguments: ["--prefetch", "4", "--window-budget", "10s"]) { server in
            let windows = try await windowsAfterEchoBurst(server)
            #expect(windows == [4, 4], "windows \(windows)")
        }
    }

    @Test func aMaxPrefetchBelowPrefetchOrANoBudgetIsRefusedNamingTheFlag() async throws {
        let result = try await run(Paths.switchyard, ["serve", "--prefetch", "32", "--max-prefetch", "8"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--max-prefetch must be from --prefetch (32) to 4096, not 8"), "\(result.stderr)")
        let zero = try await run(Paths.switchyard, ["serve", "--window-budget", "0s"])
        #expect(zero.status != 0)
        #expect(zero.stderr.contains("--window-budget must be above 0"), "\(zero.stderr)")
    }
}
