import ArgumentParser
import Foundation
import SwitchyardClient
import SwitchyardCore

/// How client commands reach the server.
struct ConnectionOptions: ParsableArguments {
    @Option(
        name: .long,
        help: """
            The server's HOST:PORT, or unix:PATH for its admin socket (DATA_DIR/switchyard.sock: admin \
            without a token) (default: $SWITCHYARD_SERVER, else 127.0.0.1:7400).
            """)
    var server: String?

    @Option(help: "A file holding the token for a server started with --auth (default: $SWITCHYARD_TOKEN).")
    var tokenFile: String?

    @Option(name: .customLong("tls-ca"), help: "Use TLS, trusting the CA certificates in this PEM file (default: $SWITCHYARD_TLS_CA, else no TLS).")
    var tlsCA: String?

    private var environment: [String: String] { ProcessInfo.processInfo.environment }

    func address() throws -> ServerAddress {
        let text = server ?? environment["SWITCHYARD_SERVER"] ?? HostPort.defaultServer.description
        do {
            return try ServerAddress(parsing: text)
        } catch {
            throw ValidationError("--server: \(error)")
        }
    }

    /// The token from --token-file, else $SWITCHYARD_TOKEN; nil when neither is set.
    func token() throws -> String? {
        guard let tokenFile else {
            return environment["SWITCHYARD_TOKEN"].map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        }
        do {
            return try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        } catch {
            throw CLIFailure(
                message: "cannot read the token file \(tokenFile) (--token-file): \(error.localizedDescription)", exitCode: 2)
        }
    }

    /// TLS settings from --tls-ca, else $SWITCHYARD_TLS_CA.
    var tls: ClientTLS? {
        (tlsCA ?? environment["SWITCHYARD_TLS_CA"]).map { ClientTLS(caFile: $0) }
    }

    func validate() throws {
        _ = try address()
    }

    func connect() async throws -> SwitchyardClient {
        let options = ConnectOptions(clientName: "switchyard-cli", token: try token(), tls: tls)
        do {
            return try await SwitchyardClient.connect(to: try address(), options: options)
        } catch let error as SwitchyardError {
            throw CLIFailure(message: error.code.map { "\($0.name): \(error.message)" } ?? error.message, exitCode: 3)
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
