import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A plugin directory holding `vecho` built at each version asked for (in
/// `builds`), and the one the server sees (`plugins`).
final class VersionedPlugins: Sendable {
    let builds: TemporaryDirectory
    let plugins: TemporaryDirectory

    init(versions: [Int]) async throws {
        builds = try TemporaryDirectory()
        plugins = try TemporaryDirectory()
        for version in versions {
            try await compilePlugin(
                Paths.fixture("versioned_echo.c"), to: builds.file("vecho-\(version).so"),
                defines: ["-DVERSION=\(version)"])
        }
        try install(version: versions[0])
    }

    /// Puts a version in place as a careful operator does: written beside it, then renamed over it.
    func install(version: Int) throws {
        try place(builds.file("vecho-\(version).so"), as: "vecho.so")
    }

    func place(_ source: String, as name: String) throws {
        let temporary = plugins.file(".\(name).tmp")
        try? FileManager.default.removeItem(atPath: temporary)
        try FileManager.default.copyItem(atPath: source, toPath: temporary)
        guard rename(temporary, plugins.file(name)) == 0 else { throw TestFailure("rename failed: \(errno)") }
    }

    /// Copies a file in place the slow way, as `cp` onto a network share does: one open,
    /// `chunks` writes each flushed to disk with fsync, one close (so exactly one IN_CLOSE_WRITE).
    func writeInPlace(_ source: String, as name: String, chunks: Int) throws {
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: source)))
        let fd = open(plugins.file(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TestFailure("open \(name) failed: \(errno)") }
        defer { close(fd) }
        let size = (bytes.count + chunks - 1) / chunks
        for start in stride(from: 0, to: bytes.count, by: size) {
            let chunk = bytes[start..<min(start + size, bytes.count)]
            let written = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == chunk.count else { throw TestFailure("write \(name) failed: \(errno)") }
            guard fsync(fd) == 0 else { throw TestFailure("fsync \(name) failed: \(errno)") }
        }
    }

    func remove(_ name: String) throws { try FileManager.default.removeItem(atPath: plugins.file(name)) }
}
