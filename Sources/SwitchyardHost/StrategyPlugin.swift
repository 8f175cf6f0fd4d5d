import SwitchyardABI
import SwitchyardCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Dispatch strategies written in C (or anything with a C ABI), loaded into the
// host process through the plugin ABI (`swy_strategy_t` in sdk/include/switchyard.h,
// "Dispatch strategies" in sdk/ABI.md). Every unsafe pointer of the strategy
// ABI stays in this file; the rest of the host sees the safe types below.
//
// Threading: a `StrategyInstance` and the `WorkerViewTable` it reads are
// confined to one thread (the dispatch thread): the ABI promises a strategy
// instance is never called concurrently, and the table is updated in place.
// Neither type is Sendable for that reason. `StrategyLibrary` is immutable and
// can be shared.

// MARK: - Errors

/// Why a strategy file or strategy was refused. The description names the file.
public struct StrategyLoadError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let reason: String

    public var description: String { "strategy plugin `\(file)` \(reason)" }
}

/// A strategy's `create` failed; `message` is the strategy's own text.
public struct StrategyCreateError: Error, CustomStringConvertible, Sendable {
    public let strategy: String
    public let file: String
    public let message: String

    public var description: String { "strategy `\(strategy)` (\(file)) refused its configuration: \(message)" }
}

// MARK: - Library

/// A strategy plugin file, opened and checked against the ABI.
///
/// Files are never closed (see `DynamicLibrary`): a strategy's code stays
/// mapped for the life of the process, so an old version stays callable while
/// anything may still call it.
///
/// `dlopen` caches by path: loading a path again after the file changed on
/// disk returns the code already loaded. To load a new version, the CALLER
/// copies the file to a path never loaded before (e.g. a directory of its own
/// plus a counter: `strategies/3-libmine.so`) and loads that.
public final class StrategyLibrary: @unchecked Sendable {
    // @unchecked: every stored property is immutable after init, and the
    // descriptor it came from is constant for the life of the process (ABI).

