import Foundation
import NIOCore

// The host and its worker processes speak the same framing as clients, over a
// Unix socketpair, with their own frame types (0x41-0x43 host → worker,
// 0xC1-0xC4 worker → host). Request ids are unused (0) on this link.

/// Sent once by the host, first: what the worker should load.
public struct WorkerConfig: Codable, Sendable, Hashable {
    public var workerID: Int
    public var generation: Int
    /// Plugin files, in load order.
    public var plugins: [String]
    /// Values plugins read with `config_get`.
    public var config: [String: String]
    /// Largest result a task may produce, in bytes.
    public var maxResultSize: Int
    /// C functions to bind as handlers after the plugins' (absent from older hosts).
    public var bindings: [BindingSpec]?
    /// Run each plugin's self-test after loading (only a reload's probe worker does).
    public var runSelfTests: Bool?
    /// The worker's memory limit in bytes (RLIMIT_DATA, `serve --worker-memory`); nil for none.
    public var memoryLimit: UInt64?
    /// CPU seconds each task may use (RLIMIT_CPU, re-armed before each task; `serve --worker-cpu`); nil for none.
    public var cpuLimitSeconds: UInt64?
    /// Load a bound library found in an untrusted place with a warning
    /// instead of leaving the binding out (`serve --allow-insecure-plugins`).
    public var allowInsecurePlugins: Bool?

    public init(
        workerID: Int, generation: Int, plugins: [String], config: [String: String], maxResultSize: Int,
        bindings: [BindingSpec]? = nil
    ) {
        self.workerID = workerID
        self.generation = generation
        self.plugins = plugins
        self.config = config
        self.maxResultSize = maxResultSize
        self.bindings = bindings
    }
}

/// A handler a worker loaded.
public struct LoadedHandler: Codable, Sendable, Hashable {
    public var name: String
    public var plugin: String
    public var pluginVersion: String
    public var file: String
    /// For a binding: the file the dynamic linker opened for its library (a
    /// bare name like `libm.so.6` resolved), and its SHA-256. The host hashes
    /// plugin files itself.
    public var resolvedFile: String?
    public var sha256: String?
    public init(
        name: String, plugin: String, pluginVersion: String, file: String, resolvedFile: String? = nil,
        sha256: String? = nil
    ) {
        self.name = name
        self.plugin = plugin
        self.pluginVersion = pluginVersion
        self.file = file
        self.resolvedFile = resolvedFile
        self.sha256 = sha256
    }
}

/// A plugin file (or one handler of it) a worker did not load, and why.
public struct SkippedPlugin: Codable, Sendable, Hashable {
    public var file: String
    public var reason: String
    public init(file: String, reason: String) {
        self.file = file
        self.reason = reason
    }
}

/// A binding a worker could not prepare (library or symbol not found, bad
/// signature, name taken), and why.
public struct SkippedBinding: Codable, Sendable, Hashable {
    public var name: String
    public var reason: String
    public init(name: String, reason: String) {
        self.name = name
        self.reason = reason
    }
}

/// Sent once by the worker after loading: its handlers, in the order that
/// WORKER_TASK's handler index refers to (plugin handlers, then bindings).
public struct WorkerHello: Codable, Sendable, Hashable {
    public var pid: Int32
    public var handlers: [LoadedHandler]
    public var skipped: [SkippedPlugin]
    /// Bindings left out (nil from workers that know no bindings).
    public var skippedBindings: [SkippedBinding]?
    public init(
        pid: Int32, handlers: [LoadedHandler], skipped: [SkippedPlugin], skippedBindings: [SkippedBinding]? = nil
    ) {
        self.pid = pid
        self.handlers = handlers
        self.skipped = skipped
        self.skippedBindings = skippedBindings
    }
}

/// A message from the host to a worker.
public enum HostToWorker: Sendable, Hashable {
    case config(WorkerConfig)
    case task(id: TaskID, attempt: UInt32, priority: Int32, handlerIndex: UInt16, payload: ByteBuffer)
    /// Finish the tasks already sent, run every on_worker_stop, exit 0.
    case stop

    public init(frame: Frame) throws {
        var body = frame.body
        switch frame.type {
        case .workerConfig:
            self = .config(try decodeJSON(WorkerConfig.self, from: body, frame: "WORKER_CONFIG"))
        case .workerTask:
            let id = try body.readField("task_id", as: UInt64.self)
            let attempt = try body.readField("attempt", as: UInt32.self)
            let priority = try body.readField("priority", as: Int32.self)
            let index = try body.readField("handler_index", as: UInt16.self)
            self = .task(id: id, attempt: attempt, priority: priority, handlerIndex: index, payload: body)
        case .workerStop:
            self = .stop
        default:
            throw ProtocolError(.badFrame, "frame type \(frame.type) is not a host-to-worker message")
        }
    }

    public func write(to buffer: inout ByteBuffer) {
        switch self {
        case .config(let config):
            Frame(type: .workerConfig, requestID: 0, body: encodeJSON(config)).write(to: &buffer)
        case .task(let id, let attempt, let priority, let index, var payload):
            HostToWorker.writeTaskHeader(
                id: id, attempt: attempt, priority: priority, handlerIndex: index,
                payloadLength: payload.readableBytes, to: &buffer)
            buffer.writeBuffer(&payload)
        case .stop:
            Frame.writeHeader(type: .workerStop, requestID: 0, bodyLength: 0, to: &buffer)
        }
    }

