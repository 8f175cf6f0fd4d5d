import NIOCore

/// A canary reload: the new version first gets `percent` of the tasks of each
/// handler whose file changed. Once it has finished `tasks` of them, its
/// failure rate (failures and crashes) is compared with the old version's over
/// the same time: more than `marginPercent` points worse and the new version
/// is rolled back; otherwise it is promoted to every worker.
public struct CanaryOptions: Sendable, Hashable, Codable {
    public var percent: Int
    public var tasks: Int
    public var marginPercent: Int

    public init(percent: Int, tasks: Int = 100, marginPercent: Int = 10) {
        self.percent = percent
        self.tasks = tasks
        self.marginPercent = marginPercent
    }

    public func validate() throws {
        guard (1...99).contains(percent) else {
            throw ProtocolError(.badRequest, "RELOAD canary_percent must be 1 to 99, not \(percent)")
        }
        guard (1...1_000_000).contains(tasks) else {
            throw ProtocolError(.badRequest, "RELOAD canary_tasks must be 1 to 1000000, not \(tasks)")
        }
        guard (0...100).contains(marginPercent) else {
            throw ProtocolError(.badRequest, "RELOAD canary_margin_percent must be 0 to 100, not \(marginPercent)")
        }
    }
}

/// What a canary saw, and what it decided.
public struct CanaryResult: Sendable, Hashable, Codable {
    public var options: CanaryOptions
    /// Tasks of the changed handlers each version finished during the canary, and how many failed.
    public var newTasks: Int
    public var newFailures: Int
    public var oldTasks: Int
    public var oldFailures: Int
    /// `"promoted"` or `"rolled back"`.
    public var decision: String

    public init(options: CanaryOptions, newTasks: Int, newFailures: Int, oldTasks: Int, oldFailures: Int, decision: String) {
        self.options = options
        self.newTasks = newTasks
        self.newFailures = newFailures
        self.oldTasks = oldTasks
        self.oldFailures = oldFailures
        self.decision = decision
    }
}

/// What a reload of the handler plugins did (RELOAD_INFO, `status`'s
/// `lastReload`, the log): which files now serve, what changed, how long it took.
public struct ReloadReport: Codable, Sendable, Hashable {
    /// One plugin file of the set now serving.
    public struct File: Codable, Sendable, Hashable {
        /// The path in the plugin directory.
        public var file: String
        /// SHA-256 of the file's content when it was loaded (lowercase hex).
        public var sha256: String
        public var plugin: String
        public var version: String
        public var handlers: [String]

        public init(file: String, sha256: String, plugin: String, version: String, handlers: [String]) {
            self.file = file
            self.sha256 = sha256
            self.plugin = plugin
            self.version = version
            self.handlers = handlers
        }
    }

    /// `"reloaded"`, `"failed"` (nothing changed; see `reason`) or
    /// `"unchanged"` (every file had the same content: no worker was replaced).
    public var outcome: String
    /// What asked for it: `"request"`, `"SIGHUP"`, `"SIGUSR1"` or `"watch"`.
    public var trigger: String
    /// The plugin generation serving afterwards (1 at start, one more per reload).
    public var generation: Int
    public var reason: String?
    public var files: [File]
    /// Handlers the new set has and the old did not, and the reverse.
    public var added: [String]
    public var removed: [String]
    /// Old workers that finished their tasks and exited, and those still busy
    /// at the drain timeout (killed; their tasks retried on the new generation).
    public var drained: Int
    public var killedAtDrainTimeout: Int
    /// When it started (seconds since the epoch) and how long it took, in ms.
    public var startedAt: Double
    public var durationMillis: Double
    /// For a canary reload: what it saw and decided (outcome `reloaded` when
    /// promoted, `rolled back` when not).
    public var canary: CanaryResult?

    public init(
        outcome: String, trigger: String, generation: Int, reason: String? = nil, files: [File] = [],
        added: [String] = [], removed: [String] = [], drained: Int = 0, killedAtDrainTimeout: Int = 0,
        startedAt: Double, durationMillis: Double
    ) {
        self.outcome = outcome
        self.trigger = trigger
        self.generation = generation
        self.reason = reason
        self.files = files
        self.added = added
        self.removed = removed
        self.drained = drained
        self.killedAtDrainTimeout = killedAtDrainTimeout
        self.startedAt = startedAt
        self.durationMillis = durationMillis
    }

    public func encoded() -> ByteBuffer { encodeJSON(self) }

    public init(json: ByteBuffer) throws {
        self = try decodeJSON(ReloadReport.self, from: json, frame: "RELOAD_INFO")
    }
}
