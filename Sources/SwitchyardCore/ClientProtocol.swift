import NIOCore

/// Protocol constants shared by client and server.
public enum WireProtocol {
    /// "SWYD": the first field of HELLO.
    public static let magic: UInt32 = 0x5357_5944
    /// The protocol versions this build speaks.
    public static let minVersion: UInt16 = 1
    public static let maxVersion: UInt16 = 1
    /// SUBMIT flag: reply ACCEPTED at once instead of waiting for the result.
    public static let submitBackground: UInt8 = 0x01
    /// The largest PING body.
    public static let maxPingBody = 1024
    /// The values the SUBMIT max_attempts option may take.
    public static let maxAttemptsRange: ClosedRange<UInt32> = 1...100
    /// The values a SUBMIT priority may take.
    public static let priorityRange: ClosedRange<Int32> = -1_000_000...1_000_000
    /// The longest SUBMIT delay_ms: 366 days. The server also refuses a run_at
    /// further than this from its clock (the codec has no clock, so it does not).
    public static let maxDelayMillis: UInt64 = 31_622_400_000
    /// The values the SUBMIT timeout_ms option may take: 1 ms to 7 days.
    public static let timeoutMillisRange: ClosedRange<UInt32> = 1...604_800_000
    /// Byte lengths (UTF-8) a SUBMIT key or unique_key may have.
    public static let keyLengthRange: ClosedRange<Int> = 1...255
    /// The values the LIST_TASKS limit may take.
    public static let listLimitRange: ClosedRange<Int> = 1...1000
    /// The HELLO extension that carries the client's token (`serve --auth`).
    public static let tokenExtension = "token"
    /// Byte lengths (UTF-8) a token may have, in the auth file and in HELLO.
    public static let tokenLengthRange: ClosedRange<Int> = 16...1024
}

/// SUBMIT option tags (a tag-length-value list; unknown tags are rejected, never ignored).
public enum SubmitOptionTag: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// u32: attempts allowed, 1-100 (default: the server's, 2).
    case maxAttempts = 1
    /// u64: run no sooner than this many milliseconds after the server accepts
    /// the task, 0 ... `WireProtocol.maxDelayMillis`.
    case delayMillis = 2
    /// i64: run no sooner than this wall-clock time, in milliseconds since the
    /// Unix epoch; must be > 0. Exclusive with `delayMillis`.
    case runAt = 3
    /// u32: per-attempt time limit in milliseconds, 1 ... 604,800,000 (7 days).
    case timeoutMillis = 4
    /// UTF-8, 1-255 bytes: routing key.
    case key = 5
    /// UTF-8, 1-255 bytes: while a task with this unique key is live, a submit
    /// with the same key gets that task instead of a new one.
    case uniqueKey = 6

    /// The option's name in docs/PROTOCOL.md, used in error messages.
    public var description: String {
        switch self {
        case .maxAttempts: "max_attempts"
        case .delayMillis: "delay_ms"
        case .runAt: "run_at"
        case .timeoutMillis: "timeout_ms"
        case .key: "key"
        case .uniqueKey: "unique_key"
        }
    }
}

/// A SUBMIT request.
public struct SubmitRequest: Sendable, Hashable {
    public var handler: String
    public var payload: ByteBuffer
    /// Higher runs first; `WireProtocol.priorityRange`.
    public var priority: Int32
    /// Reply ACCEPTED with the task id at once rather than the result when done.
    public var background: Bool
    /// Attempts allowed, counting the first; nil takes the server's default.
    public var maxAttempts: UInt32?
    /// Run no sooner than this many milliseconds after acceptance; exclusive with `runAt`.
    public var delayMillis: UInt64?
    /// Run no sooner than this wall-clock time; exclusive with `delayMillis`.
    public var runAt: EpochMillis?
    /// Per-attempt time limit in milliseconds; nil takes the server's default.
    public var timeoutMillis: UInt32?
    /// Routing key, 1-255 bytes of UTF-8.
    public var key: String?
    /// Deduplication key, 1-255 bytes of UTF-8: a live task with the same
    /// unique key is returned instead of a new one being created.
    public var uniqueKey: String?

