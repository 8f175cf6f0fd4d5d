import NIOCore
import Testing

@testable import SwitchyardCore

/// Delays, backoff, timeouts, unique keys, cancel, backpressure, store changes
/// and recovery: the lifecycle rules of `Scheduler`, driven with explicit times.
@Suite("Scheduler lifecycle")
struct LifecycleTests {
    func submission(
        _ handler: HandlerID = echo, priority: Int32 = 0, unique: String? = nil, maxAttempts: UInt32? = nil,
        timeout: UInt32? = nil, runAt: EpochMillis? = nil
    ) -> TaskSubmission {
        TaskSubmission(
            handler: handler, handlerName: nameOf(handler), payload: ByteBuffer(string: "p"), priority: priority,
            uniqueKey: unique, maxAttempts: maxAttempts, timeoutMillis: timeout, runAt: runAt)
    }

    // MARK: Delays

    @Test func aDelayedTaskIsScheduledAndRunsOnlyOnceDue() throws {
        var scheduler = makeScheduler(workers: [[echo]])
        #expect(scheduler.submit(submission(runAt: 5_000), waiter: nil, now: 1_000) == .created(1))
        #expect(scheduler.record(1)?.state == .scheduled)
        #expect(scheduler.record(1)?.runAt == 5_000)
        #expect(scheduler.waitingCount == 1)
        #expect(scheduler.nextDeadline() == 5_000)
        scheduler.promoteDue(now: 4_999)
        #expect(scheduler.nextDispatch(now: 4_999) == nil)
        scheduler.promoteDue(now: 5_000)
        #expect(scheduler.waitingCount == 0)
        #expect(scheduler.nextDeadline() == nil)
        let next = scheduler.nextDispatch(now: 5_000)
        let dispatch = try #require(next)
        #expect(dispatch.taskID == 1)
        #expect(scheduler.record(1)?.startedAt == 5_000)
    }

    @Test func aRunAtInThePastRunsAtOnce() {
        var scheduler = makeScheduler(workers: [[echo]])
        _ = scheduler.submit(submission(runAt: 10), waiter: nil, now: 1_000)
        #expect(scheduler.record(1)?.state == .queued)
        #expect(scheduler.nextDispatch(now: 1_000)?.taskID == 1)
    }

    @Test func delayedTasksComeDueInRunAtOrder() {
        var scheduler = makeScheduler(workers: [[echo]])
        for runAt in [300, 100, 200] as [EpochMillis] { _ = scheduler.submit(submission(runAt: runAt), waiter: nil, now: 0) }
        scheduler.promoteDue(now: 1_000)
        #expect(scheduler.queuedOrder == [2, 3, 1])
    }

    // MARK: Retries

    @Test func retriesBackOffExponentiallyThenTheTaskIsDead() throws {
        let policy = RetryPolicy(baseMillis: 100, maxMillis: 250, jitter: 0)
        var scheduler = makeScheduler(workers: [[echo]], maxAttempts: 4, retry: policy)
        _ = scheduler.submit(submission(), waiter: "w", now: 0)
        var now: EpochMillis = 0
        for (attempt, wait) in [(1, 100), (2, 200), (3, 250)] as [(UInt32, EpochMillis)] {
            let next = scheduler.nextDispatch(now: now)
            let dispatch = try #require(next)
            #expect(dispatch.attempt == attempt)
            let outcome = scheduler.attemptFinished(
                slot: 0, id: 1, status: .retryableFailure, body: ByteBuffer(string: "busy"), now: now)
            guard case .retrying(1, attempt, .handlerFailed, "busy", let runAt) = outcome else {
                Issue.record("expected a retry, got \(String(describing: outcome))")
                return
            }
            #expect(runAt == now + wait)
            #expect(scheduler.record(1)?.state == .failed)
            #expect(scheduler.nextDispatch(now: now + wait - 1) == nil)
            now += wait
            scheduler.promoteDue(now: now)
        }
        #expect(scheduler.nextDispatch(now: now) != nil)
        let last = scheduler.attemptFinished(slot: 0, id: 1, status: .retryableFailure, body: ByteBuffer(string: "busy"), now: now)
        #expect(last?.seen == .failed(1, waiter: "w", .handlerFailed, "busy (attempt 4 of 4)"))
        #expect(scheduler.record(1)?.state == .dead)
    }

