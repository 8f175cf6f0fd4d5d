import NIOCore
import Testing

@testable import SwitchyardCore
@testable import SwitchyardHost

/// What the host integration will do, in miniature: a plugin strategy behind
/// the scheduler's `DispatchStrategy`, its views kept by `apply` + `refresh`.
/// (`@unchecked Sendable`: the scheduler calls it from one thread only.)
struct PluginDispatch: DispatchStrategy, @unchecked Sendable {
    let name: String
    let instance: StrategyInstance
    let table = WorkerViewTable()
    let handlerNames: [String]

    init(_ instance: StrategyInstance, handlerNames: [String]) {
        self.name = instance.name
        self.instance = instance
        self.handlerNames = handlerNames
    }

    mutating func pick(_ task: DispatchCandidate, workers: [WorkerSlot]) -> Int? {
        table.refresh(from: workers)
        let answer = instance.pick(task: StrategyTask(task, handlerName: handlerNames[task.handler]), workers: table)
        return answer == StrategyInstance.hold ? nil : Int(answer)
    }

    mutating func observe(_ event: StrategyEvent) {
        table.apply(event)  // first: the views must already reflect the event
        instance.observe(event)
    }
}

/// Records every event and places tasks round-robin.
struct Recorder: DispatchStrategy {
    let name = "recorder"
    var inner = RoundRobinStrategy()
    var events: [StrategyEvent] = []
    mutating func pick(_ task: DispatchCandidate, workers: [WorkerSlot]) -> Int? { inner.pick(task, workers: workers) }
    mutating func observe(_ event: StrategyEvent) { events.append(event) }
}

private let echo: HandlerID = 0
private let sha: HandlerID = 1

private func submission(_ handler: HandlerID, key: String? = nil) -> TaskSubmission {
    TaskSubmission(
        handler: handler, handlerName: handler == echo ? "echo" : "sha256", payload: ByteBuffer(string: "p"), key: key)
}

@Suite("WorkerViewTable and the scheduler")
struct SchedulerBridgeTests {
    /// The table kept by events (apply, then a cheap refresh) equals the scheduler's slots.
    private func expectMirrors(_ table: WorkerViewTable, _ workers: [WorkerSlot], _ step: String) {
        #expect(table.count == workers.count, "\(step)")
        for (slot, worker) in workers.enumerated() where slot < table.count {
            let view = table[slot]
            #expect(view.state == WorkerViewState(worker.state), "\(step): slot \(slot) state")
            #expect(view.inFlight == worker.inFlight.count, "\(step): slot \(slot) in flight")
            #expect(view.window == worker.window, "\(step): slot \(slot) window")
            #expect(view.tasksDone == worker.tasksDone, "\(step): slot \(slot) tasks done")
            #expect(view.serviceNanosecondsAverage == worker.serviceNanosAverage, "\(step): slot \(slot) service")
            let handlers = worker.localHandlerIndex.indices.filter { worker.localHandlerIndex[$0] >= 0 }
            #expect(view.handlers == handlers, "\(step): slot \(slot) handlers")
        }
    }

    @Test("apply + refresh keeps the table equal to the scheduler's worker slots")
    func tableMirrorsScheduler() throws {
        var scheduler = Scheduler<String>(
            configuration: SchedulerConfiguration(prefetch: 4, retry: .immediate), strategy: Recorder())
        let table = WorkerViewTable()
        var seen = 0
        func sync(_ step: String) {
            let events = (scheduler.strategy as? Recorder)?.events ?? []
            for event in events[seen...] { table.apply(event) }
            seen = events.count
            table.refresh(from: scheduler.workers)
            expectMirrors(table, scheduler.workers, step)
        }
        scheduler.setWorkerCount(3)
        scheduler.workerReady(slot: 0, handlers: [echo])
        scheduler.workerReady(slot: 1, handlers: [echo, sha])
        sync("ready")
        for index in 0..<7 { _ = scheduler.submit(submission(index % 2 == 0 ? echo : sha), waiter: nil, now: 0) }
        var sent: [Scheduler<String>.Dispatch] = []
        var clock: UInt64 = 1_000
        while let step = scheduler.nextStep(now: 0, nanos: clock) {
            if case .dispatch(let dispatch) = step { sent.append(dispatch) }
            clock += 10
        }
        sync("dispatched")
        for dispatch in sent.prefix(3) {
            clock += 5_000
            _ = scheduler.attemptFinished(
                slot: dispatch.slot, id: dispatch.taskID, status: .ok, body: ByteBuffer(), nanos: clock)
        }
        sync("finished")
        scheduler.drainWorker(slot: 1)
        sync("draining")
        _ = scheduler.workerLost(slot: 0, reason: "killed")
        sync("lost")
        scheduler.workerReady(slot: 0, handlers: [sha])
        scheduler.workerReady(slot: 3, handlers: [echo])  // a new slot
        sync("rejoined")
        #expect(table[0].generation == 2, "slot 0 has had two worker processes")
        #expect(table[3].generation == 1)
    }

