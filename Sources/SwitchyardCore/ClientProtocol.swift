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
}

/// SUBMIT option tags (a tag-length-value list; unknown tags are rejected, never ignored).
public enum SubmitOptionTag: UInt8, Sendable {
    /// u32: attempts allowed, 1-100 (default: the server's, 2).
    case maxAttempts = 1
}

/// A SUBMIT request.
public struct SubmitRequest: Sendable, Hashable {
    public var handler: String
    public var payload: ByteBuffer
    public var priority: Int32
    /// Reply ACCEPTED with the task id at once rather than the result when done.
    public var background: Bool
    /// Attempts allowed, counting the first; nil takes the server's default.
    public var maxAttempts: UInt32?

    public init(
        handler: String, payload: ByteBuffer, priority: Int32 = 0, background: Bool = false,
        maxAttempts: UInt32? = nil
    ) {
        self.handler = handler
        self.payload = payload
        self.priority = priority
        self.background = background
        self.maxAttempts = maxAttempts
    }
}

/// A frame from a client to the server.
public enum ClientMessage: Sendable, Hashable {
    case hello(minVersion: UInt16, maxVersion: UInt16, clientName: String)
    case submit(SubmitRequest)
    case taskStatus(TaskID)
    case serverStatus
    case ping(ByteBuffer)

    public var frameType: FrameType {
        switch self {
        case .hello: .hello
        case .submit: .submit
        case .taskStatus: .taskStatus
        case .serverStatus: .serverStatus
        case .ping: .ping
        }
    }

    /// Parses a client frame. Throws `ProtocolError` naming the field at fault.
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
            for _ in 0..<extensions {
                _ = try body.readShortString("extension_key")
                let length = try body.readField("extension_length", as: UInt32.self)
                guard body.readSlice(length: Int(length)) != nil else {
                    throw ProtocolError(.badFrame, "frame body ends inside the field `extension_value`")
                }
            }
            try body.expectEnd("HELLO")
            self = .hello(minVersion: minVersion, maxVersion: maxVersion, clientName: name)
        case .submit:
            let priority = try body.readField("priority", as: Int32.self)
            let handler = try body.readShortString("handler")
            let optionCount = try body.readField("option_count", as: UInt16.self)
            var maxAttempts: UInt32?
            for _ in 0..<optionCount {
                let tag = try body.readField("option_tag", as: UInt8.self)
                let length = try body.readField("option_length", as: UInt16.self)
                guard var value = body.readSlice(length: Int(length)) else {
                    throw ProtocolError(.badFrame, "frame body ends inside a SUBMIT option value")
                }
                switch SubmitOptionTag(rawValue: tag) {
                case .maxAttempts:
                    let attempts = try value.readField("max_attempts", as: UInt32.self)
                    try value.expectEnd("SUBMIT max_attempts option")
                    guard WireProtocol.maxAttemptsRange.contains(attempts) else {
                        throw ProtocolError(
                            .badRequest, "SUBMIT max_attempts is \(attempts); it must be between 1 and 100")
                    }
                    maxAttempts = attempts
                case nil:
                    throw ProtocolError(
                        .badRequest, "SUBMIT option tag \(tag) is unknown to this server; upgrade the server or drop the option")
                }
            }
            self = .submit(
                SubmitRequest(
                    handler: handler, payload: body, priority: priority,
                    background: frame.flags & WireProtocol.submitBackground != 0, maxAttempts: maxAttempts))
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
        default:
            throw ProtocolError(.badRequest, "frame type \(frame.type) is not a client request")
        }
    }

    /// Appends this message as one frame.
    public func write(requestID: UInt32, to buffer: inout ByteBuffer) {
        switch self {
        case .hello(let minVersion, let maxVersion, let clientName):
            Frame.write(type: .hello, requestID: requestID, to: &buffer) { body in
                body.writeMultipleIntegers(WireProtocol.magic, minVersion, maxVersion)
                body.writeShortString(clientName)
                body.writeInteger(UInt16(0))
            }
        case .submit(let submit):
            ClientMessage.writeSubmit(submit, requestID: requestID, to: &buffer)
        case .taskStatus(let id):
            Frame.write(type: .taskStatus, requestID: requestID, to: &buffer) { $0.writeInteger(id) }
        case .serverStatus:
            Frame.writeHeader(type: .serverStatus, requestID: requestID, bodyLength: 0, to: &buffer)
        case .ping(let body):
            Frame(type: .ping, requestID: requestID, body: body).write(to: &buffer)
        }
    }

    /// Appends a SUBMIT frame without building a `ClientMessage` first (the hot path).
    @inlinable
    public static func writeSubmit(_ submit: SubmitRequest, requestID: UInt32, to buffer: inout ByteBuffer) {
        let flags = submit.background ? WireProtocol.submitBackground : 0
        Frame.write(type: .submit, flags: flags, requestID: requestID, to: &buffer) { body in
            body.writeInteger(submit.priority)
            body.writeShortString(submit.handler)
            if let maxAttempts = submit.maxAttempts {
                body.writeMultipleIntegers(
                    UInt16(1), SubmitOptionTag.maxAttempts.rawValue, UInt16(4), maxAttempts)
            } else {
                body.writeInteger(UInt16(0))
            }
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
            let id = try body.readField("task_id", as: UInt64.self)
            let rawState = try body.readField("state", as: UInt8.self)
            guard let state = TaskState(rawValue: rawState) else {
                throw ProtocolError(.badFrame, "TASK_INFO state \(rawState) is unknown")
            }
            let priority = try body.readField("priority", as: Int32.self)
            let attempts = try body.readField("attempts", as: UInt32.self)
            let maxAttempts = try body.readField("max_attempts", as: UInt32.self)
            let handler = try body.readShortString("handler")
            let code = try body.readField("error_code", as: UInt16.self)
            let message = try body.readMediumString("error_message")
            let hasResult = try body.readField("has_result", as: UInt8.self)
            if hasResult == 0 { try body.expectEnd("TASK_INFO") }
            self = .taskInfo(
                TaskInfo(
                    id: id, state: state, handler: handler, priority: priority, attempts: attempts,
                    maxAttempts: maxAttempts, errorCode: code == 0 ? nil : ErrorCode(rawValue: code),
                    errorMessage: code == 0 ? nil : message, result: hasResult != 0 ? body : nil))
        case .serverInfo:
            self = .serverInfo(body)
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
                body.writeMultipleIntegers(
                    info.id, info.state.rawValue, info.priority, info.attempts, info.maxAttempts)
                body.writeShortString(info.handler)
                body.writeInteger(info.errorCode?.rawValue ?? 0)
                body.writeMediumString(info.errorMessage ?? "")
                if var result = info.result {
                    body.writeInteger(UInt8(1))
                    body.writeBuffer(&result)
                } else {
                    body.writeInteger(UInt8(0))
                }
            }
        case .serverInfo(let json):
            Frame(type: .serverInfo, requestID: requestID, body: json).write(to: &buffer)
        case .pong(let body):
            Frame(type: .pong, requestID: requestID, body: body).write(to: &buffer)
        }
    }
}