    typealias Create = @convention(c) (
        Int, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?,
        UnsafeMutablePointer<CChar>?, Int
    ) -> UnsafeMutableRawPointer?
    typealias Destroy = @convention(c) (UnsafeMutableRawPointer?) -> Void
    typealias Pick = @convention(c) (
        UnsafeMutableRawPointer?, UnsafePointer<swy_task_meta_t>?, UnsafePointer<swy_workers_t>?
    ) -> Int32
    typealias Observe = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<swy_strategy_event_t>?) -> Void

    /// One strategy's hooks, checked non-NULL where required.
    struct Entry {
        let name: String
        let create: Create
        let destroy: Destroy
        let pick: Pick
        let observe: Observe?
    }

    public static let abiVersion = UInt32(SWY_ABI_VERSION)
    /// Most strategies one file may declare.
    public static let maxStrategies: UInt32 = 256

    public let file: String
    public let pluginName: String
    public let pluginVersion: String
    /// The strategies that passed the checks, in the file's order.
    public let strategyNames: [String]
    /// Strategies of this file that were refused, with the reason.
    public let refused: [String]
    private let entries: [String: Entry]
    private let library: DynamicLibrary

    private init(
        file: String, pluginName: String, pluginVersion: String, entries: [Entry], refused: [String],
        library: DynamicLibrary
    ) {
        self.file = file
        self.pluginName = pluginName
        self.pluginVersion = pluginVersion
        self.strategyNames = entries.map(\.name)
        self.entries = Dictionary(entries.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.refused = refused
        self.library = library
    }

    /// Opens `file` and checks its descriptor: ABI version, struct sizes, no
    /// handlers, at least one valid strategy. Throws `StrategyLoadError`.
    ///
    /// This runs the file's constructors and `swy_plugin_entry` in THIS process;
    /// the host should run untrusted files through a probe process first.
    public static func load(_ file: String) throws -> StrategyLibrary {
        func refuse(_ reason: String) -> StrategyLoadError { StrategyLoadError(file: file, reason: reason) }

        let library: DynamicLibrary
        do {
            library = try DynamicLibrary(path: file)
        } catch {
            throw refuse("is not a loadable shared object: \(error)")
        }
        guard let entryAddress = library.symbol(SWY_PLUGIN_ENTRY_SYMBOL) else {
            throw refuse(
                "does not export `\(SWY_PLUGIN_ENTRY_SYMBOL)`; a strategy plugin must define `const swy_plugin_t *swy_plugin_entry(void)` (see sdk/ABI.md)"
            )
        }
        typealias EntryPoint = @convention(c) () -> UnsafeRawPointer?
        guard let raw = unsafeBitCast(entryAddress, to: EntryPoint.self)() else {
            throw refuse("`\(SWY_PLUGIN_ENTRY_SYMBOL)` returned NULL instead of a plugin descriptor")
        }
        // The two leading fields are the same in every ABI version: read them first.
        let version = raw.loadUnaligned(as: UInt32.self)
        let structSize = raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        guard version == abiVersion else {
            throw refuse(
                "was built for plugin ABI \(version); this host speaks ABI \(abiVersion): rebuild it against this host's sdk/include/switchyard.h"
            )
        }
        guard structSize >= pluginDescriptorFirstSize else {
            throw refuse(
                "declares a plugin descriptor of \(structSize) bytes; ABI \(abiVersion) needs at least \(pluginDescriptorFirstSize)"
            )
        }
        let descriptor = readPluginDescriptor(raw, structSize: structSize)
        let pluginName = descriptor.name.map { String(cString: $0) } ?? ""
        let pluginVersion = descriptor.version.map { String(cString: $0) } ?? ""
        guard !pluginName.isEmpty else { throw refuse("has an empty plugin name") }
        guard descriptor.handler_count == 0 else {
            throw refuse(
                "declares \(descriptor.handler_count) task handlers; a strategy plugin declares strategies only (handler plugins go to the workers' plugin directory)"
            )
        }
        guard descriptor.strategy_count > 0 else {
            throw refuse("declares no dispatch strategies (strategy_count is 0)")
        }
        guard descriptor.strategy_count <= maxStrategies, let base = descriptor.strategies else {
            throw refuse("declares \(descriptor.strategy_count) strategies but no valid strategy array")
        }
        guard descriptor.strategy_size >= MemoryLayout<swy_strategy_t>.size else {
            throw refuse(
                "declares strategies of \(descriptor.strategy_size) bytes; ABI \(abiVersion) needs at least \(MemoryLayout<swy_strategy_t>.size)"
            )
        }

        var entries: [Entry] = []
        var refused: [String] = []
        for index in 0..<Int(descriptor.strategy_count) {
            // Step by the plugin's own stride, so a larger (newer) strategy struct still reads right.
            let strategy = base.advanced(by: index * Int(descriptor.strategy_size))
                .loadUnaligned(as: swy_strategy_t.self)
            guard let cName = strategy.name else {
                refused.append("strategy #\(index) has no name")
                continue
            }
            let name = String(cString: cName)
            if let problem = strategyNameProblem(name) {
                refused.append("strategy #\(index): \(problem)")
                continue
            }
            guard !entries.contains(where: { $0.name == name }) else {
                refused.append("strategy #\(index): the name `\(name)` is taken by an earlier strategy of this file")
                continue
            }
            guard let create = strategy.create, let destroy = strategy.destroy, let pick = strategy.pick else {
                refused.append("strategy `\(name)` lacks a required hook (create, destroy and pick are required)")
                continue
            }
            entries.append(Entry(name: name, create: create, destroy: destroy, pick: pick, observe: strategy.observe))
        }
        guard !entries.isEmpty else {
            throw refuse("has no usable strategy: \(refused.joined(separator: "; "))")
        }
        return StrategyLibrary(
            file: file, pluginName: pluginName, pluginVersion: pluginVersion, entries: entries, refused: refused,
            library: library)
    }

    /// Makes an instance of strategy `name` with the operator's configuration.
    /// Throws `StrategyLoadError` for an unknown name, `StrategyCreateError`
    /// when the strategy's `create` refuses.
    public func makeInstance(_ name: String, config: [String: String] = [:]) throws -> StrategyInstance {
        guard let entry = entries[name] else {
            throw StrategyLoadError(
                file: file,
                reason: "has no strategy `\(name)`; it has \(strategyNames.map { "`\($0)`" }.joined(separator: ", "))")
        }
        // Sorted, so a strategy sees the same order every time.
        let pairs = config.sorted { $0.key < $1.key }
        var keys: [UnsafeMutablePointer<CChar>?] = pairs.map { strdup($0.key) }
        var values: [UnsafeMutablePointer<CChar>?] = pairs.map { strdup($0.value) }
        defer {
            keys.forEach { free($0) }
            values.forEach { free($0) }
        }
        let errorSize = 512
        var error = [CChar](repeating: 0, count: errorSize)
        let state = keys.withUnsafeMutableBufferPointer { keyBuffer in
            values.withUnsafeMutableBufferPointer { valueBuffer in
                error.withUnsafeMutableBufferPointer { errorBuffer in
                    keyBuffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) { k in
                        valueBuffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) { v in
                            entry.create(pairs.count, k.baseAddress, v.baseAddress, errorBuffer.baseAddress, errorSize)
                        }
                    }
                }
            }
        }
        guard let state else {
            error[errorSize - 1] = 0  // in case the strategy did not terminate it
            let message = error.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw StrategyCreateError(
                strategy: name, file: file,
                message: message.isEmpty ? "create returned NULL without a message" : message)
        }
        return StrategyInstance(library: self, entry: entry, state: state)
    }

    private static func strategyNameProblem(_ name: String) -> String? {
        let utf8 = name.utf8
        if utf8.isEmpty { return "strategy name is empty" }
        if utf8.count > 255 { return "strategy name is \(utf8.count) bytes; the limit is 255" }
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
                continue
            default:
                return "strategy name `\(name)` may only contain letters, digits, `_`, `.` and `-`"
            }
        }
        return nil
    }
}

