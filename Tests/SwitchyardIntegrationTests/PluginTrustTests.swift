import Foundation
import SwitchyardClient
import SwitchyardCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Plugin trust (docs/SECURITY.md, "Plugin trust"): the real server refuses
/// plugin files and directories, strategy plugins and reloads that someone
/// other than root or its user could have written, names the path and the
/// fix, and loads them anyway only with --allow-insecure-plugins, loudly.
@Suite struct PluginTrustTests {
    /// Starts a server that must refuse to start; returns what it said.
    func refusedStart(plugins: String, _ extra: [String] = []) async throws -> String {
        do {
            let server = try await ServerProcess.start(workers: 1, plugins: plugins, extraArguments: extra)
            await server.stop()
            Issue.record("the server started with \(plugins)")
            return ""
        } catch let failure as TestFailure {
            #expect(failure.description.contains("the server exited (exit 2) before it listened"), "\(failure)")
            return failure.description
        }
    }

    @Test func aPluginFileOthersCanWriteIsRefusedAtStartWithItsPathAndTheFix() async throws {
        let plugins = try await confinedPlugins()
        let file = plugins.file("confined.so")
        #expect(chmod(file, 0o666) == 0)
        let said = try await refusedStart(plugins: plugins.path)
        // "group and others", or "others" where the file's group is root's alone (see below).
        #expect(said.contains("plugin file \(file) is writable by"), "\(said)")
        #expect(said.contains("others (mode 0666)"), "\(said)")
        #expect(said.contains("Fix: chmod go-w \(file)"), "\(said)")
        #expect(said.contains("--allow-insecure-plugins"), "the message names the override: \(said)")
    }

    @Test func aPluginDirectoryOthersCanWriteIsRefusedEvenWithTheStickyBit() async throws {
        let plugins = try await confinedPlugins()
        #expect(chmod(plugins.path, 0o777) == 0)
        let said = try await refusedStart(plugins: plugins.path)
        #expect(said.contains("plugin directory \(plugins.path) is writable by"), "\(said)")
        #expect(said.contains("others (mode 0777)"), "\(said)")
        #expect(said.contains("Fix: chmod go-w \(plugins.path)"), "\(said)")
        // Sticky, like /tmp: others still could add a plugin to it.
        #expect(chmod(plugins.path, 0o1777) == 0)
        #expect(try await refusedStart(plugins: plugins.path).contains("(mode 1777)"))
        #expect(chmod(plugins.path, 0o755) == 0)
    }

    @Test func aDirectoryAboveThePluginsThatOthersCanWriteIsRefusedButAStickyOneIsNot() async throws {
        // The plugin directories of every test sit in /tmp (mode 1777): a sticky
        // directory above is fine, or none of them would start.
        let outer = try TemporaryDirectory()
        let inner = outer.file("plugins")
        try FileManager.default.createDirectory(atPath: inner, withIntermediateDirectories: false)
        try await compilePlugin(Paths.fixture("confined.c"), to: inner + "/confined.so")
        #expect(chmod(outer.path, 0o757) == 0)
        let said = try await refusedStart(plugins: inner)
        #expect(
            said.contains(
                "plugin directory \(inner) is under directory \(outer.path), which is writable by others (mode 0757)"),
            "\(said)")
        #expect(said.contains("Fix: chmod go-w \(outer.path)"), "\(said)")

