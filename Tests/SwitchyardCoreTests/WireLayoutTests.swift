import NIOCore
import Testing

@testable import SwitchyardCore

/// Exact bytes of frames against hand-written expectations, so the layout in
/// docs/PROTOCOL.md is pinned: a change here is a wire-protocol change.
@Suite("Wire layout")
struct WireLayoutTests {
    func written(_ message: ClientMessage, requestID: UInt32) -> [UInt8] {
        var wire = ByteBuffer()
        message.write(requestID: requestID, to: &wire)
        return Array(wire.readableBytesView)
    }

    func written(_ message: ServerMessage, requestID: UInt32) -> [UInt8] {
        var wire = ByteBuffer()
        message.write(requestID: requestID, to: &wire)
        return Array(wire.readableBytesView)
    }

    /// The worked example in docs/PROTOCOL.md.
    static let submitExample: [UInt8] = [
        0x00, 0x00, 0x00, 0x1A,  // length: 26 bytes follow
        0x02,  // type: SUBMIT
        0x00,  // flags: wait for the result
        0x00, 0x00, 0x00, 0x01,  // request id 1
        0x00, 0x00, 0x00, 0x05,  // priority 5
        0x04, 0x65, 0x63, 0x68, 0x6F,  // handler "echo"
        0x00, 0x01,  // one option
        0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x03,  // tag 1 (max_attempts), length 4, value 3
        0x68, 0x69,  // payload "hi"
    ]

    static let resultExample: [UInt8] = [
        0x00, 0x00, 0x00, 0x10,  // length: 16 bytes follow
        0x83,  // type: RESULT
        0x00,  // flags
        0x00, 0x00, 0x00, 0x01,  // request id 1, as in the SUBMIT
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2A,  // task id 42
        0x68, 0x69,  // result "hi"
    ]

    @Test func submitWithAnOption() throws {
        let submit = SubmitRequest(handler: "echo", payload: text("hi"), priority: 5, maxAttempts: 3)
        #expect(written(.submit(submit), requestID: 1) == Self.submitExample)
        #expect(try ClientMessage(frame: onlyFrame(in: bytes(Self.submitExample))) == .submit(submit))
    }

