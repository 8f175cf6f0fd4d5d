import NIOCore
import Testing

@testable import SwitchyardCore

/// A SUBMIT body: priority, handler, options (already encoded), payload.
func submitBody(
    priority: Int32 = 0, handler: [UInt8] = short("echo"), options: [[UInt8]] = [], payload: [UInt8] = []
) -> [UInt8] {
    be(priority) + handler + be(UInt16(options.count)) + options.flatMap { $0 } + payload
}

@Suite("Codec errors")
struct CodecErrorTests {
    // MARK: Truncated bodies name the field

    static let truncatedSubmits: [([UInt8], String)] = {
        let head = concat(be(Int32(0)), short("echo"))
        return [
            ([], "priority"),
            ([0, 0], "priority"),
            (be(Int32(0)), "handler"),
            (concat(be(Int32(0)), [10], Array("ech".utf8)), "handler"),
            (head, "option_count"),
            (concat(head, [0]), "option_count"),
            (concat(head, be(UInt16(1))), "option_tag"),
            (concat(head, be(UInt16(1)), [1, 0]), "option_length"),
            (concat(head, be(UInt16(1)), [1], be(UInt16(4)), [0, 0]), "option value"),
            (concat(head, be(UInt16(1)), [1], be(UInt16(2)), [0, 0]), "max_attempts"),
        ]
    }()

    @Test(arguments: truncatedSubmits)
    func truncatedSubmitNamesTheField(body: [UInt8], field: String) {
        expectProtocolError(.badFrame, mentioning: field) {
            _ = try ClientMessage(frame: frame(.submit, body: body))
        }
    }

    static let truncatedHellos: [([UInt8], String)] = {
        let magic = be(WireProtocol.magic)
        let versions = concat(magic, be(UInt16(1)), be(UInt16(1)))
        let named = concat(versions, short("c"))
        let oneExtension = concat(named, be(UInt16(1)), short("k"))
        return [
            ([], "magic"),
            (magic, "min_version"),
            (concat(magic, be(UInt16(1))), "max_version"),
            (versions, "client_name"),
            (concat(versions, [3, 0x61]), "client_name"),
            (named, "extension_count"),
            (concat(named, be(UInt16(1))), "extension_key"),
            (oneExtension, "extension_length"),
            (concat(oneExtension, be(UInt32(4)), [1, 2]), "extension_value"),
        ]
    }()

    @Test(arguments: truncatedHellos)
    func truncatedHelloNamesTheField(body: [UInt8], field: String) {
        expectProtocolError(.badFrame, mentioning: field) {
            _ = try ClientMessage(frame: frame(.hello, body: body))
        }
    }

    @Test func truncatedTaskStatusNamesTheField() {
        expectProtocolError(.badFrame, mentioning: "task_id") {
            _ = try ClientMessage(frame: frame(.taskStatus, body: [0, 0, 0, 1]))
        }
    }

    static let truncatedReplies: [(FrameType, [UInt8], String)] = {
        let fixed = concat(be(UInt64(1)), [1], be(Int32(0)), be(UInt32(0)), be(UInt32(1)))
        let times = concat(be(UInt32(0)), be(Int64(5)), be(Int64(5)), be(Int64(0)), be(Int64(0)))
        let infoHead = concat(fixed, times, short("echo"), short(""), short(""))
        return [
            (.helloOK, [0], "version"),
            (.helloOK, concat(be(UInt16(1)), [0, 0]), "max_frame_size"),
            (.helloOK, concat(be(UInt16(1)), be(UInt32(1)), [4, 0x61]), "server_name"),
            (.accepted, [1, 2, 3], "task_id"),
            (.result, [1, 2, 3, 4, 5, 6, 7], "task_id"),
            (.error, [0], "code"),
            (.error, concat(be(UInt16(5)), [0, 0]), "task_id"),
            (.error, concat(be(UInt16(5)), be(UInt64(0)), be(UInt16(10)), Array("short".utf8)), "message"),
            (.progress, concat(be(UInt64(1)), be(UInt64(1))), "total"),
            (.taskInfo, be(UInt64(1)), "state"),
            (.taskInfo, fixed, "timeout_ms"),
            (.taskInfo, concat(fixed, be(UInt32(0))), "run_at"),
            (.taskInfo, concat(fixed, be(UInt32(0)), be(Int64(5))), "created_at"),
            (.taskInfo, concat(fixed, be(UInt32(0)), be(Int64(5)), be(Int64(5))), "started_at"),
            (.taskInfo, concat(fixed, be(UInt32(0)), be(Int64(5)), be(Int64(5)), be(Int64(0))), "finished_at"),
            (.taskInfo, concat(fixed, times), "handler"),
            (.taskInfo, concat(fixed, times, short("echo")), "key"),
            (.taskInfo, concat(fixed, times, short("echo"), [3, 0x6B]), "key"),
            (.taskInfo, concat(fixed, times, short("echo"), short("k")), "unique_key"),
            (.taskInfo, infoHead, "error_code"),
            (.taskInfo, concat(infoHead, be(UInt16(0)), medium("")), "has_result"),
        ]
    }()

