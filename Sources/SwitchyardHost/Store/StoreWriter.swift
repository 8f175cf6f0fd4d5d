import Logging
import NIOCore
import NIOPosix
import SwitchyardCore

/// Group commit: collects the scheduler's store changes on the host's event
/// loop and hands them to the store on its own thread, one transaction per
/// group. While a commit runs, new changes pile up and go in the next one, so
/// the group grows with the load and a busy host pays one commit (and with
/// `sync=full` one fsync) for many submits.
///
/// Confined to the event loop; the store is only touched on `thread`.
final class StoreWriter: @unchecked Sendable {
    // @unchecked Sendable: every property is used on `loop` only; the store is
    // handed to the thread pool, which calls it from one thread at a time.
    let store: any TaskStore
    private let loop: EventLoop
    private let thread: NIOThreadPool
    private let logger: Logger
    private var pending: [StoreChange] = []
    private var pendingAcks: [(Result<Void, Error>) -> Void] = []
    private var committing = false
    private var idleWaiters: [EventLoopPromise<Void>] = []
    /// Commits so far and the changes they carried, for status and benchmarks.
    private(set) var commits: UInt64 = 0
    private(set) var changesWritten: UInt64 = 0

    init(store: any TaskStore, loop: EventLoop, logger: Logger) {
        self.store = store
        self.loop = loop
        self.logger = logger
        self.thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
    }

    /// Queues `changes` for the next group; `ack` runs on the loop once they are
    /// committed (or failed to be).
    func write(_ changes: [StoreChange], ack: ((Result<Void, Error>) -> Void)? = nil) {
        loop.preconditionInEventLoop()
        pending += changes
        if let ack { pendingAcks.append(ack) }
        startCommitIfIdle()
    }

    /// Runs `body` on the store thread, after every write queued before it.
    func read<T: Sendable>(_ body: @escaping @Sendable (any TaskStore) throws -> T) -> EventLoopFuture<T> {
        let store = self.store
        return thread.runIfActive(eventLoop: loop) { try body(store) }
    }

    /// Runs `body` on the store thread once every change queued so far is
    /// committed, so what it reads is at least as new as the caller's view.
    func readAfterWrites<T: Sendable>(
        _ changes: [StoreChange], _ body: @escaping @Sendable (any TaskStore) throws -> T
    ) -> EventLoopFuture<T> {
        let promise = loop.makePromise(of: T.self)
        write(changes) { [self] result in
            switch result {
            case .success: promise.completeWith(read(body))
            case .failure(let error): promise.fail(error)
            }
        }
        return promise.futureResult
    }

    /// Completes when every queued change is committed.
    func idle() -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        if !committing && pending.isEmpty { return loop.makeSucceededVoidFuture() }
        let promise = loop.makePromise(of: Void.self)
        idleWaiters.append(promise)
        return promise.futureResult
    }

    /// Commits what is left, closes the store and stops the thread.
    func close() -> EventLoopFuture<Void> {
        idle().flatMap { [self] in
            let store = self.store
            return thread.runIfActive(eventLoop: loop) { store.close() }
        }.flatMap { [self] in
            let promise = loop.makePromise(of: Void.self)
            thread.shutdownGracefully { _ in promise.succeed() }
            return promise.futureResult
        }
    }

    private func startCommitIfIdle() {
        guard !committing else { return }
        guard !pending.isEmpty || !pendingAcks.isEmpty else {
            let waiters = idleWaiters
            idleWaiters.removeAll()
            for waiter in waiters { waiter.succeed() }
            return
        }
        committing = true
        let batch = pending
        let acks = pendingAcks
        pending = []
        pendingAcks = []
        let store = self.store
        thread.runIfActive(eventLoop: loop) {
            if !batch.isEmpty { try store.commit(batch) }
        }.whenComplete { [self] result in
            committing = false
            switch result {
            case .success:
                commits += 1
                changesWritten += UInt64(batch.count)
            case .failure(let error):
                logger.critical("cannot write \(batch.count) task changes to \(store.description): \(error)")
            }
            for ack in acks { ack(result) }
            startCommitIfIdle()
        }
    }
}
