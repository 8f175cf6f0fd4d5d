/// Where a client finds a server: a TCP `HOST:PORT`, or the server's admin
/// socket, `unix:PATH` (`switchyard --server unix:switchyard-data/switchyard.sock`).
public enum ServerAddress: Sendable, Hashable, CustomStringConvertible {
    case tcp(HostPort)
    /// A Unix socket: always plaintext; clients on it are admins without a token.
    case unix(path: String)

    /// The prefix that marks a Unix socket path.
    public static let unixPrefix = "unix:"

    /// Parses `unix:PATH` or `HOST:PORT`; the error says what is expected.
    public init(parsing text: String) throws(HostPortError) {
        if text.hasPrefix(Self.unixPrefix) {
            let path = String(text.dropFirst(Self.unixPrefix.count))
            guard !path.isEmpty else {
                throw HostPortError(
                    text: text, reason: "the socket path is empty; expected unix:PATH, e.g. unix:switchyard-data/switchyard.sock")
            }
            self = .unix(path: path)
        } else {
            self = .tcp(try HostPort(parsing: text))
        }
    }

    public var description: String {
        switch self {
        case .tcp(let address): address.description
        case .unix(let path): Self.unixPrefix + path
        }
    }
}
