import Foundation
import NIOCore
import Testing

@testable import SwitchyardCore

func roundTrip(_ message: HostToWorker, type: FrameType) throws -> HostToWorker {
    var wire = ByteBuffer()
    message.write(to: &wire)
    let frame = try onlyFrame(in: wire)
    #expect(frame.type == type)
    #expect(frame.requestID == 0)
    return try HostToWorker(frame: frame)
}

func roundTrip(_ message: WorkerToHost, type: FrameType) throws -> WorkerToHost {
    var wire = ByteBuffer()
    message.write(to: &wire)
    let frame = try onlyFrame(in: wire)
    #expect(frame.type == type)
    #expect(frame.requestID == 0)
    return try WorkerToHost(frame: frame)
}

@Suite("Worker link round trip")
struct WorkerProtocolTests {
    @Test func config() throws {
        let config = WorkerConfig(
            workerID: 3, generation: 2, plugins: ["/opt/p/libswyplugin-echo.so", "/opt/p/länge.so"],
            config: ["echo.prefix": "» ", "empty": ""], maxResultSize: 16 << 20)
        #expect(try roundTrip(.config(config), type: .workerConfig) == .config(config))
    }

    @Test func configJSONKeys() throws {
        let config = WorkerConfig(workerID: 0, generation: 1, plugins: [], config: [:], maxResultSize: 1)
        var wire = ByteBuffer()
        HostToWorker.config(config).write(to: &wire)
        let body = try onlyFrame(in: wire).body
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
        #expect(Set(json.keys) == ["workerID", "generation", "plugins", "config", "maxResultSize"])
    }

    @Test(arguments: [0, 5, 1 << 20])
    func task(size: Int) throws {
        let message = HostToWorker.task(
            id: 77, attempt: 2, priority: -4, handlerIndex: 65_535, payload: pattern(size))
        #expect(try roundTrip(message, type: .workerTask) == message)
    }

    @Test func taskHeaderSizeMatchesWhatIsWritten() {
        var wire = ByteBuffer()
        HostToWorker.task(id: 1, attempt: 1, priority: 0, handlerIndex: 0, payload: ByteBuffer()).write(to: &wire)
        #expect(wire.readableBytes == HostToWorker.taskHeaderSize)
        #expect(HostToWorker.taskHeaderSize == 28)
    }

    @Test func stop() throws {
        #expect(try roundTrip(.stop, type: .workerStop) == .stop)
    }

    @Test func hello() throws {
        let hello = WorkerHello(
            pid: 31337,
            handlers: [
                LoadedHandler(name: "echo", plugin: "echo", pluginVersion: "1.0.0", file: "/p/libswyplugin-echo.so"),
                LoadedHandler(name: "wc", plugin: "wordcount", pluginVersion: "0.1", file: "/p/wc.so"),
            ],
            skipped: [SkippedPlugin(file: "/p/old.so", reason: "plugin `/p/old.so` was built for ABI 2")])
        #expect(try roundTrip(.hello(hello), type: .workerHello) == .hello(hello))
    }

    @Test func helloWithNothingLoaded() throws {
        let hello = WorkerHello(pid: 1, handlers: [], skipped: [])
        #expect(try roundTrip(.hello(hello), type: .workerHello) == .hello(hello))
    }

    @Test(arguments: [HandlerStatus.ok, .permanentFailure, .retryableFailure, .badArguments])
    func done(status: HandlerStatus) throws {
        for body in [ByteBuffer(), text("résultat ✓"), pattern(1 << 20)] {
            let message = WorkerToHost.done(id: 9, status: status, body: body)
            #expect(try roundTrip(message, type: .workerDone) == message)
        }
    }

    @Test func progress() throws {
        let message = WorkerToHost.progress(id: 4, done: 50, total: 100)
        #expect(try roundTrip(message, type: .workerProgress) == message)
    }

    @Test(arguments: [WorkerLogLevel.debug, .info, .warning, .error])
    func log(level: WorkerLogLevel) throws {
        for text in ["", "loaded 3 handlers", "Größe überschritten 🚫"] {
            let message = WorkerToHost.log(level, text)
            #expect(try roundTrip(message, type: .workerLog) == message)
        }
    }

    @Test func logWithAnUnknownLevelIsReadAsInfo() throws {
        let parsed = try WorkerToHost(frame: frame(.workerLog, requestID: 0, body: [9] + Array("hi".utf8)))
        #expect(parsed == .log(.info, "hi"))
    }

    @Test func loadingNamesTheFileAndTheHandler() throws {
        for (file, handler) in [("/p/libx.so", ""), ("/p/libx.so", "resize"), ("/p/ü ber.so", "h")] {
            let message = WorkerToHost.loading(file: file, handler: handler)
            #expect(try roundTrip(message, type: .workerLoading) == message)
        }
    }

    @Test func loadingWithAFileLengthPastTheBodyIsRejected() throws {
        #expect(throws: ProtocolError.self) {
            try WorkerToHost(frame: frame(.workerLoading, requestID: 0, body: [0, 9] + Array("abc".utf8)))
        }
    }
}
