import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@testable import SwitchyardCore

/// The task-lifecycle additions to protocol version 1: the SUBMIT options
/// delay_ms, run_at, timeout_ms, key and unique_key; WAIT, CANCEL and
/// LIST_TASKS; TASK_LIST; the new TASK_INFO fields; CANCELLED and TIMEOUT.
/// Byte layouts here are the ones docs/PROTOCOL.md documents.
@Suite("Task lifecycle wire layout")
struct TaskLifecycleLayoutTests {
    func written(_ message: ClientMessage, requestID: UInt32 = 1) -> [UInt8] {
        var wire = ByteBuffer()
        message.write(requestID: requestID, to: &wire)
        return Array(wire.readableBytesView)
    }

    func written(_ message: ServerMessage, requestID: UInt32 = 1) -> [UInt8] {
        var wire = ByteBuffer()
        message.write(requestID: requestID, to: &wire)
        return Array(wire.readableBytesView)
    }

    /// A SUBMIT frame for handler "echo", priority 0, no payload, around `options` (already encoded).
    func submitFrame(flags: UInt8 = 0, options: [[UInt8]]) -> [UInt8] {
        let body = submitBody(options: options)
        return be(UInt32(6 + body.count)) + [0x02, flags] + be(UInt32(1)) + body
    }

    // MARK: SUBMIT options, one at a time

    static let singleOptions: [(SubmitRequest, [UInt8])] = [
        (
            SubmitRequest(handler: "echo", payload: ByteBuffer(), delayMillis: 1_500),
            [0x02, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0x05, 0xDC]  // tag 2 delay_ms, length 8, 1,500
        ),
        (
            SubmitRequest(handler: "echo", payload: ByteBuffer(), runAt: 1_796_119_200_000),
            [0x03, 0x00, 0x08, 0x00, 0x00, 0x01, 0xA2, 0x31, 0x0C, 0x01, 0x00]  // tag 3 run_at, 2026-12-01T10:00:00Z
        ),
        (
            SubmitRequest(handler: "echo", payload: ByteBuffer(), timeoutMillis: 30_000),
            [0x04, 0x00, 0x04, 0x00, 0x00, 0x75, 0x30]  // tag 4 timeout_ms, length 4, 30,000
        ),
        (
            SubmitRequest(handler: "echo", payload: ByteBuffer(), key: "k1"),
            [0x05, 0x00, 0x02, 0x6B, 0x31]  // tag 5 key, length 2, "k1"
        ),
        (
            SubmitRequest(handler: "echo", payload: ByteBuffer(), uniqueKey: "ü"),
            [0x06, 0x00, 0x02, 0xC3, 0xBC]  // tag 6 unique_key, length 2, "ü" in UTF-8
        ),
    ]

    @Test(arguments: singleOptions)
    func eachOptionHasItsDocumentedBytes(request: SubmitRequest, option: [UInt8]) throws {
        let expected = submitFrame(options: [option])
        #expect(written(.submit(request)) == expected)
        #expect(try ClientMessage(frame: onlyFrame(in: bytes(expected))) == .submit(request))
    }

    @Test func runAtIsTheDocumentedInstant() {
        // 2026-12-01T10:00:00Z is 1,796,119,200 s after the epoch.
        #expect(be(Int64(1_796_119_200_000)) == [0x00, 0x00, 0x01, 0xA2, 0x31, 0x0C, 0x01, 0x00])
    }