    public init(
        handler: String, payload: ByteBuffer, priority: Int32 = 0, background: Bool = false,
        maxAttempts: UInt32? = nil, delayMillis: UInt64? = nil, runAt: EpochMillis? = nil,
        timeoutMillis: UInt32? = nil, key: String? = nil, uniqueKey: String? = nil
    ) {
        self.handler = handler
        self.payload = payload
        self.priority = priority
        self.background = background
        self.maxAttempts = maxAttempts
        self.delayMillis = delayMillis
        self.runAt = runAt
        self.timeoutMillis = timeoutMillis
        self.key = key
        self.uniqueKey = uniqueKey
    }

    /// Checks every field against the limits of docs/PROTOCOL.md (the checks a
    /// server makes on a decoded SUBMIT; a client can make them before sending).
    /// The handler name is not checked here: an unknown or malformed name is
    /// the server's UNKNOWN_HANDLER.
    ///
    /// - Throws: `ProtocolError` with code BAD_REQUEST whose message names the
    ///   field, its value and the allowed values.
    public func validate() throws {
        guard WireProtocol.priorityRange.contains(priority) else {
            throw ProtocolError(
                .badRequest,
                "SUBMIT priority is \(priority); it must be from \(WireProtocol.priorityRange.lowerBound) to \(WireProtocol.priorityRange.upperBound)"
            )
        }
        if let maxAttempts, !WireProtocol.maxAttemptsRange.contains(maxAttempts) {
            throw ProtocolError(.badRequest, "SUBMIT max_attempts is \(maxAttempts); it must be between 1 and 100")
        }
        if delayMillis != nil && runAt != nil {
            throw ProtocolError(.badRequest, "SUBMIT has both delay_ms and run_at: give delay_ms or run_at, not both")
        }
        if let delayMillis, delayMillis > WireProtocol.maxDelayMillis {
            throw ProtocolError(
                .badRequest,
                "SUBMIT delay_ms is \(delayMillis); the limit is \(WireProtocol.maxDelayMillis) (366 days)")
        }
        if let runAt, runAt <= 0 {
            throw ProtocolError(
                .badRequest,
                "SUBMIT run_at is \(runAt); it must be a time after the Unix epoch, in milliseconds (> 0)")
        }
        if let timeoutMillis, !WireProtocol.timeoutMillisRange.contains(timeoutMillis) {
            throw ProtocolError(
                .badRequest,
                "SUBMIT timeout_ms is \(timeoutMillis); it must be from 1 to \(WireProtocol.timeoutMillisRange.upperBound) (7 days); leave the option out for the server's default"
            )
        }
        try Self.validateKey(key, name: "key")
        try Self.validateKey(uniqueKey, name: "unique_key")
    }

    private static func validateKey(_ key: String?, name: String) throws {
        guard let key else { return }
        let length = key.utf8.count
        guard WireProtocol.keyLengthRange.contains(length) else {
            throw ProtocolError(
                .badRequest,
                length == 0
                    ? "SUBMIT \(name) is empty; it must be 1-255 bytes of UTF-8 (leave the option out for none)"
                    : "SUBMIT \(name) is \(length) bytes; it must be 1-255 bytes of UTF-8")
        }
    }
}

extension TaskListQuery {
    /// Checks the query against the LIST_TASKS limits.
    ///
    /// - Throws: `ProtocolError` with code BAD_REQUEST naming the field.
    public func validate() throws {
        guard WireProtocol.listLimitRange.contains(limit) else {
            throw ProtocolError(
                .badRequest,
                "LIST_TASKS limit is \(limit); it must be from 1 to \(WireProtocol.listLimitRange.upperBound)")
        }
        if let handler, handler.utf8.count > 255 {
            throw ProtocolError(
                .badRequest, "LIST_TASKS handler is \(handler.utf8.count) bytes; handler names are at most 255")
        }
    }
}

