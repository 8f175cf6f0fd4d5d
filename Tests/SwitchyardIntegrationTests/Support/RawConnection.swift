import NIOCore
import NIOPosix
import SwitchyardCore

/// A TCP connection that sends whatever bytes a test wants, bypassing the
/// client library, and reads what the server answers until it closes.
struct RawConnection {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>

    /// Connects to `address`; with `source`, from that local IP address (any of
    /// 127.0.0.0/8 works on Linux, so tests can be several clients' addresses).
    static func connect(to address: HostPort, from source: String? = nil) async throws -> RawConnection {
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        if let source { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: source, port: 0)) }
        let channel = try await bootstrap
            .connect(host: address.host, port: address.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return RawConnection(channel: channel)
    }

    /// Writes `bytes`, then reads every byte until the server closes the
    /// connection, and returns the frames in them plus any bytes left over.
    func sendAndReadUntilClosed(_ bytes: [UInt8]) async throws -> (frames: [Frame], leftover: Int) {
        try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(bytes: bytes))
            var received = ByteBuffer()
            for try await chunk in inbound {
                var chunk = chunk
                received.writeBuffer(&chunk)
            }
            var frames: [Frame] = []
            while let frame = try Frame.read(from: &received) { frames.append(frame) }
            return (frames, received.readableBytes)
        }
    }
}

/// The bytes of a client HELLO frame for protocol version 1.
func helloBytes(requestID: UInt32 = 1) -> [UInt8] {
    var buffer = ByteBuffer()
    ClientMessage.hello(minVersion: 1, maxVersion: 1, clientName: "raw-test").write(requestID: requestID, to: &buffer)
    return Array(buffer.readableBytesView)
}

/// The bytes of any client message.
func bytes(of message: ClientMessage, requestID: UInt32) -> [UInt8] {
    var buffer = ByteBuffer()
    message.write(requestID: requestID, to: &buffer)
    return Array(buffer.readableBytesView)
}
