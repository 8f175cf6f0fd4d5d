import HeapModule
import NIOCore

/// Host-wide handler number: an index into the host's handler registry.
public typealias HandlerID = Int

/// One worker's place in the scheduler. Slots are stable: a replacement worker
/// takes the slot of the one it replaces.
public struct WorkerSlot: Sendable {
    public enum State: Sendable, Hashable {
        /// No process, or one that has not said hello yet.
        case absent
        /// Taking tasks.
        case ready
        /// Finishing what it holds; takes nothing new.
        case draining
    }

    public internal(set) var state: State = .absent
    /// Sent and not yet answered, in the order sent (the worker runs them in that order).
    public internal(set) var inFlight = CircularBuffer<TaskID>(initialCapacity: 64)
    public internal(set) var tasksDone: UInt64 = 0
    /// Indexed by HandlerID: the worker's own index for that handler, or -1.
    public internal(set) var localHandlerIndex: [Int32] = []
    /// How many tasks may be in flight on this worker at once.
    public internal(set) var window: Int
    /// Moving average of the time one task takes on this worker (ns), measured
    /// between completions while it is busy.
    public internal(set) var serviceNanosAverage: UInt64 = 0
    /// When the worker last became busy or finished a task while busy.
    var busySinceNanos: UInt64 = 0

    init(window: Int) { self.window = window }

    /// Whether this worker may be sent a task for `handler` now.
    @inlinable
    public func canTake(handler: HandlerID) -> Bool {
        state == .ready && inFlight.count < window && handler < localHandlerIndex.count
            && localHandlerIndex[handler] >= 0
    }

    public func has(handler: HandlerID) -> Bool {
        handler < localHandlerIndex.count && localHandlerIndex[handler] >= 0
    }
}

/// How long a task waits before its next attempt after a retryable failure.
///
/// The n-th retry waits `base * 2^(n-1)`, capped at `max`, then shortened by a
/// random fraction of up to `jitter` (so retries of many tasks that failed
/// together spread out instead of arriving at once).
public struct RetryPolicy: Sendable, Hashable {
    public var baseMillis: Int64
    public var maxMillis: Int64
    /// 0 ... 1.
    public var jitter: Double

    public init(baseMillis: Int64 = 1_000, maxMillis: Int64 = 600_000, jitter: Double = 0.25) {
        self.baseMillis = baseMillis
        self.maxMillis = max(maxMillis, baseMillis)
        self.jitter = min(max(jitter, 0), 1)
    }

    /// Retry at once, for tests and for handlers that need no pause.
    public static let immediate = RetryPolicy(baseMillis: 0, maxMillis: 0, jitter: 0)

    /// The wait before attempt `failedAttempt + 1`; `random` is in 0 ..< 1.
    public func delay(afterAttempt failedAttempt: UInt32, random: Double) -> Int64 {
        guard baseMillis > 0 else { return 0 }
        let exponent = min(Int(max(failedAttempt, 1)) - 1, 30)
        let raw = min(baseMillis.multipliedReportingOverflow(by: 1 << exponent).partialValue, maxMillis)
        return raw - Int64(Double(raw) * jitter * random)
    }
}

/// Scheduler settings.
public struct SchedulerConfiguration: Sendable {
    /// Tasks each worker may hold at once, so its socket never idles (default 16).
    /// With `maxPrefetch` above it, the least a worker's window holds.
    public var prefetch: Int
    /// The most a worker's window grows to when its tasks are short (default
    /// `prefetch`: no growth). A window holds about `windowBudgetNanos` of the
    /// worker's measured work (`WorkerSlot.serviceNanosAverage`), rounded down
    /// to a power of two, and never fewer than `prefetch` tasks.
    public var maxPrefetch: Int
    /// How much work a grown window holds, in ns (default 5 ms): about the
    /// longest a task placed on a worker waits behind the tasks sent there
    /// before it, beyond `prefetch` of them.
    public var windowBudgetNanos: UInt64
    /// Attempts a task gets when its submit names none (default 2: one retry).
    public var defaultMaxAttempts: UInt32
    /// Per-attempt time limit when a submit names none, in ms; 0 for none.
    public var defaultTimeoutMillis: UInt32
    /// Most tasks that may be queued or waiting for their time at once; a
    /// submit past it gets QUEUE_FULL.
    public var maxQueue: Int
    public var retry: RetryPolicy
    /// Waiting this long raises a queued task's priority by one (0: no ageing).
    public var agingMillis: Int64
    /// Finished tasks whose record (and result) stays in memory, at most.
    public var retainFinished: Int
    /// How long a finished task's record is kept, in ms.
    public var keepFinishedMillis: Int64
    /// Whether to collect `StoreChange`s for a durable store.
    public var recordChanges: Bool
    /// Faulty picks a strategy may make before it is switched off and the one
    /// it replaced is restored (0: never switch off).
    public var maxStrategyFaults: UInt64
    /// When the strategy holds the next task although a worker could take
    /// it (e.g. `key_affinity` keeping a key on its full owner), how many
    /// tasks of the same priority behind it may be placed first (default 64;
    /// 0: the held task blocks the queue).
    public var holdLookahead: Int

