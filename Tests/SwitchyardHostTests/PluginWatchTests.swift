import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import SwitchyardHost

/// The burst rule on a controllable clock (an `EmbeddedEventLoop`): events are
/// fed in directly, time only moves when the test moves it.
@Suite struct PluginWatchTests {
    /// A watch on an empty directory nobody touches, so only the test's events arrive.
    private final class Harness {
        let directory: String
        let loop = EmbeddedEventLoop()
        let watch: PluginWatch
        var reloads = 0

        init(activated: Bool = true) throws {
            directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("switchyard-pluginwatch-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            watch = try PluginWatch(
                directory: directory, loop: loop, quiet: .milliseconds(250), logger: Logger(label: "test"))
            if activated { activate() }
        }

        func activate() { watch.activate { [self] in reloads += 1 } }

        deinit {
            watch.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    @Test func aBurstIsOneReloadAfterItsLastEventPlusTheQuietTime() throws {
        let harness = try Harness()
        harness.watch.received([.written("a.so")])
        harness.loop.advanceTime(by: .milliseconds(200))
        harness.watch.received([.movedOut(".b.so.tmp"), .movedIn("b.so")])
        harness.loop.advanceTime(by: .milliseconds(200))
        harness.watch.received([.deleted("c.so")])
        harness.loop.advanceTime(by: .milliseconds(249))
        #expect(harness.reloads == 0, "still within the burst")
        harness.loop.advanceTime(by: .milliseconds(1))
        #expect(harness.reloads == 1)
        harness.loop.advanceTime(by: .seconds(10))
        #expect(harness.reloads == 1, "one burst, one reload")
        // A later change is a new burst.
        harness.watch.received([.movedIn("a.so")])
        harness.loop.advanceTime(by: .milliseconds(250))
        #expect(harness.reloads == 2)
    }

    @Test func namesThatAreNotSharedObjectsAreIgnoredAndAnOverflowCounts() throws {
        let harness = try Harness()
        harness.watch.received([
            .written(".a.so.tmp"), .movedIn("notes.txt"), .deleted("a.so.off"), .ended("the directory was removed or moved"),
        ])
        harness.loop.advanceTime(by: .seconds(10))
        #expect(harness.reloads == 0)
        harness.watch.received([.overflowed])
        harness.loop.advanceTime(by: .milliseconds(250))
        #expect(harness.reloads == 1, "events were lost: anything may have changed")
    }

    @Test func aBurstThatEndsBeforeTheHostRunsReloadsOnceItRuns() throws {
        let harness = try Harness(activated: false)
        harness.watch.received([.movedIn("a.so")])
        harness.loop.advanceTime(by: .seconds(1))
        #expect(harness.reloads == 0)
        harness.activate()
        #expect(harness.reloads == 1)
        harness.loop.advanceTime(by: .seconds(10))
        #expect(harness.reloads == 1)
    }
}
