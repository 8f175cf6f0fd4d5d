import Foundation
import NIOCore
import SwitchyardCore
import Testing

@testable import SwitchyardFuzz

/// The fuzzer's committed inputs, run through the fuzz target's own checks in
/// a normal test run: the seed corpus, and every input it ever failed on
/// (`fuzz/regressions`), so a fixed finding cannot come back unnoticed.
@Suite("Fuzz corpus")
struct FuzzCorpusTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fuzz")

    static func files(in name: String) throws -> [(name: String, bytes: [UInt8])] {
        let directory = fuzzDirectory.appendingPathComponent(name)
        return try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { !$0.hasPrefix(".") }.sorted().map {
            ($0, Array(try Data(contentsOf: directory.appendingPathComponent($0))))
        }
    }

    @Test func theCommittedSeedCorpusIsWhatTheCodecWritesToday() throws {
        let committed = Dictionary(uniqueKeysWithValues: try Self.files(in: "corpus").map { ($0.name, $0.bytes) })
        let generated = Dictionary(uniqueKeysWithValues: SeedCorpus.seeds.map { ($0.name, $0.bytes) })
        let fix = "regenerate it: swift run SwitchyardFuzz seeds fuzz/corpus"
        #expect(Set(committed.keys) == Set(generated.keys), "fuzz/corpus has other files than the seeds; \(fix)")
        for (name, bytes) in generated {
            #expect(committed[name] == bytes, "fuzz/corpus/\(name) differs from what the codec writes; \(fix)")
        }
    }

    @Test func everySeedHoldsTheFuzzersInvariants() {
        for seed in SeedCorpus.seeds {
            let violations = FrameFuzzer.violations(in: seed.bytes)
            #expect(violations.isEmpty, "seed \(seed.name): \(violations)")
        }
    }

    @Test func everyInputTheFuzzerEverFailedOnNowHoldsTheInvariants() throws {
        let regressions = try Self.files(in: "regressions")
        for input in regressions {
            let violations = FrameFuzzer.violations(in: input.bytes)
            #expect(violations.isEmpty, "fuzz/regressions/\(input.name): \(violations)")
        }
    }

    /// The seeds hold a valid frame of every type the protocol defines, each
    /// decoding as the kind of message its name says.
    @Test func theSeedsHoldAValidFrameOfEveryType() throws {
        var decoded: Set<UInt8> = []
        for seed in SeedCorpus.seeds {
            var buffer = ByteBuffer(bytes: seed.bytes)
            while let frame = try? Frame.read(from: &buffer) {
                let decodes: Bool
                switch seed.name.split(separator: "-").first {
                case "client": decodes = (try? ClientMessage(frame: frame)) != nil
                case "server": decodes = (try? ServerMessage(frame: frame)) != nil
                case "worker":
                    decodes = (try? HostToWorker(frame: frame)) != nil || (try? WorkerToHost(frame: frame)) != nil
                default: decodes = false
                }
                if decodes { decoded.insert(frame.type.rawValue) }
            }
        }
        let named = Set((0...255).map { FrameType(rawValue: UInt8($0)) }.filter { !$0.description.hasPrefix("0x") }
            .map(\.rawValue))
        let missing = named.subtracting(decoded).sorted().map { FrameType(rawValue: $0).description }
        #expect(missing.isEmpty, "no seed holds a valid frame of these types: \(missing)")
    }

    /// The checks are not vacuous: a decoder that broke the framing rules would be caught.
    @Test func theReferenceFramerSeesWhatTheRulesSay() {
        let hello = SeedCorpus.hello
        #expect(ReferenceFramer.split(hello, limit: 1 << 20).frames == [0..<hello.count])
        #expect(ReferenceFramer.split(hello + [0, 0], limit: 1 << 20).end == .incomplete(leftover: 2))
        #expect(ReferenceFramer.split(hello, limit: hello.count - 1).end == .tooLarge)
        #expect(ReferenceFramer.split([0, 0, 0, 5, 1, 2, 3, 4, 5], limit: 1 << 20).end == .badFrame)
    }
}