    public init(
        prefetch: Int = 16, defaultMaxAttempts: UInt32 = 2, defaultTimeoutMillis: UInt32 = 0,
        maxQueue: Int = 10_000_000, retry: RetryPolicy = .init(), agingMillis: Int64 = 10_000,
        retainFinished: Int = 10_000, keepFinishedMillis: Int64 = 86_400_000, recordChanges: Bool = false,
        maxStrategyFaults: UInt64 = 100, holdLookahead: Int = 64, maxPrefetch: Int? = nil,
        windowBudgetNanos: UInt64 = 5_000_000
    ) {
        self.holdLookahead = holdLookahead
        self.prefetch = prefetch
        self.maxPrefetch = max(prefetch, maxPrefetch ?? prefetch)
        self.windowBudgetNanos = windowBudgetNanos
        self.defaultMaxAttempts = defaultMaxAttempts
        self.defaultTimeoutMillis = defaultTimeoutMillis
        self.maxQueue = maxQueue
        self.retry = retry
        self.agingMillis = agingMillis
        self.retainFinished = retainFinished
        self.keepFinishedMillis = keepFinishedMillis
        self.recordChanges = recordChanges
        self.maxStrategyFaults = maxStrategyFaults
    }
}

/// What a submit asks for, with the handler already resolved.
public struct TaskSubmission: Sendable {
    public var handler: HandlerID
    public var handlerName: String
    public var payload: ByteBuffer
    public var priority: Int32
    public var key: String?
    public var uniqueKey: String?
    public var maxAttempts: UInt32?
    public var timeoutMillis: UInt32?
    /// When it may first run; nil or not after `now` for at once.
    public var runAt: EpochMillis?
    /// Who submits it (`TaskRecord.submitter`).
    public var submitter: String?

    public init(
        handler: HandlerID, handlerName: String, payload: ByteBuffer, priority: Int32 = 0, key: String? = nil,
        uniqueKey: String? = nil, maxAttempts: UInt32? = nil, timeoutMillis: UInt32? = nil, runAt: EpochMillis? = nil,
        submitter: String? = nil
    ) {
        self.handler = handler
        self.handlerName = handlerName
        self.payload = payload
        self.priority = priority
        self.key = key
        self.uniqueKey = uniqueKey
        self.maxAttempts = maxAttempts
        self.timeoutMillis = timeoutMillis
        self.runAt = runAt
        self.submitter = submitter
    }
}

/// The scheduling state machine: the queue, the delayed tasks, the workers'
/// slots, and the rules for retries, timeouts, unique keys and cancellation.
/// It does no I/O and reads no clock: the host feeds it events with the time
/// and carries out what it returns, so every rule is testable without processes.
///
/// `Waiter` is whatever the host needs to answer a client waiting for a task.
public struct Scheduler<Waiter> {
    struct LiveTask {
        var record: TaskRecord
        var waiters: [Waiter] = []
        private var handlerIndex: Int32
        /// CANCEL arrived while it was running: end it as cancelled.
        var cancelRequested = false

        var handler: HandlerID { HandlerID(handlerIndex) }

        /// What a strategy sees of the task's next attempt. A method, so
        /// `live[id]!.candidate(id:)` reads the fields in one borrowed access.
        func candidate(id: TaskID) -> DispatchCandidate {
            DispatchCandidate(
                taskID: id, handler: handler, priority: record.priority, attempt: record.attempts + 1,
                payloadSize: record.payload.readableBytes, key: record.key)
        }

        init(record: TaskRecord, handler: HandlerID, waiters: [Waiter] = []) {
            self.record = record
            self.waiters = waiters
            self.handlerIndex = Int32(handler)
        }
    }

    /// A task to send: the host writes it to the worker in `slot`.
    public struct Dispatch {
        public var taskID: TaskID
        public var slot: Int
        public var localHandlerIndex: UInt16
        public var attempt: UInt32
        public var priority: Int32
        public var payload: ByteBuffer
    }

    /// What became of a task after an event.
    public enum Outcome {
        /// Succeeded: answer the waiters with the result.
        case succeeded(TaskID, [Waiter], ByteBuffer)
        /// Ended for good (dead or cancelled): answer the waiters with the error.
        case failed(TaskID, [Waiter], ErrorCode, String)
        /// The attempt failed; the task runs again at `runAt`.
        case retrying(TaskID, attempt: UInt32, ErrorCode, String, runAt: EpochMillis)
    }

    /// The next thing to do from the queue.
    public enum Step {
        case dispatch(Dispatch)
        /// The task cannot run here (no worker has its handler any more).
        case outcome(Outcome)
    }

    public enum SubmitResult: Equatable {
        case created(TaskID)
        /// A live task has the same unique key; the submitter gets it.
        case existing(TaskID)
        case queueFull(limit: Int)
    }

    public enum CancelResult {
        /// It was queued or waiting: it is cancelled now; answer its waiters.
        case cancelled(TaskRecord, [Waiter])
        /// It is running: its result will be discarded and it ends cancelled.
        case willCancel(TaskRecord)
        /// It had already finished.
        case alreadyFinished(TaskRecord)
        case unknown
    }

    public enum WaitResult {
        case waiting
        case finished(TaskRecord)
        case unknown
    }

