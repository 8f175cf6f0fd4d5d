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

/// Scheduler settings.
public struct SchedulerConfiguration: Sendable {
    /// Tasks each worker may hold at once, so its socket never idles (default 16).
    public var prefetch: Int
    /// Attempts a task gets when its submit names none (default 2: one retry).
    public var defaultMaxAttempts: UInt32
    /// How many finished tasks keep their record (and result) for status queries.
    public var retainFinished: Int

    public init(prefetch: Int = 16, defaultMaxAttempts: UInt32 = 2, retainFinished: Int = 10_000) {
        self.prefetch = prefetch
        self.defaultMaxAttempts = defaultMaxAttempts
        self.retainFinished = retainFinished
    }
}

/// The scheduling state machine: the queue, the tasks, the workers' slots and
/// the retry rules. It does no I/O: the host feeds it events and carries out
/// what it returns, so every rule here is testable without processes.
///
/// `Waiter` is whatever the host needs to answer a client waiting for a task.
public struct Scheduler<Waiter> {
    struct LiveTask {
        var handler: HandlerID
        var priority: Int32
        var payload: ByteBuffer
        var attempts: UInt32
        var maxAttempts: UInt32
        var state: TaskState
        var waiter: Waiter?
        var lastErrorCode: ErrorCode?
        var lastError: String?
    }

    struct FinishedTask {
        var handler: HandlerID
        var priority: Int32
        var attempts: UInt32
        var maxAttempts: UInt32
        var state: TaskState
        var errorCode: ErrorCode?
        var error: String?
        var result: ByteBuffer?
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
        /// Succeeded: answer the waiter, if any, with the result.
        case succeeded(TaskID, Waiter?, ByteBuffer)
        /// Failed for good: answer the waiter, if any, with the error.
        case failed(TaskID, Waiter?, ErrorCode, String)
        /// The attempt failed and the task is queued again.
        case retrying(TaskID, attempt: UInt32, ErrorCode, String)
    }

    public let configuration: SchedulerConfiguration
    public private(set) var workers: [WorkerSlot] = []
    public private(set) var queue = TaskQueue()
    private var live: [TaskID: LiveTask] = [:]
    private var finished: [TaskID: FinishedTask] = [:]
    private var finishedOrder = CircularBuffer<TaskID>()
    private var nextID: TaskID = 1
    public private(set) var strategy: any DispatchStrategy
    private var fallback = RoundRobinStrategy()
    public private(set) var strategyFaults: UInt64 = 0
    public private(set) var succeededCount: UInt64 = 0
    public private(set) var failedCount: UInt64 = 0

    public init(configuration: SchedulerConfiguration = .init(), strategy: any DispatchStrategy = RoundRobinStrategy()) {
        self.configuration = configuration
        self.strategy = strategy
    }

