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
            `kill -HUP` (or -USR1) on the server does the same. With --canary P, the new \
            version first gets P% of the tasks of each handler whose file changed, on its own \
            workers beside the old ones; after --canary-tasks of them it is promoted to every \
            worker, or rolled back when its failure rate is more than --canary-margin points \
            above the old version's. Exit status: 0 reloaded or unchanged, 1 refused or rolled \
            back, 3 the server could not be reached.
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Flag(help: "Print the server's JSON report.")
    var json = false

    @Option(help: "Canary: first send this share (1-99 %) of the tasks of each handler whose file changed to the new version; it is promoted or rolled back on its failure rate.")
    var canary: Int?

    @Option(help: "Canary: tasks the new version finishes before the decision.")
    var canaryTasks: Int = 100

    @Option(help: "Canary: how many percentage points more failures than the old version roll the new one back.")
    var canaryMargin: Int = 10

    func validate() throws {
        if let canary, !(1...99).contains(canary) { throw ValidationError("--canary takes 1 to 99 (percent), not \(canary)") }
        if canaryTasks < 1 { throw ValidationError("--canary-tasks must be at least 1") }
        if !(0...100).contains(canaryMargin) { throw ValidationError("--canary-margin takes 0 to 100 (points)") }
    }

    func run() async throws {
        try await runClientCommand {
            let client = try await connection.connect()
            defer { Task { try? await client.close() } }
            let report = try await client.reload(
                canary: canary.map { CanaryOptions(percent: $0, tasks: canaryTasks, marginPercent: canaryMargin) })
            if json {
                print(String(buffer: report.encoded()))
                return
            }
            let took = String(format: "%.0f", report.durationMillis)
            if let canary = report.canary {
                print(
                    "canary (\(canary.options.percent)%): new version \(canary.newFailures) failed of \(canary.newTasks), old \(canary.oldFailures) of \(canary.oldTasks): \(canary.decision)"
                )
            }
            if report.outcome == "rolled back" {
                print("rolled back in \(took) ms: generation \(report.generation) keeps serving; \(report.reason ?? "")")
                throw CLIFailure(message: "the new version was rolled back", exitCode: 1)
            }
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