    @Test(arguments: truncatedReplies)
    func truncatedServerReplyNamesTheField(type: FrameType, body: [UInt8], field: String) {
        expectProtocolError(.badFrame, mentioning: field) {
            _ = try ServerMessage(frame: frame(type, body: body))
        }
    }

    static let truncatedTasks: [(FrameType, [UInt8], String)] = [
        (.workerTask, concat(be(UInt64(1)), be(UInt32(1)), be(Int32(0)), [0]), "handler_index"),
        (.workerTask, be(UInt64(1)), "attempt"),
    ]

    @Test(arguments: truncatedTasks)
    func truncatedHostToWorkerNamesTheField(type: FrameType, body: [UInt8], field: String) {
        expectProtocolError(.badFrame, mentioning: field) {
            _ = try HostToWorker(frame: frame(type, requestID: 0, body: body))
        }
    }

    static let truncatedWorkerReplies: [(FrameType, [UInt8], String)] = [
        (.workerDone, be(UInt64(1)), "status"),
        (.workerProgress, concat(be(UInt64(1)), be(UInt64(2))), "total"),
        (.workerLog, [], "level"),
    ]

    @Test(arguments: truncatedWorkerReplies)
    func truncatedWorkerToHostNamesTheField(type: FrameType, body: [UInt8], field: String) {
        expectProtocolError(.badFrame, mentioning: field) {
            _ = try WorkerToHost(frame: frame(type, requestID: 0, body: body))
        }
    }

    // MARK: Bad values

    @Test func badUTF8InAHandlerNameIsBadFrame() {
        expectProtocolError(.badFrame, mentioning: "handler", "UTF-8") {
            _ = try ClientMessage(frame: frame(.submit, body: submitBody(handler: [3, 0x65, 0xFF, 0xFE])))
        }
    }

    @Test func badUTF8ElsewhereNamesTheField() {
        expectProtocolError(.badFrame, mentioning: "client_name", "UTF-8") {
            let body = be(WireProtocol.magic) + be(UInt16(1)) + be(UInt16(1)) + [2, 0xC3, 0x28] + be(UInt16(0))
            _ = try ClientMessage(frame: frame(.hello, body: body))
        }
        expectProtocolError(.badFrame, mentioning: "message", "UTF-8") {
            _ = try ServerMessage(frame: frame(.error, body: be(UInt16(20)) + be(UInt64(1)) + be(UInt16(1)) + [0x80]))
        }
        expectProtocolError(.badFrame, mentioning: "message", "UTF-8") {
            _ = try WorkerToHost(frame: frame(.workerLog, requestID: 0, body: [1, 0xED, 0xA0, 0x80]))
        }
    }

    @Test func helloWithAWrongMagicIsUnsupportedVersion() {
        expectProtocolError(.unsupportedVersion, mentioning: "0x48545450", "SWYD") {
            // "HTTP": somebody pointed a web client at the port.
            let body = Array("HTTP".utf8) + be(UInt16(1)) + be(UInt16(1)) + short("curl") + be(UInt16(0))
            _ = try ClientMessage(frame: frame(.hello, body: body))
        }
    }

    @Test(arguments: [0, 7, 200] as [UInt8])
    func unknownSubmitOptionTagIsBadRequest(tag: UInt8) {
        expectProtocolError(.badRequest, mentioning: "option tag \(tag)") {
            let option = [tag] + be(UInt16(1)) + [7]
            _ = try ClientMessage(frame: frame(.submit, body: submitBody(options: [option])))
        }
    }

    @Test(arguments: [0, 101, UInt32.max])
    func maxAttemptsOutsideOneToHundredIsBadRequest(attempts: UInt32) {
        expectProtocolError(.badRequest, mentioning: "max_attempts", "\(attempts)") {
            let option = [SubmitOptionTag.maxAttempts.rawValue] + be(UInt16(4)) + be(attempts)
            _ = try ClientMessage(frame: frame(.submit, body: submitBody(options: [option])))
        }
    }

    @Test func maxAttemptsOptionWithTrailingBytesIsBadFrame() {
        expectProtocolError(.badFrame, mentioning: "max_attempts", "trailing") {
            let option = [SubmitOptionTag.maxAttempts.rawValue] + be(UInt16(5)) + be(UInt32(3)) + [0]
            _ = try ClientMessage(frame: frame(.submit, body: submitBody(options: [option])))
        }
    }

