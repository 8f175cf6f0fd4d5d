import CSwitchyardDigest

/// What an authenticated client may do (docs/SECURITY.md has the table).
public enum Role: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Submit tasks, read status, wait for and list tasks, cancel its own tasks.
    case submit
    /// Everything `submit` may, and reload plugins, load and set strategies,
    /// cancel any task.
    case admin

    public var description: String { rawValue }
}

/// Who is on the other end of a connection, once the handshake is done.
public struct ClientIdentity: Sendable, Hashable, CustomStringConvertible {
    public var role: Role
    /// The submitter name tasks are stamped with: the token's fingerprint
    /// (`AuthTokens.fingerprint`), `local` on the admin socket, nil when the
    /// server authenticates no one.
    public var name: String?

    public init(role: Role, name: String?) {
        self.role = role
        self.name = name
    }

    /// A client of a server without an auth file: allowed everything, as before authentication existed.
    public static let unauthenticated = ClientIdentity(role: .admin, name: nil)
    /// A client on the admin socket (a Unix socket only the server's user can open).
    public static let local = ClientIdentity(role: .admin, name: "local")

    public var description: String { name.map { "\(role) (\($0))" } ?? "\(role)" }

    /// Nil when this client may send `message`; else the FORBIDDEN error to answer it with.
    /// (CANCEL is allowed here: whether the task is this client's is `mayCancel`'s question.)
    public func refusal(for message: ClientMessage) -> ProtocolError? {
        guard message.requiredRole == .admin, role != .admin else { return nil }
        return ProtocolError(
            .forbidden,
            "\(message.frameType) needs the admin role; this connection has the \(role) role: use an admin token, or the server's admin socket on its machine (--server unix:DATA_DIR/switchyard.sock)"
        )
    }

    /// Whether this client may cancel a task stamped with `submitter`: an
    /// admin may cancel any task, anyone else only the tasks it submitted.
    public func mayCancel(taskSubmittedBy submitter: String?) -> Bool {
        role == .admin || (name != nil && submitter == name)
    }
}

extension ClientMessage {
    /// The role a request needs. Reading (status, task status, wait, list,
    /// strategy list, ping) and submitting need `submit`; changing how the
    /// server runs (reload, strategy set and load) needs `admin`. CANCEL needs
    /// `submit` and, for a task someone else submitted, `admin`.
    public var requiredRole: Role {
        switch self {
        case .reload, .strategySet, .strategyLoad: .admin
        case .hello, .submit, .taskStatus, .serverStatus, .ping, .wait, .cancel, .listTasks, .strategyList: .submit
        }
    }
}

/// A SHA-256 digest of a token.
struct TokenDigest: Hashable, Sendable {
    let bytes: [UInt8]

    init(of token: String) {
        var out = [UInt8](repeating: 0, count: 32)
        let data = Array(token.utf8)
        _ = data.withUnsafeBytes { input in swy_sha256(input.baseAddress, input.count, &out) }
        bytes = out
    }

    /// Equality that takes the same time wherever the digests differ.
    func matches(_ other: TokenDigest) -> Bool {
        bytes.withUnsafeBytes { mine in
            other.bytes.withUnsafeBytes { theirs in swy_equal_constant_time(mine.baseAddress, theirs.baseAddress, 32) == 1 }
        }
    }
}

/// The tokens of an auth file (`serve --auth FILE`): one `role:token` a line.
///
/// Only SHA-256 digests of the tokens are kept. A presented token is hashed
/// and compared with every stored digest, each comparison constant-time and
/// none skipped, so the time taken says nothing about how much of a token was
/// right, nor which line it matched.
public struct AuthTokens: Sendable {
    struct Entry: Sendable {
        var digest: TokenDigest
        var identity: ClientIdentity
    }
    let entries: [Entry]

    /// Parses an auth file's text: one `role:token` a line, roles `submit` and
    /// `admin`; blank lines and lines starting with `#` are skipped. A token
    /// is 16-1024 printable ASCII characters (no spaces); `openssl rand -hex 32`
    /// makes a good one.
    ///
    /// - Throws: `AuthFileError` naming `source`, the line and the fix.
    public init(parsing text: String, source: String) throws(AuthFileError) {
        var entries: [Entry] = []
        var seen: [TokenDigest: Int] = [:]
        // "\r\n" is one Character, and a newline: Windows line ends split too.
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let number = index + 1
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) || line.hasPrefix("#") { continue }
            func fail(_ why: String) -> AuthFileError {
                AuthFileError(description: "auth file \(source), line \(number): \(why)")
            }
            guard let colon = line.firstIndex(of: ":") else {
                throw fail("expected `role:token` (roles: submit, admin)")
            }
            let roleText = String(line[..<colon])
            guard let role = Role(rawValue: roleText) else {
                throw fail("unknown role `\(roleText)`; the roles are submit and admin")
            }
            let token = line[line.index(after: colon)...]
            guard token.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
                throw fail("the token has a space or a character outside printable ASCII; use e.g. `openssl rand -hex 32`")
            }
            guard WireProtocol.tokenLengthRange.contains(token.utf8.count) else {
                throw fail(
                    "the token is \(token.utf8.count) characters; use \(WireProtocol.tokenLengthRange.lowerBound) to \(WireProtocol.tokenLengthRange.upperBound) (e.g. `openssl rand -hex 32`)"
                )
            }
            let digest = TokenDigest(of: String(token))
            if let earlier = seen[digest] {
                throw fail("the same token is on line \(earlier); give each token one line and one role")
            }
            seen[digest] = number
            entries.append(
                Entry(digest: digest, identity: ClientIdentity(role: role, name: Self.fingerprint(of: digest))))
        }
        guard !entries.isEmpty else {
            throw AuthFileError(
                description:
                    "auth file \(source) has no tokens; add `admin:TOKEN` and `submit:TOKEN` lines (e.g. TOKEN from `openssl rand -hex 32`)"
            )
        }
        self.entries = entries
    }

    /// How many tokens have `role`.
    public func count(_ role: Role) -> Int { entries.filter { $0.identity.role == role }.count }

    /// The identity of the line whose token is `token`, or nil.
    public func identity(for token: String) -> ClientIdentity? {
        let presented = TokenDigest(of: token)
        var match: ClientIdentity?
        // Every entry is compared, each in constant time: no early exit.
        for entry in entries where entry.digest.matches(presented) {
            match = entry.identity
        }
        return match
    }

    /// A token's fingerprint, the name its tasks are stamped with: the first
    /// 8 bytes of its SHA-256 in hex (16 characters). It names a token in logs
    /// and records without revealing it.
    public static func fingerprint(of token: String) -> String {
        fingerprint(of: TokenDigest(of: token))
    }

    static func fingerprint(of digest: TokenDigest) -> String {
        let hex = Array("0123456789abcdef")
        return String(digest.bytes.prefix(8).flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 0xF)]] })
    }
}

/// An auth file that cannot be used; the message names the file, the line and the fix.
public struct AuthFileError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}