    /// The lifecycle example in docs/PROTOCOL.md, section 8.
    @Test func everyOptionAtOnceInTagOrder() {
        let request = SubmitRequest(
            handler: "echo", payload: text("hi"), priority: 5, background: true, maxAttempts: 3, delayMillis: 250,
            timeoutMillis: 1_000, key: "a", uniqueKey: "b")
        #expect(
            written(.submit(request), requestID: 7) == [
                0x00, 0x00, 0x00, 0x34,  // 52 bytes follow
                0x02, 0x01,  // SUBMIT, background
                0x00, 0x00, 0x00, 0x07,  // request id 7
                0x00, 0x00, 0x00, 0x05,  // priority 5
                0x04, 0x65, 0x63, 0x68, 0x6F,  // handler "echo"
                0x00, 0x05,  // five options
                0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x03,  // max_attempts 3
                0x02, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0x00, 0xFA,  // delay_ms 250
                0x04, 0x00, 0x04, 0x00, 0x00, 0x03, 0xE8,  // timeout_ms 1,000
                0x05, 0x00, 0x01, 0x61,  // key "a"
                0x06, 0x00, 0x01, 0x62,  // unique_key "b"
                0x68, 0x69,  // payload "hi"
            ])
    }

    @Test func optionsMayComeInAnyOrder() throws {
        let body = submitBody(options: [
            [0x06, 0x00, 0x01, 0x75], [0x03] + be(UInt16(8)) + be(Int64(42)), [0x01] + be(UInt16(4)) + be(UInt32(2)),
        ])
        #expect(
            try ClientMessage(frame: frame(.submit, body: body))
                == .submit(SubmitRequest(handler: "echo", payload: ByteBuffer(), maxAttempts: 2, runAt: 42, uniqueKey: "u")))
    }

    @Test func aSubmitWithoutOptionsWritesACountOfZero() {
        let request = SubmitRequest(handler: "echo", payload: ByteBuffer())
        #expect(written(.submit(request)) == submitFrame(options: []))
    }

    // MARK: New requests

    @Test func wait() throws {
        let expected: [UInt8] = [
            0x00, 0x00, 0x00, 0x0E,  // 14 bytes follow
            0x06, 0x00,  // WAIT, flags 0
            0x00, 0x00, 0x00, 0x02,  // request id 2
            0, 0, 0, 0, 0, 0, 0x01, 0x02,  // task id 258
        ]
        #expect(written(.wait(258), requestID: 2) == expected)
        #expect(try ClientMessage(frame: onlyFrame(in: bytes(expected))) == .wait(258))
    }

    @Test func cancel() throws {
        let expected: [UInt8] = [
            0x00, 0x00, 0x00, 0x0E,  // 14 bytes follow
            0x07, 0x00,  // CANCEL, flags 0
            0x00, 0x00, 0x00, 0x03,  // request id 3
            0, 0, 0, 0, 0, 0, 0, 0x2A,  // task id 42
        ]
        #expect(written(.cancel(42), requestID: 3) == expected)
        #expect(try ClientMessage(frame: onlyFrame(in: bytes(expected))) == .cancel(42))
    }

    /// The LIST_TASKS example in docs/PROTOCOL.md, section 8.
    @Test func listTasksWithEveryFilter() throws {
        let query = TaskListQuery(state: .dead, handler: "echo", afterID: 100, limit: 50)
        let expected: [UInt8] = [
            0x00, 0x00, 0x00, 0x16,  // 22 bytes follow
            0x08, 0x00,  // LIST_TASKS
            0x00, 0x00, 0x00, 0x04,  // request id 4
            0x05,  // state 5 dead
            0x04, 0x65, 0x63, 0x68, 0x6F,  // handler "echo"
            0, 0, 0, 0, 0, 0, 0, 0x64,  // after id 100
            0x00, 0x32,  // limit 50
        ]
        #expect(written(.listTasks(query), requestID: 4) == expected)
        #expect(try ClientMessage(frame: onlyFrame(in: bytes(expected))) == .listTasks(query))
    }

    @Test func listTasksWithoutFilters() throws {
        let query = TaskListQuery(limit: 1000)
        let expected: [UInt8] = [
            0x00, 0x00, 0x00, 0x12,  // 18 bytes follow
            0x08, 0x00, 0x00, 0x00, 0x00, 0x04,  // LIST_TASKS, request id 4
            0x00,  // any state
            0x00,  // any handler
            0, 0, 0, 0, 0, 0, 0, 0,  // from the start
            0x03, 0xE8,  // limit 1,000
        ]
        #expect(written(.listTasks(query), requestID: 4) == expected)
        #expect(try ClientMessage(frame: onlyFrame(in: bytes(expected))) == .listTasks(query))
    }

    // MARK: TASK_INFO and TASK_LIST

    static let fullInfo = TaskInfo(
        id: 9, state: .dead, handler: "e", priority: -2, attempts: 2, maxAttempts: 2, key: "k", uniqueKey: "u",
        timeoutMillis: 5_000, runAt: 1_000, createdAt: 900, startedAt: 1_001, finishedAt: 6_002,
        errorCode: .timeout, errorMessage: "t")

    /// `fullInfo`'s body, field by field.
    static let fullInfoBody: [UInt8] = [
        0, 0, 0, 0, 0, 0, 0, 0x09,  // 0: task id 9
        0x05,  // 8: state dead
        0xFF, 0xFF, 0xFF, 0xFE,  // 9: priority -2
        0x00, 0x00, 0x00, 0x02,  // 13: attempts 2
        0x00, 0x00, 0x00, 0x02,  // 17: max attempts 2
        0x00, 0x00, 0x13, 0x88,  // 21: timeout 5,000 ms
        0, 0, 0, 0, 0, 0, 0x03, 0xE8,  // 25: run at 1,000
        0, 0, 0, 0, 0, 0, 0x03, 0x84,  // 33: created at 900
        0, 0, 0, 0, 0, 0, 0x03, 0xE9,  // 41: started at 1,001
        0, 0, 0, 0, 0, 0, 0x17, 0x72,  // 49: finished at 6,002
        0x01, 0x65,  // 57: handler "e"
        0x01, 0x6B,  // key "k"
        0x01, 0x75,  // unique key "u"
        0x00, 0x16,  // error code 22 TIMEOUT
        0x00, 0x01, 0x74,  // error message "t"
        0x00,  // no result
    ]

    @Test func taskInfoWithEveryNewField() throws {
        let expected = be(UInt32(6 + Self.fullInfoBody.count)) + [0x86, 0x00] + be(UInt32(1)) + Self.fullInfoBody
        #expect(written(.taskInfo(Self.fullInfo)) == expected)
        #expect(try ServerMessage(frame: onlyFrame(in: bytes(expected))) == .taskInfo(Self.fullInfo))
    }

    @Test func emptyTaskList() throws {
        // The example in docs/PROTOCOL.md, section 8.
        let expected: [UInt8] = [0x00, 0x00, 0x00, 0x08, 0x89, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00]
        #expect(written(.taskList([]), requestID: 4) == expected)
        #expect(try ServerMessage(frame: onlyFrame(in: bytes(expected))) == .taskList([]))
    }

    @Test func taskListOfOneEntryIsALengthPrefixedTaskInfoBody() throws {
        let expected =
            be(UInt32(6 + 2 + 4 + Self.fullInfoBody.count)) + [0x89, 0x00] + be(UInt32(5))
            + [0x00, 0x01]  // one entry
            + be(UInt32(Self.fullInfoBody.count)) + Self.fullInfoBody
        #expect(written(.taskList([Self.fullInfo]), requestID: 5) == expected)
        #expect(try ServerMessage(frame: onlyFrame(in: bytes(expected))) == .taskList([Self.fullInfo]))
    }

    @Test func taskListLeavesResultsOut() throws {
        var withResult = Self.fullInfo
        withResult.state = .succeeded
        withResult.result = text("a large result")
        var expected = withResult
        expected.result = nil
        #expect(written(.taskList([withResult])) == written(.taskList([expected])))
        #expect(try roundTrip(.taskList([withResult]), type: .taskList) == .taskList([expected]))
    }

    // MARK: Names and constants

    @Test func newNamesAndConstantsAreTheDocumentedOnes() {
        #expect(ErrorCode.cancelled.rawValue == 12 && ErrorCode.cancelled.name == "CANCELLED")
        #expect(ErrorCode.timeout.rawValue == 22 && ErrorCode.timeout.name == "TIMEOUT")
        #expect(
            [FrameType.wait, .cancel, .listTasks, .taskList].map(\.rawValue) == [0x06, 0x07, 0x08, 0x89])
        #expect(
            [FrameType.wait, .cancel, .listTasks, .taskList].map(\.description)
                == ["WAIT", "CANCEL", "LIST_TASKS", "TASK_LIST"])
        #expect(SubmitOptionTag.allCases.map(\.rawValue) == [1, 2, 3, 4, 5, 6])
        #expect(
            SubmitOptionTag.allCases.map(\.description)
                == ["max_attempts", "delay_ms", "run_at", "timeout_ms", "key", "unique_key"])
        #expect(WireProtocol.priorityRange == -1_000_000...1_000_000)
        #expect(WireProtocol.maxDelayMillis == 366 * 86_400_000)
        #expect(WireProtocol.timeoutMillisRange == 1...7 * 86_400_000)
        #expect(WireProtocol.keyLengthRange == 1...255)
        #expect(WireProtocol.listLimitRange == 1...1000)
    }
}

