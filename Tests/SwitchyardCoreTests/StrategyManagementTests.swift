import NIOCore
import Testing

@testable import SwitchyardCore

/// Always answers the same slot, and records what it is told.
struct StubStrategy: DispatchStrategy {
    let name: String
    var answer: Int?
    var events: [StrategyEvent] = []
    mutating func pick(_ task: DispatchCandidate, workers: [WorkerSlot]) -> Int? { answer }
    mutating func observe(_ event: StrategyEvent) { events.append(event) }
}

@Suite("Strategy management")
struct StrategyManagementTests {
    @Test func aHandlerStrategyAppliesToItsHandlerOnly() {
        var scheduler = makeScheduler(workers: [[echo, sha], [echo, sha]])
        scheduler.setStrategy(StubStrategy(name: "always-1", answer: 1), scope: .handler(sha))
        for _ in 0..<3 { _ = scheduler.submit(sha) }
        for _ in 0..<2 { _ = scheduler.submit(echo) }
        let sent = scheduler.dispatchAll()
        // sha256 always to slot 1; echo round-robin from slot 0.
        #expect(sameDispatches(sent, [(1, 1), (2, 1), (3, 1), (4, 0), (5, 1)]))
        #expect(scheduler.handlerStrategies[sha]?.name == "always-1")
        scheduler.clearStrategy(handler: sha)
        #expect(scheduler.handlerStrategies[sha] == nil)
    }

    @Test func aNewStrategyFirstHearsOfEveryReadyWorkerThenOfEachEvent() throws {
        var scheduler = makeScheduler(workers: [[echo], [echo, sha]])
        scheduler.drainWorker(slot: 0)
        scheduler.setStrategy(StubStrategy(name: "rec", answer: 1), scope: .default)
        _ = scheduler.submit(echo)
        let next = scheduler.nextDispatch(now: 0)
        let dispatch = try #require(next)
        _ = scheduler.attemptFinished(slot: dispatch.slot, id: dispatch.taskID, status: .ok, body: ByteBuffer(), nanos: 0)
        _ = scheduler.workerLost(slot: 0, reason: "gone")
        let events = (scheduler.strategy as? StubStrategy)?.events ?? []
        #expect(
            events == [
                .workerJoined(slot: 0, handlers: [echo]), .workerDraining(slot: 0),
                .workerJoined(slot: 1, handlers: [echo, sha]), .dispatched(slot: 1, handler: echo, task: 1),
                .finished(slot: 1, handler: echo, task: 1, serviceNanos: 0), .workerLeft(slot: 0),
            ])
    }

    @Test func serviceTimeIsMeasuredBetweenCompletionsWhileBusy() {
        var scheduler = makeScheduler(workers: [[echo]])
        for _ in 0..<3 { _ = scheduler.submit(echo) }
        _ = scheduler.nextStep(now: 0, nanos: 1_000)
        _ = scheduler.nextStep(now: 0, nanos: 1_100)
        _ = scheduler.nextStep(now: 0, nanos: 1_200)
        _ = scheduler.attemptFinished(slot: 0, id: 1, status: .ok, body: ByteBuffer(), nanos: 9_000)  // 8,000
        #expect(scheduler.workers[0].serviceNanosAverage == 8_000)
        _ = scheduler.attemptFinished(slot: 0, id: 2, status: .ok, body: ByteBuffer(), nanos: 11_000)  // 2,000
        #expect(scheduler.workers[0].serviceNanosAverage == 8_000 - 1_000 + 250)
    }

    @Test func tooManyFaultsSwitchTheStrategyOffAndRestoreThePreviousOne() throws {
        var scheduler = TestScheduler(
            configuration: SchedulerConfiguration(prefetch: 100, retry: .immediate, maxStrategyFaults: 3))
        scheduler.setWorkerCount(2)
        scheduler.workerReady(slot: 0, handlers: [echo])
        scheduler.workerReady(slot: 1, handlers: [echo])
        scheduler.setStrategy(StubStrategy(name: "good", answer: 1), scope: .default)
        scheduler.setStrategy(StubStrategy(name: "broken", answer: 7), scope: .default)
        for _ in 0..<4 { _ = scheduler.submit(echo) }
        let sent = scheduler.dispatchAll()
        // Three faults go round-robin; then "good" is back and sends the fourth to slot 1.
        #expect(sameDispatches(sent, [(1, 0), (2, 1), (3, 0), (4, 1)]))
        #expect(scheduler.strategy.name == "good")
        let notices = scheduler.takeStrategyNotices()
        #expect(notices.count == 1)
        #expect(notices.first?.disabled == "broken")
        #expect(notices.first?.restored == "good")
        #expect(notices.first?.reason.contains("slot 7") == true)
        #expect(scheduler.takeStrategyNotices().isEmpty)
    }

    @Test func withNoPreviousStrategyRoundRobinComesBack() {
        var scheduler = TestScheduler(configuration: SchedulerConfiguration(retry: .immediate, maxStrategyFaults: 1))
        scheduler.setWorkerCount(1)
        scheduler.workerReady(slot: 0, handlers: [echo])
        scheduler.setStrategy(StubStrategy(name: "broken", answer: -1), scope: .handler(echo))
        _ = scheduler.submit(echo)
        #expect(scheduler.nextDispatch()?.slot == 0)
        #expect(scheduler.handlerStrategies[echo]?.name == "round_robin")
        #expect(scheduler.takeStrategyNotices().first?.scope == .handler(echo))
    }
}
