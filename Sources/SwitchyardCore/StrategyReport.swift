import Foundation
import NIOCore

/// A STRATEGY_SET request: use strategy `name` (with `config`) for `handler`,
/// or for every handler without its own when `handler` is nil.
public struct StrategySetRequest: Sendable, Hashable {
    public var name: String
    public var handler: String?
    public var config: [String: String]

    public init(name: String, handler: String? = nil, config: [String: String] = [:]) {
        self.name = name
        self.handler = handler
        self.config = config
    }
}

/// A STRATEGY_LOAD request: try the strategy plugin at `path` (on the
/// server's file system) in a probe process, then load it into the host.
/// `config` is what the probe creates each strategy with; it does not stay.
public struct StrategyLoadRequest: Sendable, Hashable {
    public var path: String
    public var config: [String: String]

    public init(path: String, config: [String: String] = [:]) {
        self.path = path
        self.config = config
    }
}

/// The document STRATEGY_INFO carries (JSON): what strategies the server can
/// use, which it uses where, and what it changed on its own.
public struct StrategyReport: Codable, Sendable, Hashable {
    public struct Available: Codable, Sendable, Hashable {
        public var name: String
        /// "built-in", or the file it was loaded from.
        public var source: String
        public init(name: String, source: String) {
            self.name = name
            self.source = source
        }
    }

    public struct Active: Codable, Sendable, Hashable {
        /// "default", or a handler name.
        public var scope: String
        public var name: String
        public var config: [String: String]
        /// Faulty picks since it was installed.
        public var faults: UInt64
        public init(scope: String, name: String, config: [String: String], faults: UInt64) {
            self.scope = scope
            self.name = name
            self.config = config
            self.faults = faults
        }
    }

    /// What a STRATEGY_LOAD loaded (only in its reply).
    public struct Loaded: Codable, Sendable, Hashable {
        /// The path the request named.
        public var file: String
        public var plugin: String
        public var version: String
        /// The strategies it made available (replacing any of the same name).
        public var strategies: [String]
        /// What the probe noticed without refusing the file (a strategy that
        /// refused the probe's config, picks of ineligible workers, ...).
        public var notes: [String]
        /// Picks the probe made on synthetic worker views.
        public var probePicks: Int
        /// SHA-256 of the content loaded (nil from older servers).
        public var sha256: String?

        public init(
            file: String, plugin: String, version: String, strategies: [String], notes: [String], probePicks: Int,
            sha256: String? = nil
        ) {
            self.sha256 = sha256
            self.file = file
            self.plugin = plugin
            self.version = version
            self.strategies = strategies
            self.notes = notes
            self.probePicks = probePicks
        }
    }

    public var available: [Available]
    public var active: [Active]
    /// Strategies the server switched off by itself, newest last.
    public var notices: [String]
    public var loaded: Loaded?

    public init(available: [Available], active: [Active], notices: [String], loaded: Loaded? = nil) {
        self.available = available
        self.active = active
        self.notices = notices
        self.loaded = loaded
    }

    public func encoded() -> ByteBuffer { encodeJSON(self) }

    public init(json: ByteBuffer) throws {
        self = try decodeJSON(StrategyReport.self, from: json, frame: "STRATEGY_INFO")
    }
}