    public let configuration: SchedulerConfiguration
    public private(set) var workers: [WorkerSlot] = []
    public private(set) var queue: TaskQueue
    /// Scheduled tasks and retries waiting for backoff, by run-at. Entries whose
    /// task moved on are skipped when they surface.
    private var delayed = Heap<DelayedEntry>()
    private var delayedCount = 0
    private var live = LiveTable<LiveTask>()
    private var uniqueKeys: [String: TaskID] = [:]
    private var finished = LiveTable<TaskRecord>()
    private var finishedOrder = CircularBuffer<TaskID>()
    private var nextID: TaskID = 1
    /// The strategy for handlers without their own.
    public private(set) var strategy: any DispatchStrategy
    /// Per-handler strategies.
    public private(set) var handlerStrategies: [HandlerID: any DispatchStrategy] = [:]
    /// What each scope had before its current strategy, restored after too many faults.
    private var previousStrategies: [StrategyScope: any DispatchStrategy] = [:]
    /// Faulty picks of each scope's current strategy.
    public private(set) var faultsByScope: [StrategyScope: UInt64] = [:]
    private var notices: [StrategyNotice] = []
    private var fallback = RoundRobinStrategy()
    private var random = SystemRandomNumberGenerator()
    private var changes = ChangeLog()
    public private(set) var strategyFaults: UInt64 = 0
    public private(set) var succeededCount: UInt64 = 0
    /// Tasks that ended dead.
    public private(set) var failedCount: UInt64 = 0
    public private(set) var cancelledCount: UInt64 = 0

    public init(configuration: SchedulerConfiguration = .init(), strategy: any DispatchStrategy = RoundRobinStrategy()) {
        self.configuration = configuration
        self.strategy = strategy
        self.queue = TaskQueue(agingMillis: configuration.agingMillis)
        self.changes.enabled = configuration.recordChanges
    }

    /// Tasks accepted and not finished.
    public var liveCount: Int { live.count }
    /// Tasks waiting for their run-at time (scheduled, or failed and waiting to retry).
    public var waitingCount: Int { delayedCount }
    public var runningCount: Int { live.count - queue.count - delayedCount }

    // MARK: Workers

    /// Makes room for `count` worker slots.
    public mutating func setWorkerCount(_ count: Int) {
        while workers.count < count { workers.append(WorkerSlot(window: configuration.prefetch)) }
    }

    /// A worker in `slot` said hello with these handlers (host-wide ids, in the worker's own order).
    public mutating func workerReady(slot: Int, handlers: [HandlerID]) {
        setWorkerCount(slot + 1)
        var map = [Int32](repeating: -1, count: (handlers.max() ?? -1) + 1)
        for (local, handler) in handlers.enumerated() { map[handler] = Int32(local) }
        workers[slot].localHandlerIndex = map
        workers[slot].state = .ready
        workers[slot].serviceNanosAverage = 0
        workers[slot].window = configuration.prefetch  // a new process: measured afresh
        tell(.workerJoined(slot: slot, handlers: handlers))
    }

    /// Stop sending to the worker in `slot`; what it holds still completes.
    public mutating func drainWorker(slot: Int) {
        if workers[slot].state == .ready {
            workers[slot].state = .draining
            tell(.workerDraining(slot: slot))
        }
    }

    /// The worker in `slot` is gone. The task it was running (`running`, from its
    /// board; the oldest it was sent when unknown) has its attempt counted with
    /// `code` and is retried (unless `retryable` is false, as for a broken
    /// worker limit) or ends; every other task it held goes back to the front
    /// of the queue uncharged.
    public mutating func workerLost(
        slot: Int, running: TaskID? = nil, code: ErrorCode = .workerCrashed, reason: String, retryable: Bool = true,
        now: EpochMillis = 0
    ) -> [Outcome] {
        guard slot < workers.count else { return [] }
        var held = workers[slot].inFlight
        workers[slot].inFlight.removeAll()
        workers[slot].state = .absent
        workers[slot].localHandlerIndex = []
        tell(.workerLeft(slot: slot))
        // Blame the task the worker said it was running; when it said none
        // (killed between tasks), the oldest, which bounds how often an unlucky
        // task can be re-run without being charged.
        let culprit: TaskID
        if let running, let index = held.firstIndex(of: running) {
            culprit = running
            held.remove(at: index)
        } else if let oldest = held.popFirst() {
            culprit = oldest
        } else {
            return []
        }
        var outcomes: [Outcome] = []
        // Every other task goes back in front, keeping its order. Some may have
        // run already (their results were still in the worker's buffer): they run
        // again, which is the at-least-once promise.
        while let id = held.popLast() {
            guard var task = live[id] else { continue }
            // nextStep counted an attempt when it sent the task; it is not charged.
            task.record.attempts -= 1
            if task.cancelRequested {
                live[id] = task
                outcomes.append(finish(id, state: .cancelled, code: .cancelled, message: cancelMessage(id), now: now))
                continue
            }
            task.record.state = .queued
            live[id] = task
            queue.prepend(id, priority: task.record.priority, now: now)
            changes.update(task.record)
        }
        outcomes.append(failAttempt(culprit, code: code, message: reason, retryable: retryable, now: now))
        return outcomes
    }

    // MARK: Tasks