    @Test func backgroundSubmitWithoutOptions() {
        let submit = SubmitRequest(handler: "sleep", payload: ByteBuffer(), priority: -1, background: true)
        #expect(
            written(.submit(submit), requestID: 0x0102_0304) == [
                0x00, 0x00, 0x00, 0x12,  // 18 bytes follow
                0x02, 0x01,  // SUBMIT, background
                0x01, 0x02, 0x03, 0x04,  // request id
                0xFF, 0xFF, 0xFF, 0xFF,  // priority -1
                0x05, 0x73, 0x6C, 0x65, 0x65, 0x70,  // handler "sleep"
                0x00, 0x00,  // no options; no payload
            ])
    }

    @Test func result() throws {
        #expect(written(.result(42, text("hi")), requestID: 1) == Self.resultExample)
        #expect(try ServerMessage(frame: onlyFrame(in: bytes(Self.resultExample))) == .result(42, text("hi")))
    }

    @Test func hello() {
        #expect(
            written(.hello(minVersion: 1, maxVersion: 1, clientName: "cli"), requestID: 0) == [
                0x00, 0x00, 0x00, 0x14,  // 20 bytes follow
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00,  // HELLO, flags 0, request id 0
                0x53, 0x57, 0x59, 0x44,  // magic "SWYD"
                0x00, 0x01, 0x00, 0x01,  // versions 1...1
                0x03, 0x63, 0x6C, 0x69,  // client name "cli"
                0x00, 0x00,  // no extensions
            ])
    }

    @Test func helloOK() {
        #expect(
            written(.helloOK(version: 1, maxFrameSize: 16 << 20, serverName: "sy"), requestID: 0) == [
                0x00, 0x00, 0x00, 0x0F,  // 15 bytes follow
                0x81, 0x00, 0x00, 0x00, 0x00, 0x00,  // HELLO_OK
                0x00, 0x01,  // version 1
                0x01, 0x00, 0x00, 0x00,  // max frame size 16 MiB
                0x02, 0x73, 0x79,  // server name "sy"
            ])
    }

    @Test func accepted() {
        #expect(
            written(.accepted(7), requestID: 2) == [
                0x00, 0x00, 0x00, 0x0E, 0x82, 0x00, 0x00, 0x00, 0x00, 0x02,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
            ])
    }

    @Test func error() {
        #expect(
            written(.error(.unknownHandler, taskID: 0, message: "no"), requestID: 3) == [
                0x00, 0x00, 0x00, 0x14,  // 20 bytes follow
                0x84, 0x00, 0x00, 0x00, 0x00, 0x03,  // ERROR, request id 3
                0x00, 0x0A,  // code 10 UNKNOWN_HANDLER
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // no task
                0x00, 0x02, 0x6E, 0x6F,  // message "no"
            ])
    }

    @Test func progress() {
        #expect(
            written(.progress(1, done: 2, total: 3), requestID: 4) == [
                0x00, 0x00, 0x00, 0x1E, 0x85, 0x00, 0x00, 0x00, 0x00, 0x04,
                0, 0, 0, 0, 0, 0, 0, 1,
                0, 0, 0, 0, 0, 0, 0, 2,
                0, 0, 0, 0, 0, 0, 0, 3,
            ])
    }

    @Test func taskInfo() {
        let info = TaskInfo(
            id: 5, state: .succeeded, handler: "e", priority: 0, attempts: 1, maxAttempts: 2, result: text("ok"))
        #expect(
            written(.taskInfo(info), requestID: 6) == [
                0x00, 0x00, 0x00, 0x4A,  // 74 bytes follow
                0x86, 0x00, 0x00, 0x00, 0x00, 0x06,  // TASK_INFO, request id 6
                0, 0, 0, 0, 0, 0, 0, 5,  // task id 5
                0x03,  // state succeeded
                0x00, 0x00, 0x00, 0x00,  // priority 0
                0x00, 0x00, 0x00, 0x01,  // attempts 1
                0x00, 0x00, 0x00, 0x02,  // max attempts 2
                0x00, 0x00, 0x00, 0x00,  // no timeout
                0, 0, 0, 0, 0, 0, 0, 0,  // run at: unset
                0, 0, 0, 0, 0, 0, 0, 0,  // created at: unset
                0, 0, 0, 0, 0, 0, 0, 0,  // started at: unset
                0, 0, 0, 0, 0, 0, 0, 0,  // finished at: unset
                0x01, 0x65,  // handler "e"
                0x00,  // no key
                0x00,  // no unique key
                0x00, 0x00,  // no error code
                0x00, 0x00,  // empty error message
                0x01,  // has result
                0x6F, 0x6B,  // result "ok"
            ])
    }

    @Test func taskStatusServerStatusAndPing() {
        #expect(
            written(.taskStatus(258), requestID: 9) == [
                0x00, 0x00, 0x00, 0x0E, 0x03, 0x00, 0x00, 0x00, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0x01, 0x02,
            ])
        #expect(written(.serverStatus, requestID: 9) == [0x00, 0x00, 0x00, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00, 0x09])
        #expect(
            written(.ping(bytes([0xAB])), requestID: 9) == [0x00, 0x00, 0x00, 0x07, 0x05, 0x00, 0, 0, 0, 0x09, 0xAB])
    }

    @Test func workerTaskAndDone() {
        var wire = ByteBuffer()
        HostToWorker.task(id: 1, attempt: 2, priority: -1, handlerIndex: 3, payload: text("p")).write(to: &wire)
        #expect(
            Array(wire.readableBytesView) == [
                0x00, 0x00, 0x00, 0x19,  // 25 bytes follow
                0x42, 0x00, 0x00, 0x00, 0x00, 0x00,  // WORKER_TASK, request id 0
                0, 0, 0, 0, 0, 0, 0, 1,  // task id
                0, 0, 0, 2,  // attempt
                0xFF, 0xFF, 0xFF, 0xFF,  // priority -1
                0x00, 0x03,  // handler index
                0x70,  // payload "p"
            ])
        wire.clear()
        WorkerToHost.done(id: 1, status: .retryableFailure, body: text("x")).write(to: &wire)
        #expect(
            Array(wire.readableBytesView) == [
                0x00, 0x00, 0x00, 0x10, 0xC2, 0x00, 0x00, 0x00, 0x00, 0x00,
                0, 0, 0, 0, 0, 0, 0, 1,  // task id
                0x02,  // retryable failure
                0x78,  // message "x"
            ])
    }

    @Test func constantsAreTheDocumentedOnes() {
        #expect(WireProtocol.magic == 0x5357_5944)
        #expect(Array("SWYD".utf8) == be(WireProtocol.magic))
        #expect(Frame.defaultMaxSize == 16_777_216)
        #expect(WireProtocol.maxPingBody == 1024)
        #expect(
            [ErrorCode.badFrame, .frameTooLarge, .unsupportedVersion, .handshakeRequired, .badRequest,
             .unknownHandler, .unknownTask, .cancelled, .handlerFailed, .workerCrashed, .timeout, .shuttingDown,
             .queueFull, .tooManyRequests, .tooManyConnections, .handshakeTimeout, .idleTimeout, .payloadTooLarge,
             .internalError].map(\.rawValue)
                == [1, 2, 3, 4, 5, 10, 11, 12, 20, 21, 22, 30, 31, 32, 33, 34, 35, 36, 99])
        #expect(TaskState.allCases.map(\.rawValue) == [1, 2, 3, 4, 5, 6, 7])
    }
}
