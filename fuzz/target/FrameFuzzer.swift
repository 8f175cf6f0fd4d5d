import NIOCore
import SwitchyardCore

/// What the fuzz target checks about one input: the input is a byte stream as
/// it could arrive on a client connection or a worker link.
///
/// 1. Framing: `FrameDecoder` agrees with `ReferenceFramer` (a plain model of
///    docs/PROTOCOL.md section 2) on the frames, and on how the stream ends
///    (incomplete, BAD_FRAME or FRAME_TOO_LARGE), whether the bytes arrive at
///    once, in small chunks or one at a time, and under the default limit and
///    a small one. No frame over the limit is ever returned, and every frame
///    re-encodes to exactly the bytes it came from.
/// 2. Messages: each frame is decoded as a client request, a server reply, a
///    host-to-worker and a worker-to-host message. A decode either fails with
///    a `ProtocolError` of an allowed code and a non-empty message, or gives a
///    message `m` for which `decode(encode(m)) == m`; client requests and
///    server replies never grow when re-encoded (so what fit the limit still
///    fits).
/// 3. The handshake: the frames, as one client's connections, through
///    `ServerHandshake` (see `HandshakeFuzzer`).
///
/// A crash (trap, ASan report) in any of it is a finding; so is a violation,
/// which the libFuzzer entry turns into a crash.
public enum FrameFuzzer {
    /// The second decoder's limit: small enough that a few hundred bytes of
    /// input reach FRAME_TOO_LARGE.
    public static let smallLimit = 64

    /// Checks one input; returns what was wrong (empty when all held).
    public static func violations(in input: [UInt8]) -> [String] {
        var report = Report()
        let frames = checkFraming(input, report: &report)
        for frame in frames {
            checkMessages(in: frame, report: &report)
        }
        HandshakeFuzzer.check(frames, report: &report)
        return report.violations
    }

    // MARK: Framing

    /// Decodes `input` every way and compares with the model; returns the
    /// frames under the default limit.
    static func checkFraming(_ input: [UInt8], report: inout Report) -> [Frame] {
        // Chunk sizes: all at once, a size taken from the input (so different
        // inputs split at different places) and, under the default limit, one
        // byte at a time (the slowest pass: it alone splits every header at
        // every byte).
        let whole = max(input.count, 1)
        let passes = [
            (Frame.defaultMaxSize, [whole, 2 + input.count % 13, 1]),
            (smallLimit, [whole, 2 + input.count % 13]),
        ]
        var result: [Frame] = []
        for (limit, chunks) in passes {
            let expected = ReferenceFramer.split(input, limit: limit)
            // The frames of the first pass are checked byte for byte against
            // the input; later passes must give the same frames.
            var reference: [Frame]?
            for chunk in chunks {
                let decoded = decode(input, limit: limit, chunk: chunk, report: &report)
                let context = "limit \(limit), chunks of \(chunk)"
                report.check(
                    decoded.end == expected.end,
                    "\(context): the decoder ended with \(decoded.end), the model with \(expected.end)")
                report.check(
                    decoded.frames.count == expected.frames.count,
                    "\(context): the decoder gave \(decoded.frames.count) frames, the model \(expected.frames.count)")
                if let reference {
                    report.check(decoded.frames == reference, "\(context): other frames than from the whole input")
                    continue
                }
                reference = decoded.frames
                for (frame, model) in zip(decoded.frames, expected.frames) {
                    var wire = ByteBuffer()
                    frame.write(to: &wire)
                    report.check(wire.readableBytes <= limit, "\(context): a \(wire.readableBytes)-byte frame passed")
                    report.check(
                        wire.readBytes(length: wire.readableBytes)![...] == input[model],
                        "\(context): frame at byte \(model.lowerBound) re-encodes to other bytes")
                }
                if limit == Frame.defaultMaxSize { result = decoded.frames }
            }
        }
        return result
    }

    /// Feeds `input` to a `FrameDecoder` `chunk` bytes at a time, as
    /// `ByteToMessageHandler` does: decode until nil after each read, then
    /// decodeLast at EOF.
    static func decode(_ input: [UInt8], limit: Int, chunk: Int, report: inout Report) -> (
        frames: [Frame], end: ReferenceFramer.End
    ) {
        var decoder = FrameDecoder(maxFrameSize: limit)
        var pending = ByteBuffer()
        var frames: [Frame] = []
        var offset = 0
        do {
            while offset < input.count {
                let end = min(offset + chunk, input.count)
                pending.writeBytes(input[offset..<end])
                offset = end
                while let frame = try decoder.decode(buffer: &pending) { frames.append(frame) }
            }
            while let frame = try decoder.decodeLast(buffer: &pending, seenEOF: true) { frames.append(frame) }
            return (frames, .incomplete(leftover: pending.readableBytes))
        } catch let error as ProtocolError {
            report.check(!error.message.isEmpty, "the decoder threw \(error.code) with no message")
            switch error.code {
            case .badFrame: return (frames, .badFrame)
            case .frameTooLarge: return (frames, .tooLarge)
            default:
                report.fail("the decoder threw \(error.code): \(error.message)")
                return (frames, .badFrame)
            }
        } catch {
            report.fail("the decoder threw a non-protocol error: \(error)")
            return (frames, .badFrame)
        }
    }

