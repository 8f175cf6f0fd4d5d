import Foundation
import Subprocess
import SwitchyardHost
import SystemPackage
import Testing

/// Where the shipped strategy `.so` files and the sources are.
enum Paths {
    /// The repository root, found from this file's path.
    static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The build directory holding the shipped strategies: the one this test
    /// process runs from (`swift test` builds every product there).
    static let buildDirectory: URL = {
        let candidates = [
            URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
                .deletingLastPathComponent(),
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            root.appendingPathComponent(".build/debug"),
        ]
        return candidates.first {
            FileManager.default.fileExists(atPath: $0.appendingPathComponent("libswystrategy-round_robin.so").path)
        } ?? candidates.last!
    }()

    static func shippedStrategy(_ name: String) -> String {
        buildDirectory.appendingPathComponent("libswystrategy-\(name).so").path
    }

    static func fixture(_ name: String) -> String {
        root.appendingPathComponent("Tests/Fixtures/strategies/\(name)").path
    }
}

/// The four shipped strategies.
let shippedStrategies = ["round_robin", "least_loaded", "key_affinity", "two_choices"]

/// A fresh temporary directory, removed when the value is dropped.
final class TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("switchyard-strategy-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Compiles a C strategy fixture with the SDK header, as a plugin author would.
func compileFixture(_ source: String, to output: String) async throws {
    let result = try await Subprocess.run(
        .path(FilePath("/usr/bin/env")),
        arguments: [
            "cc", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-I",
            Paths.root.appendingPathComponent("sdk/include").path, "-o", output, source,
        ],
        output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
    #expect(result.terminationStatus.isSuccess, "cc failed: \(result.standardError)")
}

/// A loaded instance of a shipped strategy.
func shipped(_ name: String, config: [String: String] = [:]) throws -> StrategyInstance {
    try StrategyLibrary.load(Paths.shippedStrategy(name)).makeInstance(name, config: config)
}

/// `slots` workers, all ready with room (`window`) and handlers `handlers`.
func readyTable(_ slots: Int, window: Int = 1_000, handlers: [Int] = [0]) -> WorkerViewTable {
    let table = WorkerViewTable(slots: slots)
    for slot in 0..<slots {
        table.setState(slot: slot, .ready)
        table.setWindow(slot: slot, window)
        table.setHandlers(slot: slot, handlers)
    }
    return table
}

func task(_ id: UInt64 = 1, handler: Int = 0, key: String? = nil) -> StrategyTask {
    StrategyTask(taskID: id, handler: handler, handlerName: "h\(handler)", key: key, payloadSize: 10)
}

/// xorshift64*: deterministic randomness, so a failure can be replayed.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 1 : seed }
    mutating func next(below bound: Int) -> Int {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return Int((state &* 0x2545_F491_4F6C_DD1D) >> 33) % bound
    }
}
