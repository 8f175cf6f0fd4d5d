import NIOCore
import SwitchyardCore

/// The committed seed corpus (`fuzz/corpus`), made by the real codec: one
/// valid frame of every type, a few sessions of several frames, and the edges
/// of the framing. `SwitchyardFuzz seeds DIR` writes it; a test checks that
/// the committed files are what this makes, so a codec change cannot leave
/// the corpus behind.
public enum SeedCorpus {
    /// File name and bytes of every seed.
    public static var seeds: [(name: String, bytes: [UInt8])] {
        clientSeeds + serverSeeds + workerSeeds + sessionSeeds + handshakeSeeds + edgeSeeds
    }

    static func client(_ message: ClientMessage, requestID: UInt32 = 1) -> [UInt8] {
        var wire = ByteBuffer()
        message.write(requestID: requestID, to: &wire)
        return Array(wire.readableBytesView)
    }

    static func server(_ message: ServerMessage, requestID: UInt32 = 1) -> [UInt8] {
        var wire = ByteBuffer()
        message.write(requestID: requestID, to: &wire)
        return Array(wire.readableBytesView)
    }

    static func host(_ message: HostToWorker) -> [UInt8] {
        var wire = ByteBuffer()
        message.write(to: &wire)
        return Array(wire.readableBytesView)
    }

    static func worker(_ message: WorkerToHost) -> [UInt8] {
        var wire = ByteBuffer()
        message.write(to: &wire)
        return Array(wire.readableBytesView)
    }

    /// A frame of any type around `body`, bypassing the message encoders.
    static func raw(_ type: UInt8, flags: UInt8 = 0, requestID: UInt32 = 1, body: [UInt8]) -> [UInt8] {
        var wire = ByteBuffer()
        Frame(type: FrameType(rawValue: type), flags: flags, requestID: requestID, body: ByteBuffer(bytes: body))
            .write(to: &wire)
        return Array(wire.readableBytesView)
    }

