import Foundation
import SwitchyardABI
import Testing

@testable import SwitchyardCore
@testable import SwitchyardHost

@Suite("Loading strategy plugins")
struct StrategyLoadingTests {
    @Test("each shipped strategy .so loads and names its one strategy", arguments: shippedStrategies)
    func loadsShipped(name: String) throws {
        let library = try StrategyLibrary.load(Paths.shippedStrategy(name))
        #expect(library.pluginName == name)
        #expect(library.pluginVersion == "1.0.0")
        #expect(library.strategyNames == [name])
        #expect(library.refused.isEmpty)
        let instance = try library.makeInstance(name)
        #expect(instance.name == name)
    }

    @Test("a strategy plugin built for another ABI is refused, naming the file and both versions")
    func wrongABI() async throws {
        let directory = try TemporaryDirectory()
        let file = directory.file("wrong_abi.so")
        try await compileFixture(Paths.fixture("wrong_abi.c"), to: file)
        let error = try #require(throws: StrategyLoadError.self) { try StrategyLibrary.load(file) }
        let text = error.description
        #expect(text.contains(file), "\(text)")
        #expect(text.contains("ABI 99"), "\(text)")
        #expect(text.contains("speaks ABI 1"), "\(text)")
    }

    @Test("worker processes still refuse a file that declares strategies")
    func workersRefuseStrategyPlugins() throws {
        let error = try #require(throws: PluginLoader.Refusal.self) {
            try PluginLoader.load(Paths.shippedStrategy("round_robin"))
        }
        #expect(error.description.contains("dispatch strategies"), "\(error)")
    }

    @Test("a plugin built with the first ABI 1 descriptor (56 bytes, no self_test) loads; nothing past it is read")
    func oldDescriptorLayoutLoads() async throws {
        let directory = try TemporaryDirectory()
        let file = directory.file("old_layout.so")
        try await compileFixture(
            Paths.root.appendingPathComponent("Tests/Fixtures/plugins/old_layout.c").path, to: file)
        let plugin = try PluginLoader.load(file)
        #expect(plugin.handlers.map(\.name) == ["old_layout"])
        #expect(plugin.selfTest == nil, "the byte after its 56 is not a self-test")
    }

    @Test("the strategy loader refuses a handler plugin and a missing file")
    func refusesNonStrategies() throws {
        let handlerPlugin = Paths.buildDirectory.appendingPathComponent("libswyplugin-echo.so").path
        if FileManager.default.fileExists(atPath: handlerPlugin) {
            let error = try #require(throws: StrategyLoadError.self) { try StrategyLibrary.load(handlerPlugin) }
            #expect(error.description.contains("task handlers"), "\(error)")
        }
        let missing = try #require(throws: StrategyLoadError.self) {
            try StrategyLibrary.load("/nonexistent/libswystrategy-nothing.so")
        }
        #expect(missing.description.contains("/nonexistent/libswystrategy-nothing.so"))
    }

    @Test("create reports a bad configuration with the strategy's message")
    func badConfig() throws {
        let library = try StrategyLibrary.load(Paths.shippedStrategy("round_robin"))
        let error = try #require(throws: StrategyCreateError.self) {
            try library.makeInstance("round_robin", config: ["colour": "blue"])
        }
        #expect(error.message.contains("unknown config key `colour`"), "\(error)")
        let seed = try #require(throws: StrategyCreateError.self) {
            try shipped("two_choices", config: ["seed": "many"])
        }
        #expect(seed.message.contains("seed"), "\(seed)")
        let vnodes = try #require(throws: StrategyCreateError.self) {
            try shipped("key_affinity", config: ["vnodes": "0"])
        }
        #expect(vnodes.message.contains("vnodes"), "\(vnodes)")
        #expect(throws: StrategyLoadError.self) { try library.makeInstance("no_such_strategy") }
    }

    @Test("a misbehaving answer reaches the caller unchanged, and the table says it is ineligible")
    func fixedPickFixture() async throws {
        let directory = try TemporaryDirectory()
        let file = directory.file("fixed_pick.so")
        try await compileFixture(Paths.fixture("fixed_pick.c"), to: file)
        let library = try StrategyLibrary.load(file)
        let table = readyTable(3)
        let outOfRange = try library.makeInstance("fixed_pick", config: ["answer": "99"])
        #expect(outOfRange.wantsEvents)
        outOfRange.observe(.workerJoined(slot: 0, handlers: [0]))
        #expect(outOfRange.pick(task: task(), workers: table) == 99)
        #expect(!table.canTake(slot: 99, handler: 0))
        let first = try library.makeInstance("fixed_pick")
        table.setState(slot: 0, .draining)
        #expect(first.pick(task: task(), workers: table) == 0)
        #expect(!table.canTake(slot: 0, handler: 0))
    }
}