        // A symbolic link to the plugins, from a directory others can write
        // (sticky, so the link itself cannot be swapped): the resolved path is
        // checked too.
        let links = try TemporaryDirectory()
        #expect(chmod(links.path, 0o1777) == 0)
        #expect(symlink(inner, links.file("plugins")) == 0)
        #expect(try await refusedStart(plugins: links.file("plugins")).contains("is under directory \(outer.path)"))
        #expect(chmod(outer.path, 0o755) == 0)
        try await withServer(workers: 1, plugins: links.file("plugins")) { server in
            let client = try await server.connect()
            #expect(try await client.submit("introspect").isEmpty == false)
            try await client.close()
        }
    }

    @Test(.enabled(if: geteuid() == 0, "only root can give a file away"))
    func aPluginOwnedBySomeoneElseIsRefused() async throws {
        let plugins = try await confinedPlugins()
        let file = plugins.file("confined.so")
        #expect(chown(file, 65534, 65534) == 0)
        let said = try await refusedStart(plugins: plugins.path)
        #expect(said.contains("plugin file \(file) is owned by"), "\(said)")
        #expect(said.contains("(uid 65534), not by root"), "\(said)")
        #expect(said.contains("Fix: chown root \(file)"), "\(said)")
    }

    @Test(.enabled(if: geteuid() == 0, "only root can give a file to any group"))
    func groupWriteIsRefusedUnlessTheOwnerIsTheGroupsOnlyMember() async throws {
        let plugins = try await confinedPlugins()
        let file = plugins.file("confined.so")
        #expect(chmod(file, 0o664) == 0)
        // nogroup is the primary group of other users (nobody, at least): its members could write.
        let nogroup = try await run("/usr/bin/env", ["getent", "passwd"])
        if nogroup.stdout.split(separator: "\n").contains(where: { $0.split(separator: ":").dropFirst(3).first == "65534" }) {
            #expect(chown(file, 0, 65534) == 0)
            let said = try await refusedStart(plugins: plugins.path)
            #expect(said.contains("plugin file \(file) is writable by its group"), "\(said)")
            #expect(said.contains("(mode 0664)"), "\(said)")
        }
        // Root's own group, when root is its only member: a user-private group, as umask 002
        // leaves group-writable; group write grants no one else anything.
        let members = try await run("/usr/bin/env", ["getent", "group", "0"])
        let primary = try await run("/usr/bin/env", ["getent", "passwd"])
        let othersWithGroup0 = primary.stdout.split(separator: "\n").filter {
            let fields = $0.split(separator: ":", omittingEmptySubsequences: false)
            return fields.count > 3 && fields[3] == "0" && fields[2] != "0"
        }
        guard members.stdout.trimmingCharacters(in: .whitespacesAndNewlines).hasSuffix(":"), othersWithGroup0.isEmpty
        else { return }  // root's group has other members here: nothing to show
        #expect(chown(file, 0, 0) == 0)
        #expect(chmod(plugins.path, 0o775) == 0)
        try await withServer(workers: 1, plugins: plugins.path) { server in
            let client = try await server.connect()
            #expect(try await client.submit("echo", payload: Array("ok".utf8)) == Array("ok".utf8))
            try await client.close()
        }
    }

    @Test func allowInsecurePluginsLoadsThemAndWarnsAtStartAndForEachFile() async throws {
        let plugins = try await confinedPlugins()
        let file = plugins.file("confined.so")
        #expect(chmod(file, 0o666) == 0)
        #expect(chmod(plugins.path, 0o777) == 0)
        defer { _ = chmod(plugins.path, 0o755) }
        try await withServer(workers: 1, plugins: plugins.path, extraArguments: ["--allow-insecure-plugins"]) { server in
            let client = try await server.connect()
            #expect(try await client.submit("echo", payload: Array("hi".utf8)) == Array("hi".utf8))
            try await client.close()
            let warnings = server.log.filter { $0.contains(" warning ") }
            #expect(warnings.contains { $0.contains("--allow-insecure-plugins: plugin trust checks are off") })
            #expect(warnings.contains { $0.contains("plugin file \(file) is writable by") })
            #expect(warnings.contains { $0.contains("plugin directory \(plugins.path) is writable") })
        }
        // The same from the configuration file.
        let config = plugins.file("switchyard.yaml")
        try "allow-insecure-plugins: true\n".write(toFile: config, atomically: true, encoding: .utf8)
        #expect(chmod(config, 0o644) == 0)
        try await withServer(workers: 1, plugins: plugins.path, extraArguments: ["--config-file", config]) { server in
            #expect(server.log.contains { $0.contains("plugin file \(file) is writable") })
        }
    }

    @Test func strategyLoadRefusesAnUntrustedFileAndLogsTheSHA256OfATrustedOne() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("libmine.so")
        try await compilePlugin(
            StrategyLoadTests.strategyFixture("fixed_pick"), to: path, defines: ["-DFIXED_PICK_VERSION=\"1.0.0\""])
        #expect(chmod(path, 0o666) == 0)
        try await withServer(workers: 2) { server in
            let client = try await server.connect()
            let error = await #expect(throws: SwitchyardError.self) { try await client.loadStrategy(path: path) }
            #expect(error?.code == .strategyRefused)
            #expect(error?.message.contains("strategy plugin \(path) is writable by") == true, "\(String(describing: error))")
            #expect(error?.message.contains("Fix: chmod go-w \(path)") == true)
            #expect(try await client.serverStatus().strategyFiles?.contains { $0.file == path } == false)

            #expect(chmod(path, 0o644) == 0)
            let report = try await client.loadStrategy(path: path)
            let digest = try await sha256sum(path)
            #expect(report.loaded?.sha256 == digest)
            let listed = try await client.serverStatus().strategyFiles?.first { $0.file == path }
            #expect(listed?.sha256 == digest)
            #expect(listed?.strategies == ["fixed_pick"])
            #expect(server.log.contains { $0.contains("loaded strategy plugin \(path)") && $0.contains("sha256 \(digest)") })
            try await client.close()
        }
    }

    @Test func aReloadThatMeetsAnUntrustedFileFailsNamingItAndTheOldVersionKeepsServing() async throws {
        let plugins = try await VersionedPlugins(versions: [1, 2])
        let file = plugins.plugins.file("vecho.so")
        try await withServer(workers: 2, plugins: plugins.plugins.path) { server in
            let client = try await server.connect()
            try plugins.install(version: 2)
            #expect(chmod(file, 0o666) == 0)
            let error = await #expect(throws: SwitchyardError.self) { try await client.reload() }
            #expect(error?.code == .reloadFailed)
            #expect(error?.message.contains("plugin file \(file) is writable by") == true, "\(String(describing: error))")
            #expect(error?.message.contains("Fix: chmod go-w \(file)") == true)
            #expect(try await client.submit("vecho", payload: Array("a".utf8)) == Array("v1:a".utf8))

            // The directory is checked at each reload too.
            #expect(chmod(file, 0o644) == 0)
            #expect(chmod(plugins.plugins.path, 0o777) == 0)
            let refused = await #expect(throws: SwitchyardError.self) { try await client.reload() }
            #expect(refused?.message.contains("plugin directory \(plugins.plugins.path) is writable") == true)
            #expect(chmod(plugins.plugins.path, 0o755) == 0)

            let report = try await client.reload()
            #expect(report.outcome == "reloaded")
            #expect(try await client.submit("vecho", payload: Array("b".utf8)) == Array("v2:b".utf8))
            let status = try await client.serverStatus()
            #expect(status.handlers.first { $0.name == "vecho" }?.sha256 == (try await sha256sum(file)))
            try await client.close()
            #expect(server.log.contains { $0.contains("reload (request) refused: plugin file \(file)") })
        }
    }
}
