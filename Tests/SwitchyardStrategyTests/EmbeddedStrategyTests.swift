import NIOConcurrencyHelpers
import SwitchyardClient
import SwitchyardCore
import SwitchyardHost
import Testing

/// A strategy written in Swift: every task to the highest-numbered worker
/// that can take it, counting its picks where the test can see them.
private struct LastWorker: DispatchStrategy {
    let name = "last_worker"
    let picks: NIOLockedValueBox<Int>
    mutating func pick(_ task: DispatchCandidate, workers: [WorkerSlot]) -> Int? {
        picks.withLockedValue { $0 += 1 }
        return workers.lastIndex { $0.canTake(handler: task.handler) }
    }
}

/// A program embedding the host installs a Swift strategy in process. The
/// host is this test process; its workers are real processes (the
/// `switchyard` executable, which runs workers the same way).
@Suite struct EmbeddedStrategyTests {
    @Test func aSwiftStrategyInstalledByTheEmbeddingProgramPlacesTheTasks() async throws {
        let picks = NIOLockedValueBox(0)
        var configuration = HostConfiguration(
            port: 0, workers: 2, workerExecutable: Paths.buildDirectory.appendingPathComponent("switchyard").path,
            store: .memory)
        configuration.customStrategies = [
            "last_worker": StrategyRegistration(source: "the embedding program") { _ in LastWorker(picks: picks) }
        ]
        configuration.strategies = [StrategySetRequest(name: "last_worker")]
        let host = SwitchyardHost(configuration: configuration)
        let address = try await host.start()
        do {
            let client = try await SwitchyardClient.connect(to: HostPort(host: "127.0.0.1", port: address.port!))
            func done() async throws -> [UInt64] {
                try await client.serverStatus().workers.sorted { $0.id < $1.id }.map(\.tasksDone)
            }
            for i in 0..<10 { #expect(try await client.submit("echo", payload: Array("\(i)".utf8)) == Array("\(i)".utf8)) }
            #expect(try await done() == [0, 10], "the Swift strategy sent every task to the last worker")
            #expect(picks.withLockedValue { $0 } == 10)
            let report = try await client.strategies()
            #expect(report.active.first { $0.scope == "default" }?.name == "last_worker")
            #expect(report.available.contains { $0.name == "last_worker" && $0.source == "the embedding program" })

            // Swapped from the embedding API, between two dispatch decisions.
            let swapped = try await host.setStrategy(StrategySetRequest(name: "round_robin"))
            #expect(swapped.active.first { $0.scope == "default" }?.name == "round_robin")
            for i in 0..<10 { _ = try await client.submit("echo", payload: Array("\(i)".utf8)) }
            #expect(try await done() == [5, 15])
            #expect(picks.withLockedValue { $0 } == 10, "the Swift strategy is no longer asked")
            try await client.close()
        } catch {
            try? await host.shutdown()
            throw error
        }
        try await host.shutdown()
    }
}
