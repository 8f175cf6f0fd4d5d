import Foundation
import SwitchyardClient
import SwitchyardCore
import Testing

/// Every file whose code the server runs (handler plugins, strategy plugins,
/// libraries of bindings) has its SHA-256 in the log and in `status`, so an
/// operator can tell exactly what runs.
@Suite struct LoadedFileHashTests {
    @Test func statusAndTheLogShowTheSHA256OfEveryLoadedFile() async throws {
        let plugins = try await confinedPlugins()
        let config = plugins.file("switchyard.yaml")
        try """
            bindings:
              - {name: cbrt, library: libm.so.6, symbol: cbrt, signature: "double(double)"}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        try await withServer(workers: 1, plugins: plugins.path, extraArguments: ["--config-file", config]) { server in
            let client = try await server.connect()
            let status = try await client.serverStatus()
            try await client.close()
            // Handler plugins.
            for file in [plugins.file("confined.so"), plugins.file("libswyplugin-echo.so")] {
                let digest = try await sha256sum(file)
                #expect(status.handlers.contains { $0.file == file && $0.sha256 == digest })
                #expect(server.log.contains { $0.contains("plugin \(file): sha256 \(digest)") })
            }
            // The shipped strategy plugins, loaded into the host.
            let strategies = status.strategyFiles ?? []
            #expect(strategies.contains { $0.strategies == ["least_loaded"] })
            for strategy in strategies {
                #expect(strategy.sha256 == (try await sha256sum(strategy.file)))
                #expect(server.log.contains { $0.contains("strategy plugin \(strategy.file): sha256 \(strategy.sha256)") })
            }
            // A bound library named by a bare name: the file the dynamic linker found.
            let binding = try #require(status.bindings?.first)
            let path = try #require(binding.path)
            #expect(path.hasPrefix("/") && path.hasSuffix("libm.so.6"), "\(path)")
            #expect(binding.sha256 == (try await sha256sum(path)))
            #expect(server.log.contains { $0.contains("binding cbrt: library \(path): sha256 \(binding.sha256 ?? "?")") })
        }
    }
}
