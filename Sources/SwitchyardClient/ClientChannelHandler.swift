import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import SwitchyardCore

/// A request on its way: the message, where its answer goes, and an optional
/// progress callback for a waiting submit.
struct OutboundRequest {
    var message: ClientMessage
    var promise: EventLoopPromise<ServerMessage>
    var onProgress: (@Sendable (UInt64, UInt64) -> Void)?
}

/// Why a connection closed, as its handler saw it, for requests written after
/// (which never reach the handler).
final class CloseReason: Sendable {
    private let first = NIOLockedValueBox<SwitchyardError?>(nil)

    /// Keeps the first reason given.
    func record(_ error: SwitchyardError) {
        first.withLockedValue { if $0 == nil { $0 = error } }
    }

    var error: SwitchyardError? { first.withLockedValue { $0 } }
}

/// Matches replies to requests by request id, so any number of requests can be
/// in flight on one connection. Writes made in one event-loop tick leave in
/// one flush.
final class ClientChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = [Frame]
    typealias OutboundIn = OutboundRequest
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var promise: EventLoopPromise<ServerMessage>
        var onProgress: (@Sendable (UInt64, UInt64) -> Void)?
    }

    private var pending: [UInt32: Pending] = [:]
    private var nextID: UInt32 = 1
    private var buffer: ByteBuffer?
    private var flushScheduled = false
    private var closedError: SwitchyardError?
    /// The server's frame limit, from its HELLO_OK; a larger request is refused
    /// here, so it cannot cost the connection.
    private var maxFrameSize = Int(UInt32.max)
    private let closeReason: CloseReason

    init(closeReason: CloseReason) {
        self.closeReason = closeReason
    }

    func handlerAdded(context: ChannelHandlerContext) {
        buffer = context.channel.allocator.buffer(capacity: 4096)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let closedError {
            // The request is answered here; the write promise only says the
            // handler saw it (SwitchyardClient fails requests whose write never
            // reached the handler, e.g. on a closed channel).
            request.promise.fail(closedError)
            promise?.succeed()
            return
        }
        let id = nextID
        let start = buffer!.writerIndex
        request.message.write(requestID: id, to: &buffer!)
        let size = buffer!.writerIndex - start
        guard size <= maxFrameSize else {
            buffer!.moveWriterIndex(to: start)
            let error = SwitchyardError(
                code: .frameTooLarge,
                message:
                    "the request is a frame of \(size) bytes; the server accepts at most \(maxFrameSize) (serve --max-frame-size): send a smaller payload")
            request.promise.fail(error)
            promise?.succeed()
            return
        }
        nextID = nextID == UInt32.max ? 1 : nextID + 1
        pending[id] = Pending(promise: request.promise, onProgress: request.onProgress)
        promise?.succeed()
    }

    func flush(context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        // Gather every request written in this tick into one write.
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            guard let buffer = self.buffer, buffer.readableBytes > 0 else { return }
            self.buffer = context.channel.allocator.buffer(capacity: max(4096, buffer.capacity))
            context.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        for frame in unwrapInboundIn(data) { receive(frame, context: context) }
    }

    private func receive(_ frame: Frame, context: ChannelHandlerContext) {
        let message: ServerMessage
        do {
            message = try ServerMessage(frame: frame)
        } catch {
            failAll(.connection("the server sent a frame this client cannot read: \(error)"), context: context)
            context.close(promise: nil)
            return
        }
        if case .progress(_, let done, let total) = message {
            pending[frame.requestID]?.onProgress?(done, total)
            return
        }
        if case .helloOK(_, let limit, _) = message { maxFrameSize = Int(limit) }
        guard let entry = pending.removeValue(forKey: frame.requestID) else {
            if case .error(let code, _, let text) = message {
                // An error about the stream itself (request id 0): the server closes the connection.
                failAll(SwitchyardError(code: code, message: text), context: context)
            }
            return
        }
        entry.promise.succeed(message)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(.connection("the connection to the server closed"), context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        switch error {
        case let error as SwitchyardError:
            failAll(error, context: context)
        case is NIOSSLError, is NIOSSLExtraError:
            failAll(
                .connection(
                    "TLS failed: \(error); check that --tls-ca names the CA that signed the server's certificate, and that the certificate names the host you connect to"
                ), context: context)
        default:
            failAll(.connection("connection error: \(error)"), context: context)
        }
        context.close(promise: nil)
    }

    private func failAll(_ error: SwitchyardError, context: ChannelHandlerContext) {
        if closedError == nil { closedError = error }
        closeReason.record(error)
        let all = pending
        pending.removeAll()
        for entry in all.values { entry.promise.fail(error) }
    }
}