    static func be<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }

    static let hello = client(.hello(minVersion: 1, maxVersion: 1, clientName: "fuzz-seed"))

    static let fullSubmit = SubmitRequest(
        handler: "echo", payload: ByteBuffer(string: "payload"), priority: -7, background: true, maxAttempts: 3,
        timeoutMillis: 60_000, key: "tenant-42", uniqueKey: "job-é")

    static let info = TaskInfo(
        id: 42, state: .succeeded, handler: "echo", priority: 3, attempts: 1, maxAttempts: 2, key: "k",
        uniqueKey: "u", timeoutMillis: 1000, runAt: 1_700_000_000_000, createdAt: 1_700_000_000_000,
        startedAt: 1_700_000_000_001, finishedAt: 1_700_000_000_002, result: ByteBuffer(string: "done"))

    static let failedInfo = TaskInfo(
        id: 43, state: .dead, handler: "fail", priority: 0, attempts: 2, maxAttempts: 2,
        errorCode: .handlerFailed, errorMessage: "no luck")

    static var clientSeeds: [(String, [UInt8])] {
        [
            ("client-hello", hello),
            // HELLO with an extension the server does not know (it skips them).
            (
                "client-hello-extension",
                raw(
                    0x01,
                    body: be(WireProtocol.magic) + be(UInt16(1)) + be(UInt16(3)) + [3] + Array("cli".utf8)
                        + be(UInt16(1)) + [4] + Array("note".utf8) + be(UInt32(2)) + [0xAB, 0xCD])
            ),
            ("client-submit", client(.submit(SubmitRequest(handler: "echo", payload: ByteBuffer(string: "hi"))))),
            ("client-submit-options", client(.submit(fullSubmit), requestID: 7)),
            (
                "client-submit-delay",
                client(.submit(SubmitRequest(handler: "sleep", payload: ByteBuffer(), delayMillis: 250)))
            ),
            (
                "client-submit-run-at",
                client(.submit(SubmitRequest(handler: "sleep", payload: ByteBuffer(), runAt: 1_700_000_000_000)))
            ),
            ("client-task-status", client(.taskStatus(42))),
            ("client-server-status", client(.serverStatus)),
            ("client-ping", client(.ping(ByteBuffer(string: "are you there?")))),
            ("client-wait", client(.wait(42))),
            ("client-cancel", client(.cancel(42))),
            ("client-list-tasks", client(.listTasks(TaskListQuery()))),
            (
                "client-list-tasks-filtered",
                client(.listTasks(TaskListQuery(state: .dead, handler: "echo", afterID: 10, limit: 1000)))
            ),
            ("client-strategy-list", client(.strategyList)),
            (
                "client-strategy-set",
                client(
                    .strategySet(
                        StrategySetRequest(name: "key_affinity", handler: "echo", config: ["spread": "2", "a": "b"])))
            ),
            (
                "client-strategy-load",
                client(.strategyLoad(StrategyLoadRequest(path: "/opt/s/libswystrategy-x.so", config: ["k": "v"])))
            ),
            ("client-reload", client(.reload())),
            (
                "client-reload-canary",
                client(.reload(CanaryOptions(percent: 10, tasks: 100, marginPercent: 5)))
            ),
        ]
    }

    static var serverSeeds: [(String, [UInt8])] {
        let status = ServerStatus(
            server: "switchyard", pid: 100, listen: "127.0.0.1:7400", uptimeSeconds: 1.5, strategy: "least_loaded",
            queued: 1, running: 2, succeeded: 3, failed: 4, workerRestarts: 0,
            workers: [
                .init(
                    id: 0, pid: 101, generation: 1, state: "ready", tasksDone: 5, inFlight: 1, handlers: ["echo"],
                    serviceNanosAverage: 1200, pluginGeneration: 1)
            ],
            handlers: [.init(name: "echo", plugin: "echo", pluginVersion: "1.0", file: "/p/e.so", workers: 1)],
            skippedPlugins: [.init(file: "/p/bad.so", reason: "wrong ABI")])
        let strategies = StrategyReport(
            available: [.init(name: "round_robin", source: "built-in")],
            active: [.init(scope: "default", name: "round_robin", config: [:], faults: 0)], notices: ["n"])
        let reload = ReloadReport(
            outcome: "reloaded", trigger: "request", generation: 2,
            files: [.init(file: "/p/e.so", sha256: String(repeating: "ab", count: 32), plugin: "echo", version: "2",
                handlers: ["echo"])],
            added: ["new"], removed: [], drained: 2, startedAt: 1_700_000_000.25, durationMillis: 12.5)
        return [
            ("server-hello-ok", server(.helloOK(version: 1, maxFrameSize: 16 << 20, serverName: "switchyard"))),
            ("server-accepted", server(.accepted(42))),
            ("server-result", server(.result(42, ByteBuffer(string: "hi")))),
            ("server-error", server(.error(.unknownHandler, taskID: 0, message: "no handler `x`"))),
            ("server-progress", server(.progress(42, done: 1, total: 3))),
            ("server-task-info", server(.taskInfo(info))),
            ("server-task-info-failed", server(.taskInfo(failedInfo))),
            ("server-task-list", server(.taskList([info, failedInfo]))),
            ("server-server-info", server(.serverInfo(status.encoded()))),
            ("server-pong", server(.pong(ByteBuffer(string: "are you there?")))),
            ("server-strategy-info", server(.strategyInfo(strategies.encoded()))),
            ("server-reload-info", server(.reloadInfo(reload.encoded()))),
        ]
    }

    static var workerSeeds: [(String, [UInt8])] {
        let config = WorkerConfig(
            workerID: 1, generation: 2, plugins: ["/p/libswyplugin-echo.so"], config: ["echo.prefix": "> "],
            maxResultSize: 1 << 20,
            bindings: [BindingSpec(name: "cbrt", library: "libm.so.6", symbol: "cbrt", signature: "double(double)")])
        let hello = WorkerHello(
            pid: 200, handlers: [.init(name: "echo", plugin: "echo", pluginVersion: "1", file: "/p/e.so")],
            skipped: [.init(file: "/p/bad.so", reason: "crashed")],
            skippedBindings: [.init(name: "nope", reason: "symbol not found")])
        return [
            ("worker-config", host(.config(config))),
            (
                "worker-task",
                host(.task(id: 42, attempt: 1, priority: 0, handlerIndex: 0, payload: ByteBuffer(string: "hi")))
            ),
            ("worker-stop", host(.stop)),
            ("worker-hello", worker(.hello(hello))),
            ("worker-done-ok", worker(.done(id: 42, status: .ok, body: ByteBuffer(string: "hi")))),
            ("worker-done-failed", worker(.done(id: 42, status: .retryableFailure, body: ByteBuffer(string: "busy")))),
            ("worker-progress", worker(.progress(id: 42, done: 1, total: 2))),
            ("worker-log", worker(.log(.warning, "careful"))),
            ("worker-loading", worker(.loading(file: "/p/e.so", handler: "echo"))),
        ]
    }

    /// Several frames in a row, as a connection carries them.
    static var sessionSeeds: [(String, [UInt8])] {
        [
            (
                "session-client",
                hello + client(.submit(fullSubmit), requestID: 2) + client(.taskStatus(1), requestID: 3)
                    + client(.ping(ByteBuffer()), requestID: 4)
            ),
            (
                "session-server",
                server(.helloOK(version: 1, maxFrameSize: 1024, serverName: "s")) + server(.progress(1, done: 0, total: 1))
                    + server(.result(1, ByteBuffer()), requestID: 2)
            ),
            (
                "session-worker",
                worker(.loading(file: "/p/e.so", handler: "")) + worker(.log(.info, "up"))
                    + worker(.done(id: 1, status: .ok, body: ByteBuffer()))
            ),
        ]
    }

    /// Handshakes on a server with tokens (`HandshakeFuzzer`'s): right ones,
    /// wrong ones up to the throttle's bar, and requests before a HELLO.
    static var handshakeSeeds: [(String, [UInt8])] {
        let submitHello = client(.hello(minVersion: 1, maxVersion: 1, clientName: "f", token: HandshakeFuzzer.submitToken))
        let adminHello = client(.hello(minVersion: 1, maxVersion: 1, clientName: "f", token: HandshakeFuzzer.adminToken))
        let wrongHello = client(.hello(minVersion: 1, maxVersion: 1, clientName: "f", token: "fuzz-wrong-token-0123456789"))
        return [
            ("handshake-submit-token", submitHello + client(.taskStatus(1), requestID: 2)),
            ("handshake-admin-token", adminHello),
            ("handshake-wrong-then-right", wrongHello + submitHello),
            ("handshake-wrong-until-barred", wrongHello + wrongHello + wrongHello + adminHello + adminHello),
            ("handshake-no-token", hello + submitHello),
            ("handshake-wrong-then-request", wrongHello + client(.ping(ByteBuffer()), requestID: 2) + adminHello),
        ]
    }

    /// The edges of the framing and of a few bodies.
    static var edgeSeeds: [(String, [UInt8])] {
        [
            ("edge-empty", []),
            ("edge-partial-length", [0, 0, 0]),
            ("edge-length-zero", be(UInt32(0))),
            ("edge-length-five", be(UInt32(5)) + [0x01, 0, 0, 0, 0]),
            ("edge-header-only-unknown-type", raw(0x7F, flags: 0xFF, requestID: .max, body: [])),
            ("edge-length-max", be(UInt32.max) + [0x02, 0, 0, 0, 0, 1]),
            // One byte over the default limit, declared by the header alone.
            ("edge-length-over-default", be(UInt32(Frame.defaultMaxSize - 3)) + [0x02, 0, 0, 0, 0, 1]),
            // A frame of exactly the fuzzer's small limit, then one a byte over it.
            (
                "edge-small-limit",
                raw(0x05, body: [UInt8](repeating: 0x61, count: FrameFuzzer.smallLimit - Frame.headerSize))
                    + raw(0x05, body: [UInt8](repeating: 0x62, count: FrameFuzzer.smallLimit - Frame.headerSize + 1))
            ),
            ("edge-truncated-submit", Array(client(.submit(fullSubmit)).dropLast(3))),
            ("edge-length-short-of-body", be(UInt32(8)) + Array(client(.taskStatus(1)).dropFirst(4))),
            (
                "edge-submit-unknown-option",
                raw(0x02, body: be(Int32(0)) + [4] + Array("echo".utf8) + be(UInt16(1)) + [0x63] + be(UInt16(1)) + [0])
            ),
            (
                "edge-submit-bad-utf8",
                raw(0x02, body: be(Int32(0)) + [2, 0xC3, 0x28] + be(UInt16(0)))
            ),
            ("edge-bad-magic", raw(0x01, body: be(UInt32(0x4745_5420)) + be(UInt16(1)) + be(UInt16(1)) + [0, 0, 0])),
            ("edge-worker-config-not-json", raw(0x41, requestID: 0, body: Array("{\"workerID\": [".utf8))),
        ]
    }
}