@Suite("Task lifecycle round trips")
struct TaskLifecycleRoundTripTests {
    static let submits: [SubmitRequest] = [
        SubmitRequest(handler: "echo", payload: text("x"), delayMillis: 0),
        SubmitRequest(handler: "echo", payload: text("x"), delayMillis: WireProtocol.maxDelayMillis),
        SubmitRequest(handler: "echo", payload: ByteBuffer(), background: true, runAt: 1),
        SubmitRequest(handler: "echo", payload: ByteBuffer(), runAt: Int64.max),
        SubmitRequest(handler: "echo", payload: ByteBuffer(), timeoutMillis: 1),
        SubmitRequest(handler: "echo", payload: ByteBuffer(), timeoutMillis: 604_800_000),
        SubmitRequest(handler: "echo", payload: ByteBuffer(), key: String(repeating: "k", count: 255)),
        SubmitRequest(handler: "echo", payload: ByteBuffer(), uniqueKey: String(repeating: "é", count: 127) + "u"),
        SubmitRequest(
            handler: "sha256", payload: pattern(5_000), priority: -1_000_000, background: true, maxAttempts: 100,
            runAt: 1_796_119_200_000, timeoutMillis: 60_000, key: "tenant-42", uniqueKey: "report:2026-Q3 ✓"),
        SubmitRequest(
            handler: "sleep", payload: text("10"), priority: 1_000_000, maxAttempts: 1, delayMillis: 10,
            timeoutMillis: 5, key: "🔑", uniqueKey: "x"),
    ]

