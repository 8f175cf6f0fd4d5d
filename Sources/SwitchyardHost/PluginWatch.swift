import Logging
import NIOCore

/// `HostConfiguration.watchPlugins`: turns changes of `*.so` files in the
/// plugin directory into reloads (trigger "watch"), one per burst.
///
/// A burst ends after `quiet` with no relevant event; then one reload runs
/// (queued behind a reload in progress by the dispatcher). Names not ending
/// in `.so` (an editor's or installer's temporary file) are ignored. Changes
/// seen while the host is still starting reload once it runs.
final class PluginWatch: @unchecked Sendable {
    // @unchecked Sendable: the mutable state is confined to `loop`; the
    // watcher's thread only hops onto it.

    let directory: String
    private let loop: EventLoop
    private let quiet: TimeAmount
    private let logger: Logger
    private let watcher: DirectoryWatcher
    /// Set once the host runs; before that a finished burst waits in `pending`.
    private var reload: (() -> Void)?
    private var timer: Scheduled<Void>?
    /// The `.so` names changed in the current burst, for the log line.
    private var changed: Set<String> = []
    private var pending = false
    private var overflowed = false

    /// Starts watching at once (the kernel queues events from here on), so a
    /// change made while the workers start is not lost.
    init(directory: String, loop: EventLoop, quiet: TimeAmount, logger: Logger) throws {
        self.directory = directory
        self.loop = loop
        self.quiet = quiet
        self.logger = logger
        self.watcher = try DirectoryWatcher(directory: directory)
        watcher.start { [self] events in loop.execute { self.received(events) } }
        logger.info("watching \(directory) for plugin changes")
    }

    /// The host runs: each finished burst calls `reload` from now on (on the loop).
    func activate(reload: @escaping () -> Void) {
        loop.preconditionInEventLoop()
        self.reload = reload
        if pending { fire() }
    }

    /// No event is handled after this returns. Call before the loop shuts down.
    func stop() {
        watcher.stop()
    }

    /// Events from the watcher, on the loop (internal for tests, which feed it directly).
    func received(_ events: [DirectoryWatcher.Event]) {
        loop.preconditionInEventLoop()
        var relevant = false
        for event in events {
            switch event {
            case .overflowed:
                overflowed = true
                relevant = true
            case .ended(let why):
                logger.warning(
                    "stopped watching \(directory) for plugin changes: \(why); reload with `switchyard reload` or SIGHUP")
            default:
                guard let name = event.name, name.hasSuffix(".so") else { continue }
                changed.insert(name)
                relevant = true
            }
        }
        guard relevant else { return }
        timer?.cancel()
        timer = loop.scheduleTask(in: quiet) { [self] in
            timer = nil
            fire()
        }
    }

    private func fire() {
        guard let reload else {
            pending = true
            return
        }
        pending = false
        var names = changed.sorted().joined(separator: ", ")
        if overflowed { names += names.isEmpty ? "events lost" : "; events lost" }
        changed = []
        overflowed = false
        logger.info("plugin files changed in \(directory) (\(names)); reloading")
        reload()
    }
}