    /// Accepts a task: queued, or scheduled when `runAt` is later than `now`.
    /// With a unique key held by a live task, returns that task instead (and
    /// adds `waiter` to it).
    public mutating func submit(_ submission: TaskSubmission, waiter: Waiter?, now: EpochMillis) -> SubmitResult {
        if let unique = submission.uniqueKey, let existing = uniqueKeys[unique], live[existing] != nil {
            if let waiter { live[existing]!.waiters.append(waiter) }
            return .existing(existing)
        }
        guard queue.count + delayedCount < configuration.maxQueue else {
            return .queueFull(limit: configuration.maxQueue)
        }
        let id = nextID
        nextID += 1
        let runAt = submission.runAt ?? now
        let scheduled = runAt > now
        let record = TaskRecord(
            id: id, handler: submission.handlerName, payload: submission.payload, priority: submission.priority,
            key: submission.key, uniqueKey: submission.uniqueKey, state: scheduled ? .scheduled : .queued,
            attempts: 0, maxAttempts: submission.maxAttempts ?? configuration.defaultMaxAttempts,
            timeoutMillis: submission.timeoutMillis ?? configuration.defaultTimeoutMillis,
            runAt: max(runAt, now), createdAt: now, submitter: submission.submitter)
        live.insert(LiveTask(record: record, handler: submission.handler, waiters: waiter.map { [$0] } ?? []), id: id)
        if let unique = submission.uniqueKey { uniqueKeys[unique] = id }
        if scheduled {
            delay(id, until: runAt)
        } else {
            queue.append(id, priority: submission.priority, now: now)
        }
        changes.insert(record)
        return .created(id)
    }

    /// Moves tasks whose time has come from waiting to the queue.
    public mutating func promoteDue(now: EpochMillis) {
        while let top = delayed.min, top.runAt <= now {
            _ = delayed.removeMin()
            guard var task = live[top.id], task.record.runAt == top.runAt,
                task.record.state == .scheduled || task.record.state == .failed
            else { continue }
            delayedCount -= 1
            task.record.state = .queued
            live[top.id] = task
            queue.append(top.id, priority: task.record.priority, now: now)
        }
    }

    /// When the next waiting task becomes due, if any (arm a timer for it).
    public mutating func nextDeadline() -> EpochMillis? {
        while let top = delayed.min {
            if let task = live[top.id], task.record.runAt == top.runAt,
                task.record.state == .scheduled || task.record.state == .failed
            {
                return top.runAt
            }
            _ = delayed.removeMin()
        }
        return nil
    }

    /// The next task to send and where, or a task that can never run here, or
    /// nil when the queue is empty or its head must wait for a worker with room.
    /// Call until nil after any event. `nanos` is a monotonic clock, for
    /// service times.
    public mutating func nextStep(now: EpochMillis, nanos: UInt64 = 0) -> Step? {
        // Fields are read through `live[id]?.field`, which borrows the task in
        // place: binding the whole LiveTask would copy it (a retain and a release
        // of each of its references, 3.4% of the host's samples in workload a1).
        guard let level = queue.firstLevel(now: now), let id = queue.id(at: 0, level: level),
            let handler = live[id]?.handler
        else { return nil }
        if let slot = place(id, handler: handler) {
            queue.remove(at: 0, level: level)
            return dispatch(id, handler: handler, to: slot, nanos: nanos, now: now)
        }
        // Nobody has room, or nobody has the handler. The latter is final once
        // some worker is ready (every worker loads the same plugins): say so
        // instead of leaving the task, and everything behind it, stuck.
        let anyReady = workers.contains { $0.state == .ready }
        if anyReady && !workers.contains(where: { $0.state == .ready && $0.has(handler: handler) }) {
            queue.remove(at: 0, level: level)
            return .outcome(
                finish(
                    id, state: .dead, code: .unknownHandler,
                    message:
                        "no loaded plugin has a handler named `\(live[id]!.record.handler)` any more; the task was accepted while one did",
                    now: now))
        }
        // The strategy held the task although a worker has room (a key kept on
        // its busy owner): place what is behind it meanwhile, in order, so one
        // held key does not stop every other. The held task stays first.
        guard configuration.holdLookahead > 0, workers.contains(where: { $0.canTake(handler: handler) }) else {
            return nil
        }
        let behind = min(configuration.holdLookahead, queue.count(level: level) - 1)
        guard behind > 0 else { return nil }
        for offset in 1...behind {
            guard let other = queue.id(at: offset, level: level), let otherHandler = live[other]?.handler,
                let slot = place(other, handler: otherHandler)
            else { continue }
            queue.remove(at: offset, level: level)
            return dispatch(other, handler: otherHandler, to: slot, nanos: nanos, now: now)
        }
        return nil
    }

    /// Asks the task's strategy for a worker; a faulty answer is counted and
    /// replaced by round-robin. Nil: the strategy holds it, or nobody has room.
    private mutating func place(_ id: TaskID, handler: HandlerID) -> Int? {
        let candidate = live[id]!.candidate(id: id)
        let scope: StrategyScope = handlerStrategies[handler] == nil ? .default : .handler(handler)
        var chosen: Int?
        switch scope {
        case .default: chosen = strategy.pick(candidate, workers: workers)
        case .handler(let handler): chosen = handlerStrategies[handler]!.pick(candidate, workers: workers)
        }
        if let slot = chosen, !(slot >= 0 && slot < workers.count && workers[slot].canTake(handler: handler)) {
            strategyFault(scope, answer: slot, handler: handler)
            chosen = fallback.pick(candidate, workers: workers)
        }
        if let slot = chosen, canary != nil, canary!.handlers.contains(handler) {
            chosen = canary!.route(slot, handler: handler, workers: workers)
        }
        return chosen
    }