    @Test(arguments: submits)
    func submit(request: SubmitRequest) throws {
        #expect(try roundTrip(.submit(request)) == .submit(request))
    }

    @Test func onlyTheOptionsThatAreSetAreWritten() throws {
        for (request, count) in [
            (SubmitRequest(handler: "e", payload: ByteBuffer()), 0),
            (SubmitRequest(handler: "e", payload: ByteBuffer(), key: "k"), 1),
            (SubmitRequest(handler: "e", payload: ByteBuffer(), runAt: 5, timeoutMillis: 5), 2),
            (Self.submits[8], 5),
        ] as [(SubmitRequest, UInt16)] {
            var wire = ByteBuffer()
            ClientMessage.writeSubmit(request, requestID: 1, to: &wire)
            var body = try onlyFrame(in: wire).body
            body.moveReaderIndex(forwardBy: 4 + 1 + request.handler.utf8.count)
            #expect(body.readInteger(as: UInt16.self) == count)
        }
    }

    @Test(arguments: [0, 1, 7, UInt64.max] as [TaskID])
    func waitAndCancel(id: TaskID) throws {
        #expect(try roundTrip(.wait(id)) == .wait(id))
        #expect(try roundTrip(.cancel(id)) == .cancel(id))
    }

    static let queries: [TaskListQuery] = [
        TaskListQuery(),
        TaskListQuery(state: .queued, limit: 1),
        TaskListQuery(state: .scheduled, handler: "resize.v2-fast_x", afterID: UInt64.max, limit: 1000),
        TaskListQuery(handler: String(repeating: "h", count: 255), afterID: 1),
    ] + TaskState.allCases.map { TaskListQuery(state: $0) }

    @Test(arguments: queries)
    func listTasks(query: TaskListQuery) throws {
        #expect(try roundTrip(.listTasks(query)) == .listTasks(query))
    }

    @Test func anEmptyHandlerFilterMeansAny() throws {
        #expect(try roundTrip(.listTasks(TaskListQuery(handler: ""))) == .listTasks(TaskListQuery()))
    }

    static let infos: [TaskInfo] = [
        // Every new field unset.
        TaskInfo(id: 1, state: .queued, handler: "echo", priority: 0, attempts: 0, maxAttempts: 2),
        // Every new field set, with a result.
        TaskInfo(
            id: 2, state: .succeeded, handler: "sha256", priority: 7, attempts: 1, maxAttempts: 3,
            key: "tenant-42", uniqueKey: "report:2026-Q3 ✓", timeoutMillis: 604_800_000, runAt: 1_796_119_200_000,
            createdAt: 1_796_119_100_000, startedAt: 1_796_119_200_003, finishedAt: 1_796_119_200_250,
            result: pattern(1_000)),
        // Scheduled: run-at in the future, nothing started.
        TaskInfo(
            id: 3, state: .scheduled, handler: "echo", priority: 0, attempts: 0, maxAttempts: 2,
            runAt: 1_796_119_200_000, createdAt: 1_790_000_000_000),
        // Waiting for a retry after a timeout.
        TaskInfo(
            id: 4, state: .failed, handler: "sleep", priority: 0, attempts: 1, maxAttempts: 3, timeoutMillis: 100,
            runAt: 5_000, createdAt: 1_000, startedAt: 2_000, errorCode: .timeout,
            errorMessage: "attempt 1 ran past its timeout of 100 ms; its worker was killed"),
        // Cancelled; only the unique key given.
        TaskInfo(
            id: 5, state: .cancelled, handler: "echo", priority: 0, attempts: 0, maxAttempts: 2, uniqueKey: "u",
            runAt: 10, createdAt: 10, finishedAt: 20, errorCode: .cancelled, errorMessage: "task 5 was cancelled"),
        // Extremes.
        TaskInfo(
            id: UInt64.max, state: .running, handler: String(repeating: "x", count: 255), priority: Int32.min,
            attempts: UInt32.max, maxAttempts: UInt32.max, key: String(repeating: "k", count: 255),
            uniqueKey: String(repeating: "ü", count: 127), timeoutMillis: UInt32.max, runAt: Int64.max,
            createdAt: Int64.min, startedAt: -1, finishedAt: Int64.max),
    ]

