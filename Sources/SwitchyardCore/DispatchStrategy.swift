/// What a strategy knows about the task being placed.
public struct DispatchCandidate: Sendable {
    public var taskID: TaskID
    public var handler: HandlerID
    public var priority: Int32
    public var attempt: UInt32
    public var payloadSize: Int
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
