import NIOCore

/// The kind of a frame: the byte after the length prefix.
///
/// Values from 0x01 are client requests, from 0x81 server replies, from 0x41
/// host-to-worker messages and from 0xC1 worker-to-host messages. Unknown
/// values are representable so a peer can answer them with a clear error.
public struct FrameType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    // Client → server.
    public static let hello = FrameType(rawValue: 0x01)
    public static let submit = FrameType(rawValue: 0x02)
    public static let taskStatus = FrameType(rawValue: 0x03)
    public static let serverStatus = FrameType(rawValue: 0x04)
    public static let ping = FrameType(rawValue: 0x05)
    public static let wait = FrameType(rawValue: 0x06)
    public static let cancel = FrameType(rawValue: 0x07)
    public static let listTasks = FrameType(rawValue: 0x08)
    public static let strategyList = FrameType(rawValue: 0x09)
    public static let strategySet = FrameType(rawValue: 0x0A)
    public static let strategyLoad = FrameType(rawValue: 0x0B)
    public static let reload = FrameType(rawValue: 0x0C)

    // Server → client.
    public static let helloOK = FrameType(rawValue: 0x81)
    public static let accepted = FrameType(rawValue: 0x82)
    public static let result = FrameType(rawValue: 0x83)
    public static let error = FrameType(rawValue: 0x84)
    public static let progress = FrameType(rawValue: 0x85)
    public static let taskInfo = FrameType(rawValue: 0x86)
    public static let serverInfo = FrameType(rawValue: 0x87)
    public static let pong = FrameType(rawValue: 0x88)
    public static let taskList = FrameType(rawValue: 0x89)
    public static let strategyInfo = FrameType(rawValue: 0x8A)
    public static let reloadInfo = FrameType(rawValue: 0x8B)

    // Host → worker.
    public static let workerConfig = FrameType(rawValue: 0x41)
    public static let workerTask = FrameType(rawValue: 0x42)
    public static let workerStop = FrameType(rawValue: 0x43)

    // Worker → host.
    public static let workerHello = FrameType(rawValue: 0xC1)
    public static let workerDone = FrameType(rawValue: 0xC2)
    public static let workerProgress = FrameType(rawValue: 0xC3)
    public static let workerLog = FrameType(rawValue: 0xC4)
    public static let workerLoading = FrameType(rawValue: 0xC5)

    public var description: String {
        switch self {
        case .hello: "HELLO"
        case .submit: "SUBMIT"
        case .taskStatus: "TASK_STATUS"
        case .serverStatus: "SERVER_STATUS"
        case .ping: "PING"
        case .wait: "WAIT"
        case .cancel: "CANCEL"
        case .listTasks: "LIST_TASKS"
        case .strategyList: "STRATEGY_LIST"
        case .strategySet: "STRATEGY_SET"
        case .strategyLoad: "STRATEGY_LOAD"
        case .reload: "RELOAD"
        case .helloOK: "HELLO_OK"
        case .accepted: "ACCEPTED"
        case .result: "RESULT"
        case .error: "ERROR"
        case .progress: "PROGRESS"
        case .taskInfo: "TASK_INFO"
        case .serverInfo: "SERVER_INFO"
        case .pong: "PONG"
        case .taskList: "TASK_LIST"
        case .strategyInfo: "STRATEGY_INFO"
        case .reloadInfo: "RELOAD_INFO"
        case .workerConfig: "WORKER_CONFIG"
        case .workerTask: "WORKER_TASK"
        case .workerStop: "WORKER_STOP"
        case .workerHello: "WORKER_HELLO"
        case .workerDone: "WORKER_DONE"
        case .workerProgress: "WORKER_PROGRESS"
        case .workerLog: "WORKER_LOG"
        case .workerLoading: "WORKER_LOADING"
        default: "0x" + String(rawValue, radix: 16)
        }
    }
}

