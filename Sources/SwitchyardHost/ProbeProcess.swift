#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSwitchyardSystem
import NIOCore

/// The host's side of a short-lived probe child (a strategy probe, a reload's
/// probe worker): started like a worker, it talks over its descriptor 3 and
/// then exits. `environment` is the whole of its environment (see
/// `WorkerEnvironment`). Everything here blocks: run it off the event loop. Every step
/// is bounded by `deadline` (CLOCK_MONOTONIC ns).
struct ProbeProcess {
    let pid: pid_t
    let socket: Int32
    let deadline: UInt64

    static func start(
        executable: String, arguments: [String], environment: [String], seconds: UInt64
    ) throws -> ProbeProcess {
        let child = try WorkerSpawner.spawn(executable: executable, arguments: arguments, environment: environment)
        child.board.closeDescriptor()
        return ProbeProcess(
            pid: child.pid, socket: child.socket, deadline: swy_monotonic_ns() + seconds * 1_000_000_000)
    }

    /// Writes all of `buffer`; false if the child closed its end.
    @discardableResult
    func send(_ buffer: ByteBuffer) -> Bool {
        buffer.withUnsafeReadableBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(socket, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return false }
                offset += written
            }
            return true
        }
    }

    /// Appends what the child writes to `input` until `done(&input)` is true,
    /// the child closes its end, or the deadline passes. Returns false only
    /// when the deadline passed.
    func receive(into input: inout ByteBuffer, until done: (inout ByteBuffer) -> Bool) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let now = swy_monotonic_ns()
            guard now < deadline else { return false }
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(min((deadline - now) / 1_000_000 + 1, 1_000)))
            if ready < 0 && errno != EINTR { return true }
            guard ready > 0 else { continue }
            let count = read(socket, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return true }
            input.writeBytes(chunk[0..<count])
            if done(&input) { return true }
        }
    }

    /// Reaps the child, killing it at `deadline` (default: the probe's own);
    /// nil when it had to be killed.
    func waitForExit(deadline: UInt64? = nil) -> WorkerSpawner.Exit? {
        let limit = deadline ?? self.deadline
        while true {
            if let exit = WorkerSpawner.reap(pid) { return exit }
            if swy_monotonic_ns() >= limit {
                WorkerSpawner.kill(pid)
                while WorkerSpawner.reap(pid) == nil { nap() }
                return nil
            }
            nap()
        }
    }

    func close() { _ = Glibc.close(socket) }

    private func nap() {
        var interval = timespec(tv_sec: 0, tv_nsec: 1_000_000)
        nanosleep(&interval, nil)
    }
}
