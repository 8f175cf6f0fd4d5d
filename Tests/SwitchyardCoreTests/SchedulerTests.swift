import NIOCore
import Testing

@testable import SwitchyardCore

typealias TestScheduler = Scheduler<String>

let echo: HandlerID = 0
let sha: HandlerID = 1
let resize: HandlerID = 2

/// An outcome in a comparable form (the first waiter stands for all).
enum Seen: Equatable {
    case succeeded(TaskID, waiter: String?, ByteBuffer)
    case failed(TaskID, waiter: String?, ErrorCode, String)
    case retrying(TaskID, attempt: UInt32, ErrorCode, String)
}

extension Scheduler.Outcome where Waiter == String {
    var seen: Seen {
        switch self {
        case .succeeded(let id, let waiters, let body): .succeeded(id, waiter: waiters.first, body)
        case .failed(let id, let waiters, let code, let message): .failed(id, waiter: waiters.first, code, message)
        case .retrying(let id, let attempt, let code, let message, _): .retrying(id, attempt: attempt, code, message)
        }
    }
}

/// A scheduler with one ready worker per entry of `workers`, each with those handlers.
func makeScheduler(
    workers: [[HandlerID]], prefetch: Int = 16, maxAttempts: UInt32 = 2, retainFinished: Int = 100,
    strategy: any DispatchStrategy = RoundRobinStrategy(), retry: RetryPolicy = .immediate, maxQueue: Int = 1_000_000,
    agingMillis: Int64 = 0, recordChanges: Bool = false
) -> TestScheduler {
    var scheduler = TestScheduler(
        configuration: SchedulerConfiguration(
            prefetch: prefetch, defaultMaxAttempts: maxAttempts, maxQueue: maxQueue, retry: retry,
            agingMillis: agingMillis, retainFinished: retainFinished, recordChanges: recordChanges),
        strategy: strategy)
    scheduler.setWorkerCount(workers.count)
    for (slot, handlers) in workers.enumerated() { scheduler.workerReady(slot: slot, handlers: handlers) }
    return scheduler
}

extension Scheduler {
    /// Every dispatch available at `now`, as (task, slot) pairs.
    mutating func dispatchAll(now: EpochMillis = 0) -> [(task: TaskID, slot: Int)] {
        var sent: [(TaskID, Int)] = []
        while let dispatch = nextDispatch(now: now) { sent.append((dispatch.taskID, dispatch.slot)) }
        return sent
    }

    /// The next dispatch, ignoring tasks that end without one.
    mutating func nextDispatch(now: EpochMillis = 0) -> Dispatch? {
        while let step = nextStep(now: now) {
            if case .dispatch(let dispatch) = step { return dispatch }
        }
        return nil
    }

    /// The queue's order, without changing it.
    var queuedOrder: [TaskID] {
        var copy = queue
        var order: [TaskID] = []
        while let id = copy.popFirst() { order.append(id) }
        return order
    }

    mutating func submit(
        handler: HandlerID, priority: Int32, payload: ByteBuffer, maxAttempts: UInt32?, waiter: Waiter?,
        now: EpochMillis = 0
    ) -> TaskID {
        let result = submit(
            TaskSubmission(
                handler: handler, handlerName: nameOf(handler), payload: payload, priority: priority,
                maxAttempts: maxAttempts), waiter: waiter, now: now)
        guard case .created(let id) = result else { fatalError("submit was not created: \(result)") }
        return id
    }

    mutating func submit(_ handler: HandlerID, priority: Int32 = 0, maxAttempts: UInt32? = nil, waiter: Waiter? = nil)
        -> TaskID
    {
        submit(handler: handler, priority: priority, payload: ByteBuffer(string: "p"), maxAttempts: maxAttempts, waiter: waiter)
    }

    /// The record as TASK_INFO shows it.
    func info(_ id: TaskID, handlerName: (HandlerID) -> String) -> TaskInfo? { record(id).map { TaskInfo($0) } }