    @Test("key_affinity through the real scheduler: each key's tasks on one worker")
    func keyAffinityThroughScheduler() throws {
        let instance = try shipped("key_affinity")
        var scheduler = Scheduler<String>(configuration: SchedulerConfiguration(prefetch: 1_000, retry: .immediate))
        scheduler.setWorkerCount(4)
        for slot in 0..<4 { scheduler.workerReady(slot: slot, handlers: [echo, sha]) }
        scheduler.setStrategy(PluginDispatch(instance, handlerNames: ["echo", "sha256"]), scope: .default)
        var keyOf: [TaskID: String] = [:]
        for index in 0..<400 {
            let key = "tenant-\(index % 40)"
            let handler = index % 3 == 0 ? sha : echo
            if case .created(let id) = scheduler.submit(submission(handler, key: key), waiter: nil, now: 0) {
                keyOf[id] = key
            }
        }
        var slotsOfKey: [String: Set<Int>] = [:]
        while let step = scheduler.nextStep(now: 0) {
            guard case .dispatch(let dispatch) = step else { continue }
            slotsOfKey[keyOf[dispatch.taskID]!, default: []].insert(dispatch.slot)
        }
        #expect(slotsOfKey.count == 40)
        #expect(slotsOfKey.values.allSatisfy { $0.count == 1 }, "a key went to more than one worker")
        #expect(Set(slotsOfKey.values.flatMap { $0 }).count == 4, "every worker owns some keys")
        #expect(scheduler.strategyFaults == 0)
    }

    @Test("a plugin naming a dead, then a draining worker: round-robin places each task, each fault is counted")
    func deadAndDrainingPicksAreFaults() async throws {
        let directory = try TemporaryDirectory()
        let file = directory.file("fixed_pick.so")
        try await compileFixture(Paths.root.appendingPathComponent("Tests/Fixtures/strategies/fixed_pick.c").path, to: file)
        let instance = try StrategyLibrary.load(file).makeInstance("fixed_pick", config: ["answer": "1"])
        var scheduler = Scheduler<String>(configuration: SchedulerConfiguration(prefetch: 100, retry: .immediate))
        scheduler.setWorkerCount(3)
        for slot in 0..<3 { scheduler.workerReady(slot: slot, handlers: [echo]) }
        scheduler.setStrategy(PluginDispatch(instance, handlerNames: ["echo"]), scope: .default)
        func placeFour() -> [Int] {
            for _ in 0..<4 { _ = scheduler.submit(submission(echo), waiter: nil, now: 0) }
            var sent: [Scheduler<String>.Dispatch] = []
            while let step = scheduler.nextStep(now: 0) {
                if case .dispatch(let dispatch) = step { sent.append(dispatch) }
            }
            // Each finishes, so nothing is left for a lost worker to give back.
            for dispatch in sent {
                _ = scheduler.attemptFinished(
                    slot: dispatch.slot, id: dispatch.taskID, status: .ok, body: ByteBuffer(), nanos: 1)
            }
            return sent.map(\.slot)
        }
        #expect(placeFour() == [1, 1, 1, 1], "a live worker: the strategy decides")
        #expect(scheduler.strategyFaults == 0)

        _ = scheduler.workerLost(slot: 1, reason: "killed")
        let afterDeath = placeFour()
        #expect(afterDeath.count == 4 && !afterDeath.contains(1), "the dead worker got nothing: \(afterDeath)")
        #expect(Set(afterDeath) == [0, 2], "round-robin over the live ones: \(afterDeath)")
        #expect(scheduler.strategyFaults == 4)

        scheduler.workerReady(slot: 1, handlers: [echo])
        scheduler.drainWorker(slot: 1)
        let afterDrain = placeFour()
        #expect(afterDrain.count == 4 && !afterDrain.contains(1), "the draining worker got nothing: \(afterDrain)")
        #expect(scheduler.strategyFaults == 8)
        #expect(scheduler.faultsByScope[.default] == 8)
    }
}
