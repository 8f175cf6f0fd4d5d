/// What a strategy knows about the task being placed.
public struct DispatchCandidate: Sendable {
    public var taskID: TaskID
    public var handler: HandlerID
    public var priority: Int32
    public var attempt: UInt32
    public var payloadSize: Int
    /// The routing key given at submit, if any.
    public var key: String?

    public init(
        taskID: TaskID, handler: HandlerID, priority: Int32, attempt: UInt32, payloadSize: Int, key: String? = nil
    ) {
        self.taskID = taskID
        self.handler = handler
        self.priority = priority
        self.attempt = attempt
        self.payloadSize = payloadSize
        self.key = key
    }
}

/// What happened, told to strategies so they can keep their own view up to
/// date without rescanning the workers on every pick.
public enum StrategyEvent: Sendable, Hashable {
    /// A task went to the worker in `slot`.
    case dispatched(slot: Int, handler: HandlerID, task: TaskID)
    /// The worker in `slot` finished an attempt that took `serviceNanos`.
    case finished(slot: Int, handler: HandlerID, task: TaskID, serviceNanos: UInt64)
    /// A worker (new or a replacement) is ready in `slot` with these handlers.
    case workerJoined(slot: Int, handlers: [HandlerID])
    /// The worker in `slot` takes nothing new any more.
    case workerDraining(slot: Int)
    /// The worker in `slot` is gone.
    case workerLeft(slot: Int)
    /// The worker in `slot` may now hold `window` tasks at once (its tasks got
    /// shorter or longer: `SchedulerConfiguration.maxPrefetch`).
    case windowChanged(slot: Int, window: Int)
}

/// Chooses the worker for each task. Strategies run on the dispatch path for
/// every task, so `pick` must be cheap; it reads the scheduler's worker slots
/// in place (no copy per call).
///
/// Return the index of a slot for which `canTake(handler:)` is true, or nil to
/// hold the task until something changes (a worker finishes a task, a worker
/// joins). The scheduler checks the answer: an ineligible index is a fault and
/// the task goes to round-robin instead.
public protocol DispatchStrategy: Sendable {
    var name: String { get }
    mutating func pick(_ task: DispatchCandidate, workers: [WorkerSlot]) -> Int?
    /// Told about dispatches, completions and workers coming and going. The
    /// default does nothing.
    mutating func observe(_ event: StrategyEvent)
}

extension DispatchStrategy {
    public mutating func observe(_ event: StrategyEvent) {}
}

/// Each task to the next eligible worker in turn.
public struct RoundRobinStrategy: DispatchStrategy {
    public let name = "round_robin"
    private var cursor = 0

    public init() {}

    public mutating func pick(_ task: DispatchCandidate, workers: [WorkerSlot]) -> Int? {
        let count = workers.count
        guard count > 0 else { return nil }
        var index = cursor >= count ? 0 : cursor
        for _ in 0..<count {
            if workers[index].canTake(handler: task.handler) {
                cursor = index + 1
                return index
            }
            index += 1
            if index == count { index = 0 }
        }
        return nil
    }
}

/// Where a strategy applies: every handler without its own, or one handler.
public enum StrategyScope: Sendable, Hashable, CustomStringConvertible {
    case `default`
    case handler(HandlerID)

    public var description: String {
        switch self {
        case .default: "default"
        case .handler(let id): "handler \(id)"
        }
    }
}

/// A strategy change the scheduler made on its own (too many faults), for the
/// host to log and show.
public struct StrategyNotice: Sendable, Hashable {
    public var scope: StrategyScope
    public var disabled: String
    public var restored: String
    public var reason: String
}
