import NIOCore
import SwitchyardCore

/// What the fuzz target checks about the handshake: the frames of one input
/// are what one client sends, connection after connection (a connection ends
/// where the handshake closes it or establishes it, and the next frames open
/// a new one from the same address), into `ServerHandshake` as the server
/// drives it, three ways: a server with tokens, one without, and the admin
/// socket.
///
/// Invariants:
/// - No one is established on a server with tokens without presenting one of
///   them, and then with that token's role; without tokens a client is
///   `unauthenticated`, on the admin socket `local`.
/// - A HELLO with a right token and a version in common is refused only
///   because the throttle bars the address (AUTH_LOCKED).
/// - Every answer is HELLO_OK or an ERROR with a message, never INTERNAL (bad
///   bytes are the client's fault), of a code the handshake may give, and it
///   fits the frame size the server announces. An answer that goes on
///   (`reply`) never has a code that closes the connection.
/// - One connection gets at most `maxFailures` AUTH_FAILED; once the throttle
///   has barred the address, a HELLO gets AUTH_LOCKED until the bar ends.
enum HandshakeFuzzer {
    static let submitToken = "fuzz-submit-token-0123456789"
    static let adminToken = "fuzz-admin-token-0123456789"
    static let address = "192.0.2.7"
    /// Each frame arrives this much later than the one before it, so a long
    /// input outlives the first 10-second bar and reaches the doubled one.
    static let millisPerFrame: Int64 = 700

    static let tokens: AuthTokens = {
        do {
            return try AuthTokens(parsing: "submit:\(submitToken)\nadmin:\(adminToken)\n", source: "fuzz")
        } catch {
            fatalError("the fuzz target's own auth file does not parse: \(error)")
        }
    }()

    /// Codes a handshake may answer with.
    static let allowedCodes: Set<ErrorCode> = [
        .handshakeRequired, .authRequired, .authFailed, .authLocked, .unsupportedVersion, .badFrame, .badRequest,
    ]

    static func check(_ frames: [Frame], report: inout Report) {
        let settings = [
            ("with tokens", ServerHandshake.Settings(tokens: tokens, serverName: "fuzz", maxFrameSize: 1 << 20), ServerHandshake.Peer.network(address)),
            ("without tokens", ServerHandshake.Settings(tokens: nil, serverName: "fuzz", maxFrameSize: 1 << 20), .network(address)),
            ("admin socket", ServerHandshake.Settings(tokens: tokens, serverName: "fuzz", maxFrameSize: 1 << 20), .local),
        ]
        for (name, settings, peer) in settings {
            run(frames, name: name, settings: settings, peer: peer, report: &report)
        }
    }

    static func run(
        _ frames: [Frame], name: String, settings: ServerHandshake.Settings, peer: ServerHandshake.Peer,
        report: inout Report
    ) {
        let throttle = AuthThrottle()
        let maxFailures = throttle.policy.maxFailures
        var handshake = ServerHandshake(settings: settings, peer: peer, throttle: throttle)
        var failuresHere = 0
        var connection = 1
        for (index, frame) in frames.enumerated() {
            let now = Int64(index) * millisPerFrame
            let context = "\(name), connection \(connection), frame \(index) (\(frame.type))"
            let hello = frame.type == .hello ? try? ClientMessage(frame: frame) : nil
            var presented: String?
            var versionsMeet = false
            if case .hello(let minVersion, let maxVersion, _, let token)? = hello {
                presented = token
                let version = min(maxVersion, WireProtocol.maxVersion)
                versionsMeet = version >= minVersion && version >= WireProtocol.minVersion
            }
            let rightToken = presented == submitToken || presented == adminToken
            let checksTokens = settings.tokens != nil && peer != .local
            let barred = checksTokens ? throttle.barredFor(address, now: now) : nil

            let step = handshake.receive(frame, now: now)
            if barred != nil, hello != nil, versionsMeet {
                report.check(
                    { if case .close(.error(.authLocked, _, _)) = step { true } else { false } }(),
                    "\(context): a HELLO from a barred address got \(step), not AUTH_LOCKED")
            }
            var ends = true
            switch step {
            case .established(let welcome, let identity):
                guard case .helloOK = welcome else {
                    report.fail("\(context): established with \(welcome), not HELLO_OK")
                    break
                }
                checkSize(welcome, settings: settings, context: context, report: &report)
                switch peer {
                case .local:
                    report.check(identity == .local, "\(context): the admin socket made \(identity), not local")
                case .network where settings.tokens == nil:
                    report.check(
                        identity == .unauthenticated, "\(context): a server without tokens made \(identity)")
                case .network:
                    report.check(rightToken, "\(context): established as \(identity) without a right token")
                    let role: Role? = presented == adminToken ? .admin : presented == submitToken ? .submit : nil
                    report.check(identity.role == role, "\(context): token of role \(role.map { "\($0)" } ?? "none") made \(identity)")
                    report.check(barred == nil, "\(context): established while the address was barred")
                }
            case .reply(let answer):
                ends = false
                guard case .error(let code, _, _) = answer else {
                    report.fail("\(context): answered \(answer) and went on")
                    break
                }
                checkError(answer, settings: settings, context: context, report: &report)
                report.check(!code.closesConnection, "\(context): \(code) answered without closing")
                if code == .authFailed { failuresHere += 1 }
            case .close(let answer):
                guard case .error(let code, _, let message) = answer else {
                    report.fail("\(context): closed after \(answer), not an ERROR")
                    break
                }
                checkError(answer, settings: settings, context: context, report: &report)
                if code == .authFailed { failuresHere += 1 }
                if code == .authLocked {
                    report.check(barred != nil, "\(context): AUTH_LOCKED for an address the throttle does not bar")
                    report.check(message.contains(address), "\(context): AUTH_LOCKED does not name \(address)")
                }
                if hello != nil, rightToken, versionsMeet, checksTokens {
                    report.check(code == .authLocked, "\(context): a right token was refused with \(code): \(message)")
                }
            }
            report.check(
                failuresHere <= maxFailures, "\(context): \(failuresHere) AUTH_FAILED on one connection (limit \(maxFailures))")
            if ends {
                handshake = ServerHandshake(settings: settings, peer: peer, throttle: throttle)
                failuresHere = 0
                connection += 1
            }
        }
    }

    static func checkError(
        _ answer: ServerMessage, settings: ServerHandshake.Settings, context: String, report: inout Report
    ) {
        guard case .error(let code, _, let message) = answer else { return }
        report.check(code != .internalError, "\(context): INTERNAL for client bytes: \(message)")
        report.check(allowedCodes.contains(code), "\(context): the handshake answered \(code): \(message)")
        report.check(!message.isEmpty, "\(context): \(code) without a message")
        checkSize(answer, settings: settings, context: context, report: &report)
    }

    static func checkSize(
        _ answer: ServerMessage, settings: ServerHandshake.Settings, context: String, report: inout Report
    ) {
        var wire = ByteBuffer()
        answer.write(requestID: 0, to: &wire)
        report.check(
            wire.readableBytes <= Int(settings.maxFrameSize),
            "\(context): a \(wire.readableBytes)-byte answer over the announced \(settings.maxFrameSize)")
    }
}
