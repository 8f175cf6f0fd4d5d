import SwitchyardCore

/// A strategy from a plugin `.so`, as the scheduler sees it: it keeps a table
/// of worker views up to date from the scheduler's events (so a pick copies
/// nothing) and asks the plugin's `pick` through the ABI.
///
/// Confined to the host's event loop, like the scheduler that owns it.
struct PluginDispatch: DispatchStrategy, @unchecked Sendable {
    // @unchecked Sendable: StrategyInstance and WorkerViewTable are used only
    // on the dispatch thread (the host's single event loop).
    let name: String
    private let instance: StrategyInstance
    private let table = WorkerViewTable()
    private let handlerName: (HandlerID) -> String

    init(_ instance: StrategyInstance, handlerName: @escaping (HandlerID) -> String) {
        self.name = instance.name
        self.instance = instance
        self.handlerName = handlerName
    }

    mutating func pick(_ task: DispatchCandidate, workers: [WorkerSlot]) -> Int? {
        table.refresh(from: workers)
        let answer = instance.pick(task: StrategyTask(task, handlerName: handlerName(task.handler)), workers: table)
        return answer == StrategyInstance.hold ? nil : Int(answer)
    }

    mutating func observe(_ event: StrategyEvent) {
        // The views must already show the event when the plugin hears of it.
        table.apply(event)
        instance.observe(event)
    }
}
