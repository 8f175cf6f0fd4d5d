import ArgumentParser
import Foundation
import SwitchyardClient
import SwitchyardCore

/// How client commands reach the server.
struct ConnectionOptions: ParsableArguments {
    @Option(
        name: .long,
        help: "The server's HOST:PORT (default: $SWITCHYARD_SERVER, else 127.0.0.1:7400).")
    var server: String?

    func address() throws -> HostPort {
        let text = server ?? ProcessInfo.processInfo.environment["SWITCHYARD_SERVER"] ?? HostPort.defaultServer.description
        do {
            return try HostPort(parsing: text)
        } catch {
            throw ValidationError("--server: \(error)")
        }
    }

    func validate() throws {
        _ = try address()
    }

    func connect() async throws -> SwitchyardClient {
        do {
            return try await SwitchyardClient.connect(to: try address(), clientName: "switchyard-cli")
        } catch let error as SwitchyardError {
            throw CLIFailure(message: error.message, exitCode: 3)
        }
    }
}

/// A failure a command reports on stderr, with its exit status.
struct CLIFailure: Error {
    var message: String
    var exitCode: Int32
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Runs a client command body, turning server errors into stderr lines and exit codes:
/// 0 success, 1 the server answered with an error, 2 a local input could not be
/// read (`CLIFailure`), 3 the server could not be reached.
func runClientCommand(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let failure as CLIFailure {
        printError("error: \(failure.message)")
        throw ExitCode(failure.exitCode)
    } catch let error as SwitchyardError {
        printError(error.code.map { "\($0.name): \(error.message)" } ?? "error: \(error.message)")
        throw ExitCode(error.code == nil ? 3 : 1)
    }
}