    @Test func jitterOnlyShortensTheWait() {
        let policy = RetryPolicy(baseMillis: 1_000, maxMillis: 60_000, jitter: 0.5)
        #expect(policy.delay(afterAttempt: 1, random: 0) == 1_000)
        #expect(policy.delay(afterAttempt: 1, random: 0.999) > 500)
        #expect(policy.delay(afterAttempt: 3, random: 0) == 4_000)
        #expect(policy.delay(afterAttempt: 40, random: 0) == 60_000)
        #expect(RetryPolicy.immediate.delay(afterAttempt: 5, random: 0.5) == 0)
    }

    @Test func aPermanentFailureIsDeadAtOnce() {
        var scheduler = makeScheduler(workers: [[echo]], maxAttempts: 5, retry: RetryPolicy(baseMillis: 100))
        _ = scheduler.submit(submission(), waiter: nil, now: 0)
        _ = scheduler.nextDispatch(now: 0)
        let outcome = scheduler.attemptFinished(slot: 0, id: 1, status: .permanentFailure, body: ByteBuffer(string: "bad input"))
        #expect(outcome?.seen == .failed(1, waiter: nil, .handlerFailed, "bad input"))
        #expect(scheduler.record(1)?.attempts == 1)
    }

    // MARK: Timeouts

    @Test func aTimeoutIsAFailedAttemptChargedToTheRunningTask() {
        var scheduler = makeScheduler(workers: [[echo]], maxAttempts: 1)
        _ = scheduler.submit(submission(timeout: 50), waiter: "w", now: 0)
        _ = scheduler.submit(submission(), waiter: nil, now: 0)
        _ = scheduler.dispatchAll()
        #expect(scheduler.timeoutMillis(of: 1) == 50)
        let outcomes = scheduler.workerLost(slot: 0, running: 1, code: .timeout, reason: "ran past its 50 ms timeout", now: 60)
        #expect(outcomes.map(\.seen) == [.failed(1, waiter: "w", .timeout, "ran past its 50 ms timeout")])
        #expect(scheduler.queuedOrder == [2])
        #expect(scheduler.record(2)?.attempts == 0)
    }

    @Test func theServerDefaultTimeoutAppliesWhenASubmitNamesNone() {
        var scheduler = TestScheduler(configuration: SchedulerConfiguration(defaultTimeoutMillis: 30_000))
        _ = scheduler.submit(submission(), waiter: nil, now: 0)
        _ = scheduler.submit(submission(timeout: 5), waiter: nil, now: 0)
        #expect(scheduler.record(1)?.timeoutMillis == 30_000)
        #expect(scheduler.record(2)?.timeoutMillis == 5)
    }

    // MARK: Unique keys

    @Test func aUniqueKeyReturnsTheLiveTaskAndItsResultToEveryWaiter() throws {
        var scheduler = makeScheduler(workers: [[echo]])
        #expect(scheduler.submit(submission(unique: "report-42"), waiter: "a", now: 0) == .created(1))
        #expect(scheduler.submit(submission(unique: "report-42"), waiter: "b", now: 0) == .existing(1))
        _ = scheduler.nextDispatch()
        // Still the same task while it runs.
        #expect(scheduler.submit(submission(unique: "report-42"), waiter: nil, now: 0) == .existing(1))
        let finished = scheduler.attemptFinished(slot: 0, id: 1, status: .ok, body: ByteBuffer(string: "done"))
        let outcome = try #require(finished)
        guard case .succeeded(1, let waiters, _) = outcome else {
            Issue.record("expected success, got \(outcome)")
            return
        }
        #expect(waiters == ["a", "b"])
        // Once it finished, the key is free again.
        #expect(scheduler.submit(submission(unique: "report-42"), waiter: nil, now: 0) == .created(2))
    }

