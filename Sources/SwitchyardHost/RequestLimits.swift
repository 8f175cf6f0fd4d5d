import NIOCore
import SwitchyardCore

extension HostConfiguration {
    /// Checks the limits of docs/OPERATIONS.md, "Limits" (see the fields for each).
    func validateLimits() throws {
        func check(_ valid: Bool, _ message: @autoclosure () -> String) throws {
            if !valid { throw ConfigurationError(message()) }
        }
        try check(
            (0...(1 << 30)).contains(maxPayloadSize),
            "the payload limit (--max-payload-size) must be from 0 to 1073741824 bytes, not \(maxPayloadSize)")
        try check(
            (1...255).contains(maxHandlerName),
            "the handler name limit (--max-handler-name) must be from 1 to 255 bytes, not \(maxHandlerName)")
        try check(
            (1...1_000_000).contains(maxConnections),
            "the connection limit (--max-connections) must be from 1 to 1000000, not \(maxConnections)")
        try check(
            (1...1_000_000).contains(maxConnectionsPerAddress),
            "the per-address connection limit (--max-connections-per-address) must be from 1 to 1000000, not \(maxConnectionsPerAddress)"
        )
        try check(
            (1...1_000_000).contains(maxInFlight),
            "the in-flight limit (--max-in-flight) must be from 1 to 1000000, not \(maxInFlight)")
        try check(
            handshakeTimeout > .zero,
            "the handshake timeout (--handshake-timeout) must be above 0, not \(describe(handshakeTimeout))")
        try check(
            (idleTimeout ?? .seconds(1)) > .zero,
            "the idle timeout (--idle-timeout) must be above 0, or nil (0s on the command line) for none")
    }

    /// Why a SUBMIT breaks the payload or handler name limit, or nil. The
    /// message names the limit, its value and its flag. (Two comparisons on the
    /// hot path: the messages are built only for a refusal.)
    @inline(__always)
    func refusal(forSubmit request: SubmitRequest) -> ProtocolError? {
        if let problem = refusal(forHandler: request.handler, in: "SUBMIT") { return problem }
        let size = request.payload.readableBytes
        guard size > maxPayloadSize else { return nil }
        return ProtocolError(
            .payloadTooLarge,
            "SUBMIT payload is \(size) bytes; the limit is \(maxPayloadSize) (serve --max-payload-size): send a smaller payload (or a reference to the data) or raise the limit"
        )
    }

    /// Why a handler name in a request breaks the length limit, or nil.
    @inline(__always)
    func refusal(forHandler name: String?, in request: String) -> ProtocolError? {
        guard let name else { return nil }
        let length = name.utf8.count
        guard length > maxHandlerName else { return nil }
        return ProtocolError(
            .badRequest,
            "\(request) handler name is \(length) bytes; the limit is \(maxHandlerName) (serve --max-handler-name)")
    }
}