/// A frame from a client to the server.
public enum ClientMessage: Sendable, Hashable {
    /// The handshake; `token` goes in the HELLO extension `token` (servers
    /// that authenticate need it; others ignore it).
    case hello(minVersion: UInt16, maxVersion: UInt16, clientName: String, token: String? = nil)
    case submit(SubmitRequest)
    case taskStatus(TaskID)
    case serverStatus
    case ping(ByteBuffer)
    /// Wait for an existing task: answered like a waiting SUBMIT.
    case wait(TaskID)
    /// Cancel a task: answered with its TASK_INFO after the cancel.
    case cancel(TaskID)
    /// A page of task records: answered with TASK_LIST.
    case listTasks(TaskListQuery)
    /// The strategies the server has and uses: answered with STRATEGY_INFO.
    case strategyList
    /// Use a strategy for every handler, or for one: answered with STRATEGY_INFO.
    case strategySet(StrategySetRequest)
    /// Load a strategy plugin file (after a probe process tried it): answered with STRATEGY_INFO.
    case strategyLoad(StrategyLoadRequest)
    /// Load the plugin directory again and roll workers over to it: answered
    /// with RELOAD_INFO once the old workers are gone, or ERROR RELOAD_FAILED.
    case reload(CanaryOptions? = nil)

    public var frameType: FrameType {
        switch self {
        case .hello: .hello
        case .submit: .submit
        case .taskStatus: .taskStatus
        case .serverStatus: .serverStatus
        case .ping: .ping
        case .wait: .wait
        case .cancel: .cancel
        case .listTasks: .listTasks
        case .strategyList: .strategyList
        case .strategySet: .strategySet
        case .strategyLoad: .strategyLoad
        case .reload: .reload
        }
    }