/// One length-prefixed frame of the Switchyard wire protocol (docs/PROTOCOL.md).
///
/// Layout, all integers big-endian:
///
///     u32 length      bytes after this field: 6 + body length
///     u8  type        FrameType
///     u8  flags       per type (SUBMIT: bit 0 = background)
///     u32 request id  chosen by the requester, echoed in every reply
///     ... body        `length - 6` bytes
public struct Frame: Sendable, Hashable {
    /// Bytes of the fixed header, length field included.
    public static let headerSize = 10
    /// Bytes of the header after the length field.
    public static let headerRest: UInt32 = 6
    /// The default largest frame (header included) a peer accepts: 16 MiB.
    public static let defaultMaxSize = 16 * 1024 * 1024

    public var type: FrameType
    public var flags: UInt8
    public var requestID: UInt32
    public var body: ByteBuffer

    public init(type: FrameType, flags: UInt8 = 0, requestID: UInt32, body: ByteBuffer) {
        self.type = type
        self.flags = flags
        self.requestID = requestID
        self.body = body
    }

    /// Reads one whole frame from the front of `buffer`, or returns nil (consuming
    /// nothing) when the buffer does not yet hold a whole frame. The body is a
    /// slice of `buffer`: no bytes are copied.
    ///
    /// - Throws: `ProtocolError` when the length is below the header size or the
    ///   frame would exceed `maxSize`; the stream cannot be resynchronised then.
    @inlinable
    public static func read(from buffer: inout ByteBuffer, maxSize: Int = Frame.defaultMaxSize) throws -> Frame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard length >= Frame.headerRest else {
            throw ProtocolError(.badFrame, "frame length \(length) is below the 6-byte header")
        }
        let total = Int(length) + 4
        guard total <= maxSize else {
            throw ProtocolError(
                .frameTooLarge,
                "frame of \(total) bytes exceeds the limit of \(maxSize) bytes; split the payload or raise the limit"
            )
        }
        guard buffer.readableBytes >= total else { return nil }
        let start = buffer.readerIndex
        let type = buffer.getInteger(at: start + 4, as: UInt8.self)!
        let flags = buffer.getInteger(at: start + 5, as: UInt8.self)!
        let requestID = buffer.getInteger(at: start + 6, as: UInt32.self)!
        let body = buffer.getSlice(at: start + Frame.headerSize, length: total - Frame.headerSize)!
        buffer.moveReaderIndex(forwardBy: total)
        return Frame(type: FrameType(rawValue: type), flags: flags, requestID: requestID, body: body)
    }

    /// Appends this frame to `buffer`.
    @inlinable
    public func write(to buffer: inout ByteBuffer) {
        Frame.writeHeader(
            type: type, flags: flags, requestID: requestID, bodyLength: body.readableBytes, to: &buffer)
        var body = body
        buffer.writeBuffer(&body)
    }

    /// Appends a frame header announcing `bodyLength` bytes of body that the caller writes next.
    @inlinable
    public static func writeHeader(
        type: FrameType, flags: UInt8 = 0, requestID: UInt32, bodyLength: Int, to buffer: inout ByteBuffer
    ) {
        buffer.writeMultipleIntegers(
            UInt32(truncatingIfNeeded: bodyLength) &+ Frame.headerRest, type.rawValue, flags, requestID)
    }

    /// Writes a frame whose body `writeBody` appends, back-filling the length.
    @inlinable
    public static func write(
        type: FrameType, flags: UInt8 = 0, requestID: UInt32, to buffer: inout ByteBuffer,
        body writeBody: (inout ByteBuffer) -> Void
    ) {
        let start = buffer.writerIndex
        buffer.writeMultipleIntegers(UInt32(0), type.rawValue, flags, requestID)
        writeBody(&buffer)
        buffer.setInteger(UInt32(buffer.writerIndex - start - 4), at: start)
    }
}

/// A frame that could not be accepted, and the ERROR to answer it with.
///
/// Whether the connection survives depends on `code`: BAD_FRAME, FRAME_TOO_LARGE,
/// UNSUPPORTED_VERSION and HANDSHAKE_REQUIRED close it after the ERROR reply;
/// BAD_REQUEST leaves it open (docs/PROTOCOL.md, "Errors").
public struct ProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code): \(message)" }
}
