// The one file of the SDK that touches raw pointers and the C ABI (sdk/include/switchyard.h).
// Everything else sees Swift values: TaskHandler, PluginTask, WorkerContext, TaskResult.

import SwitchyardABI

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - The descriptor

/// The descriptor of this plugin, built by the first `SwitchyardPlugin.export` call.
let exportedDescriptor = DescriptorOnce()

/// Runs the descriptor build once, whichever thread calls `swy_plugin_entry` first.
///
/// `Synchronization.Mutex` would do, but needs macOS 15 and the package supports macOS 14.
final class DescriptorOnce: @unchecked Sendable {
    // @unchecked Sendable: `descriptor` is only read or written with `mutex` held, and the
    // mutex lives in its own allocation so it never moves.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var descriptor: UnsafeRawPointer?

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    /// Returns the descriptor, calling `build` if this is the first call.
    func get(_ build: () -> UnsafeRawPointer) -> UnsafeRawPointer {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if let descriptor { return descriptor }
        let built = build()
        descriptor = built
        return built
    }
}

enum PluginDescriptor {
    /// Lays out `swy_plugin_t`, its `swy_handler_t` array and their C strings in memory.
    ///
    /// OWNERSHIP: the memory is allocated here and deliberately never freed. The ABI requires
    /// the descriptor and everything it points to to stay valid for the life of the process,
    /// and hosts never dlclose a plugin, so there is no moment at which freeing it is safe.
    /// Each handler's `handler_data` is a retained `HandlerBox`, leaked for the same reason.
    static func make(name: String, version: String, handlers: [TaskHandler]) -> UnsafeRawPointer {
        let table = UnsafeMutablePointer<swy_handler_t>.allocate(capacity: max(handlers.count, 1))
        for (index, handler) in handlers.enumerated() {
            let box = Unmanaged.passRetained(HandlerBox(handler)).toOpaque()
            (table + index).initialize(
                to: swy_handler_t(
                    struct_size: UInt32(MemoryLayout<swy_handler_t>.size),
                    reserved: 0,
                    name: permanentCString(handler.name),
                    handler_data: box,
                    on_worker_start: workerStartHook,
                    on_message: messageHook,
                    on_worker_stop: workerStopHook))
        }
        let plugin = UnsafeMutablePointer<swy_plugin_t>.allocate(capacity: 1)
        plugin.initialize(
            to: swy_plugin_t(
                abi_version: UInt32(SWY_ABI_VERSION),
                struct_size: UInt32(MemoryLayout<swy_plugin_t>.size),
                name: permanentCString(name),
                version: permanentCString(version),
                handler_count: UInt32(handlers.count),
                handler_size: UInt32(MemoryLayout<swy_handler_t>.size),
                handlers: handlers.isEmpty ? nil : UnsafePointer(table),
                strategy_count: 0,  // Reserved in ABI 1: must be 0 and NULL.
                strategy_size: 0,
                strategies: nil,
                self_test: nil))
        return UnsafeRawPointer(plugin)
    }

    /// A NUL-terminated copy of `string` that is never freed (see `make`).
    private static func permanentCString(_ string: String) -> UnsafePointer<CChar> {
        let utf8 = Array(string.utf8)
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count + 1)
        for (index, byte) in utf8.enumerated() {
            buffer[index] = CChar(bitPattern: byte)
        }
        buffer[utf8.count] = 0
        return UnsafePointer(buffer)
    }
}

/// The Swift side of one handler, reached from C through `handler_data`.
final class HandlerBox: Sendable {
    let handler: TaskHandler
    init(_ handler: TaskHandler) { self.handler = handler }
}

// MARK: - Hooks the host calls
// One trampoline per hook serves every handler: `handler_data` says which handler, and
// `worker_state` holds the retained WorkerSession that on_worker_start made.

