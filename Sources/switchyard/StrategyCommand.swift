import ArgumentParser
import Foundation
import SwitchyardClient
import SwitchyardCore

struct StrategyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "strategy",
        abstract: "Show or change how the server spreads tasks over its workers.",
        subcommands: [List.self, Set.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The strategies the server has, which it uses for which handlers, and any it switched off.")

        @OptionGroup var connection: ConnectionOptions

        @Flag(help: "Print the server's JSON document.")
        var json = false

        func run() async throws {
            try await runClientCommand {
                let client = try await connection.connect()
                defer { Task { try? await client.close() } }
                let report = try await client.strategies()
                if json {
                    print(String(buffer: report.encoded()))
                } else {
                    printReport(report)
                }
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Use a strategy for every handler, or for one.",
            discussion: """
                The change takes effect between two dispatch decisions: tasks already sent to \
                workers are untouched and no task is lost or sent twice. A strategy that keeps \
                naming workers that cannot take the task is switched off by the server, and the \
                one it replaced comes back (see `switchyard strategy list`).
                """)

        @OptionGroup var connection: ConnectionOptions

        @Argument(help: "The strategy's name (see `switchyard strategy list`).")
        var name: String

        @Option(help: "Only for this handler (default: every handler without its own strategy).")
        var handler: String?

        @Option(name: .customLong("config"), help: "A key=value the strategy is created with (repeatable).")
        var config: [String] = []

        func validate() throws {
            for pair in config where !pair.contains("=") || pair.hasPrefix("=") {
                throw ValidationError("--config takes key=value, not `\(pair)`")
            }
        }

        func run() async throws {
            var values: [String: String] = [:]
            for pair in config {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                values[String(parts[0])] = String(parts[1])
            }
            try await runClientCommand {
                let client = try await connection.connect()
                defer { Task { try? await client.close() } }
                let report = try await client.setStrategy(name, handler: handler, config: values)
                printReport(report)
            }
        }
    }
}

private func printReport(_ report: StrategyReport) {
    print("in use:")
    for active in report.active {
        let config = active.config.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let scope = active.scope.padding(toLength: max(16, active.scope.count + 1), withPad: " ", startingAt: 0)
        print("  \(scope)\(active.name)\(config.isEmpty ? "" : " (\(config))")\(active.faults > 0 ? "  faults: \(active.faults)" : "")")
    }
    print("available:")
    for available in report.available {
        print("  \(available.name.padding(toLength: 16, withPad: " ", startingAt: 0))\(available.source)")
    }
    if !report.notices.isEmpty {
        print("switched off by the server:")
        for notice in report.notices { print("  \(notice)") }
    }
}
