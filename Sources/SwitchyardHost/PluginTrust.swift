#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import NIOConcurrencyHelpers
import SwitchyardCore

/// A file the host would load code from that someone other than root or the
/// server's user could have written. The description names the path at fault
/// and the command that fixes it.
struct TrustProblem: Error, CustomStringConvertible, Sendable, Hashable {
    /// The file, or the directory above it, whose owner or mode is wrong.
    var path: String
    var description: String
}

/// The trust rule for code the host loads (plugin files and directories,
/// strategy plugins, libraries of bindings), in the manner of sshd's
/// StrictModes: the file, and every directory above it up to `/`, must be
/// owned by root or the server's user and writable by neither group nor
/// others; group write is accepted when the owner is the group's only member
/// (Debian's sshd accepts it too: user-private groups and umask 002); a
/// directory above the file (not the plugin directory itself) may be
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
        var writable = info.st_mode & (S_IWGRP | S_IWOTH)
        // Group write grants nothing when the owner is the group's only member
        // (a user-private group, which umask 002 makes group-writable).
        if writable & S_IWGRP != 0 && isPrivateGroup(info.st_gid, of: info.st_uid) { writable &= ~S_IWGRP }
        guard writable != 0 else { return nil }
        // A sticky directory above the file (like /tmp): others may add
        // entries but not rename or remove ours, which are checked on their own.
        if isAncestor && isDirectory && info.st_mode & S_ISVTX != 0 { return nil }
        let group = groupName(info.st_gid).map { "its group \($0)" } ?? "its group (gid \(info.st_gid))"
        let who = writable == S_IWGRP | S_IWOTH ? "group and others" : writable == S_IWGRP ? group : "others"
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

    /// Whether `owner` is the only member of group `gid`: the group's member
    /// list names no one else, no other user has it as primary group, and the
    /// owner is in it one way or the other (a group with no member at all is
    /// typically a setgid program's, not a private one).
    private static func isPrivateGroup(_ gid: gid_t, of owner: uid_t) -> Bool {
        guard let ownerName = userName(owner) else { return false }
        guard let listed = groupEntry(gid)?.members else { return false }
        guard listed.allSatisfy({ $0 == ownerName }) else { return false }
        let members = listed.count
        // The password database is walked with one cursor per process: one walk at a time.
        let primary: [uid_t]? = passwordWalk.withLock {
            var users: [uid_t] = []
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            var text = [CChar](repeating: 0, count: 16 * 1024)
            setpwent()
            defer { endpwent() }
            while true {
                let code = getpwent_r(&entry, &text, text.count, &result)
                if code == ENOENT || result == nil { return code == ENOENT || code == 0 ? users : nil }
                guard code == 0 else { return nil }
                if entry.pw_gid == gid { users.append(entry.pw_uid) }
            }
        }
        guard let primary, primary.allSatisfy({ $0 == owner }) else { return false }
        return members + primary.count > 0
    }

    private static let passwordWalk = NIOLock()

    /// A group's name and the users its entry lists (not those who have it as primary group).
    private static func groupEntry(_ gid: gid_t) -> (name: String, members: [String])? {
        var group = Glibc.group()
        var found: UnsafeMutablePointer<Glibc.group>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        guard getgrgid_r(gid, &group, &buffer, buffer.count, &found) == 0, found != nil, let name = group.gr_name
        else { return nil }
        var members: [String] = []
        var cursor = group.gr_mem
        while let member = cursor?.pointee {
            members.append(String(cString: member))
            cursor = cursor! + 1
        }
        return (String(cString: name), members)
    }

    private static func groupName(_ gid: gid_t) -> String? { groupEntry(gid)?.name }

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
