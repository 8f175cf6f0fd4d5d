#if !PostgreSQL
import NIOCore
import SwitchyardCore

/// Built without the `PostgreSQL` package trait (`swift build --disable-default-traits`): there is no
/// shared queue, and `start()` refuses `--store postgres://` with `ConfigurationError.postgresNotBuilt`.
/// `SharedQueue` has no values, so `Dispatcher.shared` is always nil: the dispatcher calls these only
/// behind `shared != nil`, and `switch shared! {}` says so to the compiler.
enum SharedQueue {}

extension Dispatcher {
    enum LocalEnding {}

    /// Called once the server listens, whatever the store: nothing to start here.
    func activateShared() {}
    func claimIfRoom(woken: Bool = false) { switch shared! {} }

    func sharedSubmit(
        _ request: SubmitRequest, runAt: EpochMillis?, now: EpochMillis, requestID: UInt32,
        from connection: ClientConnection
    ) { switch shared! {} }

    func addSharedWaiter(_ waiter: Waiter, for id: TaskID, check: Bool) { switch shared! {} }
    func dropSharedWaiters(of connection: ClientConnection) { switch shared! {} }
    func sharedDeliver(_ outcome: Scheduler<Waiter>.Outcome) { switch shared! {} }
    func sharedStorePass() { switch shared! {} }
    func sharedCancel(_ id: TaskID, requestID: UInt32, from connection: ClientConnection) { switch shared! {} }
    func sharedRecord(_ id: TaskID, _ body: @escaping (Result<TaskRecord?, Error>) -> Void) { switch shared! {} }
    func sharedList(_ query: TaskListQuery, requestID: UInt32, from connection: ClientConnection) { switch shared! {} }
    func sharedStatus(requestID: UInt32, connection: ClientConnection) { switch shared! {} }
    func closeShared() -> EventLoopFuture<Void> { switch shared! {} }
    /// Called on every pruning pass, whatever the store: nothing to prune here.
    func sharedPrune(before cutoff: EpochMillis) {}
}
#endif