    /// Parses a client frame. Throws `ProtocolError` naming the field at fault:
    /// BAD_FRAME when the body does not follow the layout, BAD_REQUEST when it
    /// does but a value is not allowed.
    public init(frame: Frame) throws {
        var body = frame.body
        switch frame.type {
        case .hello:
            let magic = try body.readField("magic", as: UInt32.self)
            guard magic == WireProtocol.magic else {
                throw ProtocolError(
                    .unsupportedVersion,
                    "HELLO magic is 0x\(String(magic, radix: 16)), not 0x53575944 (\"SWYD\"): this is not a Switchyard client"
                )
            }
            let minVersion = try body.readField("min_version", as: UInt16.self)
            let maxVersion = try body.readField("max_version", as: UInt16.self)
            let name = try body.readShortString("client_name")
            let extensions = try body.readField("extension_count", as: UInt16.self)
            var token: String?
            for _ in 0..<extensions {
                let key = try body.readShortString("extension_key")
                let length = try body.readField("extension_length", as: UInt32.self)
                guard var value = body.readSlice(length: Int(length)) else {
                    throw ProtocolError(.badFrame, "frame body ends inside the field `extension_value`")
                }
                // Unknown extensions are ignored, so clients can offer what older servers do not know.
                guard key == WireProtocol.tokenExtension else { continue }
                guard token == nil else {
                    throw ProtocolError(.badRequest, "HELLO gives the extension `token` twice; give it once")
                }
                guard WireProtocol.tokenLengthRange.contains(value.readableBytes) else {
                    throw ProtocolError(
                        .badRequest,
                        "HELLO token is \(value.readableBytes) bytes; tokens are \(WireProtocol.tokenLengthRange.lowerBound)-\(WireProtocol.tokenLengthRange.upperBound) bytes"
                    )
                }
                token = try value.readUTF8("token", length: value.readableBytes)
            }
            try body.expectEnd("HELLO")
            self = .hello(minVersion: minVersion, maxVersion: maxVersion, clientName: name, token: token)
        case .submit:
            self = .submit(try Self.readSubmit(flags: frame.flags, body: &body))
        case .taskStatus:
            let id = try body.readField("task_id", as: UInt64.self)
            try body.expectEnd("TASK_STATUS")
            self = .taskStatus(id)
        case .serverStatus:
            try body.expectEnd("SERVER_STATUS")
            self = .serverStatus
        case .ping:
            guard body.readableBytes <= WireProtocol.maxPingBody else {
                throw ProtocolError(.badRequest, "PING body is \(body.readableBytes) bytes; the limit is 1024")
            }
            self = .ping(body)
        case .wait:
            let id = try body.readField("task_id", as: UInt64.self)
            try body.expectEnd("WAIT")
            self = .wait(id)
        case .cancel:
            let id = try body.readField("task_id", as: UInt64.self)
            try body.expectEnd("CANCEL")
            self = .cancel(id)
        case .listTasks:
            let rawState = try body.readField("state", as: UInt8.self)
            let handler = try body.readShortString("handler")
            let afterID = try body.readField("after_id", as: UInt64.self)
            let limit = try body.readField("limit", as: UInt16.self)
            try body.expectEnd("LIST_TASKS")
            var state: TaskState?
            if rawState != 0 {
                guard let known = TaskState(rawValue: rawState) else {
                    let states = TaskState.allCases.map { "\($0.rawValue) \($0)" }.joined(separator: ", ")
                    throw ProtocolError(
                        .badRequest, "LIST_TASKS state \(rawState) is unknown; give 0 for any state, or one of \(states)")
                }
                state = known
            }
            let query = TaskListQuery(
                state: state, handler: handler.isEmpty ? nil : handler, afterID: afterID, limit: Int(limit))
            try query.validate()
            self = .listTasks(query)
        case .strategyList:
            try body.expectEnd("STRATEGY_LIST")
            self = .strategyList
        case .strategySet:
            let name = try body.readShortString("name")
            let handler = try body.readShortString("handler")
            let config = try body.readConfig("STRATEGY_SET")
            try body.expectEnd("STRATEGY_SET")
            guard !name.isEmpty else { throw ProtocolError(.badRequest, "STRATEGY_SET needs a strategy name") }
            self = .strategySet(StrategySetRequest(name: name, handler: handler.isEmpty ? nil : handler, config: config))
        case .strategyLoad:
            let path = try body.readMediumString("path")
            let config = try body.readConfig("STRATEGY_LOAD")
            try body.expectEnd("STRATEGY_LOAD")
            guard path.hasPrefix("/") else {
                throw ProtocolError(.badRequest, "STRATEGY_LOAD needs an absolute path on the server, not `\(path)`")
            }
            self = .strategyLoad(StrategyLoadRequest(path: path, config: config))
        case .reload:
            guard body.readableBytes > 0 else {
                self = .reload(nil)
                return
            }
            let percent = try body.readField("canary_percent", as: UInt8.self)
            let tasks = try body.readField("canary_tasks", as: UInt32.self)
            let margin = try body.readField("canary_margin_percent", as: UInt8.self)
            try body.expectEnd("RELOAD")
            let options = CanaryOptions(percent: Int(percent), tasks: Int(tasks), marginPercent: Int(margin))
            try options.validate()
            self = .reload(options)
        default:
            throw ProtocolError(.badRequest, "frame type \(frame.type) is not a client request")
        }
    }