    /// Splits the tasks of some handlers between two sets of workers (a canary
    /// reload: the new version gets `permille` of them). Nil: no split.
    public var canary: CanaryRoute?

    /// The handler of a live task, if it is known.
    public func handler(of id: TaskID) -> HandlerID? { live[id]?.handler }

    /// Marks the task (already out of the queue) running on `slot`.
    private mutating func dispatch(_ id: TaskID, handler: HandlerID, to slot: Int, nanos: UInt64, now: EpochMillis) -> Step {
        // Changed in place: a copy of the record, changed and written back, costs
        // a retain and a release of each of its references.
        let (attempt, priority, payload) = live[id]!.record.markRunning(now: now)
        if workers[slot].inFlight.isEmpty { workers[slot].busySinceNanos = nanos }
        workers[slot].inFlight.append(id)
        if changes.enabled { changes.update(live[id]!.record) }  // no record copy for the memory store
        tell(.dispatched(slot: slot, handler: handler, task: id))
        return .dispatch(
            Dispatch(
                taskID: id, slot: slot, localHandlerIndex: UInt16(workers[slot].localHandlerIndex[handler]),
                attempt: attempt, priority: priority, payload: payload))
    }

    /// The worker in `slot` finished an attempt of task `id`. Returns nil when
    /// the worker was not holding that task (a protocol fault the host logs).
    public mutating func attemptFinished(
        slot: Int, id: TaskID, status: HandlerStatus, body: ByteBuffer, now: EpochMillis = 0, nanos: UInt64 = 0
    ) -> Outcome? {
        guard slot < workers.count else { return nil }
        if workers[slot].inFlight.first == id {
            workers[slot].inFlight.removeFirst()
        } else if let index = workers[slot].inFlight.firstIndex(of: id) {
            workers[slot].inFlight.remove(at: index)
        } else {
            return nil
        }
        workers[slot].tasksDone += 1
        let service = nanos &- workers[slot].busySinceNanos
        workers[slot].busySinceNanos = nanos
        let average = workers[slot].serviceNanosAverage
        // An exponentially weighted average over about the last eight tasks.
        workers[slot].serviceNanosAverage = average == 0 ? service : average - average / 8 + service / 8
        if configuration.maxPrefetch > configuration.prefetch { resizeWindow(slot) }
        guard let handler = live[id]?.handler else {
            // Its slot is free again all the same: strategies must hear of it.
            tell(.finished(slot: slot, handler: -1, task: id, serviceNanos: service))
            return nil
        }
        tell(.finished(slot: slot, handler: handler, task: id, serviceNanos: service))
        if live[id]?.cancelRequested == true {
            return finish(id, state: .cancelled, code: .cancelled, message: cancelMessage(id), now: now)
        }
        switch status {
        case .ok:
            live[id]!.record.result = body
            return finish(id, state: .succeeded, code: nil, message: "", now: now, result: body)
        case .permanentFailure, .retryableFailure:
            let message = body.getString(at: body.readerIndex, length: body.readableBytes) ?? ""
            return failAttempt(
                id, code: .handlerFailed, message: message.isEmpty ? "handler returned an error" : message,
                retryable: status == .retryableFailure, now: now)
        case .badArguments:
            let message = body.getString(at: body.readerIndex, length: body.readableBytes) ?? ""
            return failAttempt(id, code: .badArguments, message: message, retryable: false, now: now)
        }
    }

    /// Sizes the worker's window to hold about `windowBudgetNanos` of its work.
    /// Short tasks need deep windows: each wake-up of a worker (a system call
    /// and, on another core, an interrupt) is then spread over many tasks. On
    /// 2 cores, echo with 1,000 in flight went from 77,000-92,000 tasks/s at a
    /// fixed 16 to 129,000-192,000 at 256. Long tasks keep `prefetch`, so what
    /// waits behind them on a worker (and misses later, higher-priority work)
    /// is bounded by time, not only by count. Powers of two, so the window
    /// moves only when the average crosses one, not at every completion.
    private mutating func resizeWindow(_ slot: Int) {
        let average = workers[slot].serviceNanosAverage
        guard average > 0 else { return }
        let fits = configuration.windowBudgetNanos / average
        var window = configuration.prefetch
        while window * 2 <= configuration.maxPrefetch && UInt64(window * 2) <= fits { window *= 2 }
        guard window != workers[slot].window else { return }
        workers[slot].window = window
        tell(.windowChanged(slot: slot, window: window))
    }

    /// Cancels a task: at once when it waits, at the end of its attempt when it runs.
    public mutating func cancel(_ id: TaskID, now: EpochMillis) -> CancelResult {
        guard var task = live[id] else {
            if let record = finished[id] { return .alreadyFinished(record) }
            return .unknown
        }
        switch task.record.state {
        case .queued:
            queue.remove(id, priority: task.record.priority)
        case .scheduled, .failed:
            delayedCount -= 1  // its heap entry is skipped when it surfaces
        case .running:
            task.cancelRequested = true
            live[id] = task
            return .willCancel(task.record)
        case .succeeded, .dead, .cancelled:
            return .alreadyFinished(task.record)
        }
        let waiters = task.waiters
        _ = finish(id, state: .cancelled, code: .cancelled, message: cancelMessage(id), now: now)
        return .cancelled(finished[id] ?? task.record, waiters)
    }

