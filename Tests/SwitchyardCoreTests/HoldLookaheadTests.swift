import NIOCore
import Testing

@testable import SwitchyardCore

/// A strategy that holds every task whose key is in `held` (as key_affinity
/// does while a key's owner is full) and places the rest round-robin.
private struct HoldKeys: DispatchStrategy {
    let name = "hold_keys"
    var held: Set<String>
    var inner = RoundRobinStrategy()
    mutating func pick(_ task: DispatchCandidate, workers: [WorkerSlot]) -> Int? {
        if let key = task.key, held.contains(key) { return nil }
        return inner.pick(task, workers: workers)
    }
}

@Suite struct HoldLookaheadTests {
    func scheduler(held: Set<String>, lookahead: Int = 64) -> TestScheduler {
        var scheduler = TestScheduler(
            configuration: SchedulerConfiguration(prefetch: 100, retry: .immediate, holdLookahead: lookahead),
            strategy: HoldKeys(held: held))
        scheduler.setWorkerCount(2)
        scheduler.workerReady(slot: 0, handlers: [echo])
        scheduler.workerReady(slot: 1, handlers: [echo])
        return scheduler
    }

    @discardableResult
    func submit(_ scheduler: inout TestScheduler, key: String?, priority: Int32 = 0) -> TaskID {
        let result = scheduler.submit(
            TaskSubmission(handler: echo, handlerName: "echo", payload: ByteBuffer(string: "p"), priority: priority, key: key),
            waiter: nil, now: 0)
        guard case .created(let id) = result else { fatalError("\(result)") }
        return id
    }

    @Test func aHeldTaskDoesNotStopTheTasksBehindIt() {
        var scheduler = scheduler(held: ["hot"])
        let hot1 = submit(&scheduler, key: "hot")
        let a = submit(&scheduler, key: "a")
        let hot2 = submit(&scheduler, key: "hot")
        let b = submit(&scheduler, key: nil)
        #expect(scheduler.dispatchAll().map(\.task) == [a, b], "the others run, in order")
        #expect(scheduler.queuedOrder == [hot1, hot2], "the held ones keep their place and order")
        #expect(scheduler.strategyFaults == 0)
    }

    @Test func theHeldTaskGoesFirstOnceTheStrategyLetsItGo() {
        var scheduler = scheduler(held: ["hot"])
        let hot1 = submit(&scheduler, key: "hot")
        let hot2 = submit(&scheduler, key: "hot")
        _ = scheduler.dispatchAll()
        scheduler.setStrategy(HoldKeys(held: []), scope: .default)
        let c = submit(&scheduler, key: "c")
        #expect(scheduler.dispatchAll().map(\.task) == [hot1, hot2, c])
    }

    @Test func onlyTheConfiguredNumberBehindIsSearched() {
        var scheduler = scheduler(held: ["hot"], lookahead: 3)
        for _ in 0..<4 { submit(&scheduler, key: "hot") }
        let fifth = submit(&scheduler, key: "cold")
        #expect(scheduler.dispatchAll().isEmpty, "the fifth is 4 places behind the head, past 3")
        var off = self.scheduler(held: ["hot"], lookahead: 0)
        submit(&off, key: "hot")
        submit(&off, key: "cold")
        #expect(off.dispatchAll().isEmpty, "0 turns the search off")
        #expect(scheduler.queuedOrder.last == fifth)
    }

    @Test func withNoRoomAnywhereNothingIsSearched() {
        var scheduler = TestScheduler(
            configuration: SchedulerConfiguration(prefetch: 1, retry: .immediate), strategy: HoldKeys(held: ["hot"]))
        scheduler.setWorkerCount(1)
        scheduler.workerReady(slot: 0, handlers: [echo])
        let first = submit(&scheduler, key: "x")
        #expect(scheduler.dispatchAll().map(\.task) == [first])
        submit(&scheduler, key: "hot")
        submit(&scheduler, key: "y")
        #expect(scheduler.dispatchAll().isEmpty, "the only worker is full")
    }

    @Test func removingFromTheMiddleKeepsOrderAndAgeing() {
        var queue = TaskQueue(agingMillis: 100)
        for id in 1...6 { queue.append(TaskID(id), priority: 0, now: Int64(id)) }
        queue.append(99, priority: 4, now: 500)
        #expect(queue.firstLevel(now: 500) == 4)
        queue.remove(at: 3, level: 0)
        #expect(queue.count == 6)
        #expect(queue.count(level: 0) == 5)
        #expect((0..<5).map { queue.id(at: $0, level: 0) } == [1, 2, 3, 5, 6])
        #expect(queue.id(at: 5, level: 0) == nil)
        // Task 1 (queued at 1 ms) still heads priority 0 and ages it past 4 by 550 ms.
        #expect(queue.firstLevel(now: 550) == 0)
        queue.remove(at: 0, level: 4)
        #expect(queue.count(level: 4) == 0 && queue.firstLevel(now: 0) == 0)
    }
}
