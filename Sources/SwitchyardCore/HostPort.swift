/// A `HOST:PORT` pair as written on command lines (`127.0.0.1:7400`, `[::1]:7400`, `localhost:7400`).
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    /// The default server address.
    public static let defaultServer = HostPort(host: "127.0.0.1", port: 7400)

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`; the error says what is wrong and what is expected.
    public init(parsing text: String) throws(HostPortError) {
        guard let colon = text.lastIndex(of: ":") else {
            throw HostPortError(text: text, reason: "expected HOST:PORT, for example 127.0.0.1:7400")
        }
        var host = String(text[..<colon])
        let portText = text[text.index(after: colon)...]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else {
            throw HostPortError(text: text, reason: "the host part is empty; expected HOST:PORT, for example 127.0.0.1:7400")
        }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw HostPortError(text: text, reason: "the port must be a number from 0 to 65535")
        }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public struct HostPortError: Error, Sendable, CustomStringConvertible {
    public var text: String
    public var reason: String
    public var description: String { "invalid address `\(text)`: \(reason)" }
}