    /// Hands a queued or waiting task back to a shared store: it leaves this
    /// scheduler with no outcome and no store change, so another host may run
    /// it. Returns false (and changes nothing) for a task that is running,
    /// finished or unknown.
    @discardableResult
    public mutating func release(_ id: TaskID) -> Bool {
        guard let task = live[id] else { return false }
        switch task.record.state {
        case .queued:
            queue.remove(id, priority: task.record.priority)
        case .scheduled, .failed:
            delayedCount -= 1  // its heap entry is skipped when it surfaces
        default:
            return false
        }
        live[id] = nil
        if let unique = task.record.uniqueKey, uniqueKeys[unique] == id { uniqueKeys[unique] = nil }
        return true
    }

    /// Releases every queued and waiting task (see `release`); returns their ids.
    public mutating func releaseAllWaiting() -> [TaskID] {
        let ids = live.compactMap { id, task in task.record.state == .running ? nil : id }.sorted()
        for id in ids { release(id) }
        return ids
    }

    /// The ids of the tasks running on workers now.
    public var runningIDs: [TaskID] {
        live.compactMap { id, task in task.record.state == .running ? id : nil }.sorted()
    }

    /// Adds a waiter to task `id`, or says it already finished.
    public mutating func addWaiter(_ waiter: Waiter, to id: TaskID) -> WaitResult {
        if live[id] != nil {
            live[id]!.waiters.append(waiter)
            return .waiting
        }
        if let record = finished[id] { return .finished(record) }
        return .unknown
    }

    /// The waiters of a live task (for progress reports).
    public func waiters(of id: TaskID) -> [Waiter] { live[id]?.waiters ?? [] }

    /// The per-attempt time limit of a live task, in ms (0: none).
    public func timeoutMillis(of id: TaskID) -> UInt32 { live[id]?.record.timeoutMillis ?? 0 }

    /// Takes every queued and waiting task out and ends it (at shutdown, when
    /// nothing durable keeps them).
    public mutating func failQueued(code: ErrorCode, message: String, now: EpochMillis = 0) -> [Outcome] {
        var ids = queue.removeAll()
        for (id, task) in live where task.record.state == .scheduled || task.record.state == .failed {
            ids.append(id)
        }
        delayed = Heap()
        delayedCount = 0
        return ids.map { finish($0, state: .dead, code: code, message: message, now: now) }
    }

    /// Ends every task waiting for a later run-at time (at shutdown, when
    /// nothing durable keeps them).
    public mutating func failWaiting(code: ErrorCode, message: String, now: EpochMillis) -> [Outcome] {
        let ids = live.compactMap { id, task in
            task.record.state == .scheduled || task.record.state == .failed ? id : nil
        }
        delayed = Heap()
        delayedCount = 0
        return ids.sorted().map { finish($0, state: .dead, code: code, message: message, now: now) }
    }

    /// Takes the waiters off every live task and returns them (at shutdown,
    /// when a durable store keeps the tasks for the next start).
    public mutating func detachAllWaiters() -> [(TaskID, [Waiter])] {
        var all: [(TaskID, [Waiter])] = []
        for (id, task) in live where !task.waiters.isEmpty {
            all.append((id, task.waiters))
            live[id]!.waiters = []
        }
        return all
    }

    /// Forgets the waiters that `isGone` matches (their connection closed); the tasks carry on.
    public mutating func dropWaiters(where isGone: (Waiter) -> Bool) {
        for (id, task) in live where task.waiters.contains(where: isGone) {
            live[id]!.waiters.removeAll(where: isGone)
        }
    }

    /// A task's record, live or recently finished; nil when unknown here.
    public func record(_ id: TaskID) -> TaskRecord? {
        live[id]?.record ?? finished[id]
    }

    /// Records matching `query` among the tasks held in memory, in id order.
    public func list(_ query: TaskListQuery) -> [TaskRecord] {
        var out: [TaskRecord] = []
        let pool = live.values.lazy.map(\.record).filter { $0.id > query.afterID }
        let done = finished.values.lazy.filter { $0.id > query.afterID }
        for record in pool where matches(record, query) { out.append(record) }
        for record in done where matches(record, query) { out.append(record) }
        out.sort { $0.id < $1.id }
        if out.count > query.limit { out.removeLast(out.count - query.limit) }
        for index in out.indices { out[index].payload = ByteBuffer() }
        return out
    }

    private func matches(_ record: TaskRecord, _ query: TaskListQuery) -> Bool {
        (query.state == nil || record.state == query.state) && (query.handler == nil || record.handler == query.handler)
    }

    /// Forgets finished records older than the retention time.
    public mutating func pruneFinished(now: EpochMillis) {
        let cutoff = now - configuration.keepFinishedMillis
        while let oldest = finishedOrder.first, let record = finished[oldest], record.finishedAt < cutoff {
            finishedOrder.removeFirst()
            finished[oldest] = nil
        }
    }

    /// The store writes collected since the last call, in order.
    public mutating func takeChanges() -> [StoreChange] { changes.take() }
    public var hasChanges: Bool { !changes.isEmpty }

    // MARK: Strategies

