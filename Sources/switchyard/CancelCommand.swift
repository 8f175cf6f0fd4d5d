import ArgumentParser
import SwitchyardClient
import SwitchyardCore

struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a task.",
        discussion: """
            A queued, scheduled or retry-waiting task is cancelled at once. A running task's \
            attempt is not interrupted: it runs to its end on its worker, its result is \
            discarded, and the task then ends cancelled. Prints the task's state after the \
            cancel. Exit status: 0 the task is cancelled or will be, 1 the task had already \
            finished (succeeded or dead) or the server answered with an error such as \
            UNKNOWN_TASK, 3 the server could not be reached, 64 the command line is wrong.
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "The task id.")
    var id: TaskID

    func run() async throws {
        try await runClientCommand {
            let client = try await connection.connect()
            defer { Task { try? await client.close() } }
            let info = try await client.cancel(id)
            switch info.state {
            case .cancelled:
                print("task \(info.id): cancelled")
            case .running:
                print(
                    "task \(info.id): running; cancel requested: the attempt running now finishes on its worker, its result is discarded, and the task then ends cancelled"
                )
            case .succeeded, .dead:
                throw CLIFailure(
                    message:
                        "task \(info.id) had already finished (\(info.state)) before the cancel; nothing was changed",
                    exitCode: 1)
            case .queued, .scheduled, .failed:
                // A server that honours CANCEL never answers with these; say what it did report.
                throw CLIFailure(
                    message: "the server reported task \(info.id) still \(info.state) after the cancel", exitCode: 1)
            }
        }
    }
}
