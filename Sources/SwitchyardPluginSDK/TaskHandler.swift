/// One named task handler: the Swift closure the host calls for each task sent to `name`.
///
/// A handler without per-worker state is a single closure:
///
/// ```swift
/// TaskHandler("upper") { task in
///     .success(task.payload.map { $0 >= 97 && $0 <= 122 ? $0 - 32 : $0 })
/// }
/// ```
///
/// A handler that needs state in each worker process (an open file, a loaded model, a cache)
/// creates it in `onWorkerStart` and receives it, mutable, with every task:
///
/// ```swift
/// TaskHandler("count", onWorkerStart: { _ in 0 }) { task, seen in
///     seen += 1
///     return .success("task \(task.id) is number \(seen) in this worker")
/// }
/// ```
///
/// Closures run on the worker's one hook thread, one call at a time (see `sdk/ABI.md`), so the
/// state needs no locking and need not be `Sendable`.
public struct TaskHandler: Sendable {
    /// The handler name clients submit tasks to.
    public let name: String

    /// Creates the per-worker session; called from the C `on_worker_start` hook.
    let startWorker: @Sendable (borrowing WorkerContext) throws -> WorkerSession

    /// Creates a handler with no per-worker state.
    ///
    /// - Parameters:
    ///   - name: 1-255 bytes of `[A-Za-z0-9_.-]`, unique across every plugin the host loads.
    ///   - onWorkerStart: Called once in each worker process before its first task. Throwing
    ///     makes that worker skip this handler; the host logs the error.
    ///   - onWorkerStop: Called once when a worker process stops gracefully.
    ///   - onMessage: Runs one task. Return a ``TaskResult``, or throw (see ``TaskFailure``).
    public init(
        _ name: String,
        onWorkerStart: (@Sendable (borrowing WorkerContext) throws -> Void)? = nil,
        onWorkerStop: (@Sendable (borrowing WorkerContext) -> Void)? = nil,
        onMessage: @escaping @Sendable (borrowing PluginTask) throws -> TaskResult
    ) {
        self.name = name
        self.startWorker = { worker in
            try onWorkerStart?(worker)
            return WorkerSession(message: onMessage, stop: onWorkerStop)
        }
    }

    /// Creates a handler whose every worker process owns a `State` made by `onWorkerStart`.
    ///
    /// - Parameters:
    ///   - name: 1-255 bytes of `[A-Za-z0-9_.-]`, unique across every plugin the host loads.
    ///   - onWorkerStart: Called once in each worker process before its first task; returns the
    ///     worker's state. Throwing makes that worker skip this handler; the host logs the error.
    ///   - onWorkerStop: Called once when a worker process stops gracefully, with the state.
    ///   - onMessage: Runs one task with the worker's state, which it may change.
    public init<State>(
        _ name: String,
        onWorkerStart: @escaping @Sendable (borrowing WorkerContext) throws -> State,
        onWorkerStop: (@Sendable (borrowing WorkerContext, inout State) -> Void)? = nil,
        onMessage: @escaping @Sendable (borrowing PluginTask, inout State) throws -> TaskResult
    ) {
        self.name = name
        self.startWorker = { worker in
            let state = StateBox(try onWorkerStart(worker))
            return WorkerSession(
                message: { task in try onMessage(task, &state.value) },
                stop: onWorkerStop.map { stop in { worker in stop(worker, &state.value) } })
        }
    }
}

/// What one worker process holds for one handler between `on_worker_start` and `on_worker_stop`.
///
/// Not `Sendable`: it is created, used and released on the worker's one hook thread.
final class WorkerSession {
    let message: (borrowing PluginTask) throws -> TaskResult
    let stop: ((borrowing WorkerContext) -> Void)?

    init(
        message: @escaping (borrowing PluginTask) throws -> TaskResult,
        stop: ((borrowing WorkerContext) -> Void)?
    ) {
        self.message = message
        self.stop = stop
    }
}

/// A worker's mutable handler state, shared by the closures of its ``WorkerSession``.
private final class StateBox<State> {
    var value: State
    init(_ value: State) { self.value = value }
}