    /// The first waiter of a live task.
    func waiter(of id: TaskID) -> Waiter? { waiters(of: id).first }
}

func nameOf(_ handler: HandlerID) -> String { ["echo", "sha256", "resize"][handler] }

/// Compares dispatch lists, which are tuples and so not Equatable.
func sameDispatches(_ actual: [(task: TaskID, slot: Int)], _ expected: [(TaskID, Int)]) -> Bool {
    actual.map { [Int($0.task), $0.slot] } == expected.map { [Int($0.0), $0.1] }
}

@Suite("Scheduler")
struct SchedulerTests {
    // MARK: The happy path

    @Test func submitDispatchSucceed() throws {
        var scheduler = makeScheduler(workers: [[sha, echo]])
        let id = scheduler.submit(handler: echo, priority: 3, payload: text("data"), maxAttempts: nil, waiter: "w1")
        #expect(id == 1)
        #expect(scheduler.queue.count == 1)
        #expect(scheduler.runningCount == 0)
        #expect(scheduler.info(id, handlerName: nameOf)?.state == .queued)

        let next = scheduler.nextDispatch()
        let dispatch = try #require(next)
        #expect(dispatch.taskID == id)
        #expect(dispatch.slot == 0)
        #expect(dispatch.localHandlerIndex == 1, "echo is the worker's second handler")
        #expect(dispatch.attempt == 1)
        #expect(dispatch.priority == 3)
        #expect(dispatch.payload == text("data"))
        #expect(scheduler.nextDispatch() == nil)
        #expect(scheduler.runningCount == 1)
        #expect(scheduler.workers[0].inFlight.count == 1)
        #expect(scheduler.info(id, handlerName: nameOf)?.state == .running)
        #expect(scheduler.info(id, handlerName: nameOf)?.attempts == 1)

        let outcome = scheduler.attemptFinished(slot: 0, id: id, status: .ok, body: text("done"))
        #expect(outcome?.seen == .succeeded(id, waiter: "w1", text("done")))
        #expect(scheduler.succeededCount == 1)
        #expect(scheduler.liveCount == 0)
        #expect(scheduler.runningCount == 0)
        #expect(scheduler.workers[0].tasksDone == 1)
        #expect(scheduler.workers[0].inFlight.isEmpty)
    }

    @Test func idsStartAtOneAndNeverRepeat() {
        var scheduler = makeScheduler(workers: [])
        let ids = (0..<5).map { _ in scheduler.submit(echo) }
        #expect(ids == [1, 2, 3, 4, 5])
        #expect(scheduler.liveCount == 5)
    }

    @Test func maxAttemptsDefaultsToTheConfiguration() {
        var scheduler = makeScheduler(workers: [], maxAttempts: 4)
        let a = scheduler.submit(echo)
        let b = scheduler.submit(echo, maxAttempts: 9)
        #expect(scheduler.info(a, handlerName: nameOf)?.maxAttempts == 4)
        #expect(scheduler.info(b, handlerName: nameOf)?.maxAttempts == 9)
    }

    @Test func nothingIsDispatchedWithoutAReadyWorker() {
        var scheduler = TestScheduler()
        _ = scheduler.submit(echo)
        #expect(scheduler.nextDispatch() == nil)
        scheduler.setWorkerCount(2)
        #expect(scheduler.nextDispatch() == nil, "absent workers take nothing")
        scheduler.workerReady(slot: 1, handlers: [echo])
        #expect(scheduler.nextDispatch()?.slot == 1)
    }

