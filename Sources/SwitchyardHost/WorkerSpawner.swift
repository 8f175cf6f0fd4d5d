#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSwitchyardSystem

/// Starts worker processes with posix_spawn (never fork: the host is multithreaded)
/// and reaps them. The only code that creates or waits for processes.
enum WorkerSpawner {
    struct Spawned {
        var pid: pid_t
        /// The host's end of the socketpair (close-on-exec).
        var socket: Int32
        /// What the worker says it is running.
        var board: WorkerBoard
    }

    /// Runs `executable WorkerProcess.argument` (or `arguments`) with a fresh
    /// socketpair's other end as its descriptor 3, a fresh board as descriptor
    /// 4, /dev/null as standard input, no other descriptor above 2, and
    /// exactly `environment` (`NAME=value` entries; see `WorkerEnvironment`).
    static func spawn(
        executable: String, arguments extra: [String] = [WorkerProcess.argument], environment: [String]
    ) throws -> Spawned {
        let board = try WorkerBoard()
        defer { board.closeDescriptor() }
        var fds: [Int32] = [-1, -1]
        guard swy_socketpair_cloexec(&fds) == 0 else { throw SystemError(call: "socketpair", errno: errno) }
        defer { close(fds[1]) }
        let arguments = [executable] + extra
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer { for pointer in envp { free(pointer) } }
        var pid: pid_t = 0
        let rc = swy_spawn_worker(executable, &argv, &envp, fds[1], board.descriptor, &pid)
        guard rc == 0 else {
            close(fds[0])
            throw SystemError(call: "posix_spawn \(executable)", errno: rc)
        }
        return Spawned(pid: pid, socket: fds[0], board: board)
    }

    enum Exit: CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signalled(let signal): "was killed by signal \(signal) (\(signalName(signal)))"
            }
        }
    }

    /// Reaps `pid` if it has exited; nil while it still runs.
    static func reap(_ pid: pid_t) -> Exit? {
        var status: Int32 = 0
        let r = swy_waitpid_nohang(pid, &status)
        if r == 0 { return nil }
        if r < 0 { return .exited(-1) }  // already reaped or not ours: treat as gone
        if swy_wifsignaled(status) != 0 { return .signalled(swy_wtermsig(status)) }
        return .exited(swy_wexitstatus(status))
    }

    static func kill(_ pid: pid_t) {
        _ = Glibc.kill(pid, SIGKILL)
    }

    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGSEGV: "SIGSEGV"
        case SIGABRT: "SIGABRT"
        case SIGKILL: "SIGKILL"
        case SIGTERM: "SIGTERM"
        case SIGBUS: "SIGBUS"
        case SIGFPE: "SIGFPE"
        case SIGILL: "SIGILL"
        case SIGINT: "SIGINT"
        case SIGXCPU: "SIGXCPU"
        default: "signal \(signal)"
        }
    }
}