    @Test func aUniqueKeyStaysTakenWhileTheTaskWaitsToRetry() {
        var scheduler = makeScheduler(workers: [[echo]], retry: RetryPolicy(baseMillis: 1_000, jitter: 0))
        _ = scheduler.submit(submission(unique: "u"), waiter: nil, now: 0)
        _ = scheduler.nextDispatch()
        _ = scheduler.attemptFinished(slot: 0, id: 1, status: .retryableFailure, body: ByteBuffer())
        #expect(scheduler.record(1)?.state == .failed)
        #expect(scheduler.submit(submission(unique: "u"), waiter: nil, now: 10) == .existing(1))
    }

    // MARK: Cancel

    @Test func cancellingAQueuedTaskRemovesItAndAnswersItsWaiters() {
        var scheduler = makeScheduler(workers: [])
        _ = scheduler.submit(submission(), waiter: "w", now: 0)
        _ = scheduler.submit(submission(), waiter: nil, now: 0)
        guard case .cancelled(let record, let waiters) = scheduler.cancel(1, now: 5) else {
            Issue.record("expected cancelled")
            return
        }
        #expect(record.state == .cancelled)
        #expect(record.finishedAt == 5)
        #expect(waiters == ["w"])
        #expect(scheduler.queuedOrder == [2])
        #expect(scheduler.cancelledCount == 1)
        guard case .alreadyFinished = scheduler.cancel(1, now: 6) else {
            Issue.record("a second cancel must report the task finished")
            return
        }
    }

    @Test func cancellingAScheduledTaskMeansItNeverRuns() {
        var scheduler = makeScheduler(workers: [[echo]])
        _ = scheduler.submit(submission(runAt: 100), waiter: nil, now: 0)
        guard case .cancelled = scheduler.cancel(1, now: 1) else {
            Issue.record("expected cancelled")
            return
        }
        #expect(scheduler.waitingCount == 0)
        scheduler.promoteDue(now: 1_000)
        #expect(scheduler.nextDispatch(now: 1_000) == nil)
        #expect(scheduler.nextDeadline() == nil)
    }

    @Test func cancellingARunningTaskDiscardsItsResult() {
        var scheduler = makeScheduler(workers: [[echo]])
        _ = scheduler.submit(submission(), waiter: "w", now: 0)
        _ = scheduler.nextDispatch()
        guard case .willCancel(let record) = scheduler.cancel(1, now: 1) else {
            Issue.record("expected willCancel")
            return
        }
        #expect(record.state == .running)
        let outcome = scheduler.attemptFinished(slot: 0, id: 1, status: .ok, body: ByteBuffer(string: "late"), now: 2)
        #expect(outcome?.seen == .failed(1, waiter: "w", .cancelled, "task 1 was cancelled"))
        #expect(scheduler.record(1)?.state == .cancelled)
        #expect(scheduler.record(1)?.result == nil)
    }

    @Test func cancellingAnUnknownTaskSaysSo() {
        var scheduler = makeScheduler(workers: [[echo]])
        guard case .unknown = scheduler.cancel(77, now: 0) else {
            Issue.record("expected unknown")
            return
        }
    }

    // MARK: Backpressure