    @Test func higherPriorityIsDispatchedFirst() {
        var scheduler = makeScheduler(workers: [[echo]], prefetch: 1)
        let low = scheduler.submit(echo, priority: -1)
        let high = scheduler.submit(echo, priority: 5)
        let normal = scheduler.submit(echo)
        #expect(scheduler.nextDispatch()?.taskID == high)
        _ = scheduler.attemptFinished(slot: 0, id: high, status: .ok, body: ByteBuffer())
        #expect(scheduler.nextDispatch()?.taskID == normal)
        _ = scheduler.attemptFinished(slot: 0, id: normal, status: .ok, body: ByteBuffer())
        #expect(scheduler.nextDispatch()?.taskID == low)
    }

    // MARK: Placement

    @Test func roundRobinSpreadsTasksAcrossReadyWorkers() {
        var scheduler = makeScheduler(workers: [[echo], [echo], [echo]])
        for _ in 0..<7 { _ = scheduler.submit(echo) }
        #expect(
            sameDispatches(scheduler.dispatchAll(), [(1, 0), (2, 1), (3, 2), (4, 0), (5, 1), (6, 2), (7, 0)]))
    }

    @Test func prefetchWindowIsRespectedAndResumesAfterACompletion() {
        var scheduler = makeScheduler(workers: [[echo], [echo]], prefetch: 2)
        for _ in 0..<6 { _ = scheduler.submit(echo) }
        #expect(sameDispatches(scheduler.dispatchAll(), [(1, 0), (2, 1), (3, 0), (4, 1)]))
        #expect(scheduler.nextDispatch() == nil, "every worker holds its window")
        #expect(scheduler.queue.count == 2)
        #expect(scheduler.runningCount == 4)
        #expect(scheduler.workers.allSatisfy { $0.inFlight.count == 2 })

        _ = scheduler.attemptFinished(slot: 1, id: 2, status: .ok, body: ByteBuffer())
        #expect(sameDispatches(scheduler.dispatchAll(), [(5, 1)]))
        _ = scheduler.attemptFinished(slot: 0, id: 1, status: .ok, body: ByteBuffer())
        #expect(sameDispatches(scheduler.dispatchAll(), [(6, 0)]))
    }

    @Test func aWorkerWithoutTheHandlerIsNeverChosen() {
        var scheduler = makeScheduler(workers: [[echo], [sha, echo], [echo]], prefetch: 3)
        for _ in 0..<4 { _ = scheduler.submit(sha) }
        let sent = scheduler.dispatchAll()
        #expect(sameDispatches(sent, [(1, 1), (2, 1), (3, 1)]))
        // The head waits for worker 1, even though the others are idle.
        #expect(scheduler.nextDispatch() == nil)
        #expect(scheduler.queue.count == 1)
    }

    @Test func aTaskForAHandlerNoReadyWorkerHasEndsWithUnknownHandler() {
        var scheduler = makeScheduler(workers: [[echo], [sha]])
        _ = scheduler.submit(resize, waiter: "w")
        guard case .outcome(let outcome) = scheduler.nextStep(now: 0) else {
            Issue.record("expected the task to end")
            return
        }
        #expect(outcome.seen == .failed(1, waiter: "w", .unknownHandler, "no loaded plugin has a handler named `resize` any more; the task was accepted while one did"))
        #expect(scheduler.queue.count == 0)
    }

    @Test func aTaskWaitsWhileNoWorkerIsReady() {
        var scheduler = makeScheduler(workers: [])
        scheduler.setWorkerCount(2)
        _ = scheduler.submit(echo)
        #expect(scheduler.nextStep(now: 0) == nil)
        #expect(scheduler.queue.count == 1)
        scheduler.workerReady(slot: 1, handlers: [echo])
        #expect(scheduler.nextDispatch()?.slot == 1)
    }

    @Test func drainingWorkersTakeNothingNewButFinishWhatTheyHold() {
        var scheduler = makeScheduler(workers: [[echo], [echo]])
        let first = scheduler.submit(echo)
        #expect(scheduler.nextDispatch()?.slot == 0)
        scheduler.drainWorker(slot: 0)
        for _ in 0..<3 { _ = scheduler.submit(echo) }
        #expect(scheduler.dispatchAll().allSatisfy { $0.slot == 1 })
        #expect(scheduler.attemptFinished(slot: 0, id: first, status: .ok, body: ByteBuffer()) != nil)
    }

    // MARK: Completions

    @Test func completionsMayArriveOutOfOrder() {
        var scheduler = makeScheduler(workers: [[echo]])
        for _ in 0..<3 { _ = scheduler.submit(echo) }
        _ = scheduler.dispatchAll()
        #expect(scheduler.attemptFinished(slot: 0, id: 2, status: .ok, body: ByteBuffer()) != nil)
        #expect(Array(scheduler.workers[0].inFlight) == [1, 3])
    }

    @Test func completionForATaskTheWorkerDoesNotHoldIsIgnored() {
        var scheduler = makeScheduler(workers: [[echo], [echo]])
        let id = scheduler.submit(echo)
        #expect(scheduler.nextDispatch()?.slot == 0)
        #expect(scheduler.attemptFinished(slot: 1, id: id, status: .ok, body: ByteBuffer()) == nil)
        #expect(scheduler.attemptFinished(slot: 0, id: 99, status: .ok, body: ByteBuffer()) == nil)
        #expect(scheduler.attemptFinished(slot: 7, id: id, status: .ok, body: ByteBuffer()) == nil)
        #expect(scheduler.workers[1].tasksDone == 0)
        #expect(scheduler.attemptFinished(slot: 0, id: id, status: .ok, body: ByteBuffer()) != nil)
        #expect(scheduler.attemptFinished(slot: 0, id: id, status: .ok, body: ByteBuffer()) == nil, "answered twice")
    }

    @Test func retryableFailureIsRetriedUntilMaxAttemptsThenFails() throws {
        var scheduler = makeScheduler(workers: [[echo]])
        let id = scheduler.submit(echo, maxAttempts: 3, waiter: "w")
        for attempt in 1...2 as ClosedRange<UInt32> {
            let dispatch = scheduler.nextDispatch()
            #expect(dispatch?.attempt == attempt)
            let outcome = scheduler.attemptFinished(
                slot: 0, id: id, status: .retryableFailure, body: text("timeout"))
            #expect(outcome?.seen == .retrying(id, attempt: attempt, .handlerFailed, "timeout"))
            let info = try #require(scheduler.info(id, handlerName: nameOf))
            #expect(info.state == .queued)
            #expect(info.attempts == attempt)
            #expect(info.errorCode == .handlerFailed)
            #expect(info.errorMessage == "timeout")
        }
        let third = scheduler.nextDispatch()
        #expect(third?.attempt == 3)
        let last = scheduler.attemptFinished(slot: 0, id: id, status: .retryableFailure, body: text("timeout"))
        #expect(last?.seen == .failed(id, waiter: "w", .handlerFailed, "timeout (attempt 3 of 3)"))
        #expect(scheduler.nextDispatch() == nil)
        #expect(scheduler.failedCount == 1)
        #expect(scheduler.liveCount == 0)
        let info = try #require(scheduler.info(id, handlerName: nameOf))
        #expect(info.state == .dead)
        #expect(info.attempts == 3)
        #expect(info.errorCode == .handlerFailed)
        #expect(info.errorMessage == "timeout (attempt 3 of 3)")
    }

    @Test func retriedTaskGoesBehindTheOthersOfItsPriority() {
        var scheduler = makeScheduler(workers: [[echo]], prefetch: 1)
        let first = scheduler.submit(echo)
        let second = scheduler.submit(echo)
        #expect(scheduler.nextDispatch()?.taskID == first)
        _ = scheduler.attemptFinished(slot: 0, id: first, status: .retryableFailure, body: ByteBuffer())
        #expect(scheduler.queuedOrder == [second, first])
    }

    @Test func permanentFailureFailsAtOnce() throws {
        var scheduler = makeScheduler(workers: [[echo]], maxAttempts: 5)
        let id = scheduler.submit(echo, waiter: "w")
        _ = scheduler.nextDispatch()
        let outcome = scheduler.attemptFinished(slot: 0, id: id, status: .permanentFailure, body: text("bad input"))
        #expect(outcome?.seen == .failed(id, waiter: "w", .handlerFailed, "bad input"))
        #expect(scheduler.nextDispatch() == nil)
        let info = try #require(scheduler.info(id, handlerName: nameOf))
        #expect(info.state == .dead)
        #expect(info.attempts == 1)
    }

    @Test func failureWithNoMessageGetsADefaultOne() {
        var scheduler = makeScheduler(workers: [[echo]], maxAttempts: 1)
        let id = scheduler.submit(echo)
        _ = scheduler.nextDispatch()
        let outcome = scheduler.attemptFinished(slot: 0, id: id, status: .retryableFailure, body: ByteBuffer())
        #expect(outcome?.seen == .failed(id, waiter: nil, .handlerFailed, "handler returned an error"))
    }

    // MARK: Lost workers

    @Test func workerLostChargesOnlyTheOldestTaskAndPutsTheRestBackInOrder() throws {
        var scheduler = makeScheduler(workers: [[echo], [echo]], prefetch: 3, maxAttempts: 2)
        for _ in 0..<7 { _ = scheduler.submit(echo) }
        // Slot 0 gets 1, 3, 5; slot 1 gets 2, 4, 6; 7 waits.
        _ = scheduler.dispatchAll()
        #expect(Array(scheduler.workers[0].inFlight) == [1, 3, 5])

        let outcomes = scheduler.workerLost(slot: 0, reason: "worker 0 exited on signal 11")
        #expect(outcomes.map(\.seen) == [.retrying(1, attempt: 1, .workerCrashed, "worker 0 exited on signal 11")])
        #expect(scheduler.workers[0].state == .absent)
        #expect(scheduler.workers[0].inFlight.isEmpty)
        // The unstarted tasks go in front, in the order they were sent; the crashed one is retried behind.
        #expect(scheduler.queuedOrder == [3, 5, 7, 1])
        for id in [3, 5] as [TaskID] {
            let info = try #require(scheduler.info(id, handlerName: nameOf))
            #expect(info.state == .queued)
            #expect(info.attempts == 0, "task \(id) never ran; no attempt may be counted")
            #expect(info.errorCode == nil)
        }
        let crashed = try #require(scheduler.info(1, handlerName: nameOf))
        #expect(crashed.attempts == 1)
        #expect(crashed.errorCode == .workerCrashed)
        // Worker 1 still holds its own three; nothing fits until a replacement says hello.
        #expect(scheduler.nextDispatch() == nil)

        scheduler.workerReady(slot: 0, handlers: [echo])
        let resent = scheduler.nextDispatch()
        #expect(resent?.taskID == 3)
        #expect(resent?.slot == 0)
        #expect(resent?.attempt == 1)
    }

    @Test func workerLostChargesTheTaskTheWorkerSaidItWasRunning() throws {
        var scheduler = makeScheduler(workers: [[echo]], prefetch: 4, maxAttempts: 2)
        for _ in 0..<4 { _ = scheduler.submit(echo) }
        _ = scheduler.dispatchAll()
        // 1 and 2 ran (results unsent), 3 crashed the worker, 4 never started.
        let outcomes = scheduler.workerLost(slot: 0, running: 3, reason: "SIGSEGV")
        #expect(outcomes.map(\.seen) == [.retrying(3, attempt: 1, .workerCrashed, "SIGSEGV")])
        #expect(scheduler.queuedOrder == [1, 2, 4, 3])
        for id in [1, 2, 4] as [TaskID] {
            #expect(scheduler.info(id, handlerName: nameOf)?.attempts == 0, "task \(id) is not charged")
        }
    }

    @Test func workerLostWithAnUnknownRunningTaskChargesTheOldest() {
        var scheduler = makeScheduler(workers: [[echo]], prefetch: 2, maxAttempts: 2)
        for _ in 0..<2 { _ = scheduler.submit(echo) }
        _ = scheduler.dispatchAll()
        // An id the worker does not hold (a stale board) is ignored.
        let outcomes = scheduler.workerLost(slot: 0, running: 99, reason: "killed")
        #expect(outcomes.map(\.seen) == [.retrying(1, attempt: 1, .workerCrashed, "killed")])
        #expect(scheduler.queuedOrder == [2, 1])
    }

    @Test func workerLostKeepsEachPutBackTaskAheadOfItsOwnPriority() {
        var scheduler = makeScheduler(workers: [[echo]], prefetch: 3)
        _ = scheduler.submit(echo, priority: 1)  // 1: runs
        _ = scheduler.submit(echo, priority: 1)  // 2
        _ = scheduler.submit(echo, priority: 0)  // 3
        _ = scheduler.dispatchAll()
        _ = scheduler.submit(echo, priority: 0)  // 4
        _ = scheduler.submit(echo, priority: 1)  // 5
        _ = scheduler.workerLost(slot: 0, reason: "gone")
        #expect(scheduler.queuedOrder == [2, 5, 1, 3, 4])
    }

    @Test func workerLostOnTheLastAttemptFailsWithWorkerCrashed() throws {
        var scheduler = makeScheduler(workers: [[echo]], maxAttempts: 2)
        let id = scheduler.submit(echo, waiter: "w")
        _ = scheduler.nextDispatch()
        #expect(
            scheduler.workerLost(slot: 0, reason: "killed").map(\.seen) == [
                .retrying(id, attempt: 1, .workerCrashed, "killed")
            ])
        scheduler.workerReady(slot: 0, handlers: [echo])
        #expect(scheduler.nextDispatch()?.attempt == 2)
        #expect(
            scheduler.workerLost(slot: 0, reason: "killed").map(\.seen) == [
                .failed(id, waiter: "w", .workerCrashed, "killed (attempt 2 of 2)")
            ])
        #expect(scheduler.info(id, handlerName: nameOf)?.state == .dead)
        #expect(scheduler.info(id, handlerName: nameOf)?.errorCode == .workerCrashed)
        #expect(scheduler.failedCount == 1)
    }

    @Test func workerLostWithASingleAttemptFailsAtOnce() {
        var scheduler = makeScheduler(workers: [[echo]], maxAttempts: 1)
        let id = scheduler.submit(echo)
        _ = scheduler.nextDispatch()
        #expect(scheduler.workerLost(slot: 0, reason: "oom").map(\.seen) == [.failed(id, waiter: nil, .workerCrashed, "oom")])
    }

    @Test func losingAnIdleOrUnknownWorkerChangesNoTask() {
        var scheduler = makeScheduler(workers: [[echo]])
        _ = scheduler.submit(echo)
        #expect(scheduler.workerLost(slot: 5, reason: "x").isEmpty)
        #expect(scheduler.nextDispatch() != nil)
        var idle = makeScheduler(workers: [[echo]])
        #expect(idle.workerLost(slot: 0, reason: "x").isEmpty)
        #expect(idle.workers[0].state == .absent)
    }

    @Test func aCompletionFromALostWorkerIsIgnored() {
        var scheduler = makeScheduler(workers: [[echo]])
        let id = scheduler.submit(echo)
        _ = scheduler.nextDispatch()
        _ = scheduler.workerLost(slot: 0, reason: "gone")
        #expect(scheduler.attemptFinished(slot: 0, id: id, status: .ok, body: ByteBuffer()) == nil)
    }

    // MARK: Records

    @Test func infoForLiveFinishedAndExpiredTasks() throws {
        var scheduler = makeScheduler(workers: [[echo, sha]], retainFinished: 2)
        let a = scheduler.submit(echo, priority: 4)
        let b = scheduler.submit(sha)
        let c = scheduler.submit(echo)
        let d = scheduler.submit(echo)
        #expect(
            scheduler.info(a, handlerName: nameOf)
                == TaskInfo(id: a, state: .queued, handler: "echo", priority: 4, attempts: 0, maxAttempts: 2))
        _ = scheduler.dispatchAll()
        #expect(scheduler.info(b, handlerName: nameOf)?.state == .running)
        #expect(scheduler.info(b, handlerName: nameOf)?.handler == "sha256")

        _ = scheduler.attemptFinished(slot: 0, id: a, status: .ok, body: text("A"))
        _ = scheduler.attemptFinished(slot: 0, id: b, status: .permanentFailure, body: text("nope"))
        #expect(
            scheduler.info(a, handlerName: nameOf)
                == TaskInfo(
                    id: a, state: .succeeded, handler: "echo", priority: 4, attempts: 1, maxAttempts: 2,
                    result: text("A")))
        #expect(
            scheduler.info(b, handlerName: nameOf)
                == TaskInfo(
                    id: b, state: .dead, handler: "sha256", priority: 0, attempts: 1, maxAttempts: 2,
                    errorCode: .handlerFailed, errorMessage: "nope"))

        // Two records are kept: finishing c expires a, the oldest.
        _ = scheduler.attemptFinished(slot: 0, id: c, status: .ok, body: text("C"))
        #expect(scheduler.info(a, handlerName: nameOf) == nil)
        #expect(scheduler.info(b, handlerName: nameOf) != nil)
        #expect(scheduler.info(c, handlerName: nameOf)?.result == text("C"))
        _ = scheduler.attemptFinished(slot: 0, id: d, status: .ok, body: text("D"))
        #expect(scheduler.info(b, handlerName: nameOf) == nil)
        #expect(scheduler.info(999, handlerName: nameOf) == nil)
    }

    @Test func noRecordIsKeptWhenRetainFinishedIsZero() {
        var scheduler = makeScheduler(workers: [[echo]], retainFinished: 0)
        let id = scheduler.submit(echo)
        _ = scheduler.nextDispatch()
        _ = scheduler.attemptFinished(slot: 0, id: id, status: .ok, body: ByteBuffer())
        #expect(scheduler.info(id, handlerName: nameOf) == nil)
    }

    // MARK: Shutdown and waiters

    @Test func failQueuedFailsOnlyQueuedTasksInPriorityOrder() throws {
        var scheduler = makeScheduler(workers: [[echo]], prefetch: 1)
        let running = scheduler.submit(echo, waiter: "r")
        _ = scheduler.nextDispatch()
        let low = scheduler.submit(echo, priority: -1, waiter: "low")
        let high = scheduler.submit(echo, priority: 1)
        let outcomes = scheduler.failQueued(code: .shuttingDown, message: "server is shutting down")
        #expect(
            outcomes.map(\.seen) == [
                .failed(high, waiter: nil, .shuttingDown, "server is shutting down"),
                .failed(low, waiter: "low", .shuttingDown, "server is shutting down"),
            ])
        #expect(scheduler.queue.isEmpty)
        #expect(scheduler.failedCount == 2)
        #expect(scheduler.liveCount == 1)
        #expect(scheduler.info(low, handlerName: nameOf)?.state == .dead)
        #expect(scheduler.info(low, handlerName: nameOf)?.errorCode == .shuttingDown)
        #expect(scheduler.info(running, handlerName: nameOf)?.state == .running)
        #expect(
            scheduler.attemptFinished(slot: 0, id: running, status: .ok, body: ByteBuffer())?.seen
                == .succeeded(running, waiter: "r", ByteBuffer()))
    }

    @Test func dropWaitersForgetsOnlyTheMatchingOnes() {
        var scheduler = makeScheduler(workers: [[echo]])
        let a = scheduler.submit(echo, waiter: "conn-1")
        let b = scheduler.submit(echo, waiter: "conn-2")
        let c = scheduler.submit(echo, waiter: "conn-1")
        let d = scheduler.submit(echo)
        _ = scheduler.nextDispatch()
        scheduler.dropWaiters { $0 == "conn-1" }
        #expect(scheduler.waiter(of: a) == nil)
        #expect(scheduler.waiter(of: b) == "conn-2")
        #expect(scheduler.waiter(of: c) == nil)
        #expect(scheduler.waiter(of: d) == nil)
        #expect(scheduler.liveCount == 4, "the tasks carry on")
        #expect(
            scheduler.attemptFinished(slot: 0, id: a, status: .ok, body: text("x"))?.seen
                == .succeeded(a, waiter: nil, text("x")))
    }

    // MARK: Strategies

    /// Answers the same slot every time.
    struct FixedStrategy: DispatchStrategy {
        let name = "fixed"
        var answer: Int?
        mutating func pick(_ task: DispatchCandidate, workers: [WorkerSlot]) -> Int? { answer }
    }

    /// Always the last eligible worker, to show a valid answer is obeyed.
    struct LastEligibleStrategy: DispatchStrategy {
        let name = "last"
        mutating func pick(_ task: DispatchCandidate, workers: [WorkerSlot]) -> Int? {
            workers.lastIndex { $0.canTake(handler: task.handler) }
        }
    }

    @Test(arguments: [99, 3, -1])
    func outOfRangeAnswerFallsBackToRoundRobin(answer: Int) {
        var scheduler = makeScheduler(workers: [[echo], [echo], [echo]], strategy: FixedStrategy(answer: answer))
        for _ in 0..<4 { _ = scheduler.submit(echo) }
        #expect(sameDispatches(scheduler.dispatchAll(), [(1, 0), (2, 1), (3, 2), (4, 0)]))
        #expect(scheduler.strategyFaults == 4)
    }

    @Test func ineligibleAnswerFallsBackToRoundRobin() {
        // Slot 0 lacks the handler; the strategy insists on it.
        var scheduler = makeScheduler(workers: [[sha], [echo]], strategy: FixedStrategy(answer: 0))
        _ = scheduler.submit(echo)
        #expect(sameDispatches(scheduler.dispatchAll(), [(1, 1)]))
        #expect(scheduler.strategyFaults == 1)
    }

    @Test func answerNamingAFullWorkerFallsBackToRoundRobin() {
        var scheduler = makeScheduler(workers: [[echo], [echo]], prefetch: 1, strategy: FixedStrategy(answer: 1))
        for _ in 0..<3 { _ = scheduler.submit(echo) }
        // The first goes where the strategy says; the second finds slot 1 full and falls back.
        #expect(sameDispatches(scheduler.dispatchAll(), [(1, 1), (2, 0)]))
        #expect(scheduler.strategyFaults == 2, "the third also faulted, then found no room")
        #expect(scheduler.queue.count == 1)
    }

    @Test func nilAnswerHoldsTheTaskWithoutAFault() {
        var scheduler = makeScheduler(workers: [[echo]], strategy: FixedStrategy(answer: nil))
        _ = scheduler.submit(echo)
        #expect(scheduler.nextDispatch() == nil)
        #expect(scheduler.strategyFaults == 0)
        #expect(scheduler.queue.count == 1)
    }

    @Test func validAnswerIsObeyed() {
        var scheduler = makeScheduler(workers: [[echo], [echo], [sha]], strategy: LastEligibleStrategy())
        for _ in 0..<2 { _ = scheduler.submit(echo) }
        #expect(sameDispatches(scheduler.dispatchAll(), [(1, 1), (2, 1)]))
        #expect(scheduler.strategyFaults == 0)
        #expect(scheduler.strategy.name == "last")
    }
}