    /// Reads a SUBMIT body: priority, handler, the option list, the payload.
    private static func readSubmit(flags: UInt8, body: inout ByteBuffer) throws -> SubmitRequest {
        let priority = try body.readField("priority", as: Int32.self)
        let handler = try body.readShortString("handler")
        let optionCount = try body.readField("option_count", as: UInt16.self)
        var request = SubmitRequest(
            handler: handler, payload: ByteBuffer(), priority: priority,
            background: flags & WireProtocol.submitBackground != 0)
        var seen: UInt8 = 0  // bit n set: tag n was given
        for _ in 0..<optionCount {
            let tag = try body.readField("option_tag", as: UInt8.self)
            let length = try body.readField("option_length", as: UInt16.self)
            guard var value = body.readSlice(length: Int(length)) else {
                throw ProtocolError(.badFrame, "frame body ends inside a SUBMIT option value")
            }
            guard let option = SubmitOptionTag(rawValue: tag) else {
                throw ProtocolError(
                    .badRequest,
                    "SUBMIT option tag \(tag) is unknown to this server; upgrade the server or drop the option")
            }
            let bit: UInt8 = 1 << option.rawValue
            guard seen & bit == 0 else {
                throw ProtocolError(
                    .badRequest, "SUBMIT option \(option) (tag \(tag)) is given twice; give each option at most once")
            }
            seen |= bit
            switch option {
            case .maxAttempts:
                request.maxAttempts = try value.readField("max_attempts", as: UInt32.self)
                try value.expectEnd("SUBMIT max_attempts option")
            case .delayMillis:
                request.delayMillis = try value.readField("delay_ms", as: UInt64.self)
                try value.expectEnd("SUBMIT delay_ms option")
            case .runAt:
                request.runAt = try value.readField("run_at", as: Int64.self)
                try value.expectEnd("SUBMIT run_at option")
            case .timeoutMillis:
                request.timeoutMillis = try value.readField("timeout_ms", as: UInt32.self)
                try value.expectEnd("SUBMIT timeout_ms option")
            case .key:
                request.key = try value.readUTF8("key", length: value.readableBytes)
            case .uniqueKey:
                request.uniqueKey = try value.readUTF8("unique_key", length: value.readableBytes)
            }
        }
        request.payload = body
        try request.validate()
        return request
    }

    /// Appends this message as one frame.
    public func write(requestID: UInt32, to buffer: inout ByteBuffer) {
        switch self {
        case .hello(let minVersion, let maxVersion, let clientName, let token):
            Frame.write(type: .hello, requestID: requestID, to: &buffer) { body in
                body.writeMultipleIntegers(WireProtocol.magic, minVersion, maxVersion)
                body.writeShortString(clientName)
                guard let token else {
                    body.writeInteger(UInt16(0))
                    return
                }
                body.writeInteger(UInt16(1))
                body.writeShortString(WireProtocol.tokenExtension)
                body.writeInteger(UInt32(token.utf8.count))
                body.writeString(token)
            }
        case .submit(let submit):
            ClientMessage.writeSubmit(submit, requestID: requestID, to: &buffer)
        case .taskStatus(let id):
            Frame.writeHeader(type: .taskStatus, requestID: requestID, bodyLength: 8, to: &buffer)
            buffer.writeInteger(id)
        case .serverStatus:
            Frame.writeHeader(type: .serverStatus, requestID: requestID, bodyLength: 0, to: &buffer)
        case .ping(let body):
            Frame(type: .ping, requestID: requestID, body: body).write(to: &buffer)
        case .wait(let id):
            Frame.writeHeader(type: .wait, requestID: requestID, bodyLength: 8, to: &buffer)
            buffer.writeInteger(id)
        case .cancel(let id):
            Frame.writeHeader(type: .cancel, requestID: requestID, bodyLength: 8, to: &buffer)
            buffer.writeInteger(id)
        case .listTasks(let query):
            Frame.write(type: .listTasks, requestID: requestID, to: &buffer) { body in
                body.writeInteger(query.state?.rawValue ?? 0)
                body.writeShortString(query.handler ?? "")
                // Clamping keeps an out-of-range limit out of range, so the server names it.
                body.writeMultipleIntegers(query.afterID, UInt16(clamping: query.limit))
            }
        case .strategyList:
            Frame.writeHeader(type: .strategyList, requestID: requestID, bodyLength: 0, to: &buffer)
        case .strategySet(let request):
            Frame.write(type: .strategySet, requestID: requestID, to: &buffer) { body in
                body.writeShortString(request.name)
                body.writeShortString(request.handler ?? "")
                body.writeConfig(request.config)
            }
        case .reload(let canary):
            guard let canary else {
                Frame.writeHeader(type: .reload, requestID: requestID, bodyLength: 0, to: &buffer)
                return
            }
            Frame.writeHeader(type: .reload, requestID: requestID, bodyLength: 6, to: &buffer)
            buffer.writeMultipleIntegers(
                UInt8(clamping: canary.percent), UInt32(clamping: canary.tasks), UInt8(clamping: canary.marginPercent))
        case .strategyLoad(let request):
            Frame.write(type: .strategyLoad, requestID: requestID, to: &buffer) { body in
                body.writeMediumString(request.path)
                body.writeConfig(request.config)
            }
        }
    }

