import Foundation
import NIOCore
import Testing

@testable import SwitchyardCore

/// Writes a client message and parses it back, checking the frame header on the way.
func roundTrip(_ message: ClientMessage, requestID: UInt32 = 0x0A0B_0C0D) throws -> ClientMessage {
    var wire = ByteBuffer()
    message.write(requestID: requestID, to: &wire)
    let frame = try onlyFrame(in: wire)
    #expect(frame.type == message.frameType)
    #expect(frame.requestID == requestID)
    return try ClientMessage(frame: frame)
}

/// Writes a server message and parses it back, checking the frame header on the way.
func roundTrip(_ message: ServerMessage, type: FrameType, requestID: UInt32 = 0x0A0B_0C0D) throws -> ServerMessage {
    var wire = ByteBuffer()
    message.write(requestID: requestID, to: &wire)
    let frame = try onlyFrame(in: wire)
    #expect(frame.type == type)
    #expect(frame.requestID == requestID)
    #expect(frame.flags == 0)
    return try ServerMessage(frame: frame)
}

@Suite("Client messages round trip")
struct ClientMessageRoundTripTests {
    @Test(arguments: ["switchyard-cli", "", "Zürich 客户端 🚀"])
    func hello(name: String) throws {
        let message = ClientMessage.hello(minVersion: 1, maxVersion: 7, clientName: name)
        #expect(try roundTrip(message) == message)
    }

    @Test func helloNameLongerThan255BytesIsCutAtAScalarBoundary() throws {
        // 200 two-byte scalars: 400 bytes, cut to 127 whole scalars (254 bytes), never mid-scalar.
        let message = ClientMessage.hello(minVersion: 1, maxVersion: 1, clientName: String(repeating: "é", count: 200))
        let parsed = try roundTrip(message)
        #expect(parsed == .hello(minVersion: 1, maxVersion: 1, clientName: String(repeating: "é", count: 127)))
    }

    static let submits: [SubmitRequest] = [
        SubmitRequest(handler: "echo", payload: text("hello")),
        SubmitRequest(handler: "echo", payload: ByteBuffer()),
        SubmitRequest(handler: "sha256", payload: pattern(1 << 20), priority: -5, background: true),
        SubmitRequest(
            handler: "resize.v2-fast_x", payload: text("ünï ✓"), priority: WireProtocol.priorityRange.upperBound,
            maxAttempts: 100),
        SubmitRequest(
            handler: "h", payload: ByteBuffer(), priority: WireProtocol.priorityRange.lowerBound, background: true,
            maxAttempts: 1),
    ]

    @Test(arguments: submits)
    func submit(request: SubmitRequest) throws {
        let parsed = try roundTrip(.submit(request))
        #expect(parsed == .submit(request))
    }

    @Test func submitBackgroundIsFlagBitZero() throws {
        var wire = ByteBuffer()
        ClientMessage.submit(SubmitRequest(handler: "echo", payload: ByteBuffer(), background: true))
            .write(requestID: 1, to: &wire)
        #expect(try onlyFrame(in: wire).flags == 0x01)
        // Other flag bits are ignored by the parser; only bit 0 matters.
        var frame = try onlyFrame(in: wire)
        frame.flags = 0xFE
        guard case .submit(let request) = try ClientMessage(frame: frame) else {
            Issue.record("not a submit")
            return
        }
        #expect(!request.background)
    }

    @Test(arguments: [1, 0, UInt64.max] as [TaskID])
    func taskStatus(id: TaskID) throws {
        #expect(try roundTrip(.taskStatus(id)) == .taskStatus(id))
    }

    @Test func serverStatus() throws {
        var wire = ByteBuffer()
        ClientMessage.serverStatus.write(requestID: 5, to: &wire)
        #expect(wire.readableBytes == Frame.headerSize)
        #expect(try roundTrip(.serverStatus) == .serverStatus)
    }

    @Test(arguments: [0, 1, 1024])
    func ping(size: Int) throws {
        #expect(try roundTrip(.ping(pattern(size))) == .ping(pattern(size)))
    }

