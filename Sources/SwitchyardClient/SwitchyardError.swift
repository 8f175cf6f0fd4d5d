import SwitchyardCore

/// An error answer from the server, or a failure of the connection.
public struct SwitchyardError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The server's error code; `nil` for a connection failure on this side.
    public var code: ErrorCode?
    public var message: String
    /// The task the error is about, when there is one.
    public var taskID: TaskID?

    public init(code: ErrorCode?, message: String, taskID: TaskID? = nil) {
        self.code = code
        self.message = message
        self.taskID = taskID
    }

    /// The connection closed or broke before the reply arrived.
    public static func connection(_ message: String) -> SwitchyardError {
        SwitchyardError(code: nil, message: message)
    }

    /// Runs a codec check on this side, before anything is sent: its
    /// `ProtocolError` (the same code and message the server would answer
    /// with) is thrown as a `SwitchyardError`.
    static func checkLocally(_ check: () throws -> Void) throws {
        do {
            try check()
        } catch let error as ProtocolError {
            throw SwitchyardError(code: error.code, message: error.message)
        }
    }

    public var description: String {
        "\(code?.name ?? "CONNECTION"): \(message)"
    }
}
