// StrategyBench: the cost of one dispatch decision, median ns per `pick`
// through the strategy ABI, for each shipped strategy with 2, 16 and 256
// workers. A benchmark, not a test: run it in release.
//
//   swift build -c release --scratch-path .build-strat
//   .build-strat/release/StrategyBench [--dir DIR] [--batches N] [--batch-size N]
//
// Two figures per cell:
//   host  - StrategyInstance.pick, what the host pays: building swy_task_meta_t
//           from a StrategyTask (handler name and key as C pointers), the
//           indirect call into the .so over the in-place WorkerViewTable, and
//           the strategy's own work;
//   C     - the strategy's pick function pointer called directly with a
//           prebuilt swy_task_meta_t (the strategy alone, plus the call).
//
// The .so files are looked for next to this executable (DIR overrides). Every
// worker is ready, has the handler, and has a random in_flight below its window
// of 16 (re-drawn between batches, outside the timing). key_affinity gets a
// key per task (1,024 keys in turn); the others get tasks without a key. Each
// batch times `batch-size` picks; the figure is the median batch's ns / pick.

import SwitchyardABI
import SwitchyardHost

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let strategies = ["round_robin", "least_loaded", "key_affinity", "two_choices"]
let workerCounts = [2, 16, 256]
let window = 16
let taskCount = 1024  // a power of two: tasks are taken in turn with `& (taskCount - 1)`

var directory: String? = nil
var batches = 301
var batchSize = 2_000
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--dir": directory = arguments.next()
    case "--batches": batches = arguments.next().flatMap { Int($0) }.map { max($0, 1) } ?? batches
    case "--batch-size": batchSize = arguments.next().flatMap { Int($0) }.map { max($0, 1) } ?? batchSize
    default:
        print("usage: StrategyBench [--dir DIR] [--batches N] [--batch-size N]")
        exit(2)
    }
}

func executableDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let path =
        length > 0
        ? String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return String(path[..<slash])
}

func nanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// xorshift64*: a fixed sequence, so two runs bench the same views.
struct Random {
    var state: UInt64 = 0x2545_F491_4F6C_DD1D
    mutating func next(below bound: Int) -> Int {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return Int((state &* 0x2545_F491_4F6C_DD1D) >> 33) % bound
    }
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// Times `picks` host-path picks over the tasks in turn. Returns ns and holds.
/// (A function, not top-level code, so it is optimised like host code.)
@inline(never)
func timeHostBatch(
    _ instance: StrategyInstance, _ table: WorkerViewTable, _ tasks: [StrategyTask], first: Int, picks: Int
) -> (UInt64, Int) {
    var holds = 0
    var sum: Int64 = 0
    let elapsed = tasks.withUnsafeBufferPointer { tasks in
        let start = nanoseconds()
        for index in 0..<picks {
            let answer = instance.pick(task: tasks[(first &+ index) & (taskCount - 1)], workers: table)
            sum &+= Int64(answer)
            if answer < 0 { holds += 1 }
        }
        return nanoseconds() - start
    }
    if sum == 42 { print("") }  // keeps the picks observable
    return (elapsed, holds)
}

/// The strategy's own pick, called directly (no StrategyInstance).
struct RawStrategy {
    typealias Pick = @convention(c) (
        UnsafeMutableRawPointer?, UnsafePointer<swy_task_meta_t>?, UnsafePointer<swy_workers_t>?
    ) -> Int32
    let strategy: swy_strategy_t
    let state: UnsafeMutableRawPointer

    /// Opens the file again (dlopen returns the handle already loaded) and creates an instance.
    init(path: String) {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL), let entry = dlsym(handle, SWY_PLUGIN_ENTRY_SYMBOL)
        else { fatalError("cannot open \(path)") }
        typealias Entry = @convention(c) () -> UnsafePointer<swy_plugin_t>?
        let plugin = unsafeBitCast(entry, to: Entry.self)()!.pointee
        strategy = plugin.strategies!.loadUnaligned(as: swy_strategy_t.self)
        var error = [CChar](repeating: 0, count: 256)
        state = strategy.create!(0, nil, nil, &error, error.count)!
    }
}

@inline(never)
func timeRawBatch(
    _ raw: RawStrategy, _ workers: UnsafePointer<swy_workers_t>, _ metas: UnsafeBufferPointer<swy_task_meta_t>,
    first: Int, picks: Int
) -> UInt64 {
    let pick = raw.strategy.pick!
    var sum: Int64 = 0
    let start = nanoseconds()
    for index in 0..<picks {
        sum &+= Int64(pick(raw.state, metas.baseAddress! + ((first &+ index) & (taskCount - 1)), workers))
    }
    let elapsed = nanoseconds() - start
    if sum == 42 { print("") }
    return elapsed
}

