import Foundation
import Testing

@testable import SwitchyardHost

#if canImport(Glibc)
import Glibc
#endif

/// The inotify watcher on a real directory, no server. Every assertion waits
/// for the next event; inotify keeps their order, so what did not come before
/// a later event never came.
// A lost event would leave a test waiting: the limit turns that into a failure.
@Suite(.timeLimit(.minutes(1))) struct DirectoryWatcherTests {
    private func makeDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-watch-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    private func watch(_ directory: String) throws -> (DirectoryWatcher, AsyncStream<DirectoryWatcher.Event>.Iterator) {
        let watcher = try DirectoryWatcher(directory: directory)
        let (events, continuation) = AsyncStream<DirectoryWatcher.Event>.makeStream()
        watcher.start { batch in for event in batch { continuation.yield(event) } }
        return (watcher, events.makeAsyncIterator())
    }

    // Marker files are symbolic links: no descriptor is opened for writing, so no close can
    // come late (a process another test spawns holds a copy of every descriptor until its
    // exec, and IN_CLOSE_WRITE comes with the last close).

    @Test func aFileCountsWhenClosedOrRenamedInNotWhileItIsCreatedOrWritten() async throws {
        let directory = try makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (watcher, iterator) = try watch(directory)
        var events = iterator
        defer { watcher.stop() }
        // Created and written, still open: IN_CREATE and IN_MODIFY only, which are not asked for.
        let fd = open(directory + "/slow.so", O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        #expect(fd >= 0)
        for _ in 0..<4 {
            #expect(write(fd, "chunk", 5) == 5)
            #expect(fsync(fd) == 0)
        }
        // A subdirectory made and removed: not a file, nothing.
        #expect(mkdir(directory + "/sub", 0o755) == 0 && rmdir(directory + "/sub") == 0)
        // Made beside (IN_CREATE: nothing) and renamed in: the first events.
        #expect(symlink("target", directory + "/.marker.tmp") == 0)
        #expect(rename(directory + "/.marker.tmp", directory + "/marker.so") == 0)
        #expect(await events.next() == .movedOut(".marker.tmp"))
        #expect(await events.next() == .movedIn("marker.so"))
        // Closed: now it counts.
        #expect(close(fd) == 0)
        #expect(await events.next() == .written("slow.so"))
        #expect(unlink(directory + "/marker.so") == 0)
        #expect(await events.next() == .deleted("marker.so"))
        #expect(rename(directory + "/slow.so", directory + "/slow.so.off") == 0)
        #expect(await events.next() == .movedOut("slow.so"))
        #expect(await events.next() == .movedIn("slow.so.off"))
    }

    @Test func removingTheDirectoryEndsTheWatchAndStopStillReturns() async throws {
        let directory = try makeDirectory()
        let (watcher, iterator) = try watch(directory)
        var events = iterator
        #expect(symlink("target", directory + "/a.so") == 0)
        try FileManager.default.removeItem(atPath: directory)
        #expect(await events.next() == .deleted("a.so"))
        #expect(await events.next() == .ended("the directory was removed or moved"))
        watcher.stop()
        watcher.stop()
    }

    @Test func aMissingDirectoryIsASystemErrorNamingIt() throws {
        let error = #expect(throws: SystemError.self) { try DirectoryWatcher(directory: "/nonexistent/plugins") }
        #expect(error?.call == "inotify_add_watch(/nonexistent/plugins)")
        #expect(error?.errno == ENOENT)
    }
}