    @Test func pastMaxQueueASubmitIsRefusedButRetriesAreNot() {
        var scheduler = makeScheduler(workers: [[echo]], prefetch: 1, maxQueue: 2)
        _ = scheduler.submit(submission(), waiter: nil, now: 0)
        _ = scheduler.nextDispatch()  // 1 runs: not counted against the queue
        _ = scheduler.submit(submission(), waiter: nil, now: 0)
        _ = scheduler.submit(submission(runAt: 50), waiter: nil, now: 0)
        #expect(scheduler.submit(submission(), waiter: nil, now: 0) == .queueFull(limit: 2))
        // A retry of the running task still goes back in.
        let outcome = scheduler.attemptFinished(slot: 0, id: 1, status: .retryableFailure, body: ByteBuffer())
        guard case .retrying = outcome else {
            Issue.record("expected a retry, got \(String(describing: outcome))")
            return
        }
        #expect(scheduler.queue.count + scheduler.waitingCount == 3)
    }

    // MARK: Ageing through the scheduler

    @Test func ageingLetsALowPriorityTaskThroughAStreamOfHighOnes() {
        var scheduler = makeScheduler(workers: [[echo]], prefetch: 1, agingMillis: 100)
        _ = scheduler.submit(submission(priority: 0), waiter: nil, now: 0)
        var ran: [TaskID] = []
        var now: EpochMillis = 0
        // Every 50 ms a new priority-5 task arrives and one task runs.
        for _ in 0..<20 {
            _ = scheduler.submit(submission(priority: 5), waiter: nil, now: now)
            if let dispatch = scheduler.nextDispatch(now: now) {
                ran.append(dispatch.taskID)
                _ = scheduler.attemptFinished(slot: 0, id: dispatch.taskID, status: .ok, body: ByteBuffer(), now: now)
            }
            now += 50
        }
        let position = ran.firstIndex(of: 1)
        #expect(position != nil, "the low-priority task ran: \(ran)")
        #expect((position ?? 99) >= 5, "but not before it had aged: \(ran)")
    }

    // MARK: Store changes

    @Test func aTaskThatFinishesWithinOneGroupIsOneInsert() throws {
        var scheduler = makeScheduler(workers: [[echo]], recordChanges: true)
        _ = scheduler.submit(submission(), waiter: nil, now: 10)
        _ = scheduler.nextDispatch(now: 11)
        _ = scheduler.attemptFinished(slot: 0, id: 1, status: .ok, body: ByteBuffer(string: "r"), now: 12)
        let changes = scheduler.takeChanges()
        #expect(changes.count == 1)
        guard case .insert(let record) = changes.first else {
            Issue.record("expected one insert, got \(changes)")
            return
        }
        #expect(record.state == .succeeded)
        #expect(record.attempts == 1)
        #expect(record.createdAt == 10)
        #expect(record.startedAt == 11)
        #expect(record.finishedAt == 12)
        #expect(record.result == ByteBuffer(string: "r"))
        #expect(record.payload == ByteBuffer(string: "p"))
        #expect(scheduler.takeChanges().isEmpty)
    }

    @Test func changesAfterACommitAreUpdatesFoldedPerTask() {
        var scheduler = makeScheduler(workers: [[echo]], recordChanges: true)
        _ = scheduler.submit(submission(), waiter: nil, now: 0)
        _ = scheduler.takeChanges()
        _ = scheduler.nextDispatch(now: 1)
        _ = scheduler.attemptFinished(slot: 0, id: 1, status: .ok, body: ByteBuffer(string: "r"), now: 2)
        let changes = scheduler.takeChanges()
        #expect(changes.count == 1)
        guard case .update(let update) = changes.first else {
            Issue.record("expected an update, got \(changes)")
            return
        }
        #expect(update.state == .succeeded)
        #expect(update.finishedAt == 2)
    }

    @Test func noChangesAreCollectedWithoutAStore() {
        var scheduler = makeScheduler(workers: [[echo]])
        _ = scheduler.submit(submission(), waiter: nil, now: 0)
        #expect(!scheduler.hasChanges)
    }

    // MARK: Recovery

