import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@testable import SwitchyardCore

@Suite("FrameDecoder")
struct FrameDecoderTests {
    /// Frames of several shapes: empty body, small, odd flags and ids, unknown type, a few KiB.
    /// (The verifier drip-feeds every byte ten times over, so the bodies stay small.)
    static let frames: [Frame] = [
        Frame(type: .serverStatus, requestID: 0, body: ByteBuffer()),
        Frame(type: .ping, requestID: 1, body: text("ping")),
        Frame(type: .submit, flags: WireProtocol.submitBackground, requestID: 0xDEAD_BEEF, body: pattern(300)),
        Frame(type: FrameType(rawValue: 0x7F), flags: 0xFF, requestID: UInt32.max, body: pattern(3_000)),
        Frame(type: .result, requestID: 42, body: text("naïve ☃ 🚀")),
    ]

    static func encoded(_ frame: Frame) -> ByteBuffer {
        var buffer = ByteBuffer()
        frame.write(to: &buffer)
        return buffer
    }

    @Test func verifierAcceptsWholeSplitAndBatchedFrames() throws {
        let pairs = Self.frames.map { (Self.encoded($0), [$0]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrameDecoder() }
    }

    @Test func verifierAcceptsSeveralFramesInOneInput() throws {
        var two = Self.encoded(Self.frames[1])
        var second = Self.encoded(Self.frames[4])
        two.writeBuffer(&second)
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: [(two, [Self.frames[1], Self.frames[4]])]) {
            FrameDecoder()
        }
    }

