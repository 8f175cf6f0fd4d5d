import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SwitchyardClient
import SwitchyardCore
import Testing

/// The real server with the shipped plugins (its default plugin set), over TCP.
@Suite struct ShippedHandlerTests {
    @Test func everyShippedHandlerIsLoadedByEveryWorker() async throws {
        try await withServer(workers: 2) { server in
            let client = try await server.connect()
            let status = try await client.serverStatus()
            #expect(Set(status.handlers.map(\.name)).isSuperset(of: ["echo", "sha256", "sleep", "wordcount", "fail", "crash"]))
            for handler in status.handlers { #expect(handler.workers == 2, "\(handler.name)") }
            #expect(status.workers.count == 2)
            #expect(status.skippedPlugins.isEmpty)
            try await client.close()
        }
    }

    @Test func echoReturnsThePayloadBytes() async throws {
        try await withServer { server in
            let client = try await server.connect()
            #expect(try await client.submit("echo", payload: Array("hello".utf8)) == Array("hello".utf8))
            let binary = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            #expect(try await client.submit("echo", payload: binary) == binary)
            #expect(try await client.submit("echo", payload: [UInt8]()) == [])
            try await client.close()
        }
    }

    @Test func sha256ReturnsTheHexDigest() async throws {
        try await withServer { server in
            let client = try await server.connect()
            let digest = try await client.submit("sha256", payload: Array("hello".utf8))
            #expect(String(decoding: digest, as: UTF8.self) == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
            let empty = try await client.submit("sha256", payload: [UInt8]())
            #expect(String(decoding: empty, as: UTF8.self) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            try await client.close()
        }
    }

    @Test func wordcountCountsUTF8Text() async throws {
        try await withServer { server in
            let client = try await server.connect()
            let reply = try await client.submit("wordcount", payload: Array("the cat and the hat\nnaïve café\n".utf8))
            let json = try #require(try JSONSerialization.jsonObject(with: Data(reply)) as? [String: Any])
            #expect(json["words"] as? Int == 7)
            #expect(json["lines"] as? Int == 2)
            let bad = await #expect(throws: SwitchyardError.self) {
                _ = try await client.submit("wordcount", payload: [0xFF, 0xFE, 0x41])
            }
            #expect(bad?.code == .handlerFailed)
            try await client.close()
        }
    }

    @Test func sleepReportsProgressAndThenReplies() async throws {
        try await withServer { server in
            let client = try await server.connect()
            let seen = NIOLockedValueBox<[UInt64]>([])
            let reply = try await client.submit("sleep", payload: Array("350".utf8)) { done, total in
                #expect(total == 350)
                seen.withLockedValue { $0.append(done) }
            }
            #expect(String(decoding: reply, as: UTF8.self) == "slept 350 ms")
            #expect(seen.withLockedValue { $0 } == [100, 200, 300])
            try await client.close()
        }
    }

    @Test func failReturnsHandlerFailedWithTheMessage() async throws {
        try await withServer { server in
            let client = try await server.connect()
            let error = await #expect(throws: SwitchyardError.self) {
                _ = try await client.submit("fail", payload: Array("x".utf8))
            }
            #expect(error?.code == .handlerFailed)
            #expect(error?.message.isEmpty == false)
            // The connection still works after an error reply.
            #expect(try await client.submit("echo", payload: Array("after".utf8)) == Array("after".utf8))
            try await client.close()
        }
    }

    @Test func unknownHandlerIsNamedInTheError() async throws {
        try await withServer { server in
            let client = try await server.connect()
            let error = await #expect(throws: SwitchyardError.self) {
                _ = try await client.submit("no_such_handler", payload: [UInt8]())
            }
            #expect(error?.code == .unknownHandler)
            #expect(error?.message.contains("no_such_handler") == true)
            #expect(error?.message.contains("echo") == true, "the message lists the loaded handlers")
            try await client.close()
        }
    }

    @Test func backgroundSubmitReturnsAnIDWhoseStatusReachesSucceeded() async throws {
        try await withServer { server in
            let client = try await server.connect()
            let id = try await client.submitBackground("echo", payload: ByteBuffer(string: "later"))
            // A foreground task submitted after it on the same handler and worker
            // pool finishing does not order them, so ask until it is done.
            var info = try await client.taskInfo(id)
            var asked = 1
            while info.state != .succeeded && asked < 10_000 {
                #expect(info.state == .queued || info.state == .running)
                await Task.yield()
                info = try await client.taskInfo(id)
                asked += 1
            }
            #expect(info.state == .succeeded)
            #expect(info.handler == "echo")
            #expect(info.attempts == 1)
            #expect(info.result.map { String(buffer: $0) } == "later")
            let missing = await #expect(throws: SwitchyardError.self) { _ = try await client.taskInfo(id + 1_000_000) }
            #expect(missing?.code == .unknownTask)
            try await client.close()
        }
    }

    @Test func aThousandPipelinedSubmitsOnOneConnectionAreAllAnsweredRight() async throws {
        try await withServer { server in
            let client = try await server.connect()
            let results = try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
                for i in 0..<1_000 {
                    group.addTask {
                        let handler = i % 10 == 0 ? "sha256" : "echo"
                        return (i, try await client.submit(handler, payload: Array("task-\(i)".utf8)))
                    }
                }
                var results = [[UInt8]](repeating: [], count: 1_000)
                for try await (i, result) in group { results[i] = result }
                return results
            }
            for i in 0..<1_000 where i % 10 != 0 {
                #expect(results[i] == Array("task-\(i)".utf8), "task \(i)")
            }
            // Spot-check the digests against the server itself, one by one.
            let digest10 = try await client.submit("sha256", payload: Array("task-10".utf8))
            #expect(results[10] == digest10)
            #expect(results[0] != results[10])
            let status = try await client.serverStatus()
            #expect(status.succeeded >= 1_001)
            #expect(status.workers.allSatisfy { $0.tasksDone > 0 }, "both workers took tasks")
            try await client.close()
        }
    }
}
