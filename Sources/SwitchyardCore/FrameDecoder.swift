import NIOCore

/// Splits a byte stream into `Frame`s for a `ByteToMessageHandler`.
/// Bodies are slices of the read buffer: no payload is copied.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = Frame

    public let maxFrameSize: Int

    public init(maxFrameSize: Int = Frame.defaultMaxSize) {
        self.maxFrameSize = maxFrameSize
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        try Frame.read(from: &buffer, maxSize: maxFrameSize)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        try Frame.read(from: &buffer, maxSize: maxFrameSize)
    }
}