    @Test(arguments: infos)
    func taskInfo(info: TaskInfo) throws {
        #expect(try roundTrip(.taskInfo(info), type: .taskInfo) == .taskInfo(info))
    }

    @Test(arguments: [0, 1, 3])
    func taskList(count: Int) throws {
        let entries = Self.infos.prefix(count).map { info -> TaskInfo in
            var listed = info
            listed.result = nil
            return listed
        }
        #expect(try roundTrip(.taskList(Array(entries)), type: .taskList) == .taskList(Array(entries)))
    }

    @Test func taskInfoFromARecordCopiesEverythingButThePayload() {
        let record = TaskRecord(
            id: 8, handler: "echo", payload: text("payload"), priority: 3, key: "k", uniqueKey: "u", state: .succeeded,
            attempts: 1, maxAttempts: 2, timeoutMillis: 10, runAt: 100, createdAt: 90, startedAt: 101,
            finishedAt: 102, result: text("r"))
        let info = TaskInfo(
            id: 8, state: .succeeded, handler: "echo", priority: 3, attempts: 1, maxAttempts: 2, key: "k",
            uniqueKey: "u", timeoutMillis: 10, runAt: 100, createdAt: 90, startedAt: 101, finishedAt: 102,
            result: text("r"))
        #expect(TaskInfo(record) == info)
        var listed = info
        listed.result = nil
        #expect(TaskInfo(record, includingResult: false) == listed)
    }
}

@Suite("Task lifecycle codec errors")
struct TaskLifecycleCodecErrorTests {
    func option(_ tag: SubmitOptionTag, _ value: [UInt8]) -> [UInt8] {
        [tag.rawValue] + be(UInt16(value.count)) + value
    }

    func parseSubmit(priority: Int32 = 0, _ options: [UInt8]...) throws {
        _ = try ClientMessage(frame: frame(.submit, body: submitBody(priority: priority, options: options)))
    }

    // MARK: Values out of range: BAD_REQUEST naming the field and the limit

    @Test(arguments: [WireProtocol.maxDelayMillis + 1, UInt64.max])
    func delayOver366DaysIsBadRequest(delay: UInt64) {
        expectProtocolError(.badRequest, mentioning: "delay_ms", "\(delay)", "31622400000", "366 days") {
            try parseSubmit(option(.delayMillis, be(delay)))
        }
    }

    @Test(arguments: [0, -1, Int64.min] as [Int64])
    func runAtAtOrBeforeTheEpochIsBadRequest(runAt: Int64) {
        expectProtocolError(.badRequest, mentioning: "run_at", "\(runAt)", "> 0") {
            try parseSubmit(option(.runAt, be(runAt)))
        }
    }

    @Test func delayAndRunAtTogetherIsBadRequest() {
        expectProtocolError(.badRequest, mentioning: "give delay_ms or run_at, not both") {
            try parseSubmit(option(.delayMillis, be(UInt64(10))), option(.runAt, be(Int64(10))))
        }
        expectProtocolError(.badRequest, mentioning: "give delay_ms or run_at, not both") {
            try parseSubmit(option(.runAt, be(Int64(10))), option(.delayMillis, be(UInt64(0))))
        }
    }

    @Test(arguments: [0, 604_800_001, UInt32.max] as [UInt32])
    func timeoutOutsideOneMillisecondToSevenDaysIsBadRequest(timeout: UInt32) {
        expectProtocolError(.badRequest, mentioning: "timeout_ms", "\(timeout)", "604800000", "7 days") {
            try parseSubmit(option(.timeoutMillis, be(timeout)))
        }
    }

    @Test(arguments: [(SubmitOptionTag.key, "SUBMIT key"), (.uniqueKey, "SUBMIT unique_key")])
    func emptyOrOverlongKeysAreBadRequest(tag: SubmitOptionTag, field: String) {
        expectProtocolError(.badRequest, mentioning: field, "empty", "1-255 bytes") {
            try parseSubmit(option(tag, []))
        }
        expectProtocolError(.badRequest, mentioning: field, "256 bytes", "1-255 bytes") {
            try parseSubmit(option(tag, Array(repeating: 0x61, count: 256)))
        }
    }

    @Test(arguments: [1_000_001, -1_000_001, Int32.max, Int32.min] as [Int32])
    func priorityOutsideTheRangeIsBadRequest(priority: Int32) {
        expectProtocolError(.badRequest, mentioning: "priority", "\(priority)", "-1000000", "1000000") {
            try parseSubmit(priority: priority)
        }
    }