    /// Installs `newStrategy` for `scope` between two dispatch decisions: tasks
    /// already sent are untouched. It first hears of every ready worker. The
    /// strategy it replaces is kept, to come back if the new one misbehaves.
    public mutating func setStrategy(_ newStrategy: any DispatchStrategy, scope: StrategyScope) {
        var installed = newStrategy
        for (slot, worker) in workers.enumerated() where worker.state != .absent {
            let handlers = worker.localHandlerIndex.indices.filter { worker.localHandlerIndex[$0] >= 0 }
            installed.observe(.workerJoined(slot: slot, handlers: handlers))
            if worker.state == .draining { installed.observe(.workerDraining(slot: slot)) }
        }
        switch scope {
        case .default:
            previousStrategies[scope] = strategy
            strategy = installed
        case .handler(let handler):
            if let current = handlerStrategies[handler] { previousStrategies[scope] = current }
            handlerStrategies[handler] = installed
        }
        faultsByScope[scope] = 0
    }

    /// Removes a handler's own strategy: it uses the default again.
    public mutating func clearStrategy(handler: HandlerID) {
        handlerStrategies[handler] = nil
        previousStrategies[.handler(handler)] = nil
        faultsByScope[.handler(handler)] = nil
    }

    /// Changes the scheduler made on its own since the last call.
    public mutating func takeStrategyNotices() -> [StrategyNotice] {
        defer { notices = [] }
        return notices
    }

    private mutating func strategyFault(_ scope: StrategyScope, answer: Int, handler: HandlerID) {
        strategyFaults += 1
        let faults = (faultsByScope[scope] ?? 0) + 1
        faultsByScope[scope] = faults
        guard configuration.maxStrategyFaults > 0, faults >= configuration.maxStrategyFaults else { return }
        let restored = previousStrategies.removeValue(forKey: scope) ?? RoundRobinStrategy()
        let disabled: String
        switch scope {
        case .default:
            disabled = strategy.name
            strategy = restored
        case .handler(let handler):
            disabled = handlerStrategies[handler]?.name ?? "?"
            handlerStrategies[handler] = restored
        }
        faultsByScope[scope] = 0
        // The restored strategy may have missed events: replay the workers.
        setStrategyViews(scope)
        notices.append(
            StrategyNotice(
                scope: scope, disabled: disabled, restored: restored.name,
                reason: "\(faults) picks named a worker that could not take the task (the last: slot \(answer) for handler \(handler))"
            ))
    }

    private mutating func setStrategyViews(_ scope: StrategyScope) {
        var events: [StrategyEvent] = []
        for (slot, worker) in workers.enumerated() where worker.state != .absent {
            let handlers = worker.localHandlerIndex.indices.filter { worker.localHandlerIndex[$0] >= 0 }
            events.append(.workerJoined(slot: slot, handlers: handlers))
            if worker.state == .draining { events.append(.workerDraining(slot: slot)) }
        }
        for event in events {
            switch scope {
            case .default: strategy.observe(event)
            case .handler(let handler): handlerStrategies[handler]?.observe(event)
            }
        }
    }

    /// Tells every installed strategy.
    private mutating func tell(_ event: StrategyEvent) {
        strategy.observe(event)
        guard !handlerStrategies.isEmpty else { return }
        for handler in Array(handlerStrategies.keys) { handlerStrategies[handler]!.observe(event) }
    }

    // MARK: Recovery

    /// Brings back what a store kept (at start, before any submit): queued and
    /// waiting tasks resume; a task that was running when the host stopped has
    /// that attempt counted as failed (WORKER_CRASHED) and is retried or ends.
    /// `handlerID` maps a handler name to its id.
    public mutating func restore(
        _ records: [TaskRecord], maxID: TaskID, now: EpochMillis, handlerID: (String) -> HandlerID
    ) -> [Outcome] {
        nextID = max(nextID, maxID + 1)
        var outcomes: [Outcome] = []
        for record in records.sorted(by: { $0.id < $1.id }) where !record.state.isFinal {
            let id = record.id
            live[id] = LiveTask(record: record, handler: handlerID(record.handler))
            if let unique = record.uniqueKey { uniqueKeys[unique] = id }
            switch record.state {
            case .running:
                // The attempt was counted when it was sent; it never reported back.
                outcomes.append(
                    failAttempt(
                        id, code: .workerCrashed,
                        message: "the host stopped while attempt \(record.attempts) was running", retryable: true,
                        now: now))
            case .scheduled, .failed:
                delay(id, until: record.runAt)
            default:
                live[id]!.record.state = .queued
                queue.append(id, priority: record.priority, now: record.createdAt)
            }
        }
        return outcomes
    }

    // MARK: Internals

    private mutating func delay(_ id: TaskID, until runAt: EpochMillis) {
        delayed.insert(DelayedEntry(runAt: runAt, id: id))
        delayedCount += 1
    }

    private func cancelMessage(_ id: TaskID) -> String { "task \(id) was cancelled" }

    private mutating func failAttempt(
        _ id: TaskID, code: ErrorCode, message: String, retryable: Bool, now: EpochMillis
    ) -> Outcome {
        var task = live[id]!
        if task.cancelRequested {
            return finish(id, state: .cancelled, code: .cancelled, message: cancelMessage(id), now: now)
        }
        if retryable && task.record.attempts < task.record.maxAttempts {
            let wait = configuration.retry.delay(
                afterAttempt: task.record.attempts, random: Double.random(in: 0..<1, using: &random))
            task.record.errorCode = code
            task.record.errorMessage = message
            task.record.runAt = now + wait
            if wait > 0 {
                task.record.state = .failed
                live[id] = task
                delay(id, until: task.record.runAt)
            } else {
                task.record.state = .queued
                live[id] = task
                queue.append(id, priority: task.record.priority, now: now)
            }
            changes.update(task.record)
            return .retrying(id, attempt: task.record.attempts, code, message, runAt: task.record.runAt)
        }
        let final =
            retryable && task.record.maxAttempts > 1
            ? "\(message) (attempt \(task.record.attempts) of \(task.record.maxAttempts))" : message
        return finish(id, state: .dead, code: code, message: final, now: now)
    }