// MARK: - Instance

/// What a strategy is told about the task it places (`swy_task_meta_t`).
public struct StrategyTask: Sendable, Hashable {
    public var taskID: UInt64
    /// Host handler index, as given to `WorkerViewTable.setHandlers`.
    public var handler: Int
    public var handlerName: String
    /// The routing key, if the task has one.
    public var key: String?
    public var priority: Int32
    /// The attempt this dispatch starts: 1 for the first.
    public var attempt: UInt32
    public var payloadSize: UInt64

    /// The scheduler's candidate, with the handler's name from the host's registry.
    public init(_ candidate: DispatchCandidate, handlerName: String) {
        self.init(
            taskID: candidate.taskID, handler: candidate.handler, handlerName: handlerName, key: candidate.key,
            priority: candidate.priority, attempt: candidate.attempt,
            payloadSize: UInt64(max(candidate.payloadSize, 0)))
    }

    public init(
        taskID: UInt64, handler: Int, handlerName: String, key: String? = nil, priority: Int32 = 0,
        attempt: UInt32 = 1, payloadSize: UInt64 = 0
    ) {
        self.taskID = taskID
        self.handler = handler
        self.handlerName = handlerName
        self.key = key
        self.priority = priority
        self.attempt = attempt
        self.payloadSize = payloadSize
    }
}

/// One instance of a loaded strategy: its `create` ran, `destroy` runs on deinit.
///
/// Call it from one thread at a time (see the top of this file). `pick`
/// returns the strategy's raw answer: a slot index or `StrategyInstance.hold`;
/// the caller checks it with `WorkerViewTable.canTake(slot:handler:)` and treats
/// anything else as a fault.
public final class StrategyInstance {
    /// `SWY_PICK_HOLD`: keep the task queued for now.
    public static let hold: Int32 = -1

    public let library: StrategyLibrary
    public let name: String
    /// Whether the strategy wants events (`observe` is not NULL). When false,
    /// `observe` does nothing and callers may skip building events.
    public var wantsEvents: Bool { entry.observe != nil }

    private let entry: StrategyLibrary.Entry
    private let state: UnsafeMutableRawPointer

