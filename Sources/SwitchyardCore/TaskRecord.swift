import NIOCore

/// Milliseconds since the Unix epoch (wall clock). Times that are stored or
/// sent on the wire use it, so they survive a restart.
public typealias EpochMillis = Int64

/// A task as a store keeps it: everything needed to run it again after a
/// restart, and everything `task ID` shows.
///
/// The fields a queued task rarely has (keys, an error message, a result, its
/// submitter on a server with --auth) live
/// in one shared box that exists only once one of them is set, so a queued task
/// is 112 bytes instead of 200 (issue 7, workload (f)).
public struct TaskRecord: Sendable, Hashable {
    public var id: TaskID
    public var handler: String
    public var payload: ByteBuffer
    /// When the task may run (scheduled tasks, retries waiting for backoff).
    public var runAt: EpochMillis
    public var createdAt: EpochMillis
    /// When the last attempt started; 0 if none has.
    public var startedAt: EpochMillis
    /// When the task reached a final state; 0 until then.
    public var finishedAt: EpochMillis
    private var rare: Rare?
    public var priority: Int32
    /// Attempts started so far.
    public var attempts: UInt32
    public var maxAttempts: UInt32
    /// Per-attempt time limit in milliseconds; 0 means none.
    public var timeoutMillis: UInt32
    public var state: TaskState
    public var errorCode: ErrorCode?

    /// Optional routing key (key-affinity strategies; shown in status).
    public var key: String? {
        get { rare?.fields.key }
        set { updateRare { $0.key = newValue } }
    }
    /// While a task with this unique key is queued, scheduled or running, a
    /// submit with the same key gets this task instead of a new one.
    public var uniqueKey: String? {
        get { rare?.fields.uniqueKey }
        set { updateRare { $0.uniqueKey = newValue } }
    }
    public var errorMessage: String? {
        get { rare?.fields.errorMessage }
        set { updateRare { $0.errorMessage = newValue } }
    }
    /// The result of a succeeded task.
    public var result: ByteBuffer? {
        get { rare?.fields.result }
        set { updateRare { $0.result = newValue } }
    }
    /// Who submitted it (`ClientIdentity.name`): a token's fingerprint, `local`
    /// for the admin socket, nil when the server authenticated no one. A
    /// client with the submit role may cancel only tasks stamped with its name.
    public var submitter: String? {
        get { rare?.fields.submitter }
        set { updateRare { $0.submitter = newValue } }
    }

    private struct RareFields: Sendable, Hashable {
        var key: String?
        var uniqueKey: String?
        var errorMessage: String?
        var result: ByteBuffer?
        var submitter: String?
        var isEmpty: Bool {
            key == nil && uniqueKey == nil && errorMessage == nil && result == nil && submitter == nil
        }
    }

    /// Immutable, so copies of a record share it safely; a change makes a new one.
    private final class Rare: Sendable {
        let fields: RareFields
        init(_ fields: RareFields) { self.fields = fields }
    }

    private mutating func updateRare(_ change: (inout RareFields) -> Void) {
        var fields = rare?.fields ?? RareFields()
        change(&fields)
        rare = fields.isEmpty ? nil : Rare(fields)
    }

    public static func == (lhs: TaskRecord, rhs: TaskRecord) -> Bool {
        lhs.id == rhs.id && lhs.handler == rhs.handler && lhs.payload == rhs.payload && lhs.runAt == rhs.runAt
            && lhs.createdAt == rhs.createdAt && lhs.startedAt == rhs.startedAt && lhs.finishedAt == rhs.finishedAt
            && lhs.priority == rhs.priority && lhs.attempts == rhs.attempts && lhs.maxAttempts == rhs.maxAttempts
            && lhs.timeoutMillis == rhs.timeoutMillis && lhs.state == rhs.state && lhs.errorCode == rhs.errorCode
            && lhs.rare?.fields == rhs.rare?.fields
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(handler)
        hasher.combine(payload)
        hasher.combine(state)
        hasher.combine(attempts)
        hasher.combine(runAt)
        hasher.combine(rare?.fields)
    }

    public init(
        id: TaskID, handler: String, payload: ByteBuffer, priority: Int32 = 0, key: String? = nil,
        uniqueKey: String? = nil, state: TaskState = .queued, attempts: UInt32 = 0, maxAttempts: UInt32 = 1,
        timeoutMillis: UInt32 = 0, runAt: EpochMillis = 0, createdAt: EpochMillis = 0, startedAt: EpochMillis = 0,
        finishedAt: EpochMillis = 0, errorCode: ErrorCode? = nil, errorMessage: String? = nil,
        result: ByteBuffer? = nil, submitter: String? = nil
    ) {
        self.id = id
        self.handler = handler
        self.payload = payload
        self.priority = priority
        self.state = state
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.timeoutMillis = timeoutMillis
        self.runAt = runAt
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.errorCode = errorCode
        let rare = RareFields(
            key: key, uniqueKey: uniqueKey, errorMessage: errorMessage, result: result, submitter: submitter)
        self.rare = rare.isEmpty ? nil : Rare(rare)
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
