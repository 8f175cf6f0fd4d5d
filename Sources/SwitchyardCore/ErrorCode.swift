/// A typed error code carried in ERROR frames. Clients switch on the code;
/// people read the message that comes with it.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The frame could not be parsed (bad length, truncated body, bad UTF-8). Connection closed.
    public static let badFrame = ErrorCode(rawValue: 1)
    /// The frame is larger than the peer's limit. Connection closed.
    public static let frameTooLarge = ErrorCode(rawValue: 2)
    /// No protocol version in common, or a bad magic number. Connection closed.
    public static let unsupportedVersion = ErrorCode(rawValue: 3)
    /// A request arrived before HELLO. Connection closed.
    public static let handshakeRequired = ErrorCode(rawValue: 4)
    /// A well-framed request that is not valid (unknown type, bad field). Connection stays open.
    public static let badRequest = ErrorCode(rawValue: 5)
    /// No loaded plugin has a handler by that name.
    public static let unknownHandler = ErrorCode(rawValue: 10)
    /// No task with that id is known (never existed, or its record expired).
    public static let unknownTask = ErrorCode(rawValue: 11)
    /// The task was cancelled before it finished.
    public static let cancelled = ErrorCode(rawValue: 12)
    /// The handler reported a failure (permanent, or retryable with no attempts left).
    public static let handlerFailed = ErrorCode(rawValue: 20)
    /// The worker process running the task died on every attempt.
    public static let workerCrashed = ErrorCode(rawValue: 21)
    /// An attempt ran past its timeout; its worker was killed and replaced.
    public static let timeout = ErrorCode(rawValue: 22)
    /// The payload does not fit a bound C function's signature (wrong count or
    /// type, an integer out of range); the message names the argument. Not retried.
    public static let badArguments = ErrorCode(rawValue: 23)
    /// The task broke a per-worker limit (`serve --worker-cpu`, `--worker-memory`):
    /// its worker was ended and replaced; the message names the limit and the
    /// flag. Not retried: it would break the limit again.
    public static let workerLimit = ErrorCode(rawValue: 24)
    /// The server is shutting down and takes no new tasks.
    public static let shuttingDown = ErrorCode(rawValue: 30)
    /// Queued and scheduled tasks have reached the server's limit (`serve --max-queue`).
    public static let queueFull = ErrorCode(rawValue: 31)
    /// STRATEGY_SET named a strategy the server does not have.
    public static let unknownStrategy = ErrorCode(rawValue: 40)
    /// STRATEGY_LOAD: the file was refused (not loadable, wrong ABI, or its probe process failed).
    public static let strategyRefused = ErrorCode(rawValue: 41)
    /// RELOAD: the new plugin set was refused (its probe failed); the old one keeps serving.
    public static let reloadFailed = ErrorCode(rawValue: 42)
    /// The connection has too many requests in flight. Reserved: this server
    /// does not send it; at its in-flight limit (`serve --max-in-flight`) it
    /// stops reading from the connection instead, so a client is slowed, not refused.
    public static let tooManyRequests = ErrorCode(rawValue: 32)
    /// The server has as many connections as it allows, in total
    /// (`serve --max-connections`) or from this address
    /// (`serve --max-connections-per-address`). Connection closed.
    public static let tooManyConnections = ErrorCode(rawValue: 33)
    /// No HELLO arrived within the handshake timeout (`serve --handshake-timeout`). Connection closed.
    public static let handshakeTimeout = ErrorCode(rawValue: 34)
    /// Nothing was asked and nothing was in flight for the idle timeout
    /// (`serve --idle-timeout`). Connection closed.
    public static let idleTimeout = ErrorCode(rawValue: 35)
    /// A SUBMIT payload is larger than the server allows (`serve --max-payload-size`);
    /// the task was not created. Connection stays open.
    public static let payloadTooLarge = ErrorCode(rawValue: 36)
    /// HELLO carried no token, or a request came after a failed HELLO, on a
    /// server that authenticates clients (`serve --auth`). Connection closed.
    public static let authRequired = ErrorCode(rawValue: 50)
    /// HELLO's token matches none the server has. The connection stays open
    /// for another HELLO until the address's failure limit, then it is closed.
    public static let authFailed = ErrorCode(rawValue: 51)
    /// Too many failed authentications from this address: it is refused for a
    /// while (the message says how long). Connection closed.
    public static let authLocked = ErrorCode(rawValue: 52)
    /// The request needs a role this connection does not have (RELOAD,
    /// STRATEGY_SET and STRATEGY_LOAD need admin; a submit token may cancel
    /// only its own tasks). Connection stays open.
    public static let forbidden = ErrorCode(rawValue: 53)
    /// A plaintext client reached a server that requires TLS. Connection closed.
    public static let tlsRequired = ErrorCode(rawValue: 54)
    /// A TLS client reached a server (or the admin socket) that does not speak TLS. Connection closed.
    public static let tlsUnavailable = ErrorCode(rawValue: 55)
    /// A bug in the server; the message says what.
    public static let internalError = ErrorCode(rawValue: 99)

    public var name: String {
        switch self {
        case .badFrame: "BAD_FRAME"
        case .frameTooLarge: "FRAME_TOO_LARGE"
        case .unsupportedVersion: "UNSUPPORTED_VERSION"
        case .handshakeRequired: "HANDSHAKE_REQUIRED"
        case .badRequest: "BAD_REQUEST"
        case .unknownHandler: "UNKNOWN_HANDLER"
        case .unknownTask: "UNKNOWN_TASK"
        case .cancelled: "CANCELLED"
        case .handlerFailed: "HANDLER_FAILED"
        case .workerCrashed: "WORKER_CRASHED"
        case .timeout: "TIMEOUT"
        case .badArguments: "BAD_ARGUMENTS"
        case .workerLimit: "WORKER_LIMIT"
        case .shuttingDown: "SHUTTING_DOWN"
        case .queueFull: "QUEUE_FULL"
        case .unknownStrategy: "UNKNOWN_STRATEGY"
        case .strategyRefused: "STRATEGY_REFUSED"
        case .reloadFailed: "RELOAD_FAILED"
        case .tooManyRequests: "TOO_MANY_REQUESTS"
        case .tooManyConnections: "TOO_MANY_CONNECTIONS"
        case .handshakeTimeout: "HANDSHAKE_TIMEOUT"
        case .idleTimeout: "IDLE_TIMEOUT"
        case .payloadTooLarge: "PAYLOAD_TOO_LARGE"
        case .authRequired: "AUTH_REQUIRED"
        case .authFailed: "AUTH_FAILED"
        case .authLocked: "AUTH_LOCKED"
        case .forbidden: "FORBIDDEN"
        case .tlsRequired: "TLS_REQUIRED"
        case .tlsUnavailable: "TLS_UNAVAILABLE"
        case .internalError: "INTERNAL"
        default: "ERROR_\(rawValue)"
        }
    }

    public var description: String { name }

    /// Errors after which the server closes the connection: the byte stream
    /// cannot be trusted any more, or the client may not go on.
    public var closesConnection: Bool {
        self == .badFrame || self == .frameTooLarge || self == .unsupportedVersion || self == .handshakeRequired
            || self == .authRequired || self == .authLocked || self == .tlsRequired || self == .tlsUnavailable
            || self == .tooManyConnections || self == .handshakeTimeout || self == .idleTimeout
    }
}