    fileprivate init(library: StrategyLibrary, entry: StrategyLibrary.Entry, state: UnsafeMutableRawPointer) {
        self.library = library
        self.entry = entry
        self.name = entry.name
        self.state = state
    }

    deinit { entry.destroy(state) }

    /// Asks the strategy for a worker for `task`, reading `workers` in place.
    public func pick(task: borrowing StrategyTask, workers: WorkerViewTable) -> Int32 {
        task.handlerName.withCString { handlerName in
            withKeyBytes(task.key) { key, keyLength in
                var meta = swy_task_meta_t(
                    struct_size: UInt32(MemoryLayout<swy_task_meta_t>.size),
                    handler: handlerIndex(task.handler),
                    task_id: task.taskID,
                    handler_name: handlerName,
                    key: key,
                    key_len: keyLength,
                    priority: task.priority,
                    attempt: task.attempt,
                    payload_size: task.payloadSize)
                return workers.withWorkers { entry.pick(state, &meta, $0) }
            }
        }
    }

    /// Tells the strategy about `event` (nothing when it has no observe hook).
    /// Update the `WorkerViewTable` first (`apply`): the ABI promises the
    /// views already reflect the event.
    public func observe(_ event: StrategyEvent) {
        guard let observe = entry.observe else { return }
        var raw = swy_strategy_event_t(
            struct_size: UInt32(MemoryLayout<swy_strategy_event_t>.size), kind: 0, worker: 0, handler: UInt32.max,
            task_id: 0, service_ns: 0)
        switch event {
        case .dispatched(let slot, let handler, let task):
            raw.kind = UInt32(SWY_EVENT_DISPATCHED.rawValue)
            raw.worker = UInt32(clamping: slot)
            raw.handler = handlerIndex(handler)
            raw.task_id = task
        case .finished(let slot, let handler, let task, let serviceNanos):
            raw.kind = UInt32(SWY_EVENT_FINISHED.rawValue)
            raw.worker = UInt32(clamping: slot)
            raw.handler = handlerIndex(handler)
            raw.task_id = task
            raw.service_ns = serviceNanos
        case .workerJoined(let slot, _):
            raw.kind = UInt32(SWY_EVENT_WORKER_JOINED.rawValue)
            raw.worker = UInt32(clamping: slot)
        case .workerDraining(let slot):
            raw.kind = UInt32(SWY_EVENT_WORKER_DRAINING.rawValue)
            raw.worker = UInt32(clamping: slot)
        case .workerLeft(let slot):
            raw.kind = UInt32(SWY_EVENT_WORKER_LEFT.rawValue)
            raw.worker = UInt32(clamping: slot)
        case .windowChanged:
            return  // the plugin reads the window from its worker view, which `apply` updated
        }
        observe(state, &raw)
    }
}

/// A handler index for the ABI; one that cannot be an index (negative, too
/// large) becomes UINT32_MAX, which no worker has, so no worker is eligible.
@inline(__always)
private func handlerIndex(_ handler: Int) -> UInt32 { UInt32(exactly: handler) ?? UInt32.max }

/// The key's UTF-8 bytes without a copy when the string is contiguous (native
/// Swift strings are); NULL and 0 for no key.
@inline(__always)
private func withKeyBytes<R>(_ key: String?, _ body: (UnsafePointer<CChar>?, Int) -> R) -> R {
    guard let key, !key.isEmpty else { return body(nil, 0) }
    if let result = key.utf8.withContiguousStorageIfAvailable({ bytes in
        bytes.withMemoryRebound(to: CChar.self) { body($0.baseAddress, $0.count) }
    }) {
        return result
    }
    let copy = Array(key.utf8)
    return copy.withUnsafeBufferPointer { bytes in
        bytes.withMemoryRebound(to: CChar.self) { body($0.baseAddress, $0.count) }
    }
}

// MARK: - Worker views

/// A worker slot's state as strategies see it (`swy_worker_state_t`).
public enum WorkerViewState: UInt32, Sendable {
    case absent = 0
    case ready = 1
    case draining = 2

