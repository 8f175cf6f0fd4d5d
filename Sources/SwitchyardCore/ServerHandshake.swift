import NIOCore

/// The server's side of a connection's handshake, as a state machine with no
/// I/O: fed each frame that arrives before the connection is established, it
/// says what to answer and whether to close, and, once a HELLO is accepted,
/// who the client is. The host drives it (`ClientConnection`); tests and the
/// fuzzer drive it with bytes alone.
///
/// Rules (docs/PROTOCOL.md, section 3):
/// - The first frame must be HELLO; anything else is HANDSHAKE_REQUIRED, and
///   after a HELLO that failed authentication, AUTH_REQUIRED (both close).
/// - A HELLO with no version in common is UNSUPPORTED_VERSION (close).
/// - On the admin socket (`Peer.local`) HELLO needs no token: the client is
///   `ClientIdentity.local`. On a server without tokens every client is
///   `ClientIdentity.unauthenticated`, and a token is ignored.
/// - Otherwise: an address the throttle bars gets AUTH_LOCKED (close), a
///   HELLO without a token AUTH_REQUIRED (close), a wrong token AUTH_FAILED
///   (the client may send HELLO again, until the throttle bars its address:
///   then AUTH_FAILED and close), a right one HELLO_OK.
public struct ServerHandshake {
    /// What the server tells every client, and what it checks.
    public struct Settings: Sendable {
        /// The tokens a client may present; nil when the server authenticates no one.
        public var tokens: AuthTokens?
        public var serverName: String
        /// HELLO_OK's `max_frame_size`.
        public var maxFrameSize: UInt32

        public init(tokens: AuthTokens?, serverName: String, maxFrameSize: UInt32) {
            self.tokens = tokens
            self.serverName = serverName
            self.maxFrameSize = maxFrameSize
        }
    }

    /// Where the connection comes from.
    public enum Peer: Sendable, Hashable {
        /// A network address (the IP, without port): the throttle's key.
        case network(String)
        /// The admin socket: only the server's own user can open it.
        case local
    }

    /// What to do with a frame.
    public enum Step: Sendable, Hashable {
        /// Send this reply; the handshake goes on.
        case reply(ServerMessage)
        /// Send this reply, then close the connection.
        case close(ServerMessage)
        /// Send this reply (HELLO_OK): the connection is established, and
        /// every later frame is a request from this client.
        case established(ServerMessage, ClientIdentity)
    }

    private enum State {
        case awaitingHello
        case authenticationFailed
        case done
    }

    public let settings: Settings
    public let peer: Peer
    private let throttle: AuthThrottle
    private var state = State.awaitingHello

    /// - Parameter throttle: shared by every connection of the server; it
    ///   counts failures per address (unused for `.local` peers and servers
    ///   without tokens).
    public init(settings: Settings, peer: Peer, throttle: AuthThrottle) {
        self.settings = settings
        self.peer = peer
        self.throttle = throttle
    }

    /// Handles one frame that arrived before the connection was established.
    ///
    /// - Parameter now: milliseconds on the throttle's clock.
    public mutating func receive(_ frame: Frame, now: Int64) -> Step {
        switch state {
        case .done:
            return finish(.close(.error(.internalError, taskID: 0, message: "the handshake is already over")))
        case .awaitingHello, .authenticationFailed:
            break
        }
        guard frame.type == .hello else {
            if state == .authenticationFailed {
                return finish(
                    .close(
                        error(
                            .authRequired,
                            "\(frame.type) before authentication: this server takes requests only after a HELLO with a valid token"
                        )))
            }
            return finish(
                .close(error(.handshakeRequired, "the first frame must be HELLO, not \(frame.type); see docs/PROTOCOL.md")))
        }
        let message: ClientMessage
        do {
            message = try ClientMessage(frame: frame)
        } catch let failure as ProtocolError {
            let reply = ServerMessage.error(failure.code, taskID: 0, message: failure.message)
            return failure.code.closesConnection ? finish(.close(reply)) : .reply(reply)
        } catch {
            return finish(.close(self.error(.internalError, "\(error)")))
        }
        guard case .hello(let minVersion, let maxVersion, _, let token) = message else {
            return finish(.close(error(.internalError, "a HELLO frame did not decode as HELLO")))
        }
        let version = min(maxVersion, WireProtocol.maxVersion)
        guard version >= minVersion, version >= WireProtocol.minVersion else {
            return finish(
                .close(
                    error(
                        .unsupportedVersion,
                        "client speaks protocol versions \(minVersion)-\(maxVersion); this server speaks \(WireProtocol.minVersion)-\(WireProtocol.maxVersion)"
                    )))
        }
        let welcome = ServerMessage.helloOK(
            version: version, maxFrameSize: settings.maxFrameSize, serverName: settings.serverName)
        guard case .network(let address) = peer else { return finish(.established(welcome, .local)) }
        guard let tokens = settings.tokens else { return finish(.established(welcome, .unauthenticated)) }
        if let millis = throttle.barredFor(address, now: now) {
            return finish(
                .close(
                    error(
                        .authLocked,
                        "too many failed authentications from \(address): connections from it are refused for \(Self.seconds(millis)) more; retry after that with a valid token"
                    )))
        }
        guard let token else {
            return finish(
                .close(
                    error(
                        .authRequired,
                        "this server requires a token and HELLO carried none: give one (switchyard --token-file FILE or SWITCHYARD_TOKEN; ConnectOptions.token in Swift)"
                    )))
        }
        if let identity = tokens.identity(for: token) {
            return finish(.established(welcome, identity))
        }
        state = .authenticationFailed
        let wrong = "the token matches none of this server's tokens (its --auth file)"
        switch throttle.recordFailure(address, now: now) {
        case .tryAgain(let left):
            return .reply(
                error(
                    .authFailed,
                    "\(wrong); \(left) more \(left == 1 ? "failure" : "failures") from \(address) and it is refused for a while"
                ))
        case .barred(let millis):
            return finish(
                .close(
                    error(
                        .authFailed,
                        "\(wrong); too many failures from \(address): this connection is closed and \(address) is refused for \(Self.seconds(millis))"
                    )))
        }
    }

    private mutating func finish(_ step: Step) -> Step {
        state = .done
        return step
    }

    private func error(_ code: ErrorCode, _ message: String) -> ServerMessage {
        .error(code, taskID: 0, message: message)
    }

    /// Whole seconds, rounded up: "1 s", "600 s".
    static func seconds(_ millis: Int64) -> String {
        "\(millis / 1000 + (millis % 1000 == 0 ? 0 : 1)) s"
    }
}
