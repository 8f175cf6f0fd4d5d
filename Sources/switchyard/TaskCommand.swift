import ArgumentParser
import Foundation
import SwitchyardClient
import SwitchyardCore

struct TaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task",
        abstract: "Show one task's record, or wait for its result.",
        discussion: """
            Without --wait, prints the task's record: state, handler, priority, attempts, keys, \
            timeout, run-at, created/started/finished times (ISO 8601, UTC), last error and \
            result size. With --wait, waits for the task to finish and prints its result bytes \
            alone to standard output, as `submit` does (progress goes to standard error). \
            Exit status: 0 success, 1 the server answered with an error (unknown task, or the \
            task failed: the code and message go to standard error), 3 the server could not be \
            reached, 64 the command line is wrong.
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "The task id, as `submit --background` printed it.")
    var id: TaskID

    @Flag(help: "Wait for the task to finish and print its result.")
    var wait = false

    @Flag(help: "Print the record as JSON.")
    var json = false

    func validate() throws {
        if wait && json {
            throw ValidationError("--wait prints the result bytes and --json the record: give one of them")
        }
    }

    func run() async throws {
        try await runClientCommand {
            let client = try await connection.connect()
            defer { Task { try? await client.close() } }
            if wait {
                try await waitForResult(of: id, client: client)
            } else {
                try showTask(try await client.taskInfo(id), json: json)
            }
        }
    }
}

/// Prints a task's record as `task ID` and `status ID` show it.
func showTask(_ info: TaskInfo, json: Bool) throws {
    if json {
        try TaskOutput.printJSON(TaskOutput.jsonObject(info))
    } else {
        TaskOutput.printRecord(info)
    }
}

/// Waits for a task and writes its result bytes alone to standard output.
func waitForResult(of id: TaskID, client: SwitchyardClient) async throws {
    let progress = ProgressLine(label: "task \(id)")
    do {
        let result = try await client.wait(for: id) { done, total in progress.show(done: done, total: total) }
        progress.finish()
        FileHandle.standardOutput.write(Data(result.readableBytesView))
    } catch {
        progress.finish()
        throw error
    }
}