    @Test func submitPayloadIsEverythingAfterTheOptions() throws {
        let option = [SubmitOptionTag.maxAttempts.rawValue] + be(UInt16(4)) + be(UInt32(3))
        let parsed = try ClientMessage(
            frame: frame(.submit, body: submitBody(priority: -2, options: [option], payload: [9, 8, 7])))
        #expect(
            parsed
                == .submit(SubmitRequest(handler: "echo", payload: bytes([9, 8, 7]), priority: -2, maxAttempts: 3)))
    }

    @Test func pingOver1024BytesIsBadRequest() {
        expectProtocolError(.badRequest, mentioning: "1025", "1024") {
            _ = try ClientMessage(frame: Frame(type: .ping, requestID: 1, body: pattern(1025)))
        }
    }

    @Test func taskInfoWithAnUnknownStateIsBadFrame() {
        expectProtocolError(.badFrame, mentioning: "state 99") {
            _ = try ServerMessage(frame: frame(.taskInfo, body: be(UInt64(1)) + [99]))
        }
    }

    @Test func workerDoneWithAnUnknownStatusIsBadFrame() {
        // 3 (bad arguments, from a bound C function) is the last status defined.
        expectProtocolError(.badFrame, mentioning: "status 4") {
            _ = try WorkerToHost(frame: frame(.workerDone, requestID: 0, body: be(UInt64(1)) + [4]))
        }
    }

    @Test func workerJSONThatDoesNotParseIsBadFrame() {
        expectProtocolError(.badFrame, mentioning: "WORKER_CONFIG") {
            _ = try HostToWorker(frame: frame(.workerConfig, requestID: 0, body: Array("{\"workerID\":".utf8)))
        }
        expectProtocolError(.badFrame, mentioning: "WORKER_HELLO") {
            _ = try WorkerToHost(frame: frame(.workerHello, requestID: 0, body: Array("{}".utf8)))
        }
    }

    // MARK: Frames in the wrong direction

    @Test(arguments: [
        FrameType.helloOK, .accepted, .result, .error, .progress, .taskInfo, .serverInfo, .pong, .taskList,
        .strategyInfo, .workerConfig, .workerDone, FrameType(rawValue: 0x00), FrameType(rawValue: 0x0F),
        FrameType(rawValue: 0xFF),
    ])
    func clientFrameWithANonClientTypeIsBadRequest(type: FrameType) {
        expectProtocolError(.badRequest, mentioning: "\(type)", "not a client request") {
            _ = try ClientMessage(frame: frame(type, body: []))
        }
    }

    @Test(arguments: [
        FrameType.hello, .submit, .ping, .wait, .cancel, .listTasks, .strategyList, .strategySet, .strategyLoad,
        .workerHello, FrameType(rawValue: 0x8F),
    ])
    func serverFrameWithANonServerTypeIsBadFrame(type: FrameType) {
        expectProtocolError(.badFrame, mentioning: "not a server reply") {
            _ = try ServerMessage(frame: frame(type, body: []))
        }
    }

    @Test func workerLinkFramesInTheWrongDirectionAreBadFrame() {
        expectProtocolError(.badFrame, mentioning: "WORKER_DONE", "not a host-to-worker message") {
            _ = try HostToWorker(frame: frame(.workerDone, requestID: 0, body: []))
        }
        expectProtocolError(.badFrame, mentioning: "WORKER_TASK", "not a worker-to-host message") {
            _ = try WorkerToHost(frame: frame(.workerTask, requestID: 0, body: []))
        }
    }

    // MARK: Trailing bytes

    @Test func trailingBytesAfterAFixedClientLayoutAreBadFrame() {
        expectProtocolError(.badFrame, mentioning: "TASK_STATUS", "1 unexpected trailing") {
            _ = try ClientMessage(frame: frame(.taskStatus, body: be(UInt64(1)) + [0]))
        }
        expectProtocolError(.badFrame, mentioning: "SERVER_STATUS", "2 unexpected trailing") {
            _ = try ClientMessage(frame: frame(.serverStatus, body: [0, 0]))
        }
        expectProtocolError(.badFrame, mentioning: "HELLO", "trailing") {
            let body = be(WireProtocol.magic) + be(UInt16(1)) + be(UInt16(1)) + short("c") + be(UInt16(0)) + [0]
            _ = try ClientMessage(frame: frame(.hello, body: body))
        }
    }

    @Test func trailingBytesAfterAFixedServerLayoutAreBadFrame() {
        let cases: [(FrameType, [UInt8], String)] = [
            (.helloOK, be(UInt16(1)) + be(UInt32(1024)) + short("s") + [0], "HELLO_OK"),
            (.accepted, be(UInt64(1)) + [0], "ACCEPTED"),
            (.error, be(UInt16(5)) + be(UInt64(0)) + medium("m") + [0], "ERROR"),
            (.progress, be(UInt64(1)) + be(UInt64(1)) + be(UInt64(2)) + [0], "PROGRESS"),
            (
                .taskInfo,
                be(UInt64(1)) + [1] + be(Int32(0)) + be(UInt32(0)) + be(UInt32(1)) + be(UInt32(0))
                    + be(Int64(1)) + be(Int64(1)) + be(Int64(0)) + be(Int64(0)) + short("echo") + short("")
                    + short("") + be(UInt16(0)) + medium("") + [0] + [0xAA], "TASK_INFO"
            ),
        ]
        for (type, body, name) in cases {
            expectProtocolError(.badFrame, mentioning: name, "trailing") {
                _ = try ServerMessage(frame: frame(type, body: body))
            }
        }
    }

    @Test func protocolErrorDescriptionNamesTheCode() {
        #expect(ProtocolError(.frameTooLarge, "too big").description == "FRAME_TOO_LARGE: too big")
        #expect(ErrorCode(rawValue: 250).name == "ERROR_250")
    }
}
