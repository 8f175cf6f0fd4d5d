import NIOCore
import NIOSSL
import SwitchyardCore

/// How a client connects: its name, its token, TLS.
public struct ConnectOptions: Sendable {
    /// Free text the server logs, e.g. "billing-service" (default "switchyard-swift").
    public var clientName: String
    /// The token for a server that authenticates clients (`serve --auth`);
    /// sent in HELLO. Not needed on the admin socket; ignored by servers
    /// without an auth file. Default nil.
    public var token: String?
    /// TLS, for a server started with `--tls-cert`; default nil: plaintext.
    /// Not used on a Unix socket.
    public var tls: ClientTLS?

    public init(clientName: String = "switchyard-swift", token: String? = nil, tls: ClientTLS? = nil) {
        self.clientName = clientName
        self.token = token
        self.tls = tls
    }
}

/// TLS settings of a client.
public struct ClientTLS: Sendable, Hashable {
    /// A PEM file of the CA certificates to trust for the server's certificate
    /// (`--tls-ca`); nil trusts the system's roots.
    public var caFile: String?
    /// The name the server's certificate must carry; default nil: the host
    /// connected to (for an IP address, the certificate must list that IP).
    public var serverName: String?

    public init(caFile: String? = nil, serverName: String? = nil) {
        self.caFile = caFile
        self.serverName = serverName
    }

    /// A client context; errors name the CA file and the fix.
    func makeContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let caFile {
            do {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            } catch {
                throw SwitchyardError.connection(
                    "cannot read the TLS CA file \(caFile) (--tls-ca): \(error); give a PEM file of the CA certificate that signed the server's certificate"
                )
            }
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw SwitchyardError.connection("cannot set up TLS: \(error)")
        }
    }

    /// The name to send (SNI) and check; nil for an IP address, which is
    /// checked against the certificate's IP entries instead.
    func expectedName(host: String) -> String? {
        if let serverName { return serverName }
        let isIP = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        return isIP ? nil : host
    }
}

/// First on a TLS connection: a TLS server's first bytes are a TLS record
/// (type 0x14-0x17). Anything else means the server speaks plaintext; a
/// Switchyard server then sends an ERROR frame (TLS_UNAVAILABLE), whose code
/// and message are passed on instead of a TLS library's "wrong version number".
final class PlaintextServerDetector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let address: String
    /// nil until the first bytes; then what came, while it looks like plaintext.
    private var received: ByteBuffer?
    private var done = false

    init(address: String) {
        self.address = address
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        var bytes = unwrapInboundIn(data)
        if received == nil {
            guard let first = bytes.getInteger(at: bytes.readerIndex, as: UInt8.self) else { return }
            if (0x14...0x17).contains(first) {
                done = true
                context.fireChannelRead(data)
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
                return
            }
            received = bytes
        } else {
            received!.writeBuffer(&bytes)
        }
        do {
            guard let frame = try Frame.read(from: &received!) else {
                if received!.readableBytes > 65536 { fail(plaintext, context: context) }
                return
            }
            if case .error(let code, _, let message) = try ServerMessage(frame: frame) {
                fail(SwitchyardError(code: code, message: message), context: context)
            } else {
                fail(plaintext, context: context)
            }
        } catch {
            fail(plaintext, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if received != nil { fail(plaintext, context: context) }
        context.fireChannelInactive()
    }

    private var plaintext: SwitchyardError {
        .connection(
            "the server at \(address) answered in plaintext, not TLS: it was started without --tls-cert; connect without --tls-ca"
        )
    }

    private func fail(_ error: SwitchyardError, context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }
}
