import Foundation
import NIOCore
import NIOPosix

/// The admin socket's file: a Unix socket in the data directory (mode 0600,
/// in a directory of mode 0700 when the host creates it), so only the
/// server's user, or root, can connect.
enum AdminSocket {
    /// Makes the directory if needed, and clears a socket file a crashed
    /// server left behind; refuses when a live server still answers on it.
    static func prepare(_ path: String, group: EventLoopGroup) async throws {
        let directory = (path as NSString).deletingLastPathComponent
        try DataDirectory.prepare(directory.isEmpty ? "." : directory)
        guard let type = (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType else {
            return
        }
        guard type == .typeSocket else {
            throw ConfigurationError(
                "the admin socket path \(path) is taken by a file that is not a socket: move it away, or choose another data directory (serve --data-dir DIR)"
            )
        }
        let live = try? await ClientBootstrap(group: group).connect(unixDomainSocketPath: path).get()
        if let live {
            try? await live.close()
            throw ConfigurationError(
                "another server is listening on the admin socket \(path): stop it, or give this server its own data directory (serve --data-dir DIR)"
            )
        }
    }

    /// Owner read and write only.
    static func restrict(_ path: String) throws {
        do {
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        } catch {
            throw ConfigurationError("cannot make the admin socket \(path) mode 0600: \(error.localizedDescription)")
        }
    }

    /// Removes the socket file at shutdown (only if it is still a socket).
    static func remove(_ path: String) {
        guard (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType == .typeSocket
        else { return }
        try? FileManager.default.removeItem(atPath: path)
    }
}