    @Test func channelDecodesFramesFedOneByteAtATime() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        for frame in Self.frames.prefix(3) + [Self.frames[4]] {
            let wire = Self.encoded(frame)
            for (offset, byte) in wire.readableBytesView.enumerated() {
                try channel.writeInbound(ByteBuffer(bytes: [byte]))
                if offset < wire.readableBytes - 1 {
                    #expect(try channel.readInbound(as: Frame.self) == nil, "frame delivered before its last byte")
                }
            }
            #expect(try channel.readInbound(as: Frame.self) == frame)
        }
        #expect(try channel.finish().isClean)
    }

    @Test func channelDecodesManyFramesWrittenAtOnce() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        let frames = Self.frames + [Frame(type: .result, requestID: 8, body: pattern(1 << 20))]
        var all = ByteBuffer()
        for frame in frames { frame.write(to: &all) }
        try channel.writeInbound(all)
        for frame in frames {
            #expect(try channel.readInbound(as: Frame.self) == frame)
        }
        #expect(try channel.readInbound(as: Frame.self) == nil)
        #expect(try channel.finish().isClean)
    }

    @Test func channelRejectsOversizedFrameFromItsHeaderAlone() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameSize: 1024)))
        // The header announces 1,030 bytes after the length field; no body follows.
        let header = bytes(be(UInt32(1030)) + [FrameType.submit.rawValue, 0] + be(UInt32(9)))
        let error = #expect(throws: ProtocolError.self) { try channel.writeInbound(header) }
        #expect(error?.code == .frameTooLarge)
        _ = try? channel.finish()
    }

    @Test func batchDecoderPassesOnEveryCompleteFrameOfAReadAsOneArray() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameBatchDecoder()))
        var all = ByteBuffer()
        for frame in Self.frames { frame.write(to: &all) }
        // Half of one more frame arrives with them; its rest comes in the next read.
        let last = Self.encoded(Frame(type: .ping, requestID: 9, body: text("tail")))
        all.writeImmutableBuffer(last.getSlice(at: 0, length: 7)!)
        try channel.writeInbound(all)
        #expect(try channel.readInbound(as: [Frame].self) == Self.frames)
        #expect(try channel.readInbound(as: [Frame].self) == nil)
        try channel.writeInbound(last.getSlice(at: 7, length: last.readableBytes - 7)!)
        #expect(try channel.readInbound(as: [Frame].self) == [Frame(type: .ping, requestID: 9, body: text("tail"))])
        #expect(try channel.finish().isClean)
    }

    @Test func batchDecoderPassesOnTheFramesBeforeABadOneThenFails() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameBatchDecoder(maxFrameSize: 1024)))
        var all = Self.encoded(Frame(type: .ping, requestID: 1, body: text("ok")))
        all.writeBytes(be(UInt32(1030)) + [FrameType.submit.rawValue, 0] + be(UInt32(9)))
        let error = #expect(throws: ProtocolError.self) { try channel.writeInbound(all) }
        #expect(error?.code == .frameTooLarge)
        #expect(try channel.readInbound(as: [Frame].self) == [Frame(type: .ping, requestID: 1, body: text("ok"))])
        _ = try? channel.finish()
    }

    @Test func readReturnsNilUntilTheWholeFrameArrives() throws {
        let wire = Self.encoded(Frame(type: .ping, requestID: 3, body: text("abc")))
        for length in 0..<wire.readableBytes {
            var partial = wire.getSlice(at: 0, length: length)!
            #expect(try Frame.read(from: &partial) == nil)
            #expect(partial.readableBytes == length, "a partial read consumed bytes")
        }
    }

    @Test func bodyIsASliceOfTheReadBuffer() throws {
        var wire = Self.encoded(Frame(type: .ping, requestID: 3, body: text("abc")))
        wire.writeString("next")
        let frame = try #require(try Frame.read(from: &wire))
        #expect(frame.body == text("abc"))
        #expect(wire == text("next"))
    }

    @Test(arguments: [0, 1, 5] as [UInt32])
    func lengthBelowTheHeaderIsBadFrame(length: UInt32) {
        expectProtocolError(.badFrame, mentioning: "\(length)", "6") {
            var wire = bytes(be(length) + [0x05, 0, 0, 0, 0, 1])
            _ = try Frame.read(from: &wire)
        }
    }

    @Test func lengthOfExactlySixIsAnEmptyFrame() throws {
        let frame = try onlyFrame(in: bytes(be(UInt32(6)) + [0x04, 0x00] + be(UInt32(77))))
        #expect(frame == Frame(type: .serverStatus, requestID: 77, body: ByteBuffer()))
    }

    @Test func frameOfExactlyTheLimitIsAcceptedAndOneMoreByteIsNot() throws {
        let limit = 64
        let fits = Self.encoded(Frame(type: .ping, requestID: 1, body: pattern(limit - Frame.headerSize)))
        #expect(fits.readableBytes == limit)
        _ = try onlyFrame(in: fits, maxSize: limit)

        let tooBig = Self.encoded(Frame(type: .ping, requestID: 1, body: pattern(limit - Frame.headerSize + 1)))
        expectProtocolError(.frameTooLarge, mentioning: "65", "64") {
            var wire = tooBig
            _ = try Frame.read(from: &wire, maxSize: limit)
        }
    }

    @Test func oversizedFrameIsDetectedBeforeItsBodyArrives() {
        // Only the 4-byte length, announcing a frame one byte over the default 16 MiB limit.
        expectProtocolError(.frameTooLarge, mentioning: "16777217", "16777216") {
            var wire = bytes(be(UInt32(Frame.defaultMaxSize - 3)))
            _ = try Frame.read(from: &wire)
        }
        expectProtocolError(.frameTooLarge) {
            var wire = bytes(be(UInt32.max))
            _ = try Frame.read(from: &wire)
        }
    }

    @Test func headerFieldsSitAtTheDocumentedOffsets() {
        var wire = ByteBuffer()
        Frame(type: .submit, flags: 0x01, requestID: 0x0102_0304, body: bytes([0xAA, 0xBB])).write(to: &wire)
        #expect(Array(wire.readableBytesView) == [0, 0, 0, 8, 0x02, 0x01, 1, 2, 3, 4, 0xAA, 0xBB])
    }

    @Test func closureWriterBackFillsTheLength() throws {
        var wire = ByteBuffer()
        wire.writeString("prefix")
        Frame.write(type: .pong, requestID: 9, to: &wire) { $0.writeString("hello") }
        wire.moveReaderIndex(forwardBy: 6)
        #expect(try onlyFrame(in: wire) == Frame(type: .pong, requestID: 9, body: text("hello")))
    }

    @Test func typeNamesAreTheDocumentedOnes() {
        #expect(FrameType.submit.description == "SUBMIT")
        #expect(FrameType.helloOK.description == "HELLO_OK")
        #expect(FrameType.workerProgress.description == "WORKER_PROGRESS")
        #expect(FrameType(rawValue: 0x7F).description == "0x7f")
    }
}
