import NIOCore

/// Runnable tasks ordered by priority (higher first), first-in first-out
/// within a priority, with optional ageing.
///
/// Ageing: with `agingMillis` > 0, a task's effective priority grows by one
/// for every `agingMillis` it has waited, so a steady stream of high-priority
/// tasks cannot starve lower ones forever: a task of priority p waiting behind
/// priority q > p goes first once it has waited (q - p + 1) * agingMillis
/// longer than q's oldest. Only the oldest task of each priority can be the
/// next one, so choosing costs O(number of distinct priorities queued).
///
/// O(1) append and pop for a priority already present; O(p) to add a new
/// priority level; O(n) to remove a task from the middle (cancel).
public struct TaskQueue: Sendable {
    struct Entry: Sendable {
        var id: TaskID
        /// When it was queued (ms since the epoch), for ageing.
        var since: EpochMillis
    }

    private var buckets: [Int32: CircularBuffer<Entry>] = [:]
    /// Priorities with a non-empty bucket, highest first.
    private var levels: [Int32] = []
    public private(set) var count = 0
    /// Milliseconds of waiting worth one priority level; 0 turns ageing off.
    public var agingMillis: Int64

    public init(agingMillis: Int64 = 0) {
        self.agingMillis = agingMillis
    }

    public var isEmpty: Bool { count == 0 }

    /// Adds a task behind the others of its priority.
    public mutating func append(_ id: TaskID, priority: Int32, now: EpochMillis = 0) {
        insertLevel(priority)
        buckets[priority, default: CircularBuffer(initialCapacity: 16)].append(Entry(id: id, since: now))
        count += 1
    }

    /// Puts a task back in front of the others of its priority (it was taken out
    /// but never ran).
    public mutating func prepend(_ id: TaskID, priority: Int32, now: EpochMillis = 0) {
        insertLevel(priority)
        let since = buckets[priority]?.first.map { min($0.since, now) } ?? now
        buckets[priority, default: CircularBuffer(initialCapacity: 16)].prepend(Entry(id: id, since: since))
        count += 1
    }

    /// The task that runs next at time `now`, if any.
    public func first(now: EpochMillis = 0) -> TaskID? {
        guard let level = nextLevel(now: now) else { return nil }
        return buckets[level]?.first?.id
    }

    /// Removes and returns the task that runs next at time `now`.
    public mutating func popFirst(now: EpochMillis = 0) -> TaskID? {
        guard let level = nextLevel(now: now) else { return nil }
        let entry = buckets[level]!.removeFirst()
        count -= 1
        if buckets[level]!.isEmpty { removeLevel(level) }
        return entry.id
    }

    /// The priority level whose oldest task runs next at time `now`.
    public func firstLevel(now: EpochMillis = 0) -> Int32? { nextLevel(now: now) }

    /// Tasks queued at priority `level`.
    public func count(level: Int32) -> Int { buckets[level]?.count ?? 0 }

    /// The task `offset` places behind the oldest of priority `level`.
    public func id(at offset: Int, level: Int32) -> TaskID? {
        guard let bucket = buckets[level], offset >= 0, offset < bucket.count else { return nil }
        return bucket[bucket.index(bucket.startIndex, offsetBy: offset)].id
    }

    /// Removes the task `offset` places behind the oldest of priority `level`,
    /// in O(offset): the ones before it move up by one.
    public mutating func remove(at offset: Int, level: Int32) {
        guard offset > 0 else {
            // The hot path: the next task itself.
            guard buckets[level]?.isEmpty == false else { return }
            buckets[level]!.removeFirst()
            count -= 1
            if buckets[level]!.isEmpty { removeLevel(level) }
            return
        }
        guard var bucket = buckets[level], offset < bucket.count else { return }
        buckets[level] = nil  // unique, so the moves below do not copy the buffer
        // Move the ones in front back by one, then drop the first: the oldest
        // stays in front, so ageing is unchanged.
        var index = bucket.index(bucket.startIndex, offsetBy: offset)
        while index != bucket.startIndex {
            let previous = bucket.index(before: index)
            bucket[index] = bucket[previous]
            index = previous
        }
        bucket.removeFirst()
        count -= 1
        if bucket.isEmpty {
            removeLevel(level)
        } else {
            buckets[level] = bucket
        }
    }

    /// Removes a task wherever it is; false if it is not queued.
    @discardableResult
    public mutating func remove(_ id: TaskID, priority: Int32) -> Bool {
        guard let index = buckets[priority]?.firstIndex(where: { $0.id == id }) else { return false }
        buckets[priority]!.remove(at: index)
        count -= 1
        if buckets[priority]!.isEmpty { removeLevel(priority) }
        return true
    }

    /// Removes every task, highest priority first.
    public mutating func removeAll() -> [TaskID] {
        var all: [TaskID] = []
        all.reserveCapacity(count)
        for level in levels { all += buckets[level]!.map(\.id) }
        buckets.removeAll()
        levels.removeAll()
        count = 0
        return all
    }

    /// Every queued id, in no particular order.
    public var ids: [TaskID] { buckets.values.flatMap { $0.map(\.id) } }

    /// The level whose oldest task has the highest effective priority; ties go
    /// to the higher base priority.
    private func nextLevel(now: EpochMillis) -> Int32? {
        guard var best = levels.first else { return nil }
        guard agingMillis > 0, levels.count > 1 else { return best }
        var bestScore = score(level: best, now: now)
        for level in levels.dropFirst() {
            let candidate = score(level: level, now: now)
            if candidate > bestScore {
                best = level
                bestScore = candidate
            }
        }
        return best
    }

    private func score(level: Int32, now: EpochMillis) -> Int64 {
        let waited = max(0, now - (buckets[level]?.first?.since ?? now))
        return Int64(level) + waited / agingMillis
    }

    private mutating func insertLevel(_ priority: Int32) {
        if buckets[priority] != nil { return }
        // Highest first; new levels are rare, a linear insert is fine.
        let index = levels.firstIndex(where: { $0 < priority }) ?? levels.count
        levels.insert(priority, at: index)
    }

    private mutating func removeLevel(_ priority: Int32) {
        buckets[priority] = nil
        if let index = levels.firstIndex(of: priority) { levels.remove(at: index) }
    }
}