    public init(_ state: WorkerSlot.State) {
        switch state {
        case .absent: self = .absent
        case .ready: self = .ready
        case .draining: self = .draining
        }
    }
}

/// A copy of one slot's view, for inspection (tests, status).
public struct WorkerViewSnapshot: Sendable, Hashable {
    public var slot: Int
    public var generation: UInt32
    public var state: WorkerViewState
    public var inFlight: Int
    public var window: Int
    public var tasksDone: UInt64
    public var serviceNanosecondsAverage: UInt64
    public var handlers: [Int]
}

/// The worker views every strategy `pick` reads: one contiguous array of
/// `swy_worker_view_t` (one per slot, `id` = slot index) plus one handler
/// bitmap per slot, kept up to date in place by the setters, so a pick hands
/// the strategy pointers into this table and copies nothing.
///
/// Owned and mutated by the dispatch thread only; update it BEFORE telling a
/// strategy the matching event (the ABI promises views already reflect it).
/// Pointers handed to a strategy are valid only during that call: growing the
/// table (`resize`, a handler index past the bitmap) may move them.
public final class WorkerViewTable {
    /// The EWMA weight of a new service-time sample is 1 / 2^serviceWeightShift (1/8, as TCP's SRTT).
    public static let serviceWeightShift: UInt64 = 3

    public private(set) var count: Int = 0
    private var capacity: Int = 0
    private var views: UnsafeMutablePointer<swy_worker_view_t>
    /// 64-bit words of handler bitmap per slot (the same for every slot).
    private var handlerWords: Int
    /// capacity * handlerWords words; slot s owns words [s * handlerWords, (s + 1) * handlerWords).
    private var bits: UnsafeMutablePointer<UInt64>
    private let header: UnsafeMutablePointer<swy_workers_t>

    /// A table of `slots` absent slots, with bitmaps for handler indexes below
    /// `handlerCapacity` (it grows when a larger index is set).
    public init(slots: Int = 0, handlerCapacity: Int = 64) {
        precondition(slots >= 0 && handlerCapacity >= 0)
        handlerWords = max(1, (handlerCapacity + 63) / 64)
        capacity = max(slots, 4)
        views = .allocate(capacity: capacity)
        bits = .allocate(capacity: capacity * handlerWords)
        bits.initialize(repeating: 0, count: capacity * handlerWords)
        header = .allocate(capacity: 1)
        header.initialize(
            to: swy_workers_t(
                struct_size: UInt32(MemoryLayout<swy_workers_t>.size), count: 0,
                view_size: UInt32(MemoryLayout<swy_worker_view_t>.stride), reserved: 0, views: nil))
        resize(slots: slots)
    }

    deinit {
        views.deallocate()
        bits.deallocate()
        header.deallocate()
    }

    /// Grows (new slots are absent, with no handlers) or shrinks to `slots` slots.
    public func resize(slots: Int) {
        precondition(slots >= 0 && slots <= Int(UInt32.max))
        if slots > capacity {
            let newCapacity = max(slots, capacity * 2)
            let newViews = UnsafeMutablePointer<swy_worker_view_t>.allocate(capacity: newCapacity)
            newViews.moveInitialize(from: views, count: count)
            views.deallocate()
            views = newViews
            let newBits = UnsafeMutablePointer<UInt64>.allocate(capacity: newCapacity * handlerWords)
            newBits.moveInitialize(from: bits, count: capacity * handlerWords)
            (newBits + capacity * handlerWords).initialize(repeating: 0, count: (newCapacity - capacity) * handlerWords)
            bits.deallocate()
            bits = newBits
            capacity = newCapacity
            repointBitmaps(upTo: count)
        }
        if slots > count {
            for slot in count..<slots {
                (bits + slot * handlerWords).update(repeating: 0, count: handlerWords)
                (views + slot).initialize(
                    to: swy_worker_view_t(
                        struct_size: UInt32(MemoryLayout<swy_worker_view_t>.size), id: UInt32(slot), generation: 0,
                        state: WorkerViewState.absent.rawValue, in_flight: 0, window: 0, tasks_done: 0,
                        service_ns_avg: 0, handler_bits: UnsafePointer(bits + slot * handlerWords),
                        handler_words: UInt32(handlerWords), reserved: 0))
            }
        }
        // Views are trivial: dropping the tail needs no deinitialization.
        count = slots
        header.pointee.count = UInt32(slots)
        header.pointee.views = UnsafePointer(views)
    }

