import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The data directory of a store: created if missing, checked for
/// permissions, and locked so that one server at a time uses it.
enum DataDirectory {
    /// Makes sure `directory` exists (creating it and its parents with mode
    /// 0700 if needed) and that this user may create files in it.
    static func prepare(_ directory: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw StoreError(
                    "the data directory \(directory) exists but is not a directory: remove or rename that file, "
                        + "or choose another data directory (switchyard serve --data-dir DIR)")
            }
        } else {
            do {
                try makeDirectories(directory)
            } catch let failure as Failure {
                throw StoreError(
                    "the data directory \(directory) does not exist and cannot be created (\(failure)): "
                        + "create it yourself, or choose another data directory (switchyard serve --data-dir DIR)")
            }
        }
        if access(directory, W_OK | X_OK) != 0 {
            let code = errno
            throw StoreError(
                "the data directory \(directory) is not writable by this user (uid \(getuid())): "
                    + "\(describe(errno: code)). Give the user write access (chown/chmod), "
                    + "or choose another data directory (switchyard serve --data-dir DIR)")
        }
    }

    /// Checks an existing database file before SQLite opens it: SQLite falls
    /// back to read-only on a file it may not write, and the first commit
    /// would fail much later with a vaguer error.
    static func checkDatabaseFile(_ path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return }
        if isDirectory.boolValue {
            throw StoreError(
                "\(path) is a directory, not a task database: move it aside (mv \(path) \(path).bad) "
                    + "so Switchyard can create a new store, or choose another data directory")
        }
        for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
            if access(path + suffix, R_OK | W_OK) != 0 {
                let code = errno
                throw StoreError(
                    "\(path + suffix) is not readable and writable by this user (uid \(getuid())): "
                        + "\(describe(errno: code)). Fix its owner or mode (chown/chmod), "
                        + "or run Switchyard as the user that owns it")
            }
        }
    }

    /// A system call that failed, for messages.
    struct Failure: Error, CustomStringConvertible {
        var call: String
        var path: String
        var errno: Int32
        var description: String { "\(call) \(path): \(DataDirectory.describe(errno: errno))" }
    }

    static func describe(errno code: Int32) -> String {
        "\(String(cString: strerror(code))) (errno \(code))"
    }

    /// `mkdir -p` with mode 0700 for the directories it creates.
    private static func makeDirectories(_ path: String) throws {
        if mkdir(path, 0o700) == 0 { return }
        let code = errno
        switch code {
        case EEXIST:
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                return
            }
            throw Failure(call: "mkdir", path: path, errno: ENOTDIR)
        case ENOENT:
            let parent = parentPath(path)
            guard parent != path, !parent.isEmpty else { throw Failure(call: "mkdir", path: path, errno: code) }
            try makeDirectories(parent)
            if mkdir(path, 0o700) != 0, errno != EEXIST {
                throw Failure(call: "mkdir", path: path, errno: errno)
            }
        default:
            throw Failure(call: "mkdir", path: path, errno: code)
        }
    }

    /// The path without its last component ("a/b/" -> "a", "/a" -> "/", "a" -> ".").
    private static func parentPath(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        if slash == trimmed.startIndex { return "/" }
        return String(trimmed[..<slash])
    }
}

/// An exclusive `flock(2)` on `<directory>/lock`, held from `open()` to
/// `close()`: a second server (in this process or another) that is given the
/// same data directory is refused with a message naming the holder's pid,
/// instead of two hosts running the same tasks from one file.
///
/// The lock file stays on disk after the server exits (deleting it would race
/// with a server acquiring it); the kernel drops the lock when the holder's
/// descriptor closes, also when the process is killed. The descriptor is
/// opened close-on-exec so worker processes never inherit the lock.
struct DataDirectoryLock: Sendable {
    let path: String
    private let descriptor: Int32

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    static func acquire(in directory: String) throws -> DataDirectoryLock {
        let path = directory.hasSuffix("/") ? directory + "lock" : directory + "/lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if descriptor < 0 {
            let code = errno
            throw StoreError(
                "cannot open the lock file \(path): \(DataDirectory.describe(errno: code)). "
                    + "Give this user write access to the data directory, or choose another one")
        }
        if flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            _ = close(descriptor)
            if code == EWOULDBLOCK {
                let holder = (try? String(contentsOfFile: path, encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                let who = holder.flatMap(Int32.init).map { "process \($0)" } ?? "another process"
                throw StoreError(
                    "the data directory \(directory) is in use: \(who) holds its lock \(path) (another Switchyard "
                        + "server is running on it). Two servers cannot share one data directory: stop the other "
                        + "server, or give this one its own directory (switchyard serve --data-dir DIR)")
            }
            throw StoreError("cannot lock \(path): \(DataDirectory.describe(errno: code))")
        }
        // Who holds the lock, for the message above; best effort.
        if ftruncate(descriptor, 0) == 0 {
            let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: false)
            try? handle.write(contentsOf: Data("\(getpid())\n".utf8))
        }
        return DataDirectoryLock(path: path, descriptor: descriptor)
    }

    /// Releases the lock. Unlocks explicitly before closing: a process that
    /// another thread is spawning at this moment holds a copy of the
    /// descriptor until its exec closes it, and closing ours alone would leave
    /// the lock held by that copy (seen: a store reopened at once in the same
    /// process was refused as "in use" by its own pid).
    func release() {
        _ = flock(descriptor, LOCK_UN)
        _ = close(descriptor)
    }
}
