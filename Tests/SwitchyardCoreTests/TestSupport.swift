import NIOCore
import Testing

@testable import SwitchyardCore

/// Builds a buffer from literal bytes.
func bytes(_ values: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: values) }

/// Builds a buffer from a string's UTF-8.
func text(_ string: String) -> ByteBuffer { ByteBuffer(string: string) }

/// A buffer of `count` bytes counting up mod 251, so shifted or dropped bytes show.
func pattern(_ count: Int) -> ByteBuffer {
    ByteBuffer(bytes: (0..<count).lazy.map { UInt8(truncatingIfNeeded: $0 % 251) })
}

/// Reads exactly one frame from `buffer` and checks nothing is left over.
func onlyFrame(
    in buffer: ByteBuffer, maxSize: Int = Frame.defaultMaxSize, sourceLocation: SourceLocation = #_sourceLocation
) throws -> Frame {
    var buffer = buffer
    let frame = try #require(try Frame.read(from: &buffer, maxSize: maxSize), sourceLocation: sourceLocation)
    #expect(buffer.readableBytes == 0, "bytes left after the frame", sourceLocation: sourceLocation)
    return frame
}

/// A frame as it arrives: type, flags and request id around a hand-built body.
func frame(_ type: FrameType, flags: UInt8 = 0, requestID: UInt32 = 1, body: [UInt8]) -> Frame {
    Frame(type: type, flags: flags, requestID: requestID, body: bytes(body))
}

/// Big-endian bytes of an integer, for hand-built bodies.
func be<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.bigEndian, Array.init)
}

/// Joins byte fields into one body.
func concat(_ parts: [UInt8]...) -> [UInt8] { parts.flatMap { $0 } }

/// A u8-length string field.
func short(_ string: String) -> [UInt8] { [UInt8(string.utf8.count)] + Array(string.utf8) }

/// A u16-length string field.
func medium(_ string: String) -> [UInt8] { be(UInt16(string.utf8.count)) + Array(string.utf8) }

/// Runs `body`, which must throw a `ProtocolError` with `code` whose message contains every one of `mentions`.
func expectProtocolError(
    _ code: ErrorCode, mentioning mentions: String..., sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    let error = #expect(throws: ProtocolError.self, sourceLocation: sourceLocation) { try body() }
    guard let error else { return }
    #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    for mention in mentions {
        #expect(error.message.contains(mention), "message `\(error.message)` should mention `\(mention)`",
            sourceLocation: sourceLocation)
    }
}
