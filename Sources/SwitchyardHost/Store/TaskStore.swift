import SwitchyardCore

/// Where tasks are kept durably. The host's scheduler holds every unfinished
/// task in memory and writes each change through a store; the store is what
/// survives a restart.
///
/// Threading: the host calls a store from one thread at a time (a dedicated
/// store thread, never the event loop), so implementations may block and need
/// no locking of their own beyond what their library requires.
///
/// Transactions: `commit` applies every change of one group atomically, in
/// order: all or none. The host acknowledges a background submit only after
/// the `commit` holding its insert returned.
public protocol TaskStore: AnyObject, Sendable {
    /// A short name for logs and status, e.g. "sqlite /var/lib/switchyard/tasks.sqlite".
    var description: String { get }

    /// Opens (creating or migrating if needed) and returns what recovery needs:
    /// every task that is not final, in id order, and the largest id ever used.
    func open() throws -> (unfinished: [TaskRecord], maxID: TaskID)

    /// Applies `changes` in one transaction.
    func commit(_ changes: [StoreChange]) throws

    /// One task's record, final or not; nil if unknown or pruned.
    func fetch(_ id: TaskID) throws -> TaskRecord?

    /// Tasks matching `query`, in id order.
    func list(_ query: TaskListQuery) throws -> [TaskRecord]

    /// Deletes final tasks that finished before `cutoff`; returns how many.
    func prune(finishedBefore cutoff: EpochMillis) throws -> Int

    /// Closes files; no call follows.
    func close()
}

/// Errors a store reports at open, naming the path and the fix.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
