/// The framing rules of docs/PROTOCOL.md section 2, written as plainly as
/// possible over an array, for the fuzzer to hold `FrameDecoder` against.
///
/// A frame is a big-endian u32 length, then that many bytes (type, flags,
/// request id: 6 bytes, then the body). A length below 6 is BAD_FRAME; a
/// frame (length field included) over the limit is FRAME_TOO_LARGE, known
/// from the length field alone; either ends the stream.
enum ReferenceFramer {
    enum End: Hashable, CustomStringConvertible {
        /// The stream ran out with `leftover` bytes of an unfinished frame.
        case incomplete(leftover: Int)
        case badFrame
        case tooLarge

        var description: String {
            switch self {
            case .incomplete(let leftover): "incomplete (\(leftover) bytes left)"
            case .badFrame: "BAD_FRAME"
            case .tooLarge: "FRAME_TOO_LARGE"
            }
        }
    }

    /// The byte ranges of the whole frames in `input`, in order, and how the stream ends.
    static func split(_ input: [UInt8], limit: Int) -> (frames: [Range<Int>], end: End) {
        var frames: [Range<Int>] = []
        var start = 0
        while true {
            let left = input.count - start
            if left < 4 { return (frames, .incomplete(leftover: left)) }
            var length = 0
            for byte in input[start..<start + 4] { length = length << 8 | Int(byte) }
            if length < 6 { return (frames, .badFrame) }
            if length + 4 > limit { return (frames, .tooLarge) }
            if left < length + 4 { return (frames, .incomplete(leftover: left)) }
            frames.append(start..<start + 4 + length)
            start += 4 + length
        }
    }
}
