#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
import CSwitchyardSystem
import NIOCore
import SwitchyardCore

/// Tries a strategy plugin file in a short-lived child process before the host
/// loads it: the child opens the file (running its constructors), checks the
/// ABI, creates each strategy and calls `pick` and `observe` on synthetic
/// worker views, then reports. A file that crashes, hangs or is refused there
/// never reaches the host process.
///
/// The child is the host's own executable started with `argument` (see
/// `WorkerProcess.runIfRequested()`), so embedding programs get it for free.
public enum StrategyProbe {
    static let argument = "__switchyard_strategy_probe__"

    /// How long a probe may take before it is killed and the file refused.
    static let deadlineSeconds = 10

    /// What the child found (one JSON document on its descriptor 3).
    struct Report: Codable {
        var error: String?
        var plugin = ""
        var version = ""
        var strategies: [String] = []
        var refused: [String] = []
        var notes: [String] = []
        var picks = 0
    }

    // MARK: Host side

    /// Runs the probe for `file` and waits for it (blocking: call it off the
    /// event loop), in `environment` (the workers' scrubbed one). Throws
    /// `StrategyLoadError` saying why the file is refused.
    static func run(file: String, config: [String: String], executable: String, environment: [String]) throws -> Report {
        let arguments = [argument, file] + config.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        // No Swift crash backtrace: symbolicating one takes seconds, and the
        // probe reports the signal itself.
        let child = try ProbeProcess.start(
            executable: executable, arguments: arguments,
            environment: environment.filter { !$0.hasPrefix("SWIFT_BACKTRACE=") } + [WorkerEnvironment.backtraceOff],
            seconds: UInt64(deadlineSeconds))
        defer { child.close() }
        var output = ByteBuffer()
        // Until it closes its end; a report over 1 MiB is not a report.
        let inTime = child.receive(into: &output) { $0.readableBytes >= 1 << 20 }
        // It closed its end (or ran out of time): it must exit now.
        let exit = child.waitForExit(deadline: inTime ? nil : 0)
        func refuse(_ reason: String) -> StrategyLoadError { StrategyLoadError(file: file, reason: reason) }
        guard let exit else {
            throw refuse("did not finish its probe within \(deadlineSeconds) s (the probe process was killed); the host is untouched")
        }
        let report = try? JSONDecoder().decode(Report.self, from: Data(output.readableBytesView))
        switch exit {
        case .signalled(let signal):
            throw refuse(
                "crashed its probe process (\(WorkerSpawner.signalName(signal))) while being loaded and exercised; the host is untouched"
            )
        case .exited(let status):
            if let error = report?.error { throw refuse(error) }
            guard status == 0, let report else {
                throw refuse("made its probe process exit with status \(status) before it reported; the host is untouched")
            }
            return report
        }
    }

    // MARK: Child side

    /// The probe process: `FILE [KEY=VALUE ...]`. Returns the exit status.
    static func runChild(_ arguments: [String]) -> Int32 {
        var report = Report()
        defer {
            let data = (try? JSONEncoder().encode(report)) ?? Data()
            data.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = write(WorkerProcess.descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                    if written <= 0 { break }
                    offset += written
                }
            }
            close(WorkerProcess.descriptor)
        }
        guard let file = arguments.first else {
            report.error = "the probe was started without a file"
            return 2
        }
        var config: [String: String] = [:]
        for pair in arguments.dropFirst() {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            config[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        let library: StrategyLibrary
        do {
            library = try StrategyLibrary.load(file)
        } catch let error as StrategyLoadError {
            report.error = error.reason
            return 2
        } catch {
            report.error = "could not be loaded: \(error)"
            return 2
        }
        report.plugin = library.pluginName
        report.version = library.pluginVersion
        report.strategies = library.strategyNames
        report.refused = library.refused
        for name in library.strategyNames {
            let instance: StrategyInstance
            do {
                instance = try library.makeInstance(name, config: config)
            } catch {
                report.notes.append("`\(name)` was not exercised: \(error)")
                continue
            }
            let (picks, faults) = exercise(instance)
            report.picks += picks
            if faults > 0 {
                report.notes.append(
                    "`\(name)` named a worker that could not take the task in \(faults) of \(picks) picks on synthetic workers; the host would place those tasks by round-robin and count faults"
                )
            }
        }
        return 0
    }

    /// Calls `pick` and `observe` the way the host does, on tables of 1 to 256
    /// synthetic workers in every state. Returns (picks, ineligible answers).
    private static func exercise(_ instance: StrategyInstance) -> (Int, Int) {
        var random = SplitMix64(seed: 0x5357_5944)
        var picks = 0
        var faults = 0
        let handlerNames = ["echo", "sha256", "sleep"]
        for workerCount in [1, 2, 5, 16, 64, 256] {
            let table = WorkerViewTable(slots: 0)
            for slot in 0..<workerCount {
                let handlers = slot % 7 == 3 ? [0] : [0, 1, 2]
                let join = StrategyEvent.workerJoined(slot: slot, handlers: handlers)
                table.apply(join)
                table.setWindow(slot: slot, 16)
                instance.observe(join)
                if slot % 11 == 5 {
                    table.apply(.workerDraining(slot: slot))
                    instance.observe(.workerDraining(slot: slot))
                }
            }
            var running: [(slot: Int, handler: Int, task: TaskID)] = []
            for i in 0..<400 {
                let handler = Int(random.next() % 3)
                let key: String? = i % 3 == 0 ? nil : "key-\(random.next() % 50)"
                let task = StrategyTask(
                    taskID: UInt64(i + 1), handler: handler, handlerName: handlerNames[handler], key: key,
                    priority: Int32(truncatingIfNeeded: Int64(random.next() % 5)) - 2, attempt: 1 + UInt32(i % 2),
                    payloadSize: random.next() % 70_000)
                let answer = instance.pick(task: task, workers: table)
                picks += 1
                if answer != StrategyInstance.hold {
                    if table.canTake(slot: Int(answer), handler: handler) {
                        let event = StrategyEvent.dispatched(slot: Int(answer), handler: handler, task: task.taskID)
                        table.apply(event)
                        instance.observe(event)
                        running.append((Int(answer), handler, task.taskID))
                    } else {
                        faults += 1
                    }
                }
                // Finish some work, at random, as workers do.
                while !running.isEmpty && random.next() % 3 != 0 {
                    let done = running.remove(at: Int(random.next() % UInt64(running.count)))
                    let event = StrategyEvent.finished(
                        slot: done.slot, handler: done.handler, task: done.task, serviceNanos: 1_000 + random.next() % 5_000_000)
                    table.apply(event)
                    instance.observe(event)
                }
            }
            // A worker leaves and comes back, as after a crash.
            let left = workerCount / 2
            table.apply(.workerLeft(slot: left))
            instance.observe(.workerLeft(slot: left))
            let task = StrategyTask(taskID: 1_000_000, handler: 0, handlerName: "echo", key: "after-leave")
            let answer = instance.pick(task: task, workers: table)
            picks += 1
            if answer != StrategyInstance.hold && !table.canTake(slot: Int(answer), handler: 0) { faults += 1 }
            table.apply(.workerJoined(slot: left, handlers: [0, 1, 2]))
            instance.observe(.workerJoined(slot: left, handlers: [0, 1, 2]))
        }
        return (picks, faults)
    }
}

