import Logging
import NIOCore
import SwitchyardCore

/// Client connections open, in total and per IP address, against the host's
/// limits. Confined to the host's one event loop, like the dispatcher: every
/// client channel lives on it.
final class ConnectionLimits: @unchecked Sendable {
    // @unchecked Sendable: touched only on the host's event loop (channel handlers run there).
    private let maxTotal: Int
    private let maxPerAddress: Int
    private let logger: Logger
    private var total = 0
    private var perAddress: [String: Int] = [:]
    /// A limit is logged when it first refuses a connection, and again only after
    /// the count went below it: a flood of refused connections is one log line.
    private var totalLogged = false
    private var addressesLogged: Set<String> = []
    /// Refused connections waiting for their first bytes, to be answered then.
    private var refusedWaiting = 0

    init(configuration: HostConfiguration, logger: Logger) {
        self.maxTotal = configuration.maxConnections
        self.maxPerAddress = configuration.maxConnectionsPerAddress
        self.logger = logger
    }

    /// Counts a new connection from `address`, or says why it is refused (and
    /// counts nothing).
    func admit(_ address: String) -> ProtocolError? {
        if total >= maxTotal {
            let error = ProtocolError(
                .tooManyConnections,
                "the server has \(total) connections open, its limit (serve --max-connections \(maxTotal)); retry later, close idle connections, or raise the limit"
            )
            if !totalLogged {
                totalLogged = true
                logger.warning("refusing connections: \(error.message)")
            }
            return error
        }
        let fromAddress = perAddress[address, default: 0]
        if fromAddress >= maxPerAddress {
            let error = ProtocolError(
                .tooManyConnections,
                "\(address) has \(fromAddress) connections open, the limit per address (serve --max-connections-per-address \(maxPerAddress)); share connections (each carries any number of requests) or raise the limit"
            )
            if addressesLogged.insert(address).inserted {
                logger.warning("refusing connections from \(address): \(error.message)")
            }
            return error
        }
        total += 1
        perAddress[address] = fromAddress + 1
        return nil
    }

    /// A refused connection starts waiting for its first bytes; false when
    /// `maxTotal` already wait (then it is answered at once).
    func refusedWaitingStarted() -> Bool {
        guard refusedWaiting < maxTotal else { return false }
        refusedWaiting += 1
        return true
    }

    func refusedWaitingEnded() { refusedWaiting -= 1 }

    /// A connection `admit` counted has closed.
    func release(_ address: String) {
        total -= 1
        if total < maxTotal { totalLogged = false }
        let left = perAddress[address, default: 1] - 1
        perAddress[address] = left == 0 ? nil : left
        if left < maxPerAddress { addressesLogged.remove(address) }
    }
}

