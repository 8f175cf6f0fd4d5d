import ArgumentParser
import Foundation
import SwitchyardClient
import SwitchyardCore

struct ReloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Reload the server's handler plugins with no task lost.",
        discussion: """
            The server first loads the plugin directory in a probe worker (ABI checks, \
            constructors, on_worker_start). If that fails, nothing changes: the old plugins keep \
            serving and this command prints the file and the reason (exit status 1). Otherwise \
            new workers start on the new files, new tasks go to them, and the old workers finish \
            what they hold and exit (past serve --drain-timeout they are killed and their tasks \
            retried on the new workers). Waits until that is done, then prints what serves now. \
            `kill -HUP` (or -USR1) on the server does the same. Exit status: 0 reloaded or \
            unchanged, 1 refused, 3 the server could not be reached.
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Flag(help: "Print the server's JSON report.")
    var json = false

    func run() async throws {
        try await runClientCommand {
            let client = try await connection.connect()
            defer { Task { try? await client.close() } }
            let report = try await client.reload()
            if json {
                print(String(buffer: report.encoded()))
                return
            }
            let took = String(format: "%.0f", report.durationMillis)
            if report.outcome == "unchanged" {
                print("unchanged: no plugin file changed; generation \(report.generation) keeps serving (\(took) ms)")
                return
            }
            print("reloaded in \(took) ms: generation \(report.generation) serving")
            for file in report.files {
                print(
                    "  \(file.file)  \(file.plugin) \(file.version)  sha256 \(file.sha256.prefix(16))…  handlers: \(file.handlers.joined(separator: ", "))"
                )
            }
            if !report.added.isEmpty { print("handlers added: \(report.added.joined(separator: ", "))") }
            if !report.removed.isEmpty {
                print("handlers removed: \(report.removed.joined(separator: ", ")) (tasks still queued for them fail with UNKNOWN_HANDLER)")
            }
            print("old workers: \(report.drained) drained, \(report.killedAtDrainTimeout) killed at the drain timeout")
        }
    }
}
