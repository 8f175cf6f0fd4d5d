import Foundation
import Logging
import NIOCore
import NIOSSL
import SwitchyardCore

/// The PEM files of the TCP listener's TLS identity (`serve --tls-cert`, `--tls-key`).
public struct TLSFiles: Sendable, Hashable {
    /// The server's certificate, followed by any intermediates.
    public var certificateChain: String
    /// Its private key (keep it mode 0600).
    public var privateKey: String

    public init(certificateChain: String, privateKey: String) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
    }

    /// Loads the files; errors name the file and the fix.
    func makeServerContext() throws -> NIOSSLContext {
        try checkKeyMode()
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificateChain)
        } catch {
            throw ConfigurationError(
                "cannot load the TLS certificate \(certificateChain) (--tls-cert): \(error); give a PEM file with the server's certificate first"
            )
        }
        guard !chain.isEmpty else {
            throw ConfigurationError("the TLS certificate file \(certificateChain) (--tls-cert) holds no PEM certificate")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: privateKey, format: .pem)
        } catch {
            throw ConfigurationError(
                "cannot load the TLS private key \(privateKey) (--tls-key): \(error); give the PEM private key of \(certificateChain)"
            )
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw ConfigurationError(
                "cannot use the TLS certificate \(certificateChain) with the key \(privateKey): \(error); check that the key is the certificate's"
            )
        }
    }
}

extension TLSFiles {
    /// PostgreSQL's rule for its server key: owned by the server's user, mode
    /// 0600 or less; owned by root (and the server runs as another user), 0640
    /// or less (Debian's `ssl-cert` group reads keys that way). Anything more
    /// and whoever else can read the key can pose as this server.
    func checkKeyMode() throws {
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: privateKey)
        } catch {
            throw ConfigurationError(
                "cannot read the TLS private key \(privateKey) (--tls-key): \(error.localizedDescription); give the path of the PEM private key of \(certificateChain)"
            )
        }
        guard let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue else { return }
        let owner = (attributes[.ownerAccountID] as? NSNumber)?.intValue
        let ownedByRoot = owner == 0 && owner != Int(getuid())
        let allowed = ownedByRoot ? 0o640 : 0o600
        guard mode & ~allowed & 0o777 != 0 else { return }
        throw ConfigurationError(
            "the TLS private key \(privateKey) (--tls-key) has mode \(String(mode & 0o777, radix: 8)): \(ownedByRoot ? "others, or a group that may write it," : "group or others") could take the server's identity; run `chmod \(ownedByRoot ? "640" : "600") \(privateKey)`"
        )
    }
}

/// The first handler of every client connection. It looks at the first byte:
/// a TLS ClientHello starts with 0x16 (a handshake record), a Switchyard
/// HELLO frame never does (its length would be over 369 MB). With TLS the
/// connection gets the TLS handler; a plaintext client is answered ERROR
/// TLS_REQUIRED. Without TLS, a TLS client is answered ERROR TLS_UNAVAILABLE
/// in plaintext (the client library reads it there). Either way the handler
/// then leaves the pipeline.
final class TransportSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let tls: NIOSSLContext?
    private let logger: Logger
    private let remote: String
    private var refused = false

    init(tls: NIOSSLContext?, logger: Logger, remote: String) {
        self.tls = tls
        self.logger = logger
        self.remote = remote
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        let bytes = unwrapInboundIn(data)
        guard let first = bytes.getInteger(at: bytes.readerIndex, as: UInt8.self) else { return }
        let clientHello = first == 0x16
        switch (clientHello, tls) {
        case (true, let tls?):
            do {
                try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls), position: .after(self))
            } catch {
                context.fireErrorCaught(error)
                return
            }
            forward(data, context: context)
        case (false, nil):
            forward(data, context: context)
        case (false, _?):
            refuse(
                .tlsRequired,
                "this server requires TLS: connect with --tls-ca CA_FILE (ConnectOptions.tls in Swift)",
                context: context)
        case (true, nil):
            refuse(
                .tlsUnavailable,
                "this server does not speak TLS here (it was started without --tls-cert, or this is its admin socket): connect without --tls-ca",
                context: context)
        }
    }

    private func forward(_ data: NIOAny, context: ChannelHandlerContext) {
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func refuse(_ code: ErrorCode, _ message: String, context: ChannelHandlerContext) {
        refused = true
        logger.info("refusing a connection", metadata: ["client": "\(remote)", "code": "\(code)", "reason": "\(message)"])
        var reply = context.channel.allocator.buffer(capacity: 64 + message.utf8.count)
        ServerMessage.error(code, taskID: 0, message: message).write(requestID: 0, to: &reply)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(reply), promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}