    /// Appends a SUBMIT frame without building a `ClientMessage` first (the hot path).
    ///
    /// Only the options that are set are written. Values are written as they
    /// are, unchecked (`SubmitRequest.validate()` checks them): a server
    /// answers a value out of range with BAD_REQUEST naming it.
    @inlinable
    public static func writeSubmit(_ submit: SubmitRequest, requestID: UInt32, to buffer: inout ByteBuffer) {
        let flags = submit.background ? WireProtocol.submitBackground : 0
        Frame.write(type: .submit, flags: flags, requestID: requestID, to: &buffer) { body in
            body.writeInteger(submit.priority)
            body.writeShortString(submit.handler)
            let countIndex = body.writerIndex
            var count: UInt16 = 0
            body.writeInteger(count)
            if let maxAttempts = submit.maxAttempts {
                body.writeMultipleIntegers(SubmitOptionTag.maxAttempts.rawValue, UInt16(4), maxAttempts)
                count += 1
            }
            if let delay = submit.delayMillis {
                body.writeMultipleIntegers(SubmitOptionTag.delayMillis.rawValue, UInt16(8), delay)
                count += 1
            }
            if let runAt = submit.runAt {
                body.writeMultipleIntegers(SubmitOptionTag.runAt.rawValue, UInt16(8), runAt)
                count += 1
            }
            if let timeout = submit.timeoutMillis {
                body.writeMultipleIntegers(SubmitOptionTag.timeoutMillis.rawValue, UInt16(4), timeout)
                count += 1
            }
            if let key = submit.key {
                body.writeStringOption(SubmitOptionTag.key.rawValue, key)
                count += 1
            }
            if let uniqueKey = submit.uniqueKey {
                body.writeStringOption(SubmitOptionTag.uniqueKey.rawValue, uniqueKey)
                count += 1
            }
            if count != 0 { body.setInteger(count, at: countIndex) }
            var payload = submit.payload
            body.writeBuffer(&payload)
        }
    }
}

/// A frame from the server to a client.
public enum ServerMessage: Sendable, Hashable {
    case helloOK(version: UInt16, maxFrameSize: UInt32, serverName: String)
    case accepted(TaskID)
    case result(TaskID, ByteBuffer)
    case error(ErrorCode, taskID: TaskID, message: String)
    case progress(TaskID, done: UInt64, total: UInt64)
    case taskInfo(TaskInfo)
    /// SERVER_INFO carries a JSON document (`ServerStatus`).
    case serverInfo(ByteBuffer)
    case pong(ByteBuffer)
    /// A page of task records, in id order, without results.
    case taskList([TaskInfo])
    /// STRATEGY_INFO carries a JSON document (`StrategyReport`).
    case strategyInfo(ByteBuffer)
    /// RELOAD_INFO carries a JSON document (`ReloadReport`).
    case reloadInfo(ByteBuffer)