    @Test(arguments: SubmitOptionTag.allCases)
    func aRepeatedOptionIsBadRequest(tag: SubmitOptionTag) {
        let value: [UInt8] =
            switch tag {
            case .maxAttempts: be(UInt32(2))
            case .delayMillis: be(UInt64(2))
            case .runAt: be(Int64(2))
            case .timeoutMillis: be(UInt32(2))
            case .key, .uniqueKey: [0x6B]
            }
        expectProtocolError(.badRequest, mentioning: "\(tag)", "tag \(tag.rawValue)", "twice") {
            try parseSubmit(option(tag, value), option(tag, value))
        }
    }

    @Test func aRepeatedOptionIsCaughtEvenWithOthersBetween() {
        expectProtocolError(.badRequest, mentioning: "key", "twice") {
            try parseSubmit(option(.key, [0x61]), option(.timeoutMillis, be(UInt32(1))), option(.key, [0x62]))
        }
    }

    @Test func theLimitsThemselvesAreAccepted() throws {
        try parseSubmit(priority: 1_000_000, option(.delayMillis, be(WireProtocol.maxDelayMillis)))
        try parseSubmit(priority: -1_000_000, option(.runAt, be(Int64(1))))
        try parseSubmit(option(.timeoutMillis, be(UInt32(1))))
        try parseSubmit(option(.timeoutMillis, be(UInt32(604_800_000))))
        try parseSubmit(option(.key, [0x61]), option(.uniqueKey, Array(repeating: 0x62, count: 255)))
    }

    // MARK: Option values that do not fit their layout: BAD_FRAME

    static let malformedOptions: [(SubmitOptionTag, [UInt8], String)] = [
        (.delayMillis, be(UInt32(1)), "delay_ms"),
        (.delayMillis, be(UInt64(1)) + [0], "delay_ms option frame has 1 unexpected trailing"),
        (.runAt, [0, 0, 0], "run_at"),
        (.runAt, be(Int64(1)) + [0, 0], "run_at option frame has 2 unexpected trailing"),
        (.timeoutMillis, [0, 1], "timeout_ms"),
        (.timeoutMillis, be(UInt64(1)), "timeout_ms option frame has 4 unexpected trailing"),
        (.key, [0x61, 0xFF], "`key` is not valid UTF-8"),
        (.uniqueKey, [0xC3], "`unique_key` is not valid UTF-8"),
    ]

    @Test(arguments: malformedOptions)
    func anOptionValueThatDoesNotFitItsLayoutIsBadFrame(tag: SubmitOptionTag, value: [UInt8], mention: String) {
        expectProtocolError(.badFrame, mentioning: mention) {
            try parseSubmit(option(tag, value))
        }
    }

    // MARK: WAIT, CANCEL, LIST_TASKS

    @Test(arguments: [(FrameType.wait, "WAIT"), (.cancel, "CANCEL")])
    func waitAndCancelBodiesAreOneTaskID(type: FrameType, name: String) {
        expectProtocolError(.badFrame, mentioning: "task_id") {
            _ = try ClientMessage(frame: frame(type, body: [0, 0, 0, 0, 0, 0, 1]))
        }
        expectProtocolError(.badFrame, mentioning: name, "1 unexpected trailing") {
            _ = try ClientMessage(frame: frame(type, body: be(UInt64(1)) + [0]))
        }
    }

    static let truncatedLists: [([UInt8], String)] = [
        ([], "state"),
        ([0], "handler"),
        ([0, 4, 0x65, 0x63], "handler"),
        ([0, 0], "after_id"),
        ([0, 0] + [0, 0, 0, 0], "after_id"),
        ([0, 0] + be(UInt64(0)), "limit"),
        ([0, 0] + be(UInt64(0)) + [1], "limit"),
    ]

    @Test(arguments: truncatedLists)
    func truncatedListTasksNamesTheField(body: [UInt8], field: String) {
        expectProtocolError(.badFrame, mentioning: field) {
            _ = try ClientMessage(frame: frame(.listTasks, body: body))
        }
    }

    func listBody(state: UInt8 = 0, handler: String = "", after: UInt64 = 0, limit: UInt16 = 10) -> [UInt8] {
        [state] + short(handler) + be(after) + be(limit)
    }

    @Test func listTasksWithTrailingBytesIsBadFrame() {
        expectProtocolError(.badFrame, mentioning: "LIST_TASKS", "1 unexpected trailing") {
            _ = try ClientMessage(frame: frame(.listTasks, body: listBody() + [0]))
        }
    }

    @Test(arguments: [8, 99, 255] as [UInt8])
    func listTasksWithAnUnknownStateIsBadRequest(state: UInt8) {
        expectProtocolError(.badRequest, mentioning: "LIST_TASKS state \(state)", "0 for any", "7 scheduled") {
            _ = try ClientMessage(frame: frame(.listTasks, body: listBody(state: state)))
        }
    }

