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

    func remove(_ name: String) throws { try FileManager.default.removeItem(atPath: plugins.file(name)) }
}