private func workerStartHook(
    _ ctx: OpaquePointer?, _ host: UnsafePointer<swy_host_api_t>?, _ handlerData: UnsafeMutableRawPointer?,
    _ workerState: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> Int32 {
    guard let ctx, let host, let handlerData, let workerState else { return -1 }
    let call = HostCall(ctx: ctx, api: host)
    let handler = Unmanaged<HandlerBox>.fromOpaque(handlerData).takeUnretainedValue().handler
    do {
        let session = try handler.startWorker(WorkerContext(handler: handler.name, call: call))
        workerState.pointee = Unmanaged.passRetained(session).toOpaque()
        return 0
    } catch {
        call.setError(failureMessage(error, handler: handler.name).message)
        return -1
    }
}

private func messageHook(
    _ ctx: OpaquePointer?, _ host: UnsafePointer<swy_host_api_t>?, _ task: UnsafePointer<swy_task_t>?,
    _ handlerData: UnsafeMutableRawPointer?, _ workerState: UnsafeMutableRawPointer?
) -> swy_status_t {
    guard let ctx, let host, let task, let handlerData else { return SWY_ERR_PERMANENT }
    let call = HostCall(ctx: ctx, api: host)
    let handler = Unmanaged<HandlerBox>.fromOpaque(handlerData).takeUnretainedValue().handler
    guard let workerState else {
        call.setError("\(handler.name): the host called on_message before on_worker_start")
        return SWY_ERR_PERMANENT
    }
    let session = Unmanaged<WorkerSession>.fromOpaque(workerState).takeUnretainedValue()
    let fields = task.pointee
    let pluginTask = PluginTask(
        id: fields.id, attempt: fields.attempt, priority: fields.priority,
        handler: fields.handler.map { String(cString: $0) } ?? handler.name, call: call,
        payloadBytes: HostBytes(UnsafeRawBufferPointer(start: fields.payload, count: fields.payload_len)))

    let result: TaskResult
    do {
        result = try session.message(pluginTask)
    } catch {
        let failure = failureMessage(error, handler: handler.name)
        result = .failure(failure.message, retryable: failure.retryable)
    }
    switch result {
    case .success(let bytes):
        if call.appendResult(bytes) { return SWY_OK }
        call.setError("\(handler.name): the result of \(bytes.count) bytes is larger than the host accepts")
        return SWY_ERR_PERMANENT
    case .failure(let message, let retryable):
        call.setError(message)
        return retryable ? SWY_ERR_RETRY : SWY_ERR_PERMANENT
    }
}

private func workerStopHook(
    _ ctx: OpaquePointer?, _ host: UnsafePointer<swy_host_api_t>?, _ handlerData: UnsafeMutableRawPointer?,
    _ workerState: UnsafeMutableRawPointer?
) {
    guard let ctx, let host, let handlerData, let workerState else { return }
    let handler = Unmanaged<HandlerBox>.fromOpaque(handlerData).takeUnretainedValue().handler
    // Balances the passRetained in workerStartHook: the session dies with this call.
    let session = Unmanaged<WorkerSession>.fromOpaque(workerState).takeRetainedValue()
    session.stop?(WorkerContext(handler: handler.name, call: HostCall(ctx: ctx, api: host)))
}

/// The message and retry choice for an error thrown by a handler's closure.
private func failureMessage(_ error: any Error, handler: String) -> TaskFailure {
    if let failure = error as? TaskFailure { return failure }
    return TaskFailure("\(handler): \(error)")
}

// MARK: - Callbacks into the host

/// The host's `ctx` and API table for one hook call. Valid only until that hook returns;
/// the noncopyable `PluginTask` and `WorkerContext` that hold it keep it from escaping.
struct HostCall {
    let ctx: OpaquePointer
    let api: UnsafePointer<swy_host_api_t>

    func log(_ message: String, level: LogLevel) {
        let cLevel: swy_log_level_t =
            switch level {
            case .debug: SWY_LOG_DEBUG
            case .info: SWY_LOG_INFO
            case .warning: SWY_LOG_WARNING
            case .error: SWY_LOG_ERROR
            }
        message.withCString { api.pointee.log?(ctx, cLevel, $0) }
    }

    func config(_ key: String) -> String? {
        // The host owns the returned string; copy it into a Swift String.
        key.withCString { api.pointee.config_get?(ctx, $0) }.map { String(cString: $0) }
    }

    func progress(_ done: UInt64, of total: UInt64) {
        api.pointee.progress?(ctx, done, total)
    }

    /// Appends `bytes` to the task's result; false when the host refuses them (too large).
    func appendResult(_ bytes: [UInt8]) -> Bool {
        if bytes.isEmpty { return true }
        guard let append = api.pointee.result_append else { return false }
        return bytes.withUnsafeBytes { append(ctx, $0.baseAddress, $0.count) } == 0
    }

    func setError(_ message: String) {
        message.withCString { api.pointee.set_error?(ctx, $0) }
    }
}

/// Bytes in host memory (a task's payload), valid only until the hook returns.
struct HostBytes {
    private let buffer: UnsafeRawBufferPointer

    init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    var count: Int { buffer.count }

    func copy() -> [UInt8] { Array(buffer) }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(buffer) }

    /// The bytes as a String, or nil when they are not valid UTF-8.
    func utf8String() -> String? {
        var iterator = buffer.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return String(decoding: buffer, as: UTF8.self)
            case .error: return nil
            }
        }
    }
}
