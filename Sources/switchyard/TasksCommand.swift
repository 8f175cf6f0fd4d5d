import ArgumentParser
import SwitchyardClient
import SwitchyardCore

struct TasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks",
        abstract: "List tasks, a page at a time.",
        discussion: """
            Lists the tasks the server knows (live ones and recently finished ones), in id \
            order, without their results (`switchyard task ID` shows one with its result). \
            A full page ends with the command for the next one (--after the last id shown). \
            Exit status: 0 success, 1 the server answered with an error, 3 the server could \
            not be reached, 64 the command line is wrong.
            """
    )

    /// The states --state accepts, by name.
    enum StateName: String, CaseIterable, ExpressibleByArgument {
        case queued, running, succeeded, failed, dead, cancelled, scheduled

        var state: TaskState {
            switch self {
            case .queued: .queued
            case .running: .running
            case .succeeded: .succeeded
            case .failed: .failed
            case .dead: .dead
            case .cancelled: .cancelled
            case .scheduled: .scheduled
            }
        }
    }

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Only tasks in this state.")
    var state: StateName?

    @Option(help: "Only tasks of this handler.")
    var handler: String?

    @Option(help: ArgumentHelp("Only tasks with a larger id: the last id of the previous page.", valueName: "id"))
    var after: TaskID = 0

    @Option(help: "Tasks per page, 1-1000.")
    var limit: Int = 100

    @Flag(help: "Print a JSON array of records.")
    var json = false

    func validate() throws {
        if !WireProtocol.listLimitRange.contains(limit) { throw ValidationError("--limit must be from 1 to 1000") }
        if let handler, let problem = HandlerName.validate(handler) { throw ValidationError("--handler: \(problem)") }
    }

    func run() async throws {
        try await runClientCommand {
            let client = try await connection.connect()
            defer { Task { try? await client.close() } }
            let infos = try await client.listTasks(
                TaskListQuery(state: state?.state, handler: handler, afterID: after, limit: limit))
            if json {
                try TaskOutput.printJSON(infos.map(TaskOutput.jsonObject))
                return
            }
            if infos.isEmpty {
                print(after == 0 ? "no tasks" : "no tasks after id \(after)")
                return
            }
            TaskOutput.printTable(infos)
            if infos.count == limit, let last = infos.last {
                print("\nmore may follow: switchyard tasks \(nextPageArguments(after: last.id))")
            }
        }
    }

    /// This command's filters with --after set to `lastID`.
    private func nextPageArguments(after lastID: TaskID) -> String {
        var arguments: [String] = []
        if let state { arguments += ["--state", state.rawValue] }
        if let handler { arguments += ["--handler", handler] }
        arguments += ["--after", "\(lastID)"]
        if limit != 100 { arguments += ["--limit", "\(limit)"] }
        if let server = connection.server { arguments += ["--server", server] }
        return arguments.joined(separator: " ")
    }
}
