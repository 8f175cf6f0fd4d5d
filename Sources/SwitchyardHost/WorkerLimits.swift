#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSwitchyardSystem
import SwitchyardCore

/// A per-worker limit a task broke (`serve --worker-memory`, `--worker-cpu`).
/// A task that breaks one fails with WORKER_LIMIT and is not retried: it
/// would break it again.
enum WorkerLimit: Sendable, Hashable {
    /// The worker ran out of CPU time for its task: the kernel ended it with SIGXCPU.
    case cpu
    /// An allocation failed at the memory limit and the worker died of it
    /// (its fatal-signal handler marked the board).
    case memory

    /// What the host learns from a dead worker: SIGXCPU is the CPU limit; a
    /// board marked by the worker's fatal-signal handler is the memory limit.
    static func broken(by exit: WorkerSpawner.Exit, board: WorkerBoard?) -> WorkerLimit? {
        if case .signalled(SIGXCPU) = exit { return .cpu }
        return board?.limitHit
    }

    /// For log lines: which limit, and the flag that set it.
    func brief(_ configuration: HostConfiguration) -> String {
        switch self {
        case .cpu:
            configuration.workerCPULimit.map { "past its CPU time limit per task (--worker-cpu \($0))" }
                ?? "past the CPU time limit it inherited (ulimit -t)"
        case .memory:
            configuration.workerMemoryLimit.map { "out of memory at its limit (--worker-memory \(ByteCount.flagValue($0)))" }
                ?? "out of memory"
        }
    }

    /// Why the task failed, for its WORKER_LIMIT error: the limit, the flag
    /// that sets it, what became of the worker, and what to do.
    func reason(worker: String, exit: WorkerSpawner.Exit, configuration: HostConfiguration) -> String {
        switch self {
        case .cpu:
            let limit =
                configuration.workerCPULimit.map { "its CPU time limit of \($0) s per task (serve --worker-cpu \($0))" }
                ?? "the CPU time limit the server was started with (ulimit -t)"
            return
                "the task used more than \(limit); \(worker) \(exit) and was replaced. Not retried: make the task lighter or raise --worker-cpu"
        case .memory:
            let limit =
                configuration.workerMemoryLimit.map {
                    "its memory limit of \(ByteCount.describe($0)) (serve --worker-memory \(ByteCount.flagValue($0)))"
                } ?? "its memory limit"
            return
                "the task ran out of memory: \(worker) reached \(limit), an allocation failed, and it \(exit); it was replaced. Not retried: make the task smaller or raise --worker-memory"
        }
    }
}

/// The worker's side of the limits: set once at start (memory), and before
/// each task (CPU). One per worker process.
struct WorkerLimitsInWorker {
    private var budget: swy_cpu_budget_t?

    /// Sets the memory limit (before any plugin is loaded, so plugins are
    /// held to it too) and the fatal-signal watch that reports it; prepares
    /// the CPU budget. Throws when a limit cannot be set: a worker never runs
    /// without a limit it was given.
    init(memory: UInt64?, cpuSeconds: UInt64?, board: WorkerBoard?) throws {
        if let memory {
            let code = swy_limit_memory(memory)
            guard code == 0 else { throw SystemError(call: "setrlimit(RLIMIT_DATA, \(memory))", errno: code) }
            // A probe of 1/16 of the limit (at least 1 MiB) that cannot be mapped means memory ran out.
            try board?.watchMemory(probeBytes: max(memory / 16, 1 << 20))
        }
        if let cpuSeconds {
            var budget = swy_cpu_budget_t()
            let code = swy_cpu_budget_init(&budget, cpuSeconds)
            guard code == 0 else { throw SystemError(call: "getrlimit(RLIMIT_CPU)", errno: code) }
            self.budget = budget
        }
    }

    /// Gives the next task (or hook) its CPU seconds, counted from now.
    mutating func beforeTask() {
        guard budget != nil else { return }
        let code = swy_cpu_budget_arm(&budget!)
        if code != 0 { writeStandardError("switchyard worker: setrlimit(RLIMIT_CPU) failed: errno \(code)\n") }
    }
}
