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
    /// A bound C function's payload did not fit its signature: BAD_ARGUMENTS, not retried.
    case badArguments = 3
}

/// A task's full record as TASK_INFO reports it (and, without results, as
/// TASK_LIST entries do).
///
/// Times are wall-clock milliseconds since the Unix epoch; 0 means "not yet"
/// (a task that never started has `startedAt == 0`).
public struct TaskInfo: Sendable, Hashable {
    public var id: TaskID
    public var state: TaskState
    public var handler: String
    public var priority: Int32
    /// Attempts started so far, including one running now.
    public var attempts: UInt32
    public var maxAttempts: UInt32
    /// The routing key given at submit, if any.
    public var key: String?
    /// The unique key given at submit, if any.
    public var uniqueKey: String?
    /// Per-attempt time limit in milliseconds; 0 means none.
    public var timeoutMillis: UInt32
    /// When the task may (next) run: its run-at time, or when a retry is due.
    public var runAt: EpochMillis
    /// When the server accepted it.
    public var createdAt: EpochMillis
    /// When its last attempt started; 0 if none has.
    public var startedAt: EpochMillis
    /// When it reached a final state; 0 until then.
    public var finishedAt: EpochMillis
    /// Set when the last attempt failed.
    public var errorCode: ErrorCode?
    public var errorMessage: String?
    /// The result, for a succeeded task whose record is still retained. Always
    /// nil in a TASK_LIST.
    public var result: ByteBuffer?

    public init(
        id: TaskID, state: TaskState, handler: String, priority: Int32, attempts: UInt32, maxAttempts: UInt32,
        key: String? = nil, uniqueKey: String? = nil, timeoutMillis: UInt32 = 0, runAt: EpochMillis = 0,
        createdAt: EpochMillis = 0, startedAt: EpochMillis = 0, finishedAt: EpochMillis = 0,
        errorCode: ErrorCode? = nil, errorMessage: String? = nil, result: ByteBuffer? = nil
    ) {
        self.id = id
        self.state = state
        self.handler = handler
        self.priority = priority
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.key = key
        self.uniqueKey = uniqueKey
        self.timeoutMillis = timeoutMillis
        self.runAt = runAt
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.result = result
    }

    /// The client-visible part of a stored record: everything but the payload.
    ///
    /// - Parameter includingResult: false for TASK_LIST entries, which never
    ///   carry results (a page of results could be far larger than a frame).
    public init(_ record: TaskRecord, includingResult: Bool = true) {
        self.init(
            id: record.id, state: record.state, handler: record.handler, priority: record.priority,
            attempts: record.attempts, maxAttempts: record.maxAttempts, key: record.key, uniqueKey: record.uniqueKey,
            timeoutMillis: record.timeoutMillis, runAt: record.runAt, createdAt: record.createdAt,
            startedAt: record.startedAt, finishedAt: record.finishedAt, errorCode: record.errorCode,
            errorMessage: record.errorMessage, result: includingResult ? record.result : nil)
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
