import NIOCore

/// Milliseconds since the Unix epoch (wall clock). Times that are stored or
/// sent on the wire use it, so they survive a restart.
public typealias EpochMillis = Int64

/// A task as a store keeps it: everything needed to run it again after a
/// restart, and everything `task ID` shows.
public struct TaskRecord: Sendable, Hashable {
    public var id: TaskID
    public var handler: String
    public var payload: ByteBuffer
    public var priority: Int32
    /// Optional routing key (key-affinity strategies; shown in status).
    public var key: String?
    /// While a task with this unique key is queued, scheduled or running, a
    /// submit with the same key gets this task instead of a new one.
    public var uniqueKey: String?
    public var state: TaskState
    /// Attempts started so far.
    public var attempts: UInt32
    public var maxAttempts: UInt32
    /// Per-attempt time limit in milliseconds; 0 means none.
    public var timeoutMillis: UInt32
    /// When the task may run (scheduled tasks, retries waiting for backoff).
    public var runAt: EpochMillis
    public var createdAt: EpochMillis
    /// When the last attempt started; 0 if none has.
    public var startedAt: EpochMillis
    /// When the task reached a final state; 0 until then.
    public var finishedAt: EpochMillis
    public var errorCode: ErrorCode?
    public var errorMessage: String?
    /// The result of a succeeded task.
    public var result: ByteBuffer?

    public init(
        id: TaskID, handler: String, payload: ByteBuffer, priority: Int32 = 0, key: String? = nil,
        uniqueKey: String? = nil, state: TaskState = .queued, attempts: UInt32 = 0, maxAttempts: UInt32 = 1,
        timeoutMillis: UInt32 = 0, runAt: EpochMillis = 0, createdAt: EpochMillis = 0, startedAt: EpochMillis = 0,
        finishedAt: EpochMillis = 0, errorCode: ErrorCode? = nil, errorMessage: String? = nil,
        result: ByteBuffer? = nil
    ) {
        self.id = id
        self.handler = handler
        self.payload = payload
        self.priority = priority
        self.key = key
        self.uniqueKey = uniqueKey
        self.state = state
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.timeoutMillis = timeoutMillis
        self.runAt = runAt
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.result = result
    }
}

/// A change to one stored task after it was inserted: everything but the
/// payload and the fields fixed at submit.
public struct TaskUpdate: Sendable, Hashable {
    public var id: TaskID
    public var state: TaskState
    public var attempts: UInt32
    public var runAt: EpochMillis
    public var startedAt: EpochMillis
    public var finishedAt: EpochMillis
    public var errorCode: ErrorCode?
    public var errorMessage: String?
    public var result: ByteBuffer?

    public init(
        id: TaskID, state: TaskState, attempts: UInt32, runAt: EpochMillis, startedAt: EpochMillis,
        finishedAt: EpochMillis, errorCode: ErrorCode?, errorMessage: String?, result: ByteBuffer?
    ) {
        self.id = id
        self.state = state
        self.attempts = attempts
        self.runAt = runAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.result = result
    }

    /// The update that brings a stored copy of `record` up to date.
    public init(_ record: TaskRecord) {
        self.init(
            id: record.id, state: record.state, attempts: record.attempts, runAt: record.runAt,
            startedAt: record.startedAt, finishedAt: record.finishedAt, errorCode: record.errorCode,
            errorMessage: record.errorMessage, result: record.result)
    }
}

/// One write in a group commit.
public enum StoreChange: Sendable, Hashable {
    case insert(TaskRecord)
    case update(TaskUpdate)
}

/// Filters for listing tasks (`switchyard tasks`).
public struct TaskListQuery: Sendable, Hashable {
    public var state: TaskState?
    public var handler: String?
    /// Only tasks with a larger id (paging: pass the last id of the previous page).
    public var afterID: TaskID
    public var limit: Int

    public init(state: TaskState? = nil, handler: String? = nil, afterID: TaskID = 0, limit: Int = 100) {
        self.state = state
        self.handler = handler
        self.afterID = afterID
        self.limit = limit
    }
}
