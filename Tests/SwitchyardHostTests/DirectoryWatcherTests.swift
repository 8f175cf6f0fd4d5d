import Foundation
import Testing

@testable import SwitchyardHost

#if canImport(Glibc)
import Glibc
#endif

/// The inotify watcher on a real directory, no server. Every assertion waits
/// for events, which inotify delivers in order: what did not come before a
/// later event never came.
@Suite struct DirectoryWatcherTests {
    private func makeDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-watch-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Writes a file with one open and one close (FileManager may write a temporary file and rename it).
    private func writeFile(_ path: String, _ text: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        #expect(fd >= 0 && write(fd, text, text.utf8.count) == text.utf8.count && close(fd) == 0)
    }

    private func watch(_ directory: String) throws -> (DirectoryWatcher, AsyncStream<DirectoryWatcher.Event>) {
        let watcher = try DirectoryWatcher(directory: directory)
        let (events, continuation) = AsyncStream<DirectoryWatcher.Event>.makeStream()
        watcher.start { batch in for event in batch { continuation.yield(event) } }
        return (watcher, events)
    }

    @Test func aFileCountsWhenClosedOrRenamedInNotWhileItIsCreatedOrWritten() async throws {
        let directory = try makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (watcher, stream) = try watch(directory)
        defer { watcher.stop() }
        // Created and written, still open: IN_CREATE and IN_MODIFY only, which are not asked for.
        let fd = open(directory + "/slow.so", O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        #expect(fd >= 0)
        for _ in 0..<4 {
            #expect(write(fd, "chunk", 5) == 5)
            #expect(fsync(fd) == 0)
        }
        // Written beside and renamed in; a subdirectory made and removed (not a file: nothing).
        writeFile(directory + "/.marker.so.tmp", "x")
        #expect(rename(directory + "/.marker.so.tmp", directory + "/marker.so") == 0)
        #expect(mkdir(directory + "/sub", 0o755) == 0 && rmdir(directory + "/sub") == 0)
        #expect(close(fd) == 0)
        #expect(unlink(directory + "/marker.so") == 0)
        #expect(rename(directory + "/slow.so", directory + "/slow.so.off") == 0)

        var seen: [DirectoryWatcher.Event] = []
        for await event in stream {
            seen.append(event)
            if seen.count == 7 { break }
        }
        #expect(
            seen == [
                .written(".marker.so.tmp"), .movedOut(".marker.so.tmp"), .movedIn("marker.so"), .written("slow.so"),
                .deleted("marker.so"), .movedOut("slow.so"), .movedIn("slow.so.off"),
            ])
    }

    @Test func removingTheDirectoryEndsTheWatchAndStopStillReturns() async throws {
        let directory = try makeDirectory()
        let (watcher, stream) = try watch(directory)
        writeFile(directory + "/a.so", "x")
        try FileManager.default.removeItem(atPath: directory)
        var seen: [DirectoryWatcher.Event] = []
        for await event in stream {
            seen.append(event)
            if case .ended = event { break }
        }
        #expect(seen == [.written("a.so"), .deleted("a.so"), .ended("the directory was removed or moved")])
        watcher.stop()
        watcher.stop()
    }

    @Test func aMissingDirectoryIsASystemErrorNamingIt() throws {
        let error = #expect(throws: SystemError.self) { try DirectoryWatcher(directory: "/nonexistent/plugins") }
        #expect(error?.call == "inotify_add_watch(/nonexistent/plugins)")
        #expect(error?.errno == ENOENT)
    }
}
