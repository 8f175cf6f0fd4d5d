/// How a task ended, as returned by a handler.
public enum TaskResult: Sendable {
    /// The task succeeded; the bytes are its result.
    case success([UInt8])
    /// The task failed with `message`, which the client receives.
    ///
    /// A `retryable` failure (a timeout talking to something, say) is run again while the task
    /// has attempts left; a permanent one (bad input) is not.
    case failure(String, retryable: Bool = false)

    /// The task succeeded; the UTF-8 bytes of `text` are its result.
    public static func success(_ text: String) -> TaskResult {
        .success(Array(text.utf8))
    }
}

/// An error a handler throws to fail its task with an exact message.
///
/// A handler may throw any error: the task then fails permanently with the message
/// `"<handler>: <error>"`. Throwing a `TaskFailure` instead sends `message` unchanged and
/// chooses whether the host retries.
public struct TaskFailure: Error, Sendable, CustomStringConvertible {
    /// The message the client receives.
    public var message: String
    /// Whether the host may run the task again while it has attempts left.
    public var retryable: Bool

    /// Creates a failure with the message the client receives.
    public init(_ message: String, retryable: Bool = false) {
        self.message = message
        self.retryable = retryable
    }

    public var description: String { message }
}