    public init(frame: Frame) throws {
        var body = frame.body
        switch frame.type {
        case .helloOK:
            let version = try body.readField("version", as: UInt16.self)
            let maxFrame = try body.readField("max_frame_size", as: UInt32.self)
            let name = try body.readShortString("server_name")
            try body.expectEnd("HELLO_OK")
            self = .helloOK(version: version, maxFrameSize: maxFrame, serverName: name)
        case .accepted:
            let id = try body.readField("task_id", as: UInt64.self)
            try body.expectEnd("ACCEPTED")
            self = .accepted(id)
        case .result:
            let id = try body.readField("task_id", as: UInt64.self)
            self = .result(id, body)
        case .error:
            let code = try body.readField("code", as: UInt16.self)
            let id = try body.readField("task_id", as: UInt64.self)
            let message = try body.readMediumString("message")
            try body.expectEnd("ERROR")
            self = .error(ErrorCode(rawValue: code), taskID: id, message: message)
        case .progress:
            let id = try body.readField("task_id", as: UInt64.self)
            let done = try body.readField("done", as: UInt64.self)
            let total = try body.readField("total", as: UInt64.self)
            try body.expectEnd("PROGRESS")
            self = .progress(id, done: done, total: total)
        case .taskInfo:
            self = .taskInfo(try body.readTaskInfo(layout: "TASK_INFO"))
        case .taskList:
            let count = try body.readField("count", as: UInt16.self)
            var infos: [TaskInfo] = []
            // Each entry takes at least 4 bytes: never reserve more than the body could hold.
            infos.reserveCapacity(min(Int(count), body.readableBytes / 4))
            for index in 1..<(Int(count) + 1) {
                let length = try body.readField("entry_length", as: UInt32.self)
                guard var entry = body.readSlice(length: Int(length)) else {
                    throw ProtocolError(
                        .badFrame, "frame body ends inside the field `entry` (TASK_LIST entry \(index) of \(count))")
                }
                do {
                    infos.append(try entry.readTaskInfo(layout: "TASK_INFO", resultAllowed: false))
                } catch let error as ProtocolError {
                    throw ProtocolError(error.code, "TASK_LIST entry \(index) of \(count): \(error.message)")
                }
            }
            try body.expectEnd("TASK_LIST")
            self = .taskList(infos)
        case .serverInfo:
            self = .serverInfo(body)
        case .strategyInfo:
            self = .strategyInfo(body)
        case .reloadInfo:
            self = .reloadInfo(body)
        case .pong:
            self = .pong(body)
        default:
            throw ProtocolError(.badFrame, "frame type \(frame.type) is not a server reply")
        }
    }

    public func write(requestID: UInt32, to buffer: inout ByteBuffer) {
        switch self {
        case .helloOK(let version, let maxFrameSize, let serverName):
            Frame.write(type: .helloOK, requestID: requestID, to: &buffer) { body in
                body.writeMultipleIntegers(version, maxFrameSize)
                body.writeShortString(serverName)
            }
        case .accepted(let id):
            Frame.writeHeader(type: .accepted, requestID: requestID, bodyLength: 8, to: &buffer)
            buffer.writeInteger(id)
        case .result(let id, var result):
            Frame.writeHeader(type: .result, requestID: requestID, bodyLength: 8 + result.readableBytes, to: &buffer)
            buffer.writeInteger(id)
            buffer.writeBuffer(&result)
        case .error(let code, let id, let message):
            Frame.write(type: .error, requestID: requestID, to: &buffer) { body in
                body.writeMultipleIntegers(code.rawValue, id)
                body.writeMediumString(message)
            }
        case .progress(let id, let done, let total):
            Frame.writeHeader(type: .progress, requestID: requestID, bodyLength: 24, to: &buffer)
            buffer.writeMultipleIntegers(id, done, total)
        case .taskInfo(let info):
            Frame.write(type: .taskInfo, requestID: requestID, to: &buffer) { body in
                body.writeTaskInfo(info, includingResult: true)
            }
        case .strategyInfo(let json):
            Frame(type: .strategyInfo, requestID: requestID, body: json).write(to: &buffer)
        case .reloadInfo(let json):
            Frame(type: .reloadInfo, requestID: requestID, body: json).write(to: &buffer)
        case .serverInfo(let json):
            Frame(type: .serverInfo, requestID: requestID, body: json).write(to: &buffer)
        case .pong(let body):
            Frame(type: .pong, requestID: requestID, body: body).write(to: &buffer)
        case .taskList(let infos):
            Frame.write(type: .taskList, requestID: requestID, to: &buffer) { body in
                let count = min(infos.count, Int(UInt16.max))
                body.writeInteger(UInt16(count))
                for info in infos.prefix(count) {
                    let lengthIndex = body.writerIndex
                    body.writeInteger(UInt32(0))
                    // Lists never carry results: a page of them could dwarf any frame limit.
                    body.writeTaskInfo(info, includingResult: false)
                    body.setInteger(UInt32(body.writerIndex - lengthIndex - 4), at: lengthIndex)
                }
            }
        }
    }
}

