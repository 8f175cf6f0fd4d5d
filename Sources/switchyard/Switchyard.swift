import ArgumentParser
import SwitchyardHost

@main
struct Entry {
    static func main() async {
        // Worker processes are this same executable: they never reach the CLI.
        WorkerProcess.runIfRequested()
        await SwitchyardCommand.main()
    }
}

struct SwitchyardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "A task-scheduling runtime whose task handlers are native plugins.",
        discussion: """
            Start a server with `switchyard serve`, then submit tasks with \
            `switchyard submit HANDLER PAYLOAD`; follow them with `switchyard task ID`, \
            `switchyard tasks` and `switchyard cancel ID`. Client commands find the server through \
            --server HOST:PORT or SWITCHYARD_SERVER (default 127.0.0.1:7400).
            """,
        version: SwitchyardHost.version,
        subcommands: [
            ServeCommand.self, SubmitCommand.self, TaskCommand.self, TasksCommand.self, CancelCommand.self,
            StatusCommand.self, StrategyCommand.self, ReloadCommand.self, BenchCommand.self, MigrateCommand.self,
        ]
    )
}
