#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSwitchyardSystem
import NIOCore
import SwitchyardABI
import SwitchyardCore

/// Entry point of worker processes.
///
/// The host starts workers by running its own executable (or the one named by
/// `HostConfiguration.workerExecutable`) with the single argument
/// `WorkerProcess.argument` and the host's end of a socketpair as descriptor 3.
/// A program that embeds the host calls `WorkerProcess.runIfRequested()` first
/// thing in `main`, so the same binary can serve as its own worker.
public enum WorkerProcess {
    /// The argument that marks a worker process.
    public static let argument = "__switchyard_worker__"
    /// WORKER_LOADING's handler field while a plugin's self-test runs.
    static let selfTestMarker = "<self-test>"
    /// The descriptor of the worker's socket to the host.
    static let descriptor: Int32 = 3

    /// If this process was started as a worker, runs the worker until the host
    /// stops it, then exits. Otherwise returns at once.
    /// (A strategy probe process, started the same way, is run here too.)
    public static func runIfRequested() {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2, arguments[1] == argument || arguments[1] == StrategyProbe.argument else { return }
        // The link to the host is for this process alone: nothing a plugin
        // starts inherits it.
        _ = swy_set_cloexec(descriptor)
        if arguments[1] == StrategyProbe.argument {
            exit(StrategyProbe.runChild(Array(arguments.dropFirst(2))))
        }
        signal(SIGPIPE, SIG_IGN)
        let status = WorkerRuntime(fd: descriptor).run()
        exit(status)
    }
}

/// The worker's state, reached from the C callbacks through the `swy_ctx_t*`
/// they receive. One per process; the process is single-threaded.
final class WorkerRuntime {
    let fd: Int32
    var input = ByteBuffer()
    var output = ByteBuffer()
    /// The running task's result, built by `result_append`.
    var result = ByteBuffer()
    var errorMessage: String?
    var inTask = false
    var currentTask: TaskID = 0
    var maxResultSize = Frame.defaultMaxSize - 64
    var configStrings: [String: UnsafeMutablePointer<CChar>] = [:]
    var handlers: [PluginHandler] = []
    var workerStates: [UnsafeMutableRawPointer?] = []
    /// Bound C functions; their handler indexes follow the plugin handlers'.
    var bindings: [BoundFunction] = []
    /// The plugin whose hook is running, for log lines.
    var currentPlugin = ""
    var workerID = 0
    /// Where this worker tells the host which task it runs.
    let board: WorkerBoard?
    /// `serve --worker-memory` and `--worker-cpu`, set at start.
    var limits: WorkerLimitsInWorker?

    init(fd: Int32) {
        self.fd = fd
        self.board = WorkerBoard(inheritedDescriptor: WorkerBoard.workerDescriptor)
        input.reserveCapacity(64 * 1024)
        output.reserveCapacity(64 * 1024)
    }

    private var context: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    static func from(_ context: OpaquePointer?) -> WorkerRuntime? {
        context.map { Unmanaged<WorkerRuntime>.fromOpaque(UnsafeRawPointer($0)).takeUnretainedValue() }
    }

    /// Runs until WORKER_STOP or end of input; returns the exit status.
    func run() -> Int32 {
        do {
            guard let first = try nextFrame(), case .config(let config) = try HostToWorker(frame: first) else {
                writeStandardError("switchyard worker: the host did not send WORKER_CONFIG first\n")
                return 2
            }
            // Before any plugin is loaded, so plugins are held to the limits too.
            do {
                limits = try WorkerLimitsInWorker(
                    memory: config.memoryLimit, cpuSeconds: config.cpuLimitSeconds, board: board)
            } catch {
                writeStandardError("switchyard worker \(config.workerID): cannot set its limits: \(error)\n")
                return 2
            }
            start(config)
            try flush()
            while true {
                var stop = false
                while let frame = try Frame.read(from: &input) {
                    switch try HostToWorker(frame: frame) {
                    case .task(let id, let attempt, let priority, let index, let payload):
                        execute(id: id, attempt: attempt, priority: priority, index: Int(index), payload: payload)
                    case .stop:
                        stop = true
                    case .config:
                        throw ProtocolError(.badFrame, "WORKER_CONFIG sent twice")
                    }
                    if stop { break }
                }
                // One write for every result of this batch.
                try flush()
                if try stop || !fill() {
                    stopHandlers()
                    try flush()
                    return 0
                }
            }
        } catch {
            writeStandardError("switchyard worker \(workerID): \(error)\n")
            return 1
        }
    }

    // MARK: Start and stop