    public var runningCount: Int { live.count - queue.count }
    public var liveCount: Int { live.count }

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
    }

    /// Stop sending to the worker in `slot`; what it holds still completes.
    public mutating func drainWorker(slot: Int) {
        if workers[slot].state == .ready { workers[slot].state = .draining }
    }

    /// The worker in `slot` is gone. The task it was running (`running`, from its
    /// board; the oldest it was sent when unknown) has its attempt counted and is
    /// retried or failed; every other task it held goes back to the front of the
    /// queue uncharged.
    public mutating func workerLost(slot: Int, running: TaskID? = nil, reason: String) -> [Outcome] {
        guard slot < workers.count else { return [] }
        var held = workers[slot].inFlight
        workers[slot].inFlight.removeAll()
        workers[slot].state = .absent
        workers[slot].localHandlerIndex = []
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
        // Every other task goes back in front, keeping its order. Some may have
        // run already (their results were still in the worker's buffer): they run
        // again, which is the at-least-once promise.
        while let id = held.popLast() {
            guard var task = live[id] else { continue }
            // nextDispatch counted an attempt when it sent the task; it is not charged.
            task.attempts -= 1
            task.state = .queued
            live[id] = task
            queue.prepend(id, priority: task.priority)
        }
        return [failAttempt(culprit, code: .workerCrashed, message: reason, retryable: true)]
    }

    // MARK: Tasks

    /// Accepts a task and queues it. Returns its id.
    public mutating func submit(
        handler: HandlerID, priority: Int32, payload: ByteBuffer, maxAttempts: UInt32?, waiter: Waiter?
    ) -> TaskID {
        let id = nextID
        nextID += 1
        live[id] = LiveTask(
            handler: handler, priority: priority, payload: payload, attempts: 0,
            maxAttempts: maxAttempts ?? configuration.defaultMaxAttempts, state: .queued, waiter: waiter)
        queue.append(id, priority: priority)
        return id
    }

    /// The next task to send and where, or nil when the queue is empty or its
    /// head must wait for a worker with room. Call until nil after any event.
    public mutating func nextDispatch() -> Dispatch? {
        guard let id = queue.first, let task = live[id] else { return nil }
        let candidate = DispatchCandidate(
            taskID: id, handler: task.handler, priority: task.priority, attempt: task.attempts + 1,
            payloadSize: task.payload.readableBytes)
        var chosen = strategy.pick(candidate, workers: workers)
        if let slot = chosen, !(slot >= 0 && slot < workers.count && workers[slot].canTake(handler: task.handler)) {
            strategyFaults += 1
            chosen = fallback.pick(candidate, workers: workers)
        }
        guard let slot = chosen else { return nil }
        _ = queue.popFirst()
        live[id]!.state = .running
        live[id]!.attempts += 1
        workers[slot].inFlight.append(id)
        return Dispatch(
            taskID: id, slot: slot, localHandlerIndex: UInt16(workers[slot].localHandlerIndex[task.handler]),
            attempt: task.attempts + 1, priority: task.priority, payload: task.payload)
    }

    /// The worker in `slot` finished an attempt of task `id`. Returns nil when
    /// the worker was not holding that task (a protocol fault the host logs).
    public mutating func attemptFinished(
        slot: Int, id: TaskID, status: HandlerStatus, body: ByteBuffer
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
        switch status {
        case .ok:
            guard let task = live.removeValue(forKey: id) else { return nil }
            succeededCount += 1
            retire(
                id,
                FinishedTask(
                    handler: task.handler, priority: task.priority, attempts: task.attempts,
                    maxAttempts: task.maxAttempts, state: .succeeded, result: body))
            return .succeeded(id, task.waiter, body)
        case .permanentFailure, .retryableFailure:
            let message = body.getString(at: body.readerIndex, length: body.readableBytes) ?? ""
            return failAttempt(
                id, code: .handlerFailed, message: message.isEmpty ? "handler returned an error" : message,
                retryable: status == .retryableFailure)
        }
    }

    /// The waiter of a live task (for progress reports).
    public func waiter(of id: TaskID) -> Waiter? { live[id]?.waiter }

    /// Takes every queued task out and fails it (at shutdown).
    public mutating func failQueued(code: ErrorCode, message: String) -> [Outcome] {
        queue.removeAll().map { id in
            let task = live.removeValue(forKey: id)!
            failedCount += 1
            retire(
                id,
                FinishedTask(
                    handler: task.handler, priority: task.priority, attempts: task.attempts,
                    maxAttempts: task.maxAttempts, state: .dead, errorCode: code, error: message))
            return .failed(id, task.waiter, code, message)
        }
    }

    /// Forgets the waiters that `isGone` matches (their connection closed); the tasks carry on.
    public mutating func dropWaiters(where isGone: (Waiter) -> Bool) {
        for (id, task) in live where task.waiter.map(isGone) == true {
            live[id]!.waiter = nil
        }
    }

    /// A task's record, or nil when it is unknown or its record has expired.
    public func info(_ id: TaskID, handlerName: (HandlerID) -> String) -> TaskInfo? {
        if let task = live[id] {
            return TaskInfo(
                id: id, state: task.state, handler: handlerName(task.handler), priority: task.priority,
                attempts: task.attempts, maxAttempts: task.maxAttempts, errorCode: task.lastErrorCode,
                errorMessage: task.lastError)
        }
        if let task = finished[id] {
            return TaskInfo(
                id: id, state: task.state, handler: handlerName(task.handler), priority: task.priority,
                attempts: task.attempts, maxAttempts: task.maxAttempts, errorCode: task.errorCode,
                errorMessage: task.error, result: task.result)
        }
        return nil
    }

    private mutating func failAttempt(_ id: TaskID, code: ErrorCode, message: String, retryable: Bool) -> Outcome {
        var task = live[id]!
        if retryable && task.attempts < task.maxAttempts {
            task.state = .queued
            task.lastErrorCode = code
            task.lastError = message
            live[id] = task
            queue.append(id, priority: task.priority)
            return .retrying(id, attempt: task.attempts, code, message)
        }
        live[id] = nil
        failedCount += 1
        let final =
            retryable && task.maxAttempts > 1 ? "\(message) (attempt \(task.attempts) of \(task.maxAttempts))" : message
        retire(
            id,
            FinishedTask(
                handler: task.handler, priority: task.priority, attempts: task.attempts, maxAttempts: task.maxAttempts,
                state: .dead, errorCode: code, error: final))
        return .failed(id, task.waiter, code, final)
    }

    private mutating func retire(_ id: TaskID, _ record: FinishedTask) {
        guard configuration.retainFinished > 0 else { return }
        if finishedOrder.count >= configuration.retainFinished, let old = finishedOrder.popFirst() {
            finished[old] = nil
        }
        finished[id] = record
        finishedOrder.append(id)
    }
}
