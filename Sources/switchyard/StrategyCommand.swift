import ArgumentParser
import Foundation
import SwitchyardClient
import SwitchyardCore

struct StrategyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "strategy",
        abstract: "Show or change how the server spreads tasks over its workers.",
        subcommands: [List.self, Set.self, Load.self]
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

        func validate() throws { try validateConfigPairs(config) }

        func run() async throws {
            let values = configDictionary(config)
            try await runClientCommand {
                let client = try await connection.connect()
                defer { Task { try? await client.close() } }
                let report = try await client.setStrategy(name, handler: handler, config: values)
                printReport(report)
            }
        }
    }

    struct Load: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load a strategy plugin .so into the server, then `strategy set` can use it.",
            discussion: """
                The server first loads the file in a short-lived probe process, creates each of \
                its strategies and calls them on synthetic workers; if the probe crashes, hangs or \
                the file was built for another ABI, the server is untouched and this command says \
                why (exit status 1). Loading a file again after it changed loads the new code: \
                strategies set from then on use it; strategies already in use keep theirs until \
                set again.
                """)

        @OptionGroup var connection: ConnectionOptions

        @Argument(help: "The strategy plugin, a path on the server's machine (relative paths are made absolute here).")
        var path: String

        @Option(name: .customLong("config"), help: "A key=value the probe creates each strategy with (repeatable).")
        var config: [String] = []

        func validate() throws { try validateConfigPairs(config) }

        func run() async throws {
            let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
            try await runClientCommand {
                let client = try await connection.connect()
                defer { Task { try? await client.close() } }
                let report = try await client.loadStrategy(path: absolute, config: configDictionary(config))
                if let loaded = report.loaded {
                    print(
                        "loaded \(loaded.file) (\(loaded.plugin) \(loaded.version)): \(loaded.strategies.joined(separator: ", "))"
                    )
                    if let sha256 = loaded.sha256 { print("sha256 \(sha256)") }
                    for note in loaded.notes { print("note: \(note)") }
                }
                printReport(report)
            }
        }
    }
}

private func validateConfigPairs(_ config: [String]) throws {
    for pair in config where !pair.contains("=") || pair.hasPrefix("=") {
        throw ValidationError("--config takes key=value, not `\(pair)`")
    }
}

private func configDictionary(_ pairs: [String]) -> [String: String] {
    var values: [String: String] = [:]
    for pair in pairs {
        let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        values[String(parts[0])] = String(parts[1])
    }
    return values
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
