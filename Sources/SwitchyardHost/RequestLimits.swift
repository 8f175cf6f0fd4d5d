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

    /// Why a request breaks a per-request limit (payload size, handler name
    /// length), or nil. The message names the limit, its value and its flag.
    func refusal(for message: ClientMessage) -> ProtocolError? {
        switch message {
        case .submit(let request):
            if let problem = handlerNameRefusal(request.handler, in: "SUBMIT") { return problem }
            let size = request.payload.readableBytes
            guard size <= maxPayloadSize else {
                return ProtocolError(
                    .payloadTooLarge,
                    "SUBMIT payload is \(size) bytes; the limit is \(maxPayloadSize) (serve --max-payload-size): send a smaller payload (or a reference to the data) or raise the limit"
                )
            }
            return nil
        case .listTasks(let query):
            return query.handler.flatMap { handlerNameRefusal($0, in: "LIST_TASKS") }
        case .strategySet(let request):
            return request.handler.flatMap { handlerNameRefusal($0, in: "STRATEGY_SET") }
        default:
            return nil
        }
    }

    private func handlerNameRefusal(_ name: String, in request: String) -> ProtocolError? {
        let length = name.utf8.count
        guard length > maxHandlerName else { return nil }
        return ProtocolError(
            .badRequest,
            "\(request) handler name is \(length) bytes; the limit is \(maxHandlerName) (serve --max-handler-name)")
    }
}
