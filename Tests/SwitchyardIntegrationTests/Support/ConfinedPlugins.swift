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