    public func setState(slot: Int, _ state: WorkerViewState) {
        views[checked(slot)].state = state.rawValue
    }

    public func setGeneration(slot: Int, _ generation: UInt32) {
        views[checked(slot)].generation = generation
    }

    public func setInFlight(slot: Int, _ inFlight: Int) {
        views[checked(slot)].in_flight = UInt32(clamping: inFlight)
    }

    public func setWindow(slot: Int, _ window: Int) {
        views[checked(slot)].window = UInt32(clamping: window)
    }

    public func setTasksDone(slot: Int, _ tasksDone: UInt64) {
        views[checked(slot)].tasks_done = tasksDone
    }

    /// Replaces the slot's handler set with `handlers` (host handler indexes, >= 0).
    public func setHandlers(slot: Int, _ handlers: some Sequence<Int>) {
        let slot = checked(slot)
        let list = Array(handlers)
        if let largest = list.max() {
            precondition(list.allSatisfy { $0 >= 0 }, "handler indexes are never negative")
            growHandlerWords(toHold: largest)
        }
        let words = bits + slot * handlerWords
        words.update(repeating: 0, count: handlerWords)
        for handler in list { words[handler / 64] |= 1 << UInt64(handler % 64) }
    }

    /// Replaces the slot's handler set from a `WorkerSlot.localHandlerIndex`-style
    /// table: handler h is present when `localIndex[h] >= 0`.
    public func setHandlers(slot: Int, localHandlerIndex localIndex: [Int32]) {
        setHandlers(slot: slot, localIndex.indices.lazy.filter { localIndex[$0] >= 0 })
    }

    /// Folds one service time into the slot's moving average (weight 1/8; the
    /// first sample, while the average is 0, sets it).
    public func recordService(slot: Int, ns: UInt64) {
        let slot = checked(slot)
        let average = views[slot].service_ns_avg
        let shift = Self.serviceWeightShift
        views[slot].service_ns_avg = average == 0 ? ns : average - (average >> shift) + (ns >> shift)
    }

    /// Copies state, in-flight count, window, tasks done, service average and
    /// handlers from the scheduler's slot; bumps the generation when the slot
    /// goes from absent to present (a new worker process).
    public func update(slot: Int, from worker: WorkerSlot) {
        let state = WorkerViewState(worker.state)
        if views[checked(slot)].state == WorkerViewState.absent.rawValue && state != .absent {
            views[slot].generation &+= 1
        }
        setState(slot: slot, state)
        setInFlight(slot: slot, worker.inFlight.count)
        setWindow(slot: slot, worker.window)
        setTasksDone(slot: slot, worker.tasksDone)
        views[slot].service_ns_avg = worker.serviceNanosAverage
        setHandlers(slot: slot, localHandlerIndex: worker.localHandlerIndex)
    }

    // MARK: Keeping the table in step with the scheduler

    /// Slots `apply` could not fully update from an event (a worker joined:
    /// its window and in-flight count are not in the event), copied from the
    /// scheduler at the next `refresh(from:)`.
    private var stale: [Int] = []

