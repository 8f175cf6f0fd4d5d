import NIOCore

/// Task ids are assigned by the host, start at 1 and never repeat within a host's life.
public typealias TaskID = UInt64

/// Where a task is in its life (docs/PROTOCOL.md has the diagram).
public enum TaskState: UInt8, Sendable, Hashable, CaseIterable, Codable, CustomStringConvertible {
    /// Accepted and waiting for a worker.
    case queued = 1
    /// Sent to a worker.
    case running = 2
    /// Finished with a result.
    case succeeded = 3
    /// An attempt failed and the task waits to be retried.
    case failed = 4
    /// Out of attempts, or failed permanently: will not run again.
    case dead = 5
    /// Cancelled before it finished.
    case cancelled = 6
    /// Waiting for its run-at time.
    case scheduled = 7

    /// True for states a task never leaves.
    public var isFinal: Bool { self == .succeeded || self == .dead || self == .cancelled }

    public var description: String {
        switch self {
        case .queued: "queued"
        case .running: "running"
        case .succeeded: "succeeded"
        case .failed: "failed"
        case .dead: "dead"
        case .cancelled: "cancelled"
        case .scheduled: "scheduled"
        }
    }
}

/// What a handler reported for one attempt.
public enum HandlerStatus: UInt8, Sendable, Hashable {
    case ok = 0
    case permanentFailure = 1
    case retryableFailure = 2
}

/// A task's full record as TASK_INFO reports it.
public struct TaskInfo: Sendable, Hashable {
    public var id: TaskID
    public var state: TaskState
    public var handler: String
    public var priority: Int32
    public var attempts: UInt32
    public var maxAttempts: UInt32
    /// Set when the last attempt failed.
    public var errorCode: ErrorCode?
    public var errorMessage: String?
    /// The result, for a succeeded task whose record is still retained.
    public var result: ByteBuffer?

    public init(
        id: TaskID, state: TaskState, handler: String, priority: Int32, attempts: UInt32, maxAttempts: UInt32,
        errorCode: ErrorCode? = nil, errorMessage: String? = nil, result: ByteBuffer? = nil
    ) {
        self.id = id
        self.state = state
        self.handler = handler
        self.priority = priority
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.result = result
    }
}

/// Handler names: 1-255 bytes of `[A-Za-z0-9_.-]`.
public enum HandlerName {
    public static func validate(_ name: String) -> String? {
        let utf8 = name.utf8
        if utf8.isEmpty { return "handler name is empty" }
        if utf8.count > 255 { return "handler name is \(utf8.count) bytes; the limit is 255" }
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
                continue
            default:
                return "handler name `\(name)` may only contain letters, digits, `_`, `.` and `-`"
            }
        }
        return nil
    }
}
