/// Severity of a line written to the host's log.
public enum LogLevel: Sendable {
    case debug
    case info
    case warning
    case error
}

/// One task handed to a handler, with the host callbacks that are valid while it runs.
///
/// A `PluginTask` is noncopyable and only borrowed by the handler: the host's memory behind it
/// is valid only until the handler returns, so the compiler keeps it from escaping the call.
/// Copy out what must outlive it (``payload`` is already a copy).
public struct PluginTask: ~Copyable {
    /// Task id, unique within the host.
    public let id: UInt64
    /// 1 for the first attempt, 2 for the first retry, and so on.
    public let attempt: UInt32
    /// Task priority; higher runs first.
    public let priority: Int32
    /// The handler name the task was submitted to.
    public let handler: String

    let call: HostCall
    let payloadBytes: HostBytes

    init(id: UInt64, attempt: UInt32, priority: Int32, handler: String, call: HostCall, payloadBytes: HostBytes) {
        self.id = id
        self.attempt = attempt
        self.priority = priority
        self.handler = handler
        self.call = call
        self.payloadBytes = payloadBytes
    }

    /// A copy of the payload bytes. Each read copies; read it once for large payloads.
    public var payload: [UInt8] { payloadBytes.copy() }

    /// The payload length in bytes, without copying it.
    public var payloadCount: Int { payloadBytes.count }

    /// The payload as text, or `nil` when it is not valid UTF-8.
    public var payloadText: String? { payloadBytes.utf8String() }

    /// Calls `body` with the payload in the host's memory, without copying it.
    ///
    /// The buffer is valid only inside `body`; do not keep it or a pointer derived from it.
    public func withPayloadBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try payloadBytes.withBytes(body)
    }

    /// Writes one line to the host's log, tagged with the worker and plugin.
    public func log(_ message: String, level: LogLevel = .info) {
        call.log(message, level: level)
    }

    /// Reports progress (`done` out of `total`, in any unit) to a client waiting for the task.
    public func progress(_ done: UInt64, of total: UInt64) {
        call.progress(done, of: total)
    }

    /// The host configuration value for `key` (`switchyard serve --config key=value`), or `nil`.
    public func config(_ key: String) -> String? {
        call.config(key)
    }
}

/// The host as seen from `onWorkerStart` and `onWorkerStop`: valid only during that call.
public struct WorkerContext: ~Copyable {
    /// The name of the handler being started or stopped.
    public let handler: String

    let call: HostCall

    /// Writes one line to the host's log, tagged with the worker and plugin.
    public func log(_ message: String, level: LogLevel = .info) {
        call.log(message, level: level)
    }

    /// The host configuration value for `key` (`switchyard serve --config key=value`), or `nil`.
    public func config(_ key: String) -> String? {
        call.config(key)
    }
}