    /// Updates the views for a scheduler event, in O(1) (the handler list of a
    /// join aside). Call it BEFORE passing the event to `StrategyInstance.observe`.
    /// A join grows the table if needed and marks the slot for `refresh(from:)`.
    public func apply(_ event: StrategyEvent) {
        switch event {
        case .dispatched(let slot, _, _):
            guard slot >= 0 && slot < count else { return }
            views[slot].in_flight &+= 1
        case .finished(let slot, _, _, let serviceNanos):
            guard slot >= 0 && slot < count else { return }
            if views[slot].in_flight > 0 { views[slot].in_flight -= 1 }
            views[slot].tasks_done &+= 1
            recordService(slot: slot, ns: serviceNanos)
        case .workerJoined(let slot, let handlers):
            guard slot >= 0 else { return }
            if slot >= count { resize(slots: slot + 1) }
            if views[slot].state == WorkerViewState.absent.rawValue {
                views[slot].generation &+= 1
                views[slot].service_ns_avg = 0  // a new process: the scheduler starts its average afresh too
            }
            views[slot].state = WorkerViewState.ready.rawValue
            setHandlers(slot: slot, handlers)
            stale.append(slot)
        case .workerDraining(let slot):
            guard slot >= 0 && slot < count else { return }
            views[slot].state = WorkerViewState.draining.rawValue
        case .workerLeft(let slot):
            guard slot >= 0 && slot < count else { return }
            views[slot].state = WorkerViewState.absent.rawValue
            views[slot].in_flight = 0
            setHandlers(slot: slot, EmptyCollection())
        case .windowChanged(let slot, let window):
            guard slot >= 0 && slot < count else { return }
            setWindow(slot: slot, window)
        }
    }

    /// Brings the table in step with the scheduler's slots: grows or shrinks to
    /// `workers.count` (new slots copied in full) and copies the slots `apply`
    /// marked. O(marked slots) when the count is unchanged: cheap enough to
    /// call before every pick. With `full`, copies every slot (O(N): a safety
    /// net after anything the events did not say, e.g. a restored strategy).
    public func refresh(from workers: [WorkerSlot], full: Bool = false) {
        let previous = count
        if workers.count != count { resize(slots: workers.count) }
        if full {
            for slot in 0..<count { update(slot: slot, from: workers[slot]) }
        } else {
            for slot in previous..<max(previous, count) { update(slot: slot, from: workers[slot]) }
            for slot in stale where slot < count { update(slot: slot, from: workers[slot]) }
        }
        stale.removeAll(keepingCapacity: true)
    }

    /// `swy_worker_can_take`: whether a pick answering `slot` for `handler` is
    /// eligible (in range, ready, room in its window, has the handler).
    public func canTake(slot: Int, handler: Int) -> Bool {
        guard slot >= 0, slot < count, handler >= 0, handler <= Int(UInt32.max) else { return false }
        return swy_worker_can_take(views + slot, UInt32(handler)) != 0
    }

    public subscript(slot: Int) -> WorkerViewSnapshot {
        let view = views[checked(slot)]
        let words = bits + slot * handlerWords
        let handlers = (0..<(handlerWords * 64)).filter { words[$0 / 64] & (1 << UInt64($0 % 64)) != 0 }
        return WorkerViewSnapshot(
            slot: slot, generation: view.generation, state: WorkerViewState(rawValue: view.state) ?? .absent,
            inFlight: Int(view.in_flight), window: Int(view.window), tasksDone: view.tasks_done,
            serviceNanosecondsAverage: view.service_ns_avg, handlers: handlers)
    }

    /// The table as `swy_workers_t`, valid only inside `body`.
    func withWorkers<R>(_ body: (UnsafePointer<swy_workers_t>) -> R) -> R {
        body(UnsafePointer(header))
    }

    @inline(__always)
    private func checked(_ slot: Int) -> Int {
        precondition(slot >= 0 && slot < count, "worker slot \(slot) out of range 0..<\(count)")
        return slot
    }

    private func growHandlerWords(toHold handler: Int) {
        let needed = handler / 64 + 1
        guard needed > handlerWords else { return }
        let newWords = max(needed, handlerWords * 2)
        let newBits = UnsafeMutablePointer<UInt64>.allocate(capacity: capacity * newWords)
        newBits.initialize(repeating: 0, count: capacity * newWords)
        for slot in 0..<capacity {
            (newBits + slot * newWords).update(from: bits + slot * handlerWords, count: handlerWords)
        }
        bits.deallocate()
        bits = newBits
        handlerWords = newWords
        repointBitmaps(upTo: count)
    }

    private func repointBitmaps(upTo slots: Int) {
        for slot in 0..<slots {
            views[slot].handler_bits = UnsafePointer(bits + slot * handlerWords)
            views[slot].handler_words = UInt32(handlerWords)
        }
    }
}
