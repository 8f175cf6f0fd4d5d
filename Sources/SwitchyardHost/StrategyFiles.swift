#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation

/// Private copies of strategy files for STRATEGY_LOAD.
///
/// `dlopen` returns the already-loaded object for a path it has seen, even
/// when the file changed on disk, so each load opens a copy under a path this
/// process has never opened: a fresh private directory (mode 0700, from
/// mkdtemp) plus the load's serial number. Once the host has loaded the copy,
/// the file and its directory are removed; the mapping stays valid.
enum StrategyFiles {
    static func privateCopy(of path: String, serial: Int) throws -> String {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw StrategyLoadError(
                file: path, reason: "cannot be read: \(String(cString: strerror(errno))); give the absolute path of a strategy .so on the server's machine")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw StrategyLoadError(file: path, reason: "is not a regular file; give the path of a strategy .so")
        }
        var template = Array("\(NSTemporaryDirectory().trimmingSuffix("/"))/switchyard-strategy-XXXXXX".utf8CString)
        guard let directory = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw StrategyLoadError(file: path, reason: "could not be copied: mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        let copy = "\(String(cString: directory))/\(serial)-\((path as NSString).lastPathComponent)"
        do {
            try FileManager.default.copyItem(atPath: path, toPath: copy)
        } catch {
            rmdir(directory)
            throw StrategyLoadError(file: path, reason: "could not be copied to \(copy): \(error)")
        }
        return copy
    }

    static func remove(_ copy: String) {
        unlink(copy)
        rmdir((copy as NSString).deletingLastPathComponent)
    }
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
