import NIOCore
import Testing

@testable import SwitchyardCore

/// Sends to the first worker with room, and records what it is told.
private struct FirstFit: DispatchStrategy {
    let name = "first-fit"
    var events: [StrategyEvent] = []
    mutating func pick(_ task: DispatchCandidate, workers: [WorkerSlot]) -> Int? {
        workers.firstIndex { $0.canTake(handler: task.handler) }
    }
    mutating func observe(_ event: StrategyEvent) { events.append(event) }
}

/// Workers' windows sized by their measured work (`SchedulerConfiguration.maxPrefetch`).
@Suite("Adaptive window")
struct AdaptiveWindowTests {
    /// One ready echo worker in slot 0.
    private func makeScheduler(prefetch: Int, maxPrefetch: Int?, budget: UInt64 = 1_000_000) -> TestScheduler {
        var scheduler = TestScheduler(
            configuration: SchedulerConfiguration(
                prefetch: prefetch, retry: .immediate, maxPrefetch: maxPrefetch, windowBudgetNanos: budget),
            strategy: FirstFit())
        scheduler.setWorkerCount(1)
        scheduler.workerReady(slot: 0, handlers: [echo])
        return scheduler
    }

    /// Finishes the oldest task on slot 0, `service` ns after the last completion, and sends what fits.
    private func finishOne(_ scheduler: inout TestScheduler, at clock: inout UInt64, service: UInt64) -> Int {
        clock += service
        let id = scheduler.workers[0].inFlight.first!
        _ = scheduler.attemptFinished(slot: 0, id: id, status: .ok, body: ByteBuffer(), nanos: clock)
        var sent = 0
        while let step = scheduler.nextStep(now: 0, nanos: clock) {
            if case .dispatch = step { sent += 1 }
        }
        return sent
    }

    private func windowEvents(_ scheduler: TestScheduler) -> [Int] {
        ((scheduler.strategy as? FirstFit)?.events ?? []).compactMap {
            if case .windowChanged(slot: 0, let window) = $0 { return window }
            return nil
        }
    }

    @Test func shortTasksGrowTheWindowAndLongOnesShrinkItBackToPrefetch() {
        var scheduler = makeScheduler(prefetch: 4, maxPrefetch: 64)
        for _ in 0..<500 { _ = scheduler.submit(echo) }
        var clock: UInt64 = 1
        while scheduler.nextStep(now: 0, nanos: clock) != nil {}
        #expect(scheduler.workers[0].window == 4 && scheduler.workers[0].inFlight.count == 4)

        // 10 µs a task: a 1 ms budget fits 100, so the window is the largest power of two
        // from 4 up to the cap that fits: 64.
        _ = finishOne(&scheduler, at: &clock, service: 10_000)
        #expect(scheduler.workers[0].window == 64)
        #expect(scheduler.workers[0].inFlight.count == 64, "the worker is sent work up to its new window")
        #expect(windowEvents(scheduler) == [64])

        // 100 µs a task: 10 fit, so 8 once the average has moved; no task beyond it is sent.
        for _ in 0..<40 { _ = finishOne(&scheduler, at: &clock, service: 100_000) }
        #expect(scheduler.workers[0].window == 8)
        #expect(scheduler.workers[0].inFlight.count <= 64)
        // 1 ms a task: one fits; the window never goes below prefetch.
        for _ in 0..<40 { _ = finishOne(&scheduler, at: &clock, service: 1_000_000) }
        #expect(scheduler.workers[0].window == 4)
        #expect(scheduler.workers[0].inFlight.count == 4)
        #expect(Array(windowEvents(scheduler).suffix(1)) == [4])
        #expect(windowEvents(scheduler).allSatisfy { [4, 8, 16, 32, 64].contains($0) })
    }

    @Test func withoutMaxPrefetchTheWindowStaysAtPrefetch() {
        var scheduler = makeScheduler(prefetch: 4, maxPrefetch: nil)
        for _ in 0..<100 { _ = scheduler.submit(echo) }
        var clock: UInt64 = 1
        while scheduler.nextStep(now: 0, nanos: clock) != nil {}
        for _ in 0..<20 { _ = finishOne(&scheduler, at: &clock, service: 1_000) }
        #expect(scheduler.workers[0].window == 4 && scheduler.workers[0].inFlight.count == 4)
        #expect(windowEvents(scheduler).isEmpty)
        #expect(scheduler.strategyFaults == 0)
    }

    @Test func aReplacementWorkerStartsAtPrefetch() {
        var scheduler = makeScheduler(prefetch: 4, maxPrefetch: 64)
        for _ in 0..<100 { _ = scheduler.submit(echo) }
        var clock: UInt64 = 1
        while scheduler.nextStep(now: 0, nanos: clock) != nil {}
        _ = finishOne(&scheduler, at: &clock, service: 1_000)
        #expect(scheduler.workers[0].window == 64)
        _ = scheduler.workerLost(slot: 0, reason: "replaced")
        scheduler.workerReady(slot: 0, handlers: [echo])
        #expect(scheduler.workers[0].window == 4)
    }
}
