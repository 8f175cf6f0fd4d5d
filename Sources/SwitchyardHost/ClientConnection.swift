import Logging
import NIOCore
import SwitchyardCore

/// One client's TCP connection: the handshake, then requests, pipelined.
/// Lives on the dispatcher's event loop.
final class ClientConnection: ChannelInboundHandler {
    typealias InboundIn = [Frame]

    private let dispatcher: Dispatcher
    private(set) var link: OutboundLink!
    /// Until the client is established; then nil, and `identity` says who it is.
    private var handshake: ServerHandshake?
    /// Who the client is, once the handshake is done.
    private(set) var identity: ClientIdentity?
    /// False once the channel closed: replies to it are dropped.
    private(set) var isOpen = true
    let remote: String
    /// The pipeline's limits and timeouts (none in a pipeline without one).
    private var connectionGuard: ConnectionGuard?
    /// Requests read while the connection was at its in-flight limit, from
    /// `heldStart` on: they run in order as replies go out (reading waits
    /// meanwhile, so these are at most one read's worth).
    private var held: [Frame] = []
    private var heldStart = 0
    private var drainingHeld = false

    init(dispatcher: Dispatcher, remote: String, peer: ServerHandshake.Peer) {
        self.dispatcher = dispatcher
        self.remote = remote
        self.handshake = ServerHandshake(settings: dispatcher.handshakeSettings, peer: peer, throttle: dispatcher.authThrottle)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        link = OutboundLink(channel: context.channel)
        connectionGuard = try? context.pipeline.syncOperations.handler(type: ConnectionGuard.self)
    }

    func channelActive(context: ChannelHandlerContext) {
        dispatcher.connectionOpened(self)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isOpen = false
        dispatcher.connectionClosed(self)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        for frame in unwrapInboundIn(data) { receive(frame) }
    }

    private func receive(_ frame: Frame) {
        guard isOpen else { return }
        if let connectionGuard {
            if connectionGuard.atLimit || heldStart < held.count {
                held.append(frame)
                connectionGuard.holdingRequests = true
                return
            }
            connectionGuard.requestStarted()
        }
        run(frame)
    }

    /// Runs held requests while the in-flight limit allows; once none is left, reading resumes.
    private func runHeld() {
        guard let connectionGuard, !drainingHeld else { return }
        drainingHeld = true
        while isOpen && heldStart < held.count && !connectionGuard.atLimit {
            let frame = held[heldStart]
            heldStart += 1
            connectionGuard.requestStarted()
            run(frame)
        }
        drainingHeld = false
        if heldStart == held.count {
            held.removeAll(keepingCapacity: false)
            heldStart = 0
            connectionGuard.holdingRequests = false
        }
    }

    private func run(_ frame: Frame) {
        guard let identity else { return greet(frame) }
        let message: ClientMessage
        do {
            message = try ClientMessage(frame: frame)
        } catch let error as ProtocolError {
            fail(error, requestID: frame.requestID)
            return
        } catch {
            fail(ProtocolError(.internalError, "\(error)"), requestID: frame.requestID)
            return
        }
        if let refusal = identity.refusal(for: message) {
            dispatcher.logger.notice(
                "refused a request the client's role does not allow",
                metadata: ["client": "\(remote)", "identity": "\(identity)", "request": "\(frame.type)"])
            fail(refusal, requestID: frame.requestID)
            return
        }
        dispatcher.handle(message, requestID: frame.requestID, from: self)
    }

    /// Feeds a frame to the handshake and carries out its step.
    private func greet(_ frame: Frame) {
        switch handshake!.receive(frame, now: Int64(NIODeadline.now().uptimeNanoseconds / 1_000_000)) {
        case .reply(let reply):
            if case .error(let code, _, let message) = reply {
                dispatcher.logger.notice(
                    "handshake refused", metadata: ["client": "\(remote)", "code": "\(code)", "reason": "\(message)"])
            }
            send(reply, requestID: frame.requestID)
        case .close(let reply):
            if case .error(let code, _, let message) = reply {
                fail(ProtocolError(code, message), requestID: frame.requestID, closing: true)
            } else {
                send(reply, requestID: frame.requestID)
                close()
            }
        case .established(let welcome, let identity):
            self.identity = identity
            handshake = nil
            connectionGuard?.handshakeDone()
            if identity.name != nil {
                dispatcher.logger.debug("client authenticated", metadata: ["client": "\(remote)", "identity": "\(identity)"])
            }
            send(welcome, requestID: frame.requestID)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if var error = error as? ProtocolError {
            if error.code == .frameTooLarge { error.message += " (serve --max-frame-size)" }
            fail(error, requestID: 0)
        } else {
            dispatcher.logger.debug("connection error", metadata: ["client": "\(remote)", "error": "\(error)"])
            context.close(promise: nil)
        }
    }

    /// Queues a reply; it leaves with the next flush.
    func send(_ message: ServerMessage, requestID: UInt32) {
        guard isOpen else { return }
        if case .result(let id, let result) = message, result.readableBytes > OutboundLink.copyLimit {
            Frame.writeHeader(
                type: .result, requestID: requestID, bodyLength: 8 + result.readableBytes, to: &link.buffer)
            link.buffer.writeInteger(id)
            link.appendLarge(result)
        } else {
            message.write(requestID: requestID, to: &link.buffer)
        }
        dispatcher.markDirty(link)
        if case .progress = message {} else if let connectionGuard {
            connectionGuard.replied()
            if heldStart < held.count { runHeld() }
        }
    }

    /// Replies with an error; errors that break the stream (or `closing`) also close the connection.
    func fail(_ error: ProtocolError, requestID: UInt32, closing: Bool = false) {
        send(.error(error.code, taskID: 0, message: error.message), requestID: requestID)
        if closing || error.code.closesConnection {
            dispatcher.logger.info(
                "closing connection after a protocol error",
                metadata: ["client": "\(remote)", "code": "\(error.code)", "reason": "\(error.message)"])
            isOpen = false
            link.flush()
            if let connectionGuard {
                connectionGuard.closeAfterReplies()
            } else {
                link.channel.close(promise: nil)
            }
        }
    }

    func close() {
        guard isOpen else { return }
        link.flush()
        isOpen = false
        link.channel.close(promise: nil)
    }
}
