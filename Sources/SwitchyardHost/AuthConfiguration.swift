import Foundation
import SwitchyardCore

/// Who may use the host, read from an auth file (`serve --auth FILE`), and
/// how failed attempts are slowed down.
public struct AuthConfiguration: Sendable {
    public var tokens: AuthTokens
    /// Failures per address before it is barred, and for how long (default:
    /// 3 failures, 10 s doubling up to 1 hour).
    public var throttle: AuthThrottle.Policy

    public init(tokens: AuthTokens, throttle: AuthThrottle.Policy = AuthThrottle.Policy()) {
        self.tokens = tokens
        self.throttle = throttle
    }

    /// Reads an auth file: one `role:token` a line (`AuthTokens`).
    ///
    /// - Throws: `ConfigurationError` naming the file and the fix when it
    ///   cannot be read, when group or others may read or write it (like ssh
    ///   with a private key: the tokens would be theirs), or when a line is wrong.
    public static func load(file path: String, throttle: AuthThrottle.Policy = AuthThrottle.Policy()) throws
        -> AuthConfiguration
    {
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: path)
        } catch {
            throw ConfigurationError(
                "cannot read the auth file \(path) (--auth): \(error.localizedDescription); give the path of a file of `role:token` lines"
            )
        }
        if let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue, mode & 0o077 != 0 {
            throw ConfigurationError(
                "the auth file \(path) (--auth) has mode \(String(mode, radix: 8)): group or others may read it, and its tokens would be theirs; run `chmod 600 \(path)`"
            )
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError(
                "cannot read the auth file \(path) (--auth): \(error.localizedDescription); it must be UTF-8 text of `role:token` lines"
            )
        }
        do {
            return AuthConfiguration(tokens: try AuthTokens(parsing: text, source: path), throttle: throttle)
        } catch {
            throw ConfigurationError(error.description)
        }
    }
}
