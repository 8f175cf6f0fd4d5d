import Logging
import NIOCore
import SwitchyardCore

/// One client's TCP connection: the handshake, then requests, pipelined.
/// Lives on the dispatcher's event loop.
final class ClientConnection: ChannelInboundHandler {
    typealias InboundIn = [Frame]

    private let dispatcher: Dispatcher
    private(set) var link: OutboundLink!
    private var greeted = false
    /// False once the channel closed: replies to it are dropped.
    private(set) var isOpen = true
    let remote: String

    init(dispatcher: Dispatcher, remote: String) {
        self.dispatcher = dispatcher
        self.remote = remote
    }

    func handlerAdded(context: ChannelHandlerContext) {
        link = OutboundLink(channel: context.channel)
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
        guard greeted else {
            guard case .hello(let minVersion, let maxVersion, _) = message else {
                fail(
                    ProtocolError(
                        .handshakeRequired, "the first frame must be HELLO, not \(frame.type); see docs/PROTOCOL.md"),
                    requestID: frame.requestID)
                return
            }
            let version = min(maxVersion, WireProtocol.maxVersion)
            guard version >= minVersion, version >= WireProtocol.minVersion else {
                fail(
                    ProtocolError(
                        .unsupportedVersion,
                        "client speaks protocol versions \(minVersion)-\(maxVersion); this server speaks \(WireProtocol.minVersion)-\(WireProtocol.maxVersion)"
                    ), requestID: frame.requestID)
                return
            }
            greeted = true
            send(
                .helloOK(version: version, maxFrameSize: UInt32(dispatcher.configuration.maxFrameSize), serverName: dispatcher.serverName),
                requestID: frame.requestID)
            return
        }
        dispatcher.handle(message, requestID: frame.requestID, from: self)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let error = error as? ProtocolError {
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
    }

    /// Replies with an error; errors that break the stream also close the connection.
    func fail(_ error: ProtocolError, requestID: UInt32) {
        send(.error(error.code, taskID: 0, message: error.message), requestID: requestID)
        if error.code.closesConnection {
            dispatcher.logger.info(
                "closing connection after a protocol error",
                metadata: ["client": "\(remote)", "code": "\(error.code)", "reason": "\(error.message)"])
            isOpen = false
            link.flush()
            link.channel.close(promise: nil)
        }
    }

    func close() {
        guard isOpen else { return }
        link.flush()
        isOpen = false
        link.channel.close(promise: nil)
    }
}

extension ErrorCode {
    /// Errors after which the byte stream cannot be trusted: the server closes the connection.
    public var closesConnection: Bool {
        self == .badFrame || self == .frameTooLarge || self == .unsupportedVersion || self == .handshakeRequired
    }
}