/// The first handler of every client connection. It keeps one client from
/// holding more than its share:
///
/// - a connection over `maxConnections` or `maxConnectionsPerAddress` is
///   answered TOO_MANY_CONNECTIONS and closed;
/// - one that has not finished its handshake within `handshakeTimeout` (it
///   sent nothing, or half a frame) gets HANDSHAKE_TIMEOUT and is closed;
/// - one with no request in flight for `idleTimeout` gets IDLE_TIMEOUT and is
///   closed (one waiting for results it asked for is not idle);
/// - backpressure: while a connection has `maxInFlight` requests in flight
///   (requests already read past it wait in `ClientConnection`, in order), or
///   its replies pile up unsent (the channel is not writable: the client does
///   not read), the server stops reading from it. The client's writes then
///   wait in the kernel's buffers, and a flood costs the host a bounded amount
///   of memory instead of all it has. A client over the limit is slowed, never
///   refused.
///
/// `ClientConnection` tells it when requests start and are answered, when it
/// holds requests back, and when the handshake is done.
final class ConnectionGuard: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// How long a connection being closed with an error may take to read it
    /// and close its end, before the server closes outright.
    static let linger: TimeAmount = .seconds(1)

    private enum Phase {
        /// Connected, no HELLO answered yet.
        case handshake
        /// Greeted: requests flow.
        case open
        /// Over a connection limit: answered when its first bytes arrive (so the
        /// ERROR answers a client's HELLO rather than racing it), or after `linger`.
        case refused(ProtocolError)
        /// Being closed with an error; what it sends is dropped.
        case closing
    }

    private let limits: ConnectionLimits
    private let maxInFlight: Int
    private let handshakeTimeout: TimeAmount
    private let idleTimeout: TimeAmount?
    private let logger: Logger
    private var address = ""
    private var remote = "?"
    /// Counted by `limits` (and so to be released).
    private var admitted = false
    /// A refused connection counted in `limits`' refused ones waiting for their first bytes.
    private var refusedWaiting = false
    private var phase = Phase.handshake
    private var context: ChannelHandlerContext?

    /// Requests received and not finally answered.
    private var inFlight = 0
    /// When `inFlight` last dropped to 0; nil while requests are in flight.
    private var idleSince: NIODeadline? = .now()
    private var timer: Scheduled<Void>?
    /// A read the channel asked for while reading was held.
    private var readHeld = false
    /// ClientConnection holds requests read past the limit: read no more until they ran.
    var holdingRequests = false {
        didSet { if !holdingRequests { resumeReadingIfAllowed() } }
    }

    init(limits: ConnectionLimits, configuration: HostConfiguration, logger: Logger) {
        self.limits = limits
        self.maxInFlight = configuration.maxInFlight
        self.handshakeTimeout = configuration.handshakeTimeout
        self.idleTimeout = configuration.idleTimeout
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        let peer = context.channel.remoteAddress
        remote = peer.map { "\($0)" } ?? "?"
        address = peer?.ipAddress ?? "local"
        if let refusal = limits.admit(address) {
            logger.debug("refused connection", metadata: ["client": "\(remote)", "reason": "\(refusal.message)"])
            phase = .refused(refusal)
            // Wait for its HELLO as long as an admitted connection may, while few
            // refused ones wait; past that many, answer after the linger alone, so
            // a connection flood cannot hold descriptors beyond twice the limit.
            refusedWaiting = limits.refusedWaitingStarted()
            let wait = refusedWaiting ? handshakeTimeout : Self.linger
            timer = context.eventLoop.assumeIsolated().scheduleTask(in: wait) { [self] in
                if case .refused(let refusal) = phase, let context = self.context {
                    close(context, with: refusal, log: false)
                }
            }
            return  // the rest of the pipeline never hears of it
        }
        admitted = true
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: handshakeTimeout) { [self] in
            guard case .handshake = phase, let context = self.context else { return }
            close(
                context,
                with: ProtocolError(
                    .handshakeTimeout,
                    "no HELLO within the handshake timeout of \(describe(handshakeTimeout)) (serve --handshake-timeout); send HELLO first thing after connecting"
                ), log: true)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        stopRefusedWait()
        guard admitted else { return }
        admitted = false
        limits.release(address)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch phase {
        case .handshake, .open: context.fireChannelRead(data)
        case .refused(let refusal): close(context, with: refusal, log: false)
        case .closing: break
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        resumeReadingIfAllowed()
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if holdsReads(context) {
            readHeld = true
        } else {
            context.read()
        }
    }

    private func holdsReads(_ context: ChannelHandlerContext) -> Bool {
        guard case .open = phase else { return false }
        return inFlight >= maxInFlight || holdingRequests || !context.channel.isWritable
    }

    private func resumeReadingIfAllowed() {
        guard readHeld, let context, !holdsReads(context) else { return }
        readHeld = false
        context.read()
    }

    private func stopRefusedWait() {
        guard refusedWaiting else { return }
        refusedWaiting = false
        limits.refusedWaitingEnded()
    }

    // MARK: Told by ClientConnection

    /// The connection has `maxInFlight` requests in flight: hold the next one back.
    var atLimit: Bool { inFlight >= maxInFlight }

    /// A request starts; it counts until its final reply (`replied()`).
    func requestStarted() {
        inFlight += 1
        idleSince = nil
    }

    /// A final reply went out (anything but PROGRESS).
    func replied() {
        guard inFlight > 0 else { return }
        inFlight -= 1
        if inFlight == 0 { idleSince = .now() }
        if inFlight < maxInFlight { resumeReadingIfAllowed() }
    }

    /// HELLO was answered: the handshake timeout no longer applies, the idle one does.
    func handshakeDone() {
        guard case .handshake = phase else { return }
        phase = .open
        timer?.cancel()
        timer = nil
        if let idleTimeout { armIdleTimer(in: idleTimeout) }
    }

    // MARK: Idle timeout

    /// One timer per connection, re-armed when it fires: nothing per request.
    private func armIdleTimer(in delay: TimeAmount) {
        guard let context else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            checkIdle()
        }
    }

    private func checkIdle() {
        guard case .open = phase, let idleTimeout, let context else { return }
        guard let idleSince else {
            // Requests in flight: not idle; look again a timeout from now.
            armIdleTimer(in: idleTimeout)
            return
        }
        let deadline = idleSince + idleTimeout
        let now = NIODeadline.now()
        if now < deadline {
            armIdleTimer(in: deadline - now)
            return
        }
        close(
            context,
            with: ProtocolError(
                .idleTimeout,
                "no request in flight for the idle timeout of \(describe(idleTimeout)) (serve --idle-timeout); reconnect, or send PING more often to keep a connection open"
            ), log: true)
    }

    // MARK: Closing

    /// ClientConnection wrote an ERROR that ends the stream (BAD_FRAME,
    /// FRAME_TOO_LARGE, ...): close as `close(_:with:log:)` does, after it.
    func closeAfterReplies() {
        guard let context else { return }
        close(context, with: nil, log: false)
    }

    /// Sends `error` (if any) as an ERROR frame (request id 0) after the replies
    /// already written, then closes our side. The client's side is read and
    /// dropped until it closes, or for `linger`: closing with its bytes unread
    /// would send a reset, which can destroy the ERROR before the client reads it.
    private func close(_ context: ChannelHandlerContext, with error: ProtocolError?, log: Bool) {
        if case .closing = phase { return }
        phase = .closing
        stopRefusedWait()
        timer?.cancel()
        var frame = context.channel.allocator.buffer(capacity: 64 + (error?.message.utf8.count ?? 0))
        if let error {
            if log {
                logger.info(
                    "closing connection after \(error.code): \(error.message)", metadata: ["client": "\(remote)"])
            }
            ServerMessage.error(error.code, taskID: 0, message: error.message).write(requestID: 0, to: &frame)
        }
        let loop = context.eventLoop.assumeIsolated()
        // From the pipeline's tail, after what ClientConnection wrote, and through TLS if any.
        context.channel.writeAndFlush(frame).assumeIsolated().whenComplete { _ in
            context.close(mode: .output, promise: nil)
        }
        timer = loop.scheduleTask(in: Self.linger) { context.close(promise: nil) }
        resumeReadingIfAllowed()
    }
}

/// A duration for people: "300 ms", "10 s", "5 min".
func describe(_ amount: TimeAmount) -> String {
    let millis = amount.nanoseconds / 1_000_000
    if millis >= 60_000 && millis % 60_000 == 0 { return "\(millis / 60_000) min" }
    if millis >= 1_000 && millis % 1_000 == 0 { return "\(millis / 1_000) s" }
    return "\(millis) ms"
}
