import Foundation
import NIOCore
import Testing

@testable import SwitchyardCore

/// What the fuzzer (fuzz/run) found, each pinned by the input it failed on
/// (also kept in fuzz/regressions, which SwitchyardFuzzTests replays through
/// every check) and by the specific behaviour of the fix.
@Suite("Fuzz findings")
struct FuzzFindingTests {
    /// The frames in a saved fuzzer input.
    func frames(base64: String) throws -> [Frame] {
        var buffer = ByteBuffer(bytes: try #require(Data(base64Encoded: base64)))
        var frames: [Frame] = []
        while let frame = try Frame.read(from: &buffer) { frames.append(frame) }
        return frames
    }

    /// A TASK_LIST entry with has_result 1 was read, result and all, although
    /// lists never carry results (docs/PROTOCOL.md, LIST_TASKS): written again,
    /// the result was gone, so decode(encode(m)) != m. Now it is BAD_FRAME.
    @Test func aTaskListEntryCarryingAResultIsBadFrame() throws {
        // fuzz/regressions/task-list-entry-with-result: its second entry has has_result 1 (the last byte).
        let found = try frames(
            base64:
                "AAAAo4kAAAAAAQACAAAARwAAAAAAAAAqAwAAAAMAAAD//////f//9egAAAFPcHRpb25hbIvP5WgAAAABi8/laAEAAAGLz+VoAgRlY2hvAWsBdQAAAAAAAAAATAAAAAAAAAArBQAAAAAAAAACAAAAAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAARmYWlsAAAAFAAHQG5vIGx1Y2sA"
        )
        #expect(found.map(\.type) == [.taskList])
        expectProtocolError(.badFrame, mentioning: "has_result", "never carry a result") {
            _ = try ServerMessage(frame: found[0])
        }
        // The smallest case: one entry, has_result 1, a one-byte result.
        let entry = Array(TaskLifecycleLayoutTests.fullInfoBody.dropLast()) + [0x01, 0x78]
        expectProtocolError(.badFrame, mentioning: "has_result is 1") {
            _ = try ServerMessage(frame: frame(.taskList, body: [0, 1] + be(UInt32(entry.count)) + entry))
        }
        // TASK_INFO still carries its result.
        guard case .taskInfo(let info) = try ServerMessage(frame: frame(.taskInfo, body: entry)) else {
            Issue.record("not TASK_INFO")
            return
        }
        #expect(info.result == ByteBuffer(string: "x"))
    }
}
