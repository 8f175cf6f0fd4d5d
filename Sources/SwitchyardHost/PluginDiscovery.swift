import Foundation

/// Finds plugin files on disk.
enum PluginDiscovery {
    /// The name prefix of the shipped plugins' files.
    static let shippedPrefix = "libswyplugin-"

    static func files(for source: HostConfiguration.PluginSource) throws -> [String] {
        switch source {
        case .files(let files):
            return files
        case .directory(let directory):
            return try sharedObjects(in: directory, prefix: "")
        case .shipped:
            let directory = try executableDirectory()
            let found = try sharedObjects(in: directory, prefix: shippedPrefix)
            if found.isEmpty {
                throw ConfigurationError(
                    "no shipped plugins (\(shippedPrefix)*.so) next to the executable in \(directory); build them with `swift build` or pass --plugins DIR"
                )
            }
            return found
        }
    }

    /// The directory whose plugin files `files(for:)` lists; nil for explicit files.
    static func directory(for source: HostConfiguration.PluginSource) throws -> String? {
        switch source {
        case .files: nil
        case .directory(let directory): directory
        case .shipped: try executableDirectory()
        }
    }

    /// The name prefix of the shipped strategy plugins' files.
    static let shippedStrategyPrefix = "libswystrategy-"

    /// The shipped strategy plugins next to the executable (none is not an error).
    static func shippedStrategyFiles() -> [String] {
        guard let directory = try? executableDirectory() else { return [] }
        return (try? sharedObjects(in: directory, prefix: shippedStrategyPrefix)) ?? []
    }

    /// Every `*.so` file directly in `directory` whose name starts with `prefix`, sorted by name.
    static func sharedObjects(in directory: String, prefix: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ConfigurationError("plugin directory \(directory) does not exist or is not a directory; pass --plugins DIR")
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw ConfigurationError("cannot list plugin directory \(directory): \(error.localizedDescription)")
        }
        let base = URL(fileURLWithPath: directory).standardizedFileURL.path
        return names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".so") }
            .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            .map { base + "/" + $0 }
    }

    private static func executableDirectory() throws -> String {
        URL(fileURLWithPath: try executablePath()).deletingLastPathComponent().path
    }

    /// This process's executable, from /proc/self/exe.
    static func executablePath() throws -> String {
        do {
            return try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        } catch {
            throw ConfigurationError("cannot find this process's executable through /proc/self/exe: \(error)")
        }
    }
}
