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

    public var available: [Available]
    public var active: [Active]
    /// Strategies the server switched off by itself, newest last.
    public var notices: [String]

    public init(available: [Available], active: [Active], notices: [String]) {
        self.available = available
        self.active = active
        self.notices = notices
    }

    public func encoded() -> ByteBuffer { encodeJSON(self) }

    public init(json: ByteBuffer) throws {
        self = try decodeJSON(StrategyReport.self, from: json, frame: "STRATEGY_INFO")
    }
}