    @Test func helloWithExtensionsIsAcceptedAndTheExtensionsSkipped() throws {
        let body =
            be(WireProtocol.magic) + be(UInt16(1)) + be(UInt16(2)) + short("cli") + be(UInt16(2))
            + short("compression") + be(UInt32(3)) + Array("lz4".utf8)
            + short("empty") + be(UInt32(0))
        let parsed = try ClientMessage(frame: frame(.hello, body: body))
        #expect(parsed == .hello(minVersion: 1, maxVersion: 2, clientName: "cli"))
    }
}

@Suite("Server messages round trip")
struct ServerMessageRoundTripTests {
    @Test(arguments: ["switchyard 1.0", "", "サーバー ⚙︎"])
    func helloOK(name: String) throws {
        let message = ServerMessage.helloOK(version: 1, maxFrameSize: UInt32(Frame.defaultMaxSize), serverName: name)
        #expect(try roundTrip(message, type: .helloOK) == message)
    }

    @Test(arguments: [1, UInt64.max] as [TaskID])
    func accepted(id: TaskID) throws {
        #expect(try roundTrip(.accepted(id), type: .accepted) == .accepted(id))
    }

    @Test(arguments: [0, 3, 1 << 20])
    func result(size: Int) throws {
        let message = ServerMessage.result(99, pattern(size))
        #expect(try roundTrip(message, type: .result) == message)
    }

    @Test func error() throws {
        for message in [
            ServerMessage.error(.unknownHandler, taskID: 0, message: "no handler `nope`; loaded: echo, sha256"),
            .error(.handlerFailed, taskID: 12, message: "ошибка: 文件不存在 💥"),
            .error(.badRequest, taskID: 0, message: ""),
            .error(ErrorCode(rawValue: 777), taskID: 3, message: "from a newer server"),
        ] {
            #expect(try roundTrip(message, type: .error) == message)
        }
    }

    @Test func errorMessageLongerThan65535BytesIsCutAtAScalarBoundary() throws {
        // 40,000 two-byte scalars: the 65,535-byte limit falls inside one, which must be dropped whole.
        let long = String(repeating: "é", count: 40_000)
        let parsed = try roundTrip(.error(.handlerFailed, taskID: 1, message: long), type: .error)
        #expect(parsed == .error(.handlerFailed, taskID: 1, message: String(repeating: "é", count: 32_767)))
    }

    @Test func progress() throws {
        let message = ServerMessage.progress(5, done: 3, total: UInt64.max)
        #expect(try roundTrip(message, type: .progress) == message)
    }

    static let infos: [TaskInfo] = [
        TaskInfo(id: 1, state: .queued, handler: "echo", priority: 0, attempts: 0, maxAttempts: 2),
        TaskInfo(
            id: 2, state: .succeeded, handler: "sha256", priority: -3, attempts: 1, maxAttempts: 2,
            result: pattern(70_000)),
        TaskInfo(
            id: 3, state: .succeeded, handler: "echo", priority: 0, attempts: 1, maxAttempts: 1,
            result: ByteBuffer()),
        TaskInfo(
            id: 4, state: .dead, handler: "fail", priority: 9, attempts: 3, maxAttempts: 3,
            errorCode: .handlerFailed, errorMessage: "disk full — réessayez (attempt 3 of 3)"),
        TaskInfo(
            id: 5, state: .queued, handler: "crash", priority: 1, attempts: 1, maxAttempts: 2,
            errorCode: .workerCrashed, errorMessage: "worker 0 (pid 123) exited on signal 11"),
        TaskInfo(
            id: UInt64.max, state: .running, handler: String(repeating: "x", count: 255), priority: Int32.min,
            attempts: UInt32.max, maxAttempts: UInt32.max),
    ]

    @Test(arguments: infos)
    func taskInfo(info: TaskInfo) throws {
        #expect(try roundTrip(.taskInfo(info), type: .taskInfo) == .taskInfo(info))
    }

    @Test(arguments: TaskState.allCases)
    func taskInfoCarriesEveryState(state: TaskState) throws {
        let info = TaskInfo(id: 8, state: state, handler: "echo", priority: 0, attempts: 1, maxAttempts: 2)
        #expect(try roundTrip(.taskInfo(info), type: .taskInfo) == .taskInfo(info))
    }