    private func start(_ config: WorkerConfig) {
        workerID = config.workerID
        maxResultSize = config.maxResultSize
        for (key, value) in config.config { configStrings[key] = strdup(value) }
        var skipped: [SkippedPlugin] = []
        var owner: [String: String] = [:]
        var candidates: [PluginHandler] = []
        var selfTests: [(file: String, plugin: String, run: SelfTest)] = []
        for file in config.plugins {
            announceLoading(file: file, handler: "")
            do {
                let plugin = try PluginLoader.load(file)
                if let test = plugin.selfTest { selfTests.append((file, plugin.name, test)) }
                skipped += plugin.refused
                for handler in plugin.handlers {
                    if let other = owner[handler.name] {
                        skipped.append(
                            SkippedPlugin(
                                file: file,
                                reason:
                                    "handler `\(handler.name)` is already provided by \(other); rename one of them"))
                        continue
                    }
                    owner[handler.name] = file
                    candidates.append(handler)
                }
            } catch {
                skipped.append(SkippedPlugin(file: file, reason: "\(error)"))
            }
        }
        for handler in candidates {
            var state: UnsafeMutableRawPointer?
            if let onStart = handler.onWorkerStart {
                announceLoading(file: handler.file, handler: handler.name)
                errorMessage = nil
                currentPlugin = handler.plugin
                let status = withHostAPI { api in onStart(context, api, handler.handlerData, &state) }
                if status != 0 {
                    let why = errorMessage ?? "on_worker_start returned \(status)"
                    skipped.append(SkippedPlugin(file: handler.file, reason: "handler `\(handler.name)`: \(why)"))
                    continue
                }
            }
            handlers.append(handler)
            workerStates.append(state)
        }
        if config.runSelfTests == true {
            // After every on_worker_start, as the new version would serve.
            for test in selfTests where !skipped.contains(where: { $0.file == test.file }) {
                announceLoading(file: test.file, handler: WorkerProcess.selfTestMarker)
                errorMessage = nil
                currentPlugin = test.plugin
                let status = withHostAPI { api in test.run(context, api) }
                if status != 0 {
                    let why = errorMessage ?? "it returned \(status)"
                    skipped.append(SkippedPlugin(file: test.file, reason: "self-test failed: \(why)"))
                }
            }
        }
        errorMessage = nil
        // Names of plugin handlers stay theirs even in a worker where on_worker_start
        // failed, so a binding never answers for a handler in some workers only.
        let (bound, skippedBindings) = BindingLoader.load(
            config.bindings ?? [], takenNames: owner, allowInsecure: config.allowInsecurePlugins == true
        ) { event in
            switch event {
            case .opening(let library, let marker): announceLoading(file: library, handler: marker)
            case .insecure(let problem):
                WorkerToHost.log(.warning, "loading despite --allow-insecure-plugins: \(problem.plain)").write(to: &output)
            }
        }
        bindings = bound
        let loaded =
            handlers.map {
                LoadedHandler(name: $0.name, plugin: $0.plugin, pluginVersion: $0.pluginVersion, file: $0.file)
            }
            + bindings.map {
                LoadedHandler(
                    name: $0.spec.name, plugin: BindingLoader.pluginName, pluginVersion: $0.signature.description,
                    file: $0.spec.library, resolvedFile: $0.libraryPath,
                    sha256: $0.libraryPath.flatMap { try? sha256Hex(ofFile: $0) })
            }
        let hello = WorkerHello(
            pid: getpid(), handlers: loaded, skipped: skipped,
            skippedBindings: config.bindings == nil ? nil : skippedBindings)
        WorkerToHost.hello(hello).write(to: &output)
    }

    /// Tells the host what is about to run, before it runs: if the process dies
    /// there, the host knows which file to blame and leaves it out next time.
    private func announceLoading(file: String, handler: String) {
        WorkerToHost.loading(file: file, handler: handler).write(to: &output)
        try? flush()
    }

    private func stopHandlers() {
        limits?.beforeTask()
        for (index, handler) in handlers.enumerated() {
            guard let onStop = handler.onWorkerStop else { continue }
            currentPlugin = handler.plugin
            withHostAPI { api in onStop(context, api, handler.handlerData, workerStates[index]) }
        }
    }

    // MARK: Tasks

    private func execute(id: TaskID, attempt: UInt32, priority: Int32, index: Int, payload: ByteBuffer) {
        if index >= handlers.count && index - handlers.count < bindings.count {
            return executeBinding(bindings[index - handlers.count], id: id, payload: payload)
        }
        guard index < handlers.count else {
            writeDone(id: id, status: .permanentFailure, message: "worker has no handler number \(index)")
            return
        }
        let handler = handlers[index]
        result.clear()
        errorMessage = nil
        inTask = true
        currentTask = id
        currentPlugin = handler.plugin
        limits?.beforeTask()
        board?.begin(id)
        defer { board?.end() }
        let status = payload.withUnsafeReadableBytes { bytes in
            var task = swy_task_t(
                struct_size: UInt32(MemoryLayout<swy_task_t>.size), attempt: attempt, id: id,
                handler: handler.cName, payload: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
                payload_len: bytes.count, priority: priority, reserved: 0)
            return withHostAPI { api in
                handler.onMessage(context, api, &task, handler.handlerData, workerStates[index])
            }
        }
        inTask = false
        switch status {
        case SWY_OK:
            WorkerToHost.writeDone(id: id, status: .ok, body: &result, to: &output)
        case SWY_ERR_PERMANENT, SWY_ERR_RETRY:
            writeDone(
                id: id, status: status == SWY_ERR_RETRY ? .retryableFailure : .permanentFailure,
                message: errorMessage ?? "handler `\(handler.name)` failed without setting an error message")
        default:
            writeDone(
                id: id, status: .permanentFailure,
                message: "handler `\(handler.name)` returned unknown status \(status.rawValue)")
        }
    }

