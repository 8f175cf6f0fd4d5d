import Testing

@testable import SwitchyardCore

@Suite("TaskQueue")
struct TaskQueueTests {
    @Test func emptyQueue() {
        var queue = TaskQueue()
        #expect(queue.isEmpty)
        #expect(queue.count == 0)
        #expect(queue.first() == nil)
        #expect(queue.popFirst() == nil)
        #expect(queue.removeAll() == [])
    }

    @Test func higherPriorityComesFirst() {
        var queue = TaskQueue()
        queue.append(1, priority: 0)
        queue.append(2, priority: 10)
        queue.append(3, priority: -5)
        queue.append(4, priority: Int32.max)
        queue.append(5, priority: Int32.min)
        queue.append(6, priority: 3)
        #expect(queue.count == 6)
        #expect(queue.removeAll() == [4, 2, 6, 1, 3, 5])
        #expect(queue.isEmpty)
    }

    @Test func firstInFirstOutWithinAPriority() {
        var queue = TaskQueue()
        for id in 1...5 as ClosedRange<TaskID> { queue.append(id, priority: 1) }
        for id in 6...8 as ClosedRange<TaskID> { queue.append(id, priority: 2) }
        #expect(queue.first() == 6)
        #expect(queue.removeAll() == [6, 7, 8, 1, 2, 3, 4, 5])
    }

    @Test func prependPutsATaskInFrontOfItsPriority() {
        var queue = TaskQueue()
        queue.append(1, priority: 5)
        queue.append(2, priority: 5)
        queue.append(3, priority: 9)
        queue.prepend(4, priority: 5)
        queue.prepend(5, priority: 1)
        #expect(queue.removeAll() == [3, 4, 1, 2, 5])
    }

    @Test func prependIntoAnEmptyQueue() {
        var queue = TaskQueue()
        queue.prepend(7, priority: 0)
        #expect(queue.first() == 7)
        #expect(queue.count == 1)
    }

    @Test func popFirstCountsDownAndLevelsReappear() {
        var queue = TaskQueue()
        queue.append(1, priority: 2)
        queue.append(2, priority: 1)
        #expect(queue.popFirst() == 1)
        #expect(queue.count == 1)
        // Priority 2 was emptied; it must come back ahead of 1 when reused.
        queue.append(3, priority: 2)
        #expect(queue.count == 2)
        #expect(queue.popFirst() == 3)
        #expect(queue.popFirst() == 2)
        #expect(queue.popFirst() == nil)
        #expect(queue.count == 0)
    }

    @Test func manyTasksKeepTheirOrder() {
        var queue = TaskQueue()
        var expected: [Int32: [TaskID]] = [:]
        for id in 1...1_000 as ClosedRange<TaskID> {
            let priority = Int32(id * 7 % 5) - 2
            queue.append(id, priority: priority)
            expected[priority, default: []].append(id)
        }
        #expect(queue.count == 1_000)
        let order = expected.keys.sorted(by: >).flatMap { expected[$0]! }
        #expect(queue.removeAll() == order)
    }
}

@Suite("TaskQueue ageing and removal")
struct TaskQueueAgeingTests {
    @Test func withoutAgeingHigherPriorityAlwaysWins() {
        var queue = TaskQueue(agingMillis: 0)
        queue.append(1, priority: 0, now: 0)
        queue.append(2, priority: 5, now: 1_000_000)
        #expect(queue.popFirst(now: 9_000_000) == 2)
    }

    @Test func aLowPriorityTaskOvertakesOnceItHasWaitedLongEnough() {
        var queue = TaskQueue(agingMillis: 100)
        queue.append(1, priority: 0, now: 0)
        // A steady stream of priority-2 tasks, each fresh when the choice is made.
        queue.append(10, priority: 2, now: 150)
        // At 150 ms the low task has earned 1 level (0 + 1 < 2 + 0): the high one goes.
        #expect(queue.popFirst(now: 150) == 10)
        queue.append(11, priority: 2, now: 300)
        // At 300 ms it has earned 3 levels (0 + 3 > 2 + 0): it goes first.
        #expect(queue.popFirst(now: 300) == 1)
        #expect(queue.popFirst(now: 300) == 11)
    }

    @Test func equalEffectivePriorityGoesToTheHigherBasePriority() {
        var queue = TaskQueue(agingMillis: 100)
        queue.append(1, priority: 0, now: 0)
        queue.append(2, priority: 1, now: 100)
        // Both score 1 at 100 ms.
        #expect(queue.first(now: 100) == 2)
    }

    @Test func removeTakesATaskOutOfTheMiddle() {
        var queue = TaskQueue()
        for id in 1...4 as ClosedRange<TaskID> { queue.append(id, priority: 0) }
        queue.append(9, priority: 3)
        let first = queue.remove(3, priority: 0)
        let again = queue.remove(3, priority: 0)
        let high = queue.remove(9, priority: 3)
        #expect(first)
        #expect(!again)
        #expect(high)
        #expect(queue.count == 3)
        #expect(queue.removeAll() == [1, 2, 4])
    }
}
