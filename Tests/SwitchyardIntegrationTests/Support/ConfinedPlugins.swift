import Foundation

/// A plugin directory holding the `confined` fixture (handlers `introspect`,
/// `burn_cpu`, `hog_memory`; Tests/Fixtures/plugins/confined.c) and copies of
/// the shipped plugins named in `shipped`.
func confinedPlugins(shipped: [String] = ["echo"]) async throws -> TemporaryDirectory {
    let directory = try TemporaryDirectory()
    try await compilePlugin(Paths.fixture("confined.c"), to: directory.file("confined.so"))
    for name in shipped {
        try FileManager.default.copyItem(atPath: Paths.shippedPlugin(name), toPath: directory.file("libswyplugin-\(name).so"))
    }
    return directory
}

/// SHA-256 of a file as `sha256sum` prints it: 64 lowercase hex digits.
func sha256sum(_ path: String) async throws -> String {
    let result = try await run("/usr/bin/env", ["sha256sum", path])
    guard result.status == 0, let digest = result.stdout.split(separator: " ").first else {
        throw TestFailure("sha256sum \(path) failed: \(result.stderr)")
    }
    return String(digest)
}