    // MARK: Messages

    static func checkMessages(in frame: Frame, report: inout Report) {
        roundTrip(
            "client request", frame, keepsRequestID: true, mayShrinkOnly: true,
            allowed: [.badFrame, .badRequest, .unsupportedVersion], report: &report,
            decode: ClientMessage.init(frame:), encode: { $0.write(requestID: frame.requestID, to: &$1) })
        roundTrip(
            "server reply", frame, keepsRequestID: true, mayShrinkOnly: true, allowed: [.badFrame], report: &report,
            decode: ServerMessage.init(frame:), encode: { $0.write(requestID: frame.requestID, to: &$1) })
        roundTrip(
            "host-to-worker message", frame, keepsRequestID: false, mayShrinkOnly: false, allowed: [.badFrame],
            report: &report, decode: HostToWorker.init(frame:), encode: { $0.write(to: &$1) })
        roundTrip(
            "worker-to-host message", frame, keepsRequestID: false, mayShrinkOnly: false, allowed: [.badFrame],
            report: &report, decode: WorkerToHost.init(frame:), encode: { $0.write(to: &$1) })
        checkJSONDocument(in: frame, report: &report)
    }

    /// The JSON documents a client reads out of SERVER_INFO, STRATEGY_INFO and RELOAD_INFO.
    static func checkJSONDocument(in frame: Frame, report: inout Report) {
        switch frame.type {
        case .serverInfo:
            jsonRoundTrip("SERVER_INFO", frame.body, report: &report, decode: ServerStatus.init(json:)) {
                $0.encoded()
            }
        case .strategyInfo:
            jsonRoundTrip("STRATEGY_INFO", frame.body, report: &report, decode: StrategyReport.init(json:)) {
                $0.encoded()
            }
        case .reloadInfo:
            jsonRoundTrip("RELOAD_INFO", frame.body, report: &report, decode: ReloadReport.init(json:)) {
                $0.encoded()
            }
        default:
            break
        }
    }

    static func roundTrip<Message: Hashable>(
        _ kind: String, _ frame: Frame, keepsRequestID: Bool, mayShrinkOnly: Bool, allowed: Set<ErrorCode>,
        report: inout Report, decode: (Frame) throws -> Message, encode: (Message, inout ByteBuffer) -> Void
    ) {
        let message: Message
        do {
            message = try decode(frame)
        } catch let error as ProtocolError {
            report.check(
                allowed.contains(error.code), "\(kind) \(frame.type): decoding threw \(error.code): \(error.message)")
            report.check(!error.message.isEmpty, "\(kind) \(frame.type): \(error.code) without a message")
            return
        } catch {
            report.fail("\(kind) \(frame.type): decoding threw a non-protocol error: \(error)")
            return
        }
        var wire = ByteBuffer()
        encode(message, &wire)
        let size = wire.readableBytes
        do {
            guard let again = try Frame.read(from: &wire, maxSize: Int.max), wire.readableBytes == 0 else {
                report.fail("\(kind) \(frame.type): the encoding is not exactly one frame")
                return
            }
            report.check(again.type == frame.type, "\(kind) \(frame.type) re-encodes as \(again.type)")
            if keepsRequestID {
                report.check(again.requestID == frame.requestID, "\(kind) \(frame.type) loses its request id")
            }
            if mayShrinkOnly {
                report.check(
                    size <= frame.body.readableBytes + Frame.headerSize,
                    "\(kind) \(frame.type) grows from \(frame.body.readableBytes + Frame.headerSize) to \(size) bytes when re-encoded"
                )
            }
            let decodedAgain = try decode(again)
            report.check(decodedAgain == message, "\(kind) \(frame.type): decode(encode(m)) != m for m = \(message)")
        } catch {
            report.fail("\(kind) \(frame.type): its own encoding does not decode: \(error)")
        }
    }

    static func jsonRoundTrip<Document: Hashable>(
        _ kind: String, _ body: ByteBuffer, report: inout Report, decode: (ByteBuffer) throws -> Document,
        encode: (Document) -> ByteBuffer
    ) {
        let document: Document
        do {
            document = try decode(body)
        } catch let error as ProtocolError {
            report.check(error.code == .badFrame, "\(kind) JSON: threw \(error.code): \(error.message)")
            return
        } catch {
            report.fail("\(kind) JSON: threw a non-protocol error: \(error)")
            return
        }
        do {
            let again = try decode(encode(document))
            report.check(again == document, "\(kind) JSON: decode(encode(d)) != d for d = \(document)")
        } catch {
            report.fail("\(kind) JSON: its own encoding does not decode: \(error)")
        }
    }
}

/// The violations found in one input.
struct Report {
    var violations: [String] = []

    mutating func check(_ condition: Bool, _ violation: @autoclosure () -> String) {
        if !condition { violations.append(violation()) }
    }

    mutating func fail(_ violation: String) { violations.append(violation) }
}