@Suite("Shipped strategies")
struct ShippedStrategyTests {
    @Test("round_robin spreads evenly and skips ineligible workers")
    func roundRobin() throws {
        let strategy = try shipped("round_robin")
        let table = readyTable(4)
        var counts = [Int](repeating: 0, count: 4)
        for id in 0..<4_000 {
            let slot = Int(strategy.pick(task: task(UInt64(id)), workers: table))
            #expect(table.canTake(slot: slot, handler: 0))
            counts[slot] += 1
        }
        #expect(counts == [1_000, 1_000, 1_000, 1_000])

        table.setHandlers(slot: 1, [7])  // no handler 0 any more
        counts = [0, 0, 0, 0]
        for id in 0..<3_000 { counts[Int(strategy.pick(task: task(UInt64(id)), workers: table))] += 1 }
        #expect(counts == [1_000, 0, 1_000, 1_000])
    }

    @Test("least_loaded picks the fewest in flight, then the lower service time, then the lower index")
    func leastLoaded() throws {
        let strategy = try shipped("least_loaded")
        let table = readyTable(4)
        for (slot, inFlight) in [5, 2, 7, 2].enumerated() { table.setInFlight(slot: slot, inFlight) }
        #expect(strategy.pick(task: task(), workers: table) == 1, "tie on in_flight and service: lower index")
        table.recordService(slot: 1, ns: 300)
        table.recordService(slot: 3, ns: 100)
        #expect(strategy.pick(task: task(), workers: table) == 3, "tie on in_flight: lower service time")
        table.setInFlight(slot: 2, 0)
        #expect(strategy.pick(task: task(), workers: table) == 2)
        table.setState(slot: 2, .draining)
        #expect(strategy.pick(task: task(), workers: table) == 3, "a draining worker is not eligible")
        table.setHandlers(slot: 3, [1])
        #expect(strategy.pick(task: task(), workers: table) == 1, "a worker without the handler is not eligible")
        #expect(strategy.pick(task: task(handler: 1), workers: table) == 3)
    }

    @Test("key_affinity keeps each key on one worker, stable across calls")
    func keyAffinityStable() throws {
        let strategy = try shipped("key_affinity")
        let table = readyTable(4)
        let keys = (0..<10_000).map { "key-\($0)" }
        let owners = keys.map { Int(strategy.pick(task: task(key: $0), workers: table)) }
        #expect(owners.allSatisfy { (0..<4).contains($0) })
        let again = keys.map { Int(strategy.pick(task: task(key: $0), workers: table)) }
        #expect(owners == again)
        // A fresh instance agrees: the ring depends on the slots only.
        let other = try shipped("key_affinity")
        #expect(keys.map { Int(other.pick(task: task(key: $0), workers: table)) } == owners)
        // Every worker gets a fair share (100 points each: within ±40 % of 1/4).
        for slot in 0..<4 {
            let share = Double(owners.filter { $0 == slot }.count) / Double(keys.count)
            #expect(share > 0.15 && share < 0.35, "slot \(slot) owns \(share) of the keys")
        }
    }

