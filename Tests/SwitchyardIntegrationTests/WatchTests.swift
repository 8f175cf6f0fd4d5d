import Foundation
import SwitchyardClient
import SwitchyardCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `serve --watch`: plugin files changed in the watched directory reload the
/// plugins by themselves. Synchronised on the server's log lines, never on time.
@Suite struct WatchTests {
    @Test func aNewVersionRenamedIntoTheDirectoryReloadsOnce() async throws {
        let plugins = try await VersionedPlugins(versions: [1, 2])
        try await withServer(workers: 1, plugins: plugins.plugins.path, extraArguments: ["--watch"]) { server in
            #expect(server.log.contains { $0.contains("watching \(plugins.plugins.path) for plugin changes") })
            let client = try await server.connect()
            // Written beside it as .vecho.so.tmp (not a .so: ignored), then renamed over vecho.so.
            try plugins.install(version: 2)
            try await server.waitForLog { $0.contains("reload (watch) done") }
            #expect(try await client.submit("vecho", payload: Array("x".utf8)) == Array("v2:x".utf8))
            let status = try await client.serverStatus()
            #expect(status.lastReload?.trigger == "watch")
            #expect(status.pluginGeneration == 2)
            try await expectExactlyOneWatchReload(server, client)
            try await client.close()
        }
    }

    @Test func aSlowCopyInPlaceReloadsOnceWhenItIsClosed() async throws {
        let plugins = try await VersionedPlugins(versions: [1])
        try await withServer(workers: 1, plugins: plugins.plugins.path, extraArguments: ["--watch"]) { server in
            let client = try await server.connect()
            // Many writes (IN_MODIFY each), one close (IN_CLOSE_WRITE): only the close counts.
            try plugins.writeInPlace(Paths.shippedPlugin("echo"), as: "echo.so", chunks: 16)
            try await server.waitForLog { $0.contains("reload (watch) done") }
            #expect(try await client.submit("echo", payload: Array("hi".utf8)) == Array("hi".utf8))
            let status = try await client.serverStatus()
            #expect(status.lastReload?.added == ["echo"])
            #expect(status.pluginGeneration == 2)
            try await expectExactlyOneWatchReload(server, client)
            try await client.close()
        }
    }

    @Test func removedPluginsTakeTheirHandlersAlongAndTheConfigFileCanAskForWatching() async throws {
        let plugins = try await VersionedPlugins(versions: [1])
        try plugins.place(Paths.shippedPlugin("echo"), as: "echo.so")
        try plugins.place(Paths.shippedPlugin("sleep"), as: "sleep.so")
        let config = plugins.builds.file("serve.yaml")
        try "plugins: \(plugins.plugins.path)\nwatch: true\n".write(toFile: config, atomically: true, encoding: .utf8)
        try await withServer(workers: 1, extraArguments: ["--config-file", config]) { server in
            let client = try await server.connect()
            // Deleted (IN_DELETE).
            try plugins.remove("echo.so")
            try await server.waitForLog { $0.contains("reload (watch) done") && $0.contains("removed: echo;") }
            let gone = await #expect(throws: SwitchyardError.self) {
                try await client.submit("echo", payload: Array("x".utf8))
            }
            #expect(gone?.code == .unknownHandler)
            // Renamed to a name that is not a .so (IN_MOVED_FROM).
            guard rename(plugins.plugins.file("sleep.so"), plugins.plugins.file("sleep.so.off")) == 0 else {
                throw TestFailure("rename failed: \(errno)")
            }
            try await server.waitForLog { $0.contains("reload (watch) done") && $0.contains("removed: sleep;") }
            let status = try await client.serverStatus()
            #expect(status.handlers.map(\.name) == ["vecho"])
            #expect(status.lastReload?.removed == ["sleep"])
            #expect(status.pluginGeneration == 3)
            #expect(try await client.submit("vecho", payload: Array("y".utf8)) == Array("v1:y".utf8))
            try await client.close()
        }
    }

    @Test func watchWithoutAPluginDirectoryIsRefusedNamingTheFix() async throws {
        let dir = try TemporaryDirectory()
        let result = try await run(
            Paths.switchyard, ["serve", "--listen", "127.0.0.1:0", "--store", "memory", "--data-dir", dir.path, "--watch"])
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr.contains("--watch needs --plugins DIR"), "\(result.stderr)")
    }

    /// Asks for a reload of the now unchanged directory and checks, in the log
    /// before it, that exactly one watch-triggered reload ran and none was refused.
    private func expectExactlyOneWatchReload(_ server: ServerProcess, _ client: SwitchyardClient) async throws {
        #expect(try await client.reload().outcome == "unchanged")
        try await server.waitForLog { $0.contains("reload (request) done") }
        let before = server.log.prefix { !$0.contains("reload (request)") }
        #expect(before.filter { $0.contains("reload (watch): probing") }.count == 1, "\(before)")
        #expect(!before.contains { $0.contains("reload (watch) refused") }, "\(before)")
    }
}