    @Test func restoreResumesQueuedAndScheduledAndRetriesWhatWasRunning() throws {
        var scheduler = makeScheduler(workers: [[echo]], maxAttempts: 2)
        let records = [
            TaskRecord(id: 3, handler: "echo", payload: ByteBuffer(string: "a"), state: .queued, maxAttempts: 2),
            TaskRecord(
                id: 5, handler: "echo", payload: ByteBuffer(string: "b"), state: .running, attempts: 1, maxAttempts: 2),
            TaskRecord(
                id: 7, handler: "echo", payload: ByteBuffer(string: "c"), state: .running, attempts: 2, maxAttempts: 2),
            TaskRecord(id: 9, handler: "echo", payload: ByteBuffer(string: "d"), state: .scheduled, runAt: 500),
        ]
        let outcomes = scheduler.restore(records, maxID: 12, now: 100) { _ in echo }
        #expect(outcomes.count == 2)
        #expect(outcomes.first.map { if case .retrying(5, 1, .workerCrashed, _, _) = $0 { true } else { false } } == true)
        #expect(outcomes.last.map { if case .failed(7, _, .workerCrashed, _) = $0 { true } else { false } } == true)
        #expect(scheduler.queuedOrder == [3, 5])
        #expect(scheduler.record(9)?.state == .scheduled)
        #expect(scheduler.nextDeadline() == 500)
        // New ids continue after the largest ever stored.
        #expect(scheduler.submit(submission(), waiter: nil, now: 100) == .created(13))
    }

    @Test func aQueuedTaskWhoseHandlerIsGoneEndsWithUnknownHandler() {
        var scheduler = makeScheduler(workers: [[echo]])
        _ = scheduler.restore(
            [TaskRecord(id: 1, handler: "resize", payload: ByteBuffer(), state: .queued)], maxID: 1, now: 0
        ) { _ in resize }
        _ = scheduler.submit(submission(), waiter: nil, now: 0)
        guard case .outcome(let outcome) = scheduler.nextStep(now: 0) else {
            Issue.record("expected an outcome for the orphaned task")
            return
        }
        guard case .failed(1, _, .unknownHandler, let message) = outcome else {
            Issue.record("expected UNKNOWN_HANDLER, got \(outcome)")
            return
        }
        #expect(message.contains("resize"))
        // The task behind it is not stuck.
        #expect(scheduler.nextDispatch(now: 0)?.taskID == 2)
    }

    // MARK: Retention and listing

    @Test func finishedRecordsArePrunedAfterTheRetentionTime() {
        var scheduler = TestScheduler(
            configuration: SchedulerConfiguration(retry: .immediate, keepFinishedMillis: 1_000))
        scheduler.setWorkerCount(1)
        scheduler.workerReady(slot: 0, handlers: [echo])
        _ = scheduler.submit(submission(), waiter: nil, now: 0)
        _ = scheduler.nextDispatch(now: 0)
        _ = scheduler.attemptFinished(slot: 0, id: 1, status: .ok, body: ByteBuffer(), now: 100)
        scheduler.pruneFinished(now: 1_100)
        #expect(scheduler.record(1) != nil)
        scheduler.pruneFinished(now: 1_101)
        #expect(scheduler.record(1) == nil)
    }

    @Test func listFiltersByStateAndHandlerAndPages() {
        var scheduler = makeScheduler(workers: [])
        for handler in [echo, sha, echo, echo, sha] { _ = scheduler.submit(submission(handler), waiter: nil, now: 0) }
        _ = scheduler.cancel(3, now: 0)
        #expect(scheduler.list(TaskListQuery(handler: "echo")).map(\.id) == [1, 3, 4])
        #expect(scheduler.list(TaskListQuery(state: .queued, handler: "echo")).map(\.id) == [1, 4])
        #expect(scheduler.list(TaskListQuery(state: .cancelled)).map(\.id) == [3])
        #expect(scheduler.list(TaskListQuery(afterID: 2, limit: 2)).map(\.id) == [3, 4])
        #expect(scheduler.list(TaskListQuery()).allSatisfy { $0.payload.readableBytes == 0 })
    }
}
