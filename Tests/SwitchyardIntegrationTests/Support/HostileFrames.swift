import NIOCore
import SwitchyardCore

/// A small, seedable generator (SplitMix64): a failing flood can be replayed
/// with the seed it printed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Bad client frames for the flood test: valid requests mutated in their body,
/// type or length, random bytes, truncated frames and huge declared lengths.
///
/// Each frame is classified with the real codec, the way the server will
/// read it: `survivable` (answered, the connection stays open), `fatal` (the
/// server must close the connection: BAD_FRAME, FRAME_TOO_LARGE, a bad HELLO,
/// a stream it cannot resynchronise) or left out (`nil`): requests that decode
/// and would act on the server (cancel, reload, strategy changes, submits to
/// a loaded handler) or cost what the server's state makes them cost
/// (LIST_TASKS, SERVER_STATUS), which are not hostile bytes but ordinary requests.
struct HostileFrames {
    enum Kind { case survivable, fatal }

    var random: SeededGenerator
    /// Handlers the server has loaded: submits to them are left out.
    let loadedHandlers: Set<String>

    init(seed: UInt64, loadedHandlers: Set<String>) {
        random = SeededGenerator(seed: seed)
        self.loadedHandlers = loadedHandlers
    }

    /// The error codes after which a server closes the connection (docs/PROTOCOL.md, "Errors").
    static let closingCodes: Set<ErrorCode> = [.badFrame, .frameTooLarge, .unsupportedVersion, .handshakeRequired]

    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) } }

    mutating func text() -> String {
        let words = ["echo", "sleep", "no-such-handler", "", "é", "🚀", "a.b-c_d", String(repeating: "x", count: 300)]
        return words.randomElement(using: &random)!
    }

    /// A valid client request of a random type, written by the real codec.
    mutating func validRequest(requestID: UInt32) -> [UInt8] {
        let message: ClientMessage
        switch Int.random(in: 0..<12, using: &random) {
        case 0: message = .hello(minVersion: 1, maxVersion: 1, clientName: text())
        case 1:
            message = .submit(
                SubmitRequest(
                    handler: text(), payload: ByteBuffer(bytes: bytes(Int.random(in: 0..<64, using: &random))),
                    priority: Int32.random(in: -2_000_000...2_000_000, using: &random),
                    background: Bool.random(using: &random),
                    maxAttempts: Bool.random(using: &random) ? UInt32.random(in: 0...200, using: &random) : nil,
                    delayMillis: Bool.random(using: &random) ? UInt64.random(in: 0...100, using: &random) : nil,
                    key: Bool.random(using: &random) ? text() : nil))
        case 2: message = .taskStatus(UInt64.random(in: 0...UInt64.max, using: &random))
        case 3: message = .serverStatus
        case 4: message = .ping(ByteBuffer(bytes: bytes(Int.random(in: 0..<1100, using: &random))))
        case 5: message = .wait(UInt64.random(in: 1 << 40...UInt64.max, using: &random))
        case 6: message = .cancel(UInt64.random(in: 1 << 40...UInt64.max, using: &random))
        case 7:
            message = .listTasks(
                TaskListQuery(
                    state: TaskState.allCases.randomElement(using: &random), handler: text(),
                    afterID: UInt64.random(in: 0...UInt64.max, using: &random),
                    limit: Int.random(in: 0...1100, using: &random)))
        case 8: message = .strategyList
        case 9: message = .strategySet(StrategySetRequest(name: text(), handler: text(), config: [text(): text()]))
        case 10: message = .strategyLoad(StrategyLoadRequest(path: "/" + text()))
        default: message = .reload(CanaryOptions(percent: Int.random(in: 0...120, using: &random)))
        }
        var wire = ByteBuffer()
        message.write(requestID: requestID, to: &wire)
        return Array(wire.readableBytesView)
    }

    /// Sets the u32 length at the front of `frame` to what follows it.
    static func fixLength(_ frame: inout [UInt8]) {
        let length = UInt32(frame.count - 4)
        frame.replaceSubrange(0..<4, with: withUnsafeBytes(of: length.bigEndian, Array.init))
    }

    /// A frame whose framing is intact: a valid request, its body corrupted,
    /// cut, extended, or its type changed.
    mutating func framedMutation(requestID: UInt32) -> [UInt8] {
        var frame = validRequest(requestID: requestID)
        let bodyStart = Frame.headerSize
        switch Int.random(in: 0..<6, using: &random) {
        case 0:
            return frame  // unchanged: it may still be refused for its values
        case 1:  // flip a few body bytes
            if frame.count > bodyStart {
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    frame[Int.random(in: bodyStart..<frame.count, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
                }
            }
        case 2:  // cut the body short
            frame.removeLast(Int.random(in: 0...(frame.count - bodyStart), using: &random))
        case 3:  // trailing garbage
            frame += bytes(Int.random(in: 1...32, using: &random))
        case 4:  // a type no client sends (unknown, a reply, a worker message)
            frame[4] = [0x00, 0x0D, 0x7F, 0x81, 0x83, 0x89, 0x41, 0xC2, 0xFF].randomElement(using: &random)!
        default:  // flags
            frame[5] = UInt8.random(in: 0...255, using: &random)
        }
        Self.fixLength(&frame)
        return frame
    }

    /// Bytes that break the framing: the server cannot read past them (the
    /// client ends the stream after them).
    mutating func framingBreaker(requestID: UInt32) -> [UInt8] {
        switch Int.random(in: 0..<5, using: &random) {
        case 0:  // random bytes
            return bytes(Int.random(in: 1...64, using: &random))
        case 1:  // a length below the 6-byte header
            return withUnsafeBytes(of: UInt32.random(in: 0...5, using: &random).bigEndian, Array.init) + bytes(6)
        case 2:  // a huge declared length: FRAME_TOO_LARGE from the header alone
            let length = UInt32.random(in: 16 << 20...UInt32.max, using: &random)
            return withUnsafeBytes(of: length.bigEndian, Array.init) + [0x02, 0] + bytes(4)
        case 3:  // a length that disagrees with the frame: the rest is read as garbage
            var frame = validRequest(requestID: requestID)
            let wrong = UInt32(max(6, frame.count - 4 + Int.random(in: -8...(-1), using: &random)))
            frame.replaceSubrange(0..<4, with: withUnsafeBytes(of: wrong.bigEndian, Array.init))
            return frame + bytes(Int.random(in: 0...16, using: &random))
        default:  // a frame cut off (the stream ends there)
            let frame = validRequest(requestID: requestID)
            return Array(frame.prefix(Int.random(in: 1..<frame.count, using: &random)))
        }
    }

    /// True for a well-formed HELLO, which a server may accept as a connection's first frame.
    func decodesAsHello(_ bytes: [UInt8]) -> Bool {
        var buffer = ByteBuffer(bytes: bytes)
        guard let frame = try? Frame.read(from: &buffer), case .hello = try? ClientMessage(frame: frame) else {
            return false
        }
        return true
    }

    /// How the server will take a frame with intact framing; nil for requests left out.
    func classify(_ bytes: [UInt8]) -> Kind? {
        var buffer = ByteBuffer(bytes: bytes)
        guard let frame = try? Frame.read(from: &buffer), buffer.readableBytes == 0 else { return .fatal }
        do {
            switch try ClientMessage(frame: frame) {
            case .submit(let request): return loadedHandlers.contains(request.handler) ? nil : .survivable
            // Requests that act, and queries whose cost grows with the server's state (a page
            // of up to 1,000 records, the status document): ordinary requests, not hostile bytes.
            case .cancel, .reload, .strategySet, .strategyLoad, .listTasks, .serverStatus, .strategyList: return nil
            default: return .survivable
            }
        } catch let error as ProtocolError {
            return Self.closingCodes.contains(error.code) ? .fatal : .survivable
        } catch {
            return .fatal
        }
    }
}