    /// Ends a live task in a final state, records it and returns what to tell its waiters.
    private mutating func finish(
        _ id: TaskID, state: TaskState, code: ErrorCode?, message: String, now: EpochMillis, result: ByteBuffer? = nil
    ) -> Outcome {
        guard var task = live.removeValue(forKey: id) else {
            return .failed(id, [], code ?? .internalError, message)
        }
        if let unique = task.record.uniqueKey, uniqueKeys[unique] == id { uniqueKeys[unique] = nil }
        task.record.state = state
        task.record.finishedAt = now
        if let code {
            task.record.errorCode = code
            task.record.errorMessage = message
        }
        changes.update(task.record)
        // A finished task no longer needs its payload in memory.
        task.record.payload = ByteBuffer()
        retire(task.record)
        switch state {
        case .succeeded:
            succeededCount += 1
            return .succeeded(id, task.waiters, result ?? ByteBuffer())
        case .cancelled:
            cancelledCount += 1
        default:
            failedCount += 1
        }
        return .failed(id, task.waiters, code ?? .internalError, message)
    }

    private mutating func retire(_ record: TaskRecord) {
        guard configuration.retainFinished > 0 else { return }
        if finishedOrder.count >= configuration.retainFinished, let old = finishedOrder.popFirst() {
            finished[old] = nil
        }
        finished.insert(record, id: record.id)
        finishedOrder.append(record.id)
    }
}

struct DelayedEntry: Comparable {
    var runAt: EpochMillis
    var id: TaskID
    static func < (a: DelayedEntry, b: DelayedEntry) -> Bool {
        (a.runAt, a.id) < (b.runAt, b.id)
    }
}

/// Store writes not yet handed to the store. Changes to a task whose insert
/// (or earlier update) is still pending are folded into it, so a task that is
/// submitted, run and finished within one group commit costs one row write.
struct ChangeLog {
    private var entries: [StoreChange] = []
    private var index: [TaskID: Int] = [:]
    var enabled = true

    var isEmpty: Bool { entries.isEmpty }

    mutating func insert(_ record: TaskRecord) {
        guard enabled else { return }
        index[record.id] = entries.count
        entries.append(.insert(record))
    }

    mutating func update(_ record: TaskRecord) {
        guard enabled else { return }
        if let at = index[record.id] {
            switch entries[at] {
            case .insert(var pending):
                pending.state = record.state
                pending.attempts = record.attempts
                pending.runAt = record.runAt
                pending.startedAt = record.startedAt
                pending.finishedAt = record.finishedAt
                pending.errorCode = record.errorCode
                pending.errorMessage = record.errorMessage
                pending.result = record.result
                entries[at] = .insert(pending)
            case .update:
                entries[at] = .update(TaskUpdate(record))
            }
            return
        }
        index[record.id] = entries.count
        entries.append(.update(TaskUpdate(record)))
    }

    mutating func take() -> [StoreChange] {
        defer {
            entries = []
            index.removeAll(keepingCapacity: true)
        }
        return entries
    }
}

/// A canary's split: each task of `handlers` goes to the `canarySlots` with
/// probability `permille`/1000, else to the other workers. The strategy's
/// choice stands when it falls on the drawn side; otherwise the task goes
/// round-robin over that side's eligible workers (or stays where the
/// strategy put it, when that side has no room).
public struct CanaryRoute: Sendable {
    public var handlers: Set<HandlerID>
    public var canarySlots: Set<Int>
    public var permille: Int
    private var random: UInt64
    private var cursor = 0

    public init(handlers: Set<HandlerID>, canarySlots: Set<Int>, permille: Int, seed: UInt64 = 0x5357_5944_4341_4E59) {
        self.handlers = handlers
        self.canarySlots = canarySlots
        self.permille = permille
        self.random = seed == 0 ? 1 : seed
    }

    mutating func route(_ chosen: Int, handler: HandlerID, workers: [WorkerSlot]) -> Int {
        // xorshift64*: cheap, and reproducible for a seed.
        random ^= random >> 12
        random ^= random << 25
        random ^= random >> 27
        let toCanary = Int(((random &* 0x2545_F491_4F6C_DD1D) >> 33) % 1_000) < permille
        if canarySlots.contains(chosen) == toCanary { return chosen }
        let count = workers.count
        for step in 0..<count {
            let slot = (cursor + step) % count
            if canarySlots.contains(slot) == toCanary && workers[slot].canTake(handler: handler) {
                cursor = slot + 1
                return slot
            }
        }
        return chosen
    }
}

extension TaskRecord {
    /// Starts an attempt; returns what the worker is sent.
    fileprivate mutating func markRunning(now: EpochMillis) -> (attempt: UInt32, priority: Int32, payload: ByteBuffer) {
        state = .running
        attempts += 1
        startedAt = now
        return (attempts, priority, payload)
    }
}