extension ByteBuffer {
    /// Reads a TASK_INFO body (also the layout of each TASK_LIST entry): the
    /// fixed-width fields, the strings, the last error, then the result, which
    /// runs to the end of `self`.
    ///
    /// - Parameter resultAllowed: false for TASK_LIST entries, whose
    ///   `has_result` is always 0 (a list that carried results would not
    ///   survive being written again, which drops them).
    mutating func readTaskInfo(layout: StaticString, resultAllowed: Bool = true) throws -> TaskInfo {
        let id = try readField("task_id", as: UInt64.self)
        let rawState = try readField("state", as: UInt8.self)
        guard let state = TaskState(rawValue: rawState) else {
            throw ProtocolError(.badFrame, "\(layout) state \(rawState) is unknown")
        }
        let priority = try readField("priority", as: Int32.self)
        let attempts = try readField("attempts", as: UInt32.self)
        let maxAttempts = try readField("max_attempts", as: UInt32.self)
        let timeout = try readField("timeout_ms", as: UInt32.self)
        let runAt = try readField("run_at", as: Int64.self)
        let createdAt = try readField("created_at", as: Int64.self)
        let startedAt = try readField("started_at", as: Int64.self)
        let finishedAt = try readField("finished_at", as: Int64.self)
        let handler = try readShortString("handler")
        let key = try readShortString("key")
        let uniqueKey = try readShortString("unique_key")
        let code = try readField("error_code", as: UInt16.self)
        let message = try readMediumString("error_message")
        let hasResult = try readField("has_result", as: UInt8.self)
        if hasResult != 0 && !resultAllowed {
            throw ProtocolError(.badFrame, "\(layout) has_result is \(hasResult); list entries never carry a result")
        }
        if hasResult == 0 { try expectEnd(layout) }
        return TaskInfo(
            id: id, state: state, handler: handler, priority: priority, attempts: attempts,
            maxAttempts: maxAttempts, key: key.isEmpty ? nil : key, uniqueKey: uniqueKey.isEmpty ? nil : uniqueKey,
            timeoutMillis: timeout, runAt: runAt, createdAt: createdAt, startedAt: startedAt,
            finishedAt: finishedAt, errorCode: code == 0 ? nil : ErrorCode(rawValue: code),
            errorMessage: code == 0 ? nil : message, result: hasResult != 0 ? self : nil)
    }

    /// Writes a TASK_INFO body; the result only when `includingResult`.
    mutating func writeTaskInfo(_ info: TaskInfo, includingResult: Bool) {
        writeMultipleIntegers(
            info.id, info.state.rawValue, info.priority, info.attempts, info.maxAttempts, info.timeoutMillis)
        writeMultipleIntegers(info.runAt, info.createdAt, info.startedAt, info.finishedAt)
        writeShortString(info.handler)
        writeShortString(info.key ?? "")
        writeShortString(info.uniqueKey ?? "")
        writeInteger(info.errorCode?.rawValue ?? 0)
        writeMediumString(info.errorCode == nil ? "" : info.errorMessage ?? "")
        if includingResult, var result = info.result {
            writeInteger(UInt8(1))
            writeBuffer(&result)
        } else {
            writeInteger(UInt8(0))
        }
    }
}

extension ByteBuffer {
    /// Reads a strategy config: u16 count, then (short key, medium value) pairs.
    fileprivate mutating func readConfig(_ frame: String) throws -> [String: String] {
        let count = try readField("config_count", as: UInt16.self)
        var config: [String: String] = [:]
        for _ in 0..<count {
            let key = try readShortString("config_key")
            let value = try readMediumString("config_value")
            guard config.updateValue(value, forKey: key) == nil else {
                throw ProtocolError(.badRequest, "\(frame) names the config key `\(key)` twice")
            }
        }
        return config
    }

    fileprivate mutating func writeConfig(_ config: [String: String]) {
        writeInteger(UInt16(clamping: config.count))
        for (key, value) in config.sorted(by: { $0.key < $1.key }).prefix(Int(UInt16.max)) {
            writeShortString(key)
            writeMediumString(value)
        }
    }
}