let dir = directory ?? executableDirectory()
var random = Random()
let keys = (0..<taskCount).map { "customer-\($0 * 7919)" }
let cKeys = keys.map { strdup($0)! }  // never freed: the process ends after the run
let cHandlerName = strdup("echo")!
var hostResults: [String: [Int: Double]] = [:]
var rawResults: [String: [Int: Double]] = [:]

for name in strategies {
    let path = "\(dir)/libswystrategy-\(name).so"
    let library: StrategyLibrary
    do {
        library = try StrategyLibrary.load(path)
    } catch {
        print("cannot load \(path): \(error)")
        exit(1)
    }
    let keyed = name == "key_affinity"
    for count in workerCounts {
        let instance = try! library.makeInstance(name)
        let raw = RawStrategy(path: path)
        let table = WorkerViewTable(slots: count)
        // The raw path's own views, kept equal to the table's.
        let handlerWord = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
        handlerWord.initialize(to: 1)  // handler 0 only
        let views = UnsafeMutablePointer<swy_worker_view_t>.allocate(capacity: count)
        for slot in 0..<count {
            let service = UInt64(50_000 + random.next(below: 50_000))
            table.setState(slot: slot, .ready)
            table.setWindow(slot: slot, window)
            table.setHandlers(slot: slot, [0])
            table.recordService(slot: slot, ns: service)
            instance.observe(.workerJoined(slot: slot, handlers: [0]))
            (views + slot).initialize(
                to: swy_worker_view_t(
                    struct_size: UInt32(MemoryLayout<swy_worker_view_t>.size), id: UInt32(slot), generation: 0,
                    state: UInt32(SWY_WORKER_READY.rawValue), in_flight: 0, window: UInt32(window), tasks_done: 0,
                    service_ns_avg: service, handler_bits: UnsafePointer(handlerWord),
                    handler_words: 1, reserved: 0))
        }
        var workers = swy_workers_t(
            struct_size: UInt32(MemoryLayout<swy_workers_t>.size), count: UInt32(count),
            view_size: UInt32(MemoryLayout<swy_worker_view_t>.stride), reserved: 0, views: UnsafePointer(views))
        func drawInFlight() {
            for slot in 0..<count {
                let inFlight = random.next(below: window)
                table.setInFlight(slot: slot, inFlight)
                views[slot].in_flight = UInt32(inFlight)
            }
        }
        drawInFlight()

        let tasks = (0..<taskCount).map { index in
            StrategyTask(
                taskID: UInt64(index), handler: 0, handlerName: "echo", key: keyed ? keys[index] : nil,
                payloadSize: 64)
        }
        let metas = (0..<taskCount).map { index in
            swy_task_meta_t(
                struct_size: UInt32(MemoryLayout<swy_task_meta_t>.size), handler: 0, task_id: UInt64(index),
                handler_name: UnsafePointer(cHandlerName), key: keyed ? UnsafePointer(cKeys[index]) : nil,
                key_len: keyed ? keys[index].utf8.count : 0, priority: 0, attempt: 1, payload_size: 64)
        }

        // Warm up: caches, branch predictors, key_affinity's ring.
        _ = timeHostBatch(instance, table, tasks, first: 0, picks: 20_000)
        var hostTimes: [Double] = []
        var rawTimes: [Double] = []
        var holds = 0
        metas.withUnsafeBufferPointer { metas in
            withUnsafePointer(to: &workers) { workers in
                _ = timeRawBatch(raw, workers, metas, first: 0, picks: 20_000)
                for batch in 0..<batches {
                    drawInFlight()
                    let (elapsed, held) = timeHostBatch(instance, table, tasks, first: batch, picks: batchSize)
                    holds += held
                    hostTimes.append(Double(elapsed) / Double(batchSize))
                    let rawElapsed = timeRawBatch(raw, workers, metas, first: batch, picks: batchSize)
                    rawTimes.append(Double(rawElapsed) / Double(batchSize))
                }
            }
        }
        if holds > 0 { print("note: \(name) with \(count) workers held \(holds) picks (all workers are eligible)") }
        hostResults[name, default: [:]][count] = median(hostTimes)
        rawResults[name, default: [:]][count] = median(rawTimes)
        raw.strategy.destroy!(raw.state)
        views.deallocate()
        handlerWord.deallocate()
    }
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
}

func format(_ value: Double) -> String {
    value >= 100 ? "\(Int(value.rounded()))" : "\(Int((value * 10).rounded()) / 10).\(Int((value * 10).rounded()) % 10)"
}

print("median ns per pick (\(batches) batches of \(batchSize) picks; window \(window), random in_flight, all eligible)")
print("host = StrategyInstance.pick (Swift wrapper + ABI call); C = the .so's pick called directly")
print(pad("strategy", 14) + workerCounts.map { pad("\($0) workers host / C", 26) }.joined())
for name in strategies {
    let cells = workerCounts.map { count in
        pad("\(format(hostResults[name]![count]!)) / \(format(rawResults[name]![count]!))", 26)
    }
    print(pad(name, 14) + cells.joined())
}
