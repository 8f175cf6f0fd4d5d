#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import SwitchyardCore

/// A file the host would load code from that someone other than root or the
/// server's user could have written. The description names the path at fault
/// and the command that fixes it.
public struct TrustProblem: Error, CustomStringConvertible, Sendable, Hashable {
    /// The file, or the directory above it, whose owner or mode is wrong.
    public var path: String
    public var description: String
}

/// The trust rule for code the host loads (plugin files and directories,
/// strategy plugins, libraries of bindings), in the manner of sshd's
/// StrictModes: the file, and every directory above it up to `/`, must be
/// owned by root or the server's user and writable by neither group nor
/// others; a directory above it (not the plugin directory itself) may be
/// writable by others when it has the sticky bit, as `/tmp` has. Directories
/// are checked both as the path is written and after symbolic links are
/// resolved. See docs/SECURITY.md, "Plugin trust".
enum PluginTrust {
    static let overrideHint = "(serve --allow-insecure-plugins loads it anyway, for development only)"

    /// Problems of a file the host is about to load, or of a directory whose
    /// files it loads; `what` says what it is ("plugin file", "plugin
    /// directory"). The path itself gets no sticky-bit excuse: anyone who may
    /// write a plugin directory could add a plugin. A missing path has no
    /// problem here: the loader says it is missing.
    static func check(_ path: String, as what: String) -> TrustProblem? {
        let path = absolute(path)
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let subject = "\(what) \(path)"
        return problem(info, path: path, subject: subject, isAncestor: false)
            ?? ancestorProblem(of: path, subject: subject)
    }

    /// Everything a plugin set loads code from: the plugin directory (none
    /// for explicit files), each file, and the library of each binding given
    /// as a path (a bare name like `libm.so.6` is checked in the worker, once
    /// the dynamic linker has found it; see `BindingLoader`).
    static func problems(directory: String?, files: [String], bindings: [BindingSpec]) -> [TrustProblem] {
        var found: [TrustProblem] = []
        if let directory, let problem = check(directory, as: "plugin directory") { found.append(problem) }
        for file in files {
            if let problem = check(file, as: "plugin file") { found.append(problem) }
        }
        for binding in bindings where binding.library.contains("/") {
            if let problem = check(binding.library, as: "library of binding `\(binding.name)`") {
                found.append(problem)
            }
        }
        return found
    }

    /// Refuses (throws the first problem), or with `allowInsecure` logs each
    /// as a warning and lets the load go on.
    static func enforce(_ problems: [TrustProblem], allowInsecure: Bool, logger: Logger) throws(TrustProblem) {
        guard let first = problems.first else { return }
        guard allowInsecure else { throw first }
        for problem in problems {
            logger.warning("loading despite --allow-insecure-plugins, which turns plugin trust checks off: \(problem.plain)")
        }
    }

    // MARK: The rule

    private static func problem(_ info: stat, path: String, subject: String, isAncestor: Bool) -> TrustProblem? {
        let uid = geteuid()
        let isDirectory = info.st_mode & S_IFMT == S_IFDIR
        let kind = isAncestor ? "\(subject) is under directory \(path), which" : subject
        if info.st_uid != 0 && info.st_uid != uid {
            let server = uid == 0 ? "root (the server's user)" : "root or the server's user (\(who(uid)))"
            return TrustProblem(
                path: path,
                description:
                    "\(kind) is owned by \(who(info.st_uid)), not by \(server): its owner can change \(isAncestor ? "what is in it" : "it") and so run code as the server's user. Fix: chown \(userName(uid) ?? "\(uid)") \(path) \(overrideHint)"
            )
        }
        let writable = info.st_mode & (S_IWGRP | S_IWOTH)
        guard writable != 0 else { return nil }
        // A sticky directory above the file (like /tmp): others may add
        // entries but not rename or remove ours, which are checked on their own.
        if isAncestor && isDirectory && info.st_mode & S_ISVTX != 0 { return nil }
        let who =
            writable == S_IWGRP | S_IWOTH ? "group and others" : writable == S_IWGRP ? "its group" : "others"
        let mode = String(info.st_mode & 0o7777, radix: 8)
        let danger =
            !isDirectory
            ? "anyone who can write it can run code as the server's user"
            : isAncestor
                ? "anyone who can write there can replace what is below it"
                : "anyone who can write there can add or replace a plugin"
        return TrustProblem(
            path: path,
            description:
                "\(kind) is writable by \(who) (mode \(String(repeating: "0", count: max(0, 4 - mode.count)) + mode)): \(danger). Fix: chmod go-w \(path) \(overrideHint)"
        )
    }

    /// The first problem of a directory above `path`, as written and as resolved.
    private static func ancestorProblem(of path: String, subject: String) -> TrustProblem? {
        var directories = parents(of: path)
        if let real = realPath(path) { directories += parents(of: real) }
        var seen: Set<String> = []
        for directory in directories where seen.insert(directory).inserted {
            var info = stat()
            guard stat(directory, &info) == 0 else { continue }
            if let problem = problem(info, path: directory, subject: subject, isAncestor: true) { return problem }
        }
        return nil
    }

    /// `/a/b/c` → `/a/b`, `/a`, `/`.
    private static func parents(of path: String) -> [String] {
        var components = path.split(separator: "/").map(String.init)
        var result: [String] = []
        while !components.isEmpty {
            components.removeLast()
            result.append("/" + components.joined(separator: "/"))
        }
        return result
    }

    private static func absolute(_ path: String) -> String {
        let joined: String
        if path.hasPrefix("/") {
            joined = path
        } else {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let cwd = getcwd(&buffer, buffer.count).map { String(cString: $0) } ?? "/"
            joined = cwd + "/" + path
        }
        // Lexically: no empty or "." components (".." is left for stat to follow).
        let components = joined.split(separator: "/").filter { $0 != "." }
        return "/" + components.joined(separator: "/")
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// `alice (uid 1000)`, or `uid 1000` for a uid with no name.
    private static func who(_ uid: uid_t) -> String {
        userName(uid).map { "\($0) (uid \(uid))" } ?? "uid \(uid)"
    }

    private static func userName(_ uid: uid_t) -> String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name
        else { return nil }
        return String(cString: name)
    }
}

extension TrustProblem {
    /// The description without the override hint (for the warning logged when the override is on).
    var plain: String {
        description.hasSuffix(" " + PluginTrust.overrideHint)
            ? String(description.dropLast(PluginTrust.overrideHint.count + 1)) : description
    }
}