    @Test func serverInfoCarriesTheStatusDocument() throws {
        let status = ServerStatus(
            server: "switchyard 0.1", pid: 4242, listen: "127.0.0.1:7411", uptimeSeconds: 12.5,
            strategy: "round_robin", queued: 3, running: 2, succeeded: 10, failed: 1, workerRestarts: 0,
            workers: [
                .init(id: 0, pid: 4243, generation: 1, state: "ready", tasksDone: 7, inFlight: 2, handlers: ["echo"])
            ],
            handlers: [.init(name: "echo", plugin: "echo", pluginVersion: "1.0.0", file: "/p/echo.so", workers: 1)],
            skippedPlugins: [SkippedPlugin(file: "/p/bad.so", reason: "built for ABI 2; this host speaks ABI 1")])
        let parsed = try roundTrip(.serverInfo(status.encoded()), type: .serverInfo)
        guard case .serverInfo(let json) = parsed else {
            Issue.record("not SERVER_INFO: \(parsed)")
            return
        }
        #expect(try ServerStatus(json: json) == status)
    }

    @Test func serverStatusJSONKeysAreTheDocumentedOnes() throws {
        let status = ServerStatus(
            server: "s", pid: 1, listen: "l", uptimeSeconds: 0, strategy: "round_robin", queued: 0, running: 0,
            succeeded: 0, failed: 0, workerRestarts: 0,
            workers: [.init(id: 0, pid: 2, generation: 1, state: "ready", tasksDone: 0, inFlight: 0, handlers: [])],
            handlers: [.init(name: "n", plugin: "p", pluginVersion: "v", file: "f", workers: 1)],
            skippedPlugins: [SkippedPlugin(file: "f", reason: "r")])
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(status.encoded().readableBytesView)) as? [String: Any])
        #expect(
            Set(json.keys) == [
                "server", "pid", "listen", "uptimeSeconds", "strategy", "queued", "running", "succeeded", "failed",
                "workerRestarts", "workers", "handlers", "skippedPlugins",
            ])
        let worker = try #require((json["workers"] as? [[String: Any]])?.first)
        #expect(Set(worker.keys) == ["id", "pid", "generation", "state", "tasksDone", "inFlight", "handlers"])
        let handler = try #require((json["handlers"] as? [[String: Any]])?.first)
        #expect(Set(handler.keys) == ["name", "plugin", "pluginVersion", "file", "workers"])
        let skipped = try #require((json["skippedPlugins"] as? [[String: Any]])?.first)
        #expect(Set(skipped.keys) == ["file", "reason"])
    }

    @Test func bindingsAreAnOptionalStatusFieldOlderPeersDoNotNeed() throws {
        var status = ServerStatus(
            server: "s", pid: 1, listen: "l", uptimeSeconds: 0, strategy: "round_robin", queued: 0, running: 0,
            succeeded: 0, failed: 0, workerRestarts: 0, workers: [], handlers: [], skippedPlugins: [])
        // A document from a server without bindings has no key for them: it still decodes.
        let old = try #require(
            try JSONSerialization.jsonObject(with: Data(status.encoded().readableBytesView)) as? [String: Any])
        #expect(old["bindings"] == nil)
        #expect(try ServerStatus(json: status.encoded()).bindings == nil)
        status.bindings = [
            .init(name: "add", library: "libx.so", symbol: "add", signature: "int64(int64, int64)", workers: 2, skipped: nil),
            .init(name: "gone", library: "liby.so", symbol: "f", signature: "void()", workers: 0, skipped: "not found"),
        ]
        #expect(try ServerStatus(json: status.encoded()) == status)
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(status.encoded().readableBytesView)) as? [String: Any])
        let binding = try #require((json["bindings"] as? [[String: Any]])?.last)
        #expect(Set(binding.keys) == ["name", "library", "symbol", "signature", "workers", "skipped"])
    }

    @Test(arguments: [0, 1024])
    func pong(size: Int) throws {
        #expect(try roundTrip(.pong(pattern(size)), type: .pong) == .pong(pattern(size)))
    }
}
