import NIOCore

/// Runnable tasks ordered by priority (higher first), first-in first-out
/// within a priority. O(1) push and pop for a priority already present;
/// O(p) to add a new priority level, where p is the number of distinct
/// priorities currently queued (small in practice).
public struct TaskQueue: Sendable {
    private var buckets: [Int32: CircularBuffer<TaskID>] = [:]
    /// Priorities with a non-empty bucket, highest first.
    private var levels: [Int32] = []
    public private(set) var count = 0

    public init() {}

    public var isEmpty: Bool { count == 0 }

    /// Adds a task behind the others of its priority.
    public mutating func append(_ id: TaskID, priority: Int32) {
        insertLevel(priority)
        buckets[priority, default: CircularBuffer(initialCapacity: 16)].append(id)
        count += 1
    }

    /// Puts a task back in front of the others of its priority (it was taken out
    /// but never ran).
    public mutating func prepend(_ id: TaskID, priority: Int32) {
        insertLevel(priority)
        buckets[priority, default: CircularBuffer(initialCapacity: 16)].prepend(id)
        count += 1
    }

    /// The task that runs next, if any.
    public var first: TaskID? {
        guard let top = levels.first else { return nil }
        return buckets[top]?.first
    }

    /// Removes and returns the task that runs next.
    public mutating func popFirst() -> TaskID? {
        guard let top = levels.first else { return nil }
        let id = buckets[top]!.removeFirst()
        count -= 1
        if buckets[top]!.isEmpty {
            buckets[top] = nil
            levels.removeFirst()
        }
        return id
    }

    /// Removes every task, highest priority first.
    public mutating func removeAll() -> [TaskID] {
        var all: [TaskID] = []
        all.reserveCapacity(count)
        while let id = popFirst() { all.append(id) }
        return all
    }

    private mutating func insertLevel(_ priority: Int32) {
        if buckets[priority] != nil { return }
        // Highest first; new levels are rare, a linear insert is fine.
        let index = levels.firstIndex(where: { $0 < priority }) ?? levels.count
        levels.insert(priority, at: index)
    }
}
