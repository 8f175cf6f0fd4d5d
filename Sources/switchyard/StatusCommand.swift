import ArgumentParser
import Foundation
import SwitchyardClient
import SwitchyardCore

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the server's workers and handlers, or one task's state.")

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "A task id: show that task instead of the server (as `switchyard task ID` does).")
    var id: TaskID?

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await runClientCommand {
            let client = try await connection.connect()
            defer { Task { try? await client.close() } }
            if let id {
                try showTask(try await client.taskInfo(id), json: json)
            } else {
                printServer(try await client.serverStatus())
            }
        }
    }

    private func printServer(_ status: ServerStatus) {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try! encoder.encode(status), as: UTF8.self))
            return
        }
        print("\(status.server) on \(status.listen), pid \(status.pid), up \(Int(status.uptimeSeconds)) s")
        print(
            "tasks: \(status.queued) queued, \(status.running) running, \(status.succeeded) succeeded, \(status.failed) failed; strategy \(status.strategy); \(status.workerRestarts) worker restarts"
        )
        if let strategies = status.strategies, strategies.count > 1 || strategies.contains(where: { $0.faults > 0 }) {
            for active in strategies {
                print("strategy for \(active.scope): \(active.name)\(active.faults > 0 ? " (\(active.faults) faulty picks)" : "")")
            }
        }
        for notice in status.strategyNotices ?? [] { print(notice) }
        if let generation = status.pluginGeneration {
            var line = "plugins: generation \(generation)"
            if let reload = status.lastReload {
                line += "; last reload (\(reload.trigger)): \(reload.outcome)"
                if let reason = reload.reason { line += ": \(reason)" }
            }
            print(line)
        }
        var limits: [String] = []
        if let memory = status.workerMemoryLimit { limits.append("memory \(memory >> 20) MiB per worker") }
        if let cpu = status.workerCPULimitSeconds { limits.append("CPU \(cpu) s per task") }
        if !limits.isEmpty { print("worker limits: \(limits.joined(separator: ", "))") }
        if let hosts = status.hosts {
            print("\nhosts sharing \(status.store ?? "the queue"):")
            print(
                pad("ID", 6) + pad("LISTEN", 22) + pad("WORKERS", 9) + pad("HELD", 7) + pad("RUNNING", 9)
                    + pad("DONE", 10) + pad("HEARTBEAT", 11) + "NAME")
            for host in hosts {
                print(
                    pad("\(host.id)\(host.isThisHost ? "*" : "")", 6) + pad(host.listen, 22) + pad("\(host.workers)", 9)
                        + pad("\(host.held)", 7) + pad("\(host.running)", 9) + pad("\(host.succeeded + host.failed)", 10)
                        + pad(String(format: "%.1f s ago", host.heartbeatAgeSeconds), 11)
                        + host.name + (host.connected ? "" : " (disconnected)"))
            }
        }
        print("\nworkers:")
        print(
            pad("ID", 4) + pad("PID", 9) + pad("STATE", 10) + pad("DONE", 12) + pad("IN FLIGHT", 10) + pad("WINDOW", 8)
                + pad("AVG TIME", 11) + "HANDLERS")
        for worker in status.workers {
            print(
                pad("\(worker.id)", 4) + pad("\(worker.pid)", 9) + pad(worker.state, 10) + pad("\(worker.tasksDone)", 12)
                    + pad("\(worker.inFlight)", 10) + pad(worker.window.map { "\($0)" } ?? "-", 8)
                    + pad(worker.serviceNanosAverage.map(formatNanos) ?? "-", 11)
                    + "\(worker.handlers.count)")
        }
        print("\nhandlers:")
        print(pad("NAME", 16) + pad("PLUGIN", 22) + pad("WORKERS", 9) + pad("SHA-256", 14) + "FILE")
        // Bound C functions are listed under "bindings", with their signatures.
        let bound = Set((status.bindings ?? []).map(\.name))
        for handler in status.handlers where !(handler.plugin == "ffi" && bound.contains(handler.name)) {
            print(
                pad(handler.name, 16) + pad("\(handler.plugin) \(handler.pluginVersion)", 22)
                    + pad("\(handler.workers)", 9) + pad(handler.sha256.map { String($0.prefix(12)) } ?? "-", 14)
                    + handler.file)
        }
        if let bindings = status.bindings, !bindings.isEmpty {
            print("\nbindings:")
            print(pad("NAME", 16) + pad("SIGNATURE", 28) + pad("WORKERS", 9) + pad("SHA-256", 14) + "FUNCTION")
            for binding in bindings {
                let found = binding.path.map { $0 == binding.library ? "" : " (\($0))" } ?? ""
                print(
                    pad(binding.name, 16) + pad(binding.signature, 28) + pad("\(binding.workers)", 9)
                        + pad(binding.sha256.map { String($0.prefix(12)) } ?? "-", 14)
                        + "\(binding.symbol) in \(binding.library)\(found)")
            }
            let skipped = bindings.filter { $0.skipped != nil }
            if !skipped.isEmpty {
                print("\nskipped bindings:")
                for binding in skipped { print("  \(binding.name): \(binding.skipped!)") }
            }
        }
        if let files = status.strategyFiles, !files.isEmpty {
            print("\nstrategy plugins:")
            print(pad("PLUGIN", 22) + pad("SHA-256", 14) + pad("STRATEGIES", 28) + "FILE")
            for file in files {
                print(
                    pad("\(file.plugin) \(file.version)", 22) + pad(String(file.sha256.prefix(12)), 14)
                        + pad(file.strategies.joined(separator: ","), 28) + file.file)
            }
        }
        if !status.skippedPlugins.isEmpty {
            print("\nskipped plugins:")
            for skip in status.skippedPlugins { print("  \(skip.file): \(skip.reason)") }
        }
    }

    private func formatNanos(_ ns: UInt64) -> String {
        switch ns {
        case ..<10_000: "\(ns) ns"
        case ..<10_000_000: "\(ns / 1_000) us"
        case ..<10_000_000_000: "\(ns / 1_000_000) ms"
        default: "\(ns / 1_000_000_000) s"
        }
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
