#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSwitchyardSystem
import SwitchyardCore

/// The memory a worker shares with the host to say which task it is running
/// (see `swy_board_t`). The worker writes it with two atomic stores per task, no
/// system call; the host reads it when the worker dies, so a crash is charged
/// to the task that caused it and not to results that were merely unsent.
final class WorkerBoard: @unchecked Sendable {
    // @unchecked Sendable: the mapping is written only by the worker process and
    // read with atomic loads; the pointer itself never changes.
    private let board: UnsafeMutablePointer<swy_board_t>
    /// The descriptor handed to the worker (host side only; -1 once closed).
    private(set) var descriptor: Int32

    /// The descriptor a worker finds its board on.
    static let workerDescriptor: Int32 = 4

    /// Creates a new board in the host.
    init() throws {
        var fd: Int32 = -1
        var pointer: UnsafeMutablePointer<swy_board_t>?
        guard swy_board_create(&fd, &pointer) == 0, let pointer else {
            throw SystemError(call: "memfd_create/mmap (worker board)", errno: errno)
        }
        board = pointer
        descriptor = fd
    }

    /// Maps the board a worker inherited; nil if there is none (an old host).
    init?(inheritedDescriptor fd: Int32) {
        guard let pointer = swy_board_map(fd) else { return nil }
        close(fd)
        board = pointer
        descriptor = -1
    }

    /// The host no longer needs to hand the descriptor to a child.
    func closeDescriptor() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
    }

    /// In the worker: `task` starts now.
    @inline(__always) func begin(_ task: TaskID) { swy_board_begin(board, task) }
    /// In the worker: the task ended.
    @inline(__always) func end() { swy_board_end(board) }

    /// In the host: the task the worker is running, if any.
    var running: TaskID? {
        let id = swy_board_running(board)
        return id == 0 ? nil : id
    }

    /// In the host: when the running task started (CLOCK_MONOTONIC ns).
    var startedNanoseconds: UInt64 { swy_board_started_ns(board) }

    /// In the host, after the worker died: the limit it found it had broken, if any.
    var limitHit: WorkerLimit? { swy_board_limit_hit(board) == SWY_LIMIT_MEMORY ? .memory : nil }

    /// In the worker, once its memory limit is set: a fatal signal then marks
    /// the board when memory ran out (see `swy_watch_memory`). The board stays
    /// mapped for the life of the process (the runtime holding it never goes away).
    func watchMemory(probeBytes: UInt64) throws {
        let code = swy_watch_memory(board, probeBytes)
        guard code == 0 else { throw SystemError(call: "sigaction (memory limit watch)", errno: code) }
    }

    deinit {
        closeDescriptor()
        swy_board_unmap(board)
    }
}