    @Test(arguments: [0, 1001, UInt16.max] as [UInt16])
    func listTasksWithALimitOutsideOneToThousandIsBadRequest(limit: UInt16) {
        expectProtocolError(.badRequest, mentioning: "limit", "\(limit)", "1 to 1000") {
            _ = try ClientMessage(frame: frame(.listTasks, body: listBody(limit: limit)))
        }
    }

    @Test func aLimitTooLargeForTheFieldStaysOutOfRangeOnTheWire() {
        // The writer clamps rather than wraps: 70,000 must not arrive as 4,464.
        var wire = ByteBuffer()
        ClientMessage.listTasks(TaskListQuery(limit: 70_000)).write(requestID: 1, to: &wire)
        expectProtocolError(.badRequest, mentioning: "limit", "65535") {
            _ = try ClientMessage(frame: onlyFrame(in: wire))
        }
        wire.clear()
        ClientMessage.listTasks(TaskListQuery(limit: -5)).write(requestID: 1, to: &wire)
        expectProtocolError(.badRequest, mentioning: "limit is 0") {
            _ = try ClientMessage(frame: onlyFrame(in: wire))
        }
    }

    @Test func queryValidationNamesTheField() {
        #expect(throws: Never.self) { try TaskListQuery(limit: 1).validate() }
        expectProtocolError(.badRequest, mentioning: "limit", "1001") { try TaskListQuery(limit: 1001).validate() }
        expectProtocolError(.badRequest, mentioning: "handler", "256") {
            try TaskListQuery(handler: String(repeating: "h", count: 256)).validate()
        }
    }

    // MARK: TASK_INFO and TASK_LIST

    @Test func aTaskInfoWithANewStateIsRead() throws {
        // States 6 (cancelled) and 7 (scheduled) are no longer reserved.
        for state in [TaskState.cancelled, .scheduled] {
            var body = TaskLifecycleLayoutTests.fullInfoBody
            body[8] = state.rawValue
            guard case .taskInfo(let info) = try ServerMessage(frame: frame(.taskInfo, body: body)) else {
                Issue.record("not TASK_INFO")
                continue
            }
            #expect(info.state == state)
        }
    }

    static let truncatedTaskLists: [([UInt8], String)] = {
        let entry = TaskLifecycleLayoutTests.fullInfoBody
        return [
            ([], "count"),
            ([0], "count"),
            ([0, 1], "entry_length"),
            ([0, 1, 0, 0], "entry_length"),
            ([0, 1] + be(UInt32(entry.count)) + entry.dropLast(), "entry"),
            ([0, 2] + be(UInt32(entry.count)) + entry, "entry_length"),
            // The entry's own fields, named with the entry's place in the list.
            ([0, 1] + be(UInt32(8)) + entry.prefix(8), "TASK_LIST entry 1 of 1"),
            ([0, 1] + be(UInt32(8)) + entry.prefix(8), "`state`"),
            ([0, 2] + be(UInt32(entry.count)) + entry + be(UInt32(36)) + entry.prefix(36), "entry 2 of 2"),
            ([0, 2] + be(UInt32(entry.count)) + entry + be(UInt32(36)) + entry.prefix(36), "`created_at`"),
        ]
    }()

    @Test(arguments: truncatedTaskLists)
    func truncatedTaskListNamesTheField(body: [UInt8], mention: String) {
        expectProtocolError(.badFrame, mentioning: mention) {
            _ = try ServerMessage(frame: frame(.taskList, body: body))
        }
    }

    @Test func taskListWithTrailingBytesIsBadFrame() {
        expectProtocolError(.badFrame, mentioning: "TASK_LIST", "3 unexpected trailing") {
            _ = try ServerMessage(frame: frame(.taskList, body: [0, 0, 1, 2, 3]))
        }
        // Bytes after an entry's has_result 0 but inside its length are the entry's.
        let entry = TaskLifecycleLayoutTests.fullInfoBody + [0xAA]
        expectProtocolError(.badFrame, mentioning: "entry 1 of 1", "1 unexpected trailing") {
            _ = try ServerMessage(frame: frame(.taskList, body: [0, 1] + be(UInt32(entry.count)) + entry))
        }
    }

    @Test func taskListEntryWithAnUnknownStateIsBadFrame() {
        var entry = TaskLifecycleLayoutTests.fullInfoBody
        entry[8] = 42
        expectProtocolError(.badFrame, mentioning: "entry 1 of 1", "state 42") {
            _ = try ServerMessage(frame: frame(.taskList, body: [0, 1] + be(UInt32(entry.count)) + entry))
        }
    }