    /// Runs a task of a bound C function: a crash in it kills this worker like a plugin's would.
    private func executeBinding(_ binding: BoundFunction, id: TaskID, payload: ByteBuffer) {
        result.clear()
        currentTask = id
        limits?.beforeTask()
        board?.begin(id)
        defer { board?.end() }
        let outcome = payload.withUnsafeReadableBytes { bytes in
            binding.call(payload: bytes, into: &result, maxResultSize: maxResultSize)
        }
        switch outcome {
        case .ok:
            WorkerToHost.writeDone(id: id, status: .ok, body: &result, to: &output)
        case .badArguments(let message):
            writeDone(id: id, status: .badArguments, message: "\(binding.spec.name): \(message)")
        case .failed(let message):
            writeDone(id: id, status: .permanentFailure, message: message)
        }
    }

    private func writeDone(id: TaskID, status: HandlerStatus, message: String) {
        var body = ByteBuffer(string: message)
        WorkerToHost.writeDone(id: id, status: status, body: &body, to: &output)
    }

    // MARK: I/O

    private func nextFrame() throws -> Frame? {
        while true {
            if let frame = try Frame.read(from: &input) { return frame }
            guard try fill() else { return nil }
        }
    }

    /// Reads what the socket has (blocking until something arrives). False at end of input.
    private func fill() throws -> Bool {
        if input.readerIndex > 0 && input.readableBytes == 0 { input.clear() }
        if input.readerIndex > 32 * 1024 { input.discardReadBytes() }
        let count = try input.writeWithUnsafeMutableBytes(minimumWritableBytes: 64 * 1024) { buffer in
            while true {
                let n = read(fd, buffer.baseAddress, buffer.count)
                if n >= 0 { return n }
                if errno == EINTR { continue }
                throw SystemError(call: "read", errno: errno)
            }
        }
        return count > 0
    }

    func flush() throws {
        while output.readableBytes > 0 {
            let written = output.withUnsafeReadableBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw SystemError(call: "write", errno: errno)
            }
            output.moveReaderIndex(forwardBy: written)
        }
        output.clear()
    }

    // MARK: The host API table

    private func withHostAPI<R>(_ body: (UnsafePointer<swy_host_api_t>) -> R) -> R {
        body(WorkerRuntime.hostAPI)
    }

    /// The table of host callbacks, built once per process and never freed.
    nonisolated(unsafe) static let hostAPI: UnsafePointer<swy_host_api_t> = {
        // Safe: written once here, read-only afterwards, and the worker is single-threaded.
        let table = UnsafeMutablePointer<swy_host_api_t>.allocate(capacity: 1)
        table.initialize(
            to: swy_host_api_t(
                abi_version: UInt32(SWY_ABI_VERSION),
                struct_size: UInt32(MemoryLayout<swy_host_api_t>.size),
                log: { context, level, message in
                    guard let runtime = WorkerRuntime.from(context), let message else { return }
                    let text = "[\(runtime.currentPlugin)] " + String(cString: message)
                    WorkerToHost.log(WorkerLogLevel(rawValue: UInt8(clamping: level.rawValue)) ?? .info, text)
                        .write(to: &runtime.output)
                },
                result_append: { context, bytes, length in
                    guard let runtime = WorkerRuntime.from(context), runtime.inTask else { return -1 }
                    guard length <= runtime.maxResultSize - runtime.result.readableBytes else { return -1 }
                    guard length > 0 else { return 0 }
                    guard let bytes else { return -1 }
                    runtime.result.writeBytes(UnsafeRawBufferPointer(start: bytes, count: length))
                    return 0
                },
                set_error: { context, message in
                    guard let runtime = WorkerRuntime.from(context) else { return }
                    runtime.errorMessage = message.map { String(cString: $0) }
                },
                config_get: { context, key in
                    guard let runtime = WorkerRuntime.from(context), let key else { return nil }
                    return runtime.configStrings[String(cString: key)].map { UnsafePointer($0) }
                },
                progress: { context, done, total in
                    guard let runtime = WorkerRuntime.from(context), runtime.inTask else { return }
                    WorkerToHost.progress(id: runtime.currentTask, done: done, total: total).write(
                        to: &runtime.output)
                    // A waiting client should see progress now, not with the result.
                    try? runtime.flush()
                }
            ))
        return UnsafePointer(table)
    }()
}

/// Writes to descriptor 2 directly (the C `stderr` global is not concurrency-safe to name in Swift 6).
func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}

/// `swy_plugin_t.self_test`, as Swift sees it.
typealias SelfTest = @convention(c) (OpaquePointer?, UnsafePointer<swy_host_api_t>?) -> Int32
