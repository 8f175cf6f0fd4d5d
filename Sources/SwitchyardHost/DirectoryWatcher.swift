#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
import NIOConcurrencyHelpers

/// Watches the names directly in one directory with inotify, on a thread of its own.
///
/// It reports a name only once the file under it is complete or gone: a file
/// written in place counts when the writer closes it (`IN_CLOSE_WRITE`, never
/// the `IN_MODIFY`s before it: the watch does not even ask for those), a file
/// renamed in counts at the rename (`IN_MOVED_TO`), and removals at once
/// (`IN_DELETE`, `IN_MOVED_FROM`). Creating a name (`IN_CREATE`) is not a
/// change by itself: the close or the rename that completes the file follows.
///
/// This is the only place that touches inotify; nothing else sees a descriptor.
final class DirectoryWatcher: Sendable {
    /// What happened in the directory.
    enum Event: Sendable, Hashable {
        /// A file was written and closed (`IN_CLOSE_WRITE`).
        case written(String)
        /// A file was renamed into the directory or over a name in it (`IN_MOVED_TO`).
        case movedIn(String)
        /// A file was deleted (`IN_DELETE`).
        case deleted(String)
        /// A file was renamed away (`IN_MOVED_FROM`).
        case movedOut(String)
        /// The kernel's queue overflowed: events were lost, anything may have changed.
        case overflowed
        /// The watch ended (the directory was removed, moved or unmounted, or
        /// reading failed); no event follows. The text says why.
        case ended(String)

        /// The file name the event is about, if any.
        var name: String? {
            switch self {
            case .written(let name), .movedIn(let name), .deleted(let name), .movedOut(let name): name
            case .overflowed, .ended: nil
            }
        }
    }

    let directory: String
    private let inotifyFD: Int32
    /// The watch on `directory`; `stop()` removes it, which wakes the reading
    /// thread with `IN_IGNORED` (one descriptor, no wake-up pipe).
    private let watchDescriptor: Int32
    private let state = NIOLockedValueBox(State.idle)
    /// Becomes 1 when the reading thread has returned (and will touch no descriptor again).
    private let finished = ConditionLock(value: 0)

    private enum State { case idle, running, closed }

    /// What the watch asks the kernel for; `IN_MODIFY` and `IN_CREATE` are left out on purpose.
    static let mask: UInt32 =
        UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO) | UInt32(IN_MOVED_FROM) | UInt32(IN_DELETE)
        | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF) | UInt32(IN_ONLYDIR)

    /// Starts watching `directory`: from here on the kernel queues its events,
    /// which `start` delivers. Throws a `SystemError` naming the failed call.
    init(directory: String) throws {
        self.directory = directory
        let fd = inotify_init1(Int32(IN_CLOEXEC) | Int32(IN_NONBLOCK))
        guard fd >= 0 else { throw SystemError(call: "inotify_init1", errno: errno) }
        let watch = inotify_add_watch(fd, directory, Self.mask)
        guard watch >= 0 else {
            let error = SystemError(call: "inotify_add_watch(\(directory))", errno: errno)
            close(fd)
            throw error
        }
        inotifyFD = fd
        watchDescriptor = watch
    }

    /// Delivers events on a thread of its own, a batch per read, until `stop()`
    /// or an `.ended` event (the last one delivered). Call at most once.
    func start(_ handler: @escaping @Sendable ([Event]) -> Void) {
        let start = state.withLockedValue { state in
            guard case .idle = state else { return false }
            state = .running
            return true
        }
        guard start else { return }
        let thread = Thread { [self] in
            readLoop(handler)
            finished.lock()
            finished.unlock(withValue: 1)
        }
        thread.name = "switchyard-watch"
        thread.start()
    }

    /// Stops watching: wakes the thread, waits for it to return (no handler
    /// call follows), and closes the descriptor. Safe to call more than once.
    func stop() {
        let previous = state.withLockedValue { state in
            defer { state = .closed }
            return state
        }
        switch previous {
        case .closed:
            return
        case .running:
            // Fails harmlessly if the watch already ended (the thread is gone then).
            _ = inotify_rm_watch(inotifyFD, watchDescriptor)
            finished.lock(whenValue: 1)
            finished.unlock()
        case .idle:
            break
        }
        close(inotifyFD)
    }

    deinit {
        // Never started (a running thread holds `self`), or stopped and closed already.
        if state.withLockedValue({ $0 }) != .closed { close(inotifyFD) }
    }

    private func readLoop(_ handler: @Sendable ([Event]) -> Void) {
        // Room for many events at once; inotify never splits one across reads.
        let capacity = 64 * 1024
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: MemoryLayout<inotify_event>.alignment)
        defer { buffer.deallocate() }
        var descriptor = pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0)
        while true {
            if poll(&descriptor, 1, -1) < 0 {
                if errno == EINTR { continue }
                handler([.ended("\(SystemError(call: "poll", errno: errno))")])
                return
            }
            while true {
                let count = read(inotifyFD, buffer, capacity)
                if count < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK { break }
                    handler([.ended("\(SystemError(call: "read(inotify)", errno: errno))")])
                    return
                }
                let events = Self.parse(UnsafeRawBufferPointer(start: buffer, count: count))
                // After stop() removed the watch, its IN_IGNORED is not news to anyone.
                if state.withLockedValue({ $0 }) == .closed { return }
                if !events.isEmpty { handler(events) }
                if events.contains(where: { if case .ended = $0 { true } else { false } }) { return }
            }
        }
    }

    /// The events in bytes read from an inotify descriptor (whole `inotify_event`s).
    static func parse(_ bytes: UnsafeRawBufferPointer) -> [Event] {
        var events: [Event] = []
        let header = MemoryLayout<inotify_event>.size
        var offset = 0
        while offset + header <= bytes.count {
            let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            let nameBytes = bytes[(offset + header)..<min(offset + header + length, bytes.count)]
            let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
            offset += header + length
            if let event = event(mask: mask, name: name) { events.append(event) }
        }
        return events
    }

    /// What one inotify event means here, or nil for one that does not matter.
    static func event(mask: UInt32, name: String) -> Event? {
        func has(_ flag: some BinaryInteger) -> Bool { mask & UInt32(flag) != 0 }
        if has(IN_Q_OVERFLOW) { return .overflowed }
        if has(IN_DELETE_SELF) || has(IN_MOVE_SELF) { return .ended("the directory was removed or moved") }
        if has(IN_UNMOUNT) { return .ended("the file system holding the directory was unmounted") }
        if has(IN_IGNORED) { return .ended("the kernel dropped the watch") }
        if has(IN_ISDIR) { return nil }
        if has(IN_CLOSE_WRITE) { return .written(name) }
        if has(IN_MOVED_TO) { return .movedIn(name) }
        if has(IN_DELETE) { return .deleted(name) }
        if has(IN_MOVED_FROM) { return .movedOut(name) }
        return nil
    }
}