    @Test("key_affinity: a 5th worker takes about 1/5 of the keys, all from the others, none moved between them")
    func keyAffinityAddWorker() throws {
        let strategy = try shipped("key_affinity")
        let table = readyTable(4)
        let keys = (0..<10_000).map { "user:\($0)" }
        let before = keys.map { Int(strategy.pick(task: task(key: $0), workers: table)) }

        table.resize(slots: 5)
        table.setState(slot: 4, .ready)
        table.setWindow(slot: 4, 1_000)
        table.setHandlers(slot: 4, [0])
        strategy.observe(.workerJoined(slot: 4, handlers: [0]))
        let after = keys.map { Int(strategy.pick(task: task(key: $0), workers: table)) }

        let moved = zip(before, after).filter { $0 != $1 }
        let fraction = Double(moved.count) / Double(keys.count)
        #expect(fraction > 0.10 && fraction < 0.30, "moved \(fraction) of the keys")
        #expect(moved.allSatisfy { $0.1 == 4 }, "a key only ever moves to the new worker")

        // Without the event the ring is rebuilt lazily, with the same result.
        let lazy = try shipped("key_affinity")
        #expect(keys.map { Int(lazy.pick(task: task(key: $0), workers: table)) } == after)
    }

    @Test("key_affinity: a draining owner's keys go to the next worker on the ring; the others stay")
    func keyAffinityRemoveWorker() throws {
        let strategy = try shipped("key_affinity")
        let table = readyTable(4)
        let keys = (0..<4_000).map { "k\($0)" }
        let before = keys.map { Int(strategy.pick(task: task(key: $0), workers: table)) }
        table.setState(slot: 2, .draining)
        let after = keys.map { Int(strategy.pick(task: task(key: $0), workers: table)) }
        for (old, new) in zip(before, after) {
            if old == 2 { #expect(new != 2 && (0..<4).contains(new)) } else { #expect(new == old) }
        }
        // Back to ready: the keys come home.
        table.setState(slot: 2, .ready)
        #expect(keys.map { Int(strategy.pick(task: task(key: $0), workers: table)) } == before)
    }

    @Test("key_affinity holds a task whose owner is full, and places keyless tasks by load")
    func keyAffinityHold() throws {
        let strategy = try shipped("key_affinity", config: ["vnodes": "100"])
        let table = readyTable(4, window: 8)
        let owner = Int(strategy.pick(task: task(key: "order-42"), workers: table))
        table.setInFlight(slot: owner, 8)
        #expect(strategy.pick(task: task(key: "order-42"), workers: table) == StrategyInstance.hold)
        // Other keys are unaffected unless they belong to the full worker too.
        for index in 0..<200 {
            let answer = strategy.pick(task: task(key: "other-\(index)"), workers: table)
            let placedElsewhere = table.canTake(slot: Int(answer), handler: 0) && answer != owner
            #expect(answer == StrategyInstance.hold || placedElsewhere)
        }
        // No key: least loaded.
        for slot in 0..<4 where slot != owner { table.setInFlight(slot: slot, 3) }
        let idle = (owner + 1) % 4
        table.setInFlight(slot: idle, 1)
        #expect(strategy.pick(task: task(key: nil), workers: table) == Int32(idle))
        #expect(strategy.pick(task: task(key: ""), workers: table) == Int32(idle))
    }

    @Test("two_choices prefers the less loaded and is reproducible with a seed")
    func twoChoicesPrefersLessLoaded() throws {
        // Two eligible workers: both are always drawn, so the lighter one always wins.
        let pair = try shipped("two_choices")
        let table = readyTable(2, window: 100)
        table.setInFlight(slot: 0, 10)
        for id in 0..<1_000 { #expect(pair.pick(task: task(UInt64(id)), workers: table) == 1) }

        // Eight workers with in_flight 0...7: the busiest is never chosen, and the
        // choice leans towards the light ones (expected share of slot i: (7 - i) / 28).
        let strategy = try shipped("two_choices", config: ["seed": "12345"])
        let eight = readyTable(8, window: 100)
        for slot in 0..<8 { eight.setInFlight(slot: slot, slot) }
        var counts = [Int](repeating: 0, count: 8)
        var answers: [Int32] = []
        for id in 0..<20_000 {
            let answer = strategy.pick(task: task(UInt64(id)), workers: eight)
            answers.append(answer)
            counts[Int(answer)] += 1
        }
        #expect(counts[7] == 0)
        #expect(counts[0] > counts[3] && counts[3] > counts[6])
        #expect(Double(counts[0]) / 20_000 > 0.2, "the lightest worker got \(counts[0]) of 20000")
        // Same seed, same answers.
        let replay = try shipped("two_choices", config: ["seed": "12345"])
        #expect((0..<20_000).map { replay.pick(task: task(UInt64($0)), workers: eight) } == answers)
    }

    @Test("no strategy ever picks an ineligible worker", arguments: shippedStrategies)
    func neverIneligible(name: String) throws {
        let strategy = try shipped(name)
        var random = TestRandom(seed: 0xC0FFEE)
        let states: [WorkerViewState] = [.absent, .ready, .ready, .ready, .draining]
        for round in 0..<2_000 {
            let count = 1 + random.next(below: 12)
            let table = WorkerViewTable(slots: count)
            for slot in 0..<count {
                table.setState(slot: slot, states[random.next(below: states.count)])
                table.setWindow(slot: slot, 4)
                table.setInFlight(slot: slot, random.next(below: 6))
                table.setHandlers(slot: slot, (0..<3).filter { _ in random.next(below: 3) != 0 })
                table.recordService(slot: slot, ns: UInt64(random.next(below: 1_000)))
            }
            let handler = random.next(below: 3)
            let key: String? = random.next(below: 4) == 0 ? nil : "key-\(random.next(below: 50))"
            let answer = strategy.pick(task: task(UInt64(round), handler: handler, key: key), workers: table)
            let anyEligible = (0..<count).contains { table.canTake(slot: $0, handler: handler) }
            if answer == StrategyInstance.hold {
                // Only key_affinity may hold while someone else could take the task (its owner is full).
                if name != "key_affinity" { #expect(!anyEligible, "\(name) held with an eligible worker") }
            } else {
                #expect(table.canTake(slot: Int(answer), handler: handler), "\(name) picked ineligible \(answer)")
            }
        }
    }

    @Test("every strategy holds when no worker is eligible", arguments: shippedStrategies)
    func holdWhenNoneEligible(name: String) throws {
        let strategy = try shipped(name)
        let keyed = task(key: "some-key")
        let plain = task()
        // No workers at all.
        let empty = WorkerViewTable()
        #expect(strategy.pick(task: keyed, workers: empty) == StrategyInstance.hold)
        #expect(strategy.pick(task: plain, workers: empty) == StrategyInstance.hold)
        // Absent, draining, full, and one without the handler.
        let table = WorkerViewTable(slots: 4)
        for slot in 0..<4 {
            table.setWindow(slot: slot, 2)
            table.setHandlers(slot: slot, [0])
        }
        table.setState(slot: 1, .draining)
        table.setState(slot: 2, .ready)
        table.setInFlight(slot: 2, 2)
        table.setState(slot: 3, .ready)
        table.setHandlers(slot: 3, [1])
        for _ in 0..<10 {
            #expect(strategy.pick(task: keyed, workers: table) == StrategyInstance.hold)
            #expect(strategy.pick(task: plain, workers: table) == StrategyInstance.hold)
        }
        // Room again: a valid answer.
        table.setInFlight(slot: 2, 1)
        #expect(strategy.pick(task: plain, workers: table) == 2)
    }

    @Test("observe is safe for every kind of event, known or not", arguments: shippedStrategies)
    func observeEvents(name: String) throws {
        let strategy = try shipped(name)
        let table = readyTable(3)
        strategy.observe(.workerJoined(slot: 0, handlers: [0]))
        strategy.observe(.workerJoined(slot: 2, handlers: [0]))
        strategy.observe(.workerJoined(slot: 7, handlers: [0]))  // a slot the table does not have yet
        strategy.observe(.dispatched(slot: 1, handler: 0, task: 1))
        strategy.observe(.finished(slot: 1, handler: 0, task: 1, serviceNanos: 1_000))
        strategy.observe(.workerDraining(slot: 1))
        strategy.observe(.workerLeft(slot: 1))
        let answer = strategy.pick(task: task(key: "k"), workers: table)
        #expect(table.canTake(slot: Int(answer), handler: 0))
    }
}

@Suite("WorkerViewTable")
struct WorkerViewTableTests {
    @Test("setters update the views in place; the bitmap grows for large handler indexes")
    func setters() {
        let table = WorkerViewTable(slots: 2, handlerCapacity: 64)
        table.setState(slot: 0, .ready)
        table.setGeneration(slot: 0, 3)
        table.setWindow(slot: 0, 16)
        table.setInFlight(slot: 0, 5)
        table.setTasksDone(slot: 0, 42)
        table.setHandlers(slot: 0, [0, 63])
        table.setHandlers(slot: 1, [1])
        table.setHandlers(slot: 1, [2, 200])  // replaces, and grows to 4 words
        let zero = table[0]
        #expect(zero.state == .ready && zero.generation == 3 && zero.window == 16 && zero.inFlight == 5)
        #expect(zero.tasksDone == 42)
        #expect(zero.handlers == [0, 63])
        #expect(table[1].handlers == [2, 200])
        #expect(table.canTake(slot: 0, handler: 63))
        #expect(!table.canTake(slot: 0, handler: 64))
        #expect(!table.canTake(slot: 1, handler: 200), "absent")
        table.setState(slot: 1, .ready)
        table.setWindow(slot: 1, 1)
        #expect(table.canTake(slot: 1, handler: 200))
        #expect(!table.canTake(slot: 1, handler: 1))
        table.setInFlight(slot: 1, 1)
        #expect(!table.canTake(slot: 1, handler: 200), "full")
        #expect(!table.canTake(slot: 2, handler: 0) && !table.canTake(slot: -1, handler: 0))

        table.resize(slots: 40)  // moves the views and bitmaps
        #expect(table[0].handlers == [0, 63] && table[1].handlers == [2, 200])
        #expect(table[39].state == .absent && table[39].handlers.isEmpty)
        table.resize(slots: 1)
        #expect(table.count == 1)
    }

    @Test("recordService keeps a moving average with weight 1/8")
    func serviceAverage() {
        let table = WorkerViewTable(slots: 1)
        table.recordService(slot: 0, ns: 8_000)
        #expect(table[0].serviceNanosecondsAverage == 8_000, "the first sample sets it")
        table.recordService(slot: 0, ns: 16_000)
        #expect(table[0].serviceNanosecondsAverage == 9_000)
        for _ in 0..<200 { table.recordService(slot: 0, ns: 1_000) }
        #expect(table[0].serviceNanosecondsAverage < 1_100)
    }

    @Test("update(slot:from:) mirrors a scheduler WorkerSlot")
    func mirrorsWorkerSlot() {
        var slot = WorkerSlot(window: 4)
        slot.state = .ready
        slot.localHandlerIndex = [0, -1, 1]
        slot.inFlight.append(7)
        slot.tasksDone = 9
        let table = WorkerViewTable(slots: 1)
        table.update(slot: 0, from: slot)
        let view = table[0]
        #expect(view.state == .ready && view.inFlight == 1 && view.window == 4 && view.tasksDone == 9)
        #expect(view.handlers == [0, 2])
        #expect(table.canTake(slot: 0, handler: 2) == slot.canTake(handler: 2))
        #expect(table.canTake(slot: 0, handler: 1) == slot.canTake(handler: 1))
    }

    @Test("the C layout matches the documented ABI 1 sizes")
    func layout() {
        #expect(MemoryLayout<swy_worker_view_t>.size == 56)
        #expect(MemoryLayout<swy_workers_t>.size == 24)
        #expect(MemoryLayout<swy_task_meta_t>.size == 56)
        #expect(MemoryLayout<swy_strategy_event_t>.size == 32)
        #expect(MemoryLayout<swy_strategy_t>.size == 56)
        // 56 in the first ABI 1 layout; self_test was appended after it.
        #expect(MemoryLayout<swy_plugin_t>.offset(of: \swy_plugin_t.self_test) == 56)
        #expect(MemoryLayout<swy_plugin_t>.size == 64)
    }
}

@Suite("sdk/ABI.md")
struct DocumentationExampleTests {
    @Test("the complete C strategy example in sdk/ABI.md builds with -Wall -Wextra -Werror and works")
    func shortestWaitExample() async throws {
        let document = try String(contentsOfFile: Paths.root.appendingPathComponent("sdk/ABI.md").path, encoding: .utf8)
        let marker = "/* shortest_wait: the eligible worker expected to reach the task first. */"
        let start = try #require(document.range(of: marker), "the example is gone from sdk/ABI.md")
        let end = try #require(document.range(of: "\n```", range: start.upperBound..<document.endIndex))
        let source = String(document[start.lowerBound..<end.lowerBound]) + "\n"
        let directory = try TemporaryDirectory()
        try source.write(toFile: directory.file("shortest_wait.c"), atomically: true, encoding: .utf8)
        try await compileFixture(directory.file("shortest_wait.c"), to: directory.file("libshortest_wait.so"))

        let library = try StrategyLibrary.load(directory.file("libshortest_wait.so"))
        #expect(library.strategyNames == ["shortest_wait"])
        #expect(throws: StrategyCreateError.self) {
            try library.makeInstance("shortest_wait", config: ["default_ms": "1"])
        }
        let strategy = try library.makeInstance("shortest_wait", config: ["default_us": "500"])
        let workers = WorkerViewTable(slots: 2)
        for slot in 0..<2 {
            workers.setState(slot: slot, .ready)
            workers.setWindow(slot: slot, 16)
            workers.setHandlers(slot: slot, [0])
        }
        workers.setInFlight(slot: 0, 3)
        #expect(strategy.pick(task: StrategyTask(taskID: 1, handler: 0, handlerName: "echo"), workers: workers) == 1)
        // A fast worker with more in flight beats a slow one: 4 * 100 ns < 1 * 1,000 ns.
        workers.recordService(slot: 0, ns: 100)
        workers.recordService(slot: 1, ns: 1_000)
        workers.setInFlight(slot: 1, 0)
        #expect(strategy.pick(task: StrategyTask(taskID: 2, handler: 0, handlerName: "echo"), workers: workers) == 0)
        // Equal expected waits go to the worker sent fewer tasks (counted from events).
        strategy.observe(.workerJoined(slot: 0, handlers: [0]))
        strategy.observe(.workerJoined(slot: 1, handlers: [0]))
        strategy.observe(.dispatched(slot: 0, handler: 0, task: 3))
        let table = readyTable(2, window: 4)
        #expect(strategy.pick(task: task(), workers: table) == 1, "equal waits: slot 1 was sent fewer")
        table.setInFlight(slot: 1, 4)
        #expect(strategy.pick(task: task(), workers: table) == 0)
        table.setInFlight(slot: 0, 4)
        #expect(strategy.pick(task: task(), workers: table) == StrategyInstance.hold)
    }
}
