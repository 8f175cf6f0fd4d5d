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

/// Splits a byte stream into frames and passes on every complete frame of a
/// read as one array, for a `ByteToMessageHandler`.
///
/// Each message through a channel pipeline is wrapped in `NIOAny` and cast
/// back, which costs dynamic casts and metadata lookups; per frame, that was
/// about 5% of the host's samples under `switchyard bench`. A worker's results
/// and a busy client's replies arrive many to a read, so one array per read
/// pays that once for all of them. Bodies are still slices of the read buffer.
public struct FrameBatchDecoder: ByteToMessageDecoder {
    public typealias InboundOut = [Frame]

    public let maxFrameSize: Int

    public init(maxFrameSize: Int = Frame.defaultMaxSize) {
        self.maxFrameSize = maxFrameSize
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        var frames: [Frame] = []
        do {
            while let frame = try Frame.read(from: &buffer, maxSize: maxFrameSize) {
                frames.append(frame)
            }
        } catch {
            // The frames before a bad one still count; then the stream is broken.
            if !frames.isEmpty { context.fireChannelRead(wrapInboundOut(frames)) }
            throw error
        }
        if !frames.isEmpty { context.fireChannelRead(wrapInboundOut(frames)) }
        return .needMoreData
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}