    /// Bytes of a WORKER_TASK frame before its payload.
    public static let taskHeaderSize = Frame.headerSize + 18

    /// Appends a WORKER_TASK frame's header; the caller appends (or separately
    /// writes) `payloadLength` payload bytes right after it.
    @inlinable
    public static func writeTaskHeader(
        id: TaskID, attempt: UInt32, priority: Int32, handlerIndex: UInt16, payloadLength: Int,
        to buffer: inout ByteBuffer
    ) {
        buffer.writeMultipleIntegers(
            UInt32(truncatingIfNeeded: payloadLength + 18) &+ Frame.headerRest, FrameType.workerTask.rawValue,
            UInt8(0), UInt32(0), id, attempt, priority, handlerIndex)
    }
}

/// Log levels on the worker link, matching `swy_log_level_t`.
public enum WorkerLogLevel: UInt8, Sendable {
    case debug = 0, info = 1, warning = 2, error = 3
}

/// A message from a worker to the host.
public enum WorkerToHost: Sendable, Hashable {
    case hello(WorkerHello)
    /// One attempt finished: the result on success, else the error message.
    case done(id: TaskID, status: HandlerStatus, body: ByteBuffer)
    case progress(id: TaskID, done: UInt64, total: UInt64)
    case log(WorkerLogLevel, String)
    /// Sent (and flushed) just before the worker opens a plugin file or runs a
    /// handler's `on_worker_start`, so that a crash there is charged to that
    /// file. `handler` is empty while the file itself is being opened.
    case loading(file: String, handler: String)

    public init(frame: Frame) throws {
        var body = frame.body
        switch frame.type {
        case .workerHello:
            self = .hello(try decodeJSON(WorkerHello.self, from: body, frame: "WORKER_HELLO"))
        case .workerDone:
            let id = try body.readField("task_id", as: UInt64.self)
            let raw = try body.readField("status", as: UInt8.self)
            guard let status = HandlerStatus(rawValue: raw) else {
                throw ProtocolError(.badFrame, "WORKER_DONE status \(raw) is unknown")
            }
            self = .done(id: id, status: status, body: body)
        case .workerProgress:
            let id = try body.readField("task_id", as: UInt64.self)
            let done = try body.readField("done", as: UInt64.self)
            let total = try body.readField("total", as: UInt64.self)
            self = .progress(id: id, done: done, total: total)
        case .workerLog:
            let raw = try body.readField("level", as: UInt8.self)
            let message = try body.readUTF8("message", length: body.readableBytes)
            self = .log(WorkerLogLevel(rawValue: raw) ?? .info, message)
        case .workerLoading:
            let length = try body.readField("file_length", as: UInt16.self)
            let file = try body.readUTF8("file", length: Int(length))
            let handler = try body.readUTF8("handler", length: body.readableBytes)
            self = .loading(file: file, handler: handler)
        default:
            throw ProtocolError(.badFrame, "frame type \(frame.type) is not a worker-to-host message")
        }
    }

    /// Appends a WORKER_DONE frame, consuming `body` (the result or the error message).
    @inlinable
    public static func writeDone(id: TaskID, status: HandlerStatus, body: inout ByteBuffer, to buffer: inout ByteBuffer) {
        Frame.writeHeader(type: .workerDone, requestID: 0, bodyLength: 9 + body.readableBytes, to: &buffer)
        buffer.writeMultipleIntegers(id, status.rawValue)
        buffer.writeBuffer(&body)
    }

    public func write(to buffer: inout ByteBuffer) {
        switch self {
        case .hello(let hello):
            Frame(type: .workerHello, requestID: 0, body: encodeJSON(hello)).write(to: &buffer)
        case .done(let id, let status, var body):
            WorkerToHost.writeDone(id: id, status: status, body: &body, to: &buffer)
        case .progress(let id, let done, let total):
            Frame.writeHeader(type: .workerProgress, requestID: 0, bodyLength: 24, to: &buffer)
            buffer.writeMultipleIntegers(id, done, total)
        case .log(let level, let message):
            Frame.write(type: .workerLog, requestID: 0, to: &buffer) { body in
                body.writeInteger(level.rawValue)
                body.writeString(message)
            }
        case .loading(let file, let handler):
            Frame.write(type: .workerLoading, requestID: 0, to: &buffer) { body in
                body.writeInteger(UInt16(truncatingIfNeeded: file.utf8.count))
                body.writeString(file)
                body.writeString(handler)
            }
        }
    }
}

func encodeJSON<T: Encodable>(_ value: T) -> ByteBuffer {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    // Encoding these plain structs cannot fail.
    let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
    return ByteBuffer(bytes: data)
}

func decodeJSON<T: Decodable>(_ type: T.Type, from body: ByteBuffer, frame: String) throws -> T {
    do {
        return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
    } catch {
        throw ProtocolError(.badFrame, "\(frame) body is not the expected JSON: \(error)")
    }
}