    @Test func aHugeCountWithNoEntriesFailsWithoutReservingForIt() {
        expectProtocolError(.badFrame, mentioning: "entry_length") {
            _ = try ServerMessage(frame: frame(.taskList, body: be(UInt16.max)))
        }
    }
}

/// The new frames through the same decoder a connection uses, fed a byte at a time.
@Suite("Task lifecycle frames through FrameDecoder")
struct TaskLifecycleDecoderTests {
    static let clientMessages: [ClientMessage] = [
        .submit(TaskLifecycleRoundTripTests.submits[8]),
        .submit(TaskLifecycleRoundTripTests.submits[9]),
        .wait(12),
        .cancel(13),
        .listTasks(TaskListQuery(state: .failed, handler: "echo", afterID: 99, limit: 250)),
    ]

    static let serverMessages: [(ServerMessage, FrameType)] = [
        (.taskInfo(TaskLifecycleRoundTripTests.infos[1]), .taskInfo),
        (.taskInfo(TaskLifecycleLayoutTests.fullInfo), .taskInfo),
        (.taskList([]), .taskList),
        (.taskList([TaskLifecycleLayoutTests.fullInfo]), .taskList),
        (
            .taskList(
                TaskLifecycleRoundTripTests.infos.prefix(3).map {
                    var info = $0
                    info.result = nil
                    return info
                }), .taskList
        ),
        (.error(.cancelled, taskID: 5, message: "task 5 was cancelled"), .error),
        (.error(.timeout, taskID: 6, message: "attempt 2 of 2 ran past its timeout of 100 ms"), .error),
    ]

    func encoded(_ message: ClientMessage, requestID: UInt32) -> ByteBuffer {
        var buffer = ByteBuffer()
        message.write(requestID: requestID, to: &buffer)
        return buffer
    }

    func encoded(_ message: ServerMessage, requestID: UInt32) -> ByteBuffer {
        var buffer = ByteBuffer()
        message.write(requestID: requestID, to: &buffer)
        return buffer
    }

    /// Feeds `wire` one byte at a time and returns the one frame it makes, checking none comes early.
    func decodeByteByByte(_ wire: ByteBuffer) throws -> Frame {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        for (offset, byte) in wire.readableBytesView.enumerated() {
            try channel.writeInbound(ByteBuffer(bytes: [byte]))
            if offset < wire.readableBytes - 1 {
                #expect(try channel.readInbound(as: Frame.self) == nil, "frame delivered before its last byte")
            }
        }
        let frame = try #require(try channel.readInbound(as: Frame.self))
        #expect(try channel.finish().isClean)
        return frame
    }

    @Test(arguments: clientMessages.indices)
    func clientMessageByteByByte(index: Int) throws {
        let message = Self.clientMessages[index]
        let frame = try decodeByteByByte(encoded(message, requestID: UInt32(index + 1)))
        #expect(frame.type == message.frameType)
        #expect(frame.requestID == UInt32(index + 1))
        #expect(try ClientMessage(frame: frame) == message)
    }

    @Test(arguments: serverMessages.indices)
    func serverMessageByteByByte(index: Int) throws {
        let (message, type) = Self.serverMessages[index]
        let frame = try decodeByteByByte(encoded(message, requestID: UInt32(index + 100)))
        #expect(frame.type == type)
        #expect(frame.requestID == UInt32(index + 100))
        #expect(try ServerMessage(frame: frame) == message)
    }

    @Test func verifierAcceptsTheNewFramesWholeSplitAndBatched() throws {
        var pairs: [(ByteBuffer, [Frame])] = []
        for (index, message) in Self.clientMessages.enumerated() {
            let wire = encoded(message, requestID: UInt32(index))
            pairs.append((wire, [try onlyFrame(in: wire)]))
        }
        for (index, (message, _)) in Self.serverMessages.enumerated() {
            let wire = encoded(message, requestID: UInt32(index))
            pairs.append((wire, [try onlyFrame(in: wire)]))
        }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrameDecoder() }
    }

    @Test func pipelinedRequestsArriveInOrderAndParse() throws {
        var wire = ByteBuffer()
        for (index, message) in Self.clientMessages.enumerated() { message.write(requestID: UInt32(index), to: &wire) }
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        try channel.writeInbound(wire)
        for (index, message) in Self.clientMessages.enumerated() {
            let frame = try #require(try channel.readInbound(as: Frame.self))
            #expect(frame.requestID == UInt32(index))
            #expect(try ClientMessage(frame: frame) == message)
        }
        #expect(try channel.readInbound(as: Frame.self) == nil)
        #expect(try channel.finish().isClean)
    }
}
