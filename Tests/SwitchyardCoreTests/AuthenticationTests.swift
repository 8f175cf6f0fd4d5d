import NIOCore
import Testing

@testable import SwitchyardCore

let adminToken = "admin-0123456789abcdef"
let submitToken = "submit-0123456789abcdef"
let otherSubmitToken = "submit-fedcba9876543210"

func tokens() throws -> AuthTokens {
    try AuthTokens(
        parsing: """
            # operators
            admin:\(adminToken)

            submit:\(submitToken)
            submit:\(otherSubmitToken)
            """, source: "auth.txt")
}

/// The frame a client sends for `message`, as the server's decoder hands it over.
func sent(_ message: ClientMessage, requestID: UInt32 = 1) throws -> Frame {
    var buffer = ByteBuffer()
    message.write(requestID: requestID, to: &buffer)
    return try onlyFrame(in: buffer)
}

func hello(token: String? = nil, minVersion: UInt16 = 1, maxVersion: UInt16 = 1) throws -> Frame {
    try sent(.hello(minVersion: minVersion, maxVersion: maxVersion, clientName: "test", token: token))
}

@Suite("Auth files")
struct AuthTokensTests {
    @Test func linesGiveRolesAndFingerprints() throws {
        let tokens = try tokens()
        #expect(tokens.count(.admin) == 1)
        #expect(tokens.count(.submit) == 2)
        #expect(tokens.identity(for: adminToken) == ClientIdentity(role: .admin, name: AuthTokens.fingerprint(of: adminToken)))
        #expect(tokens.identity(for: submitToken)?.role == .submit)
        #expect(tokens.identity(for: otherSubmitToken)?.role == .submit)
        // Two submit tokens are two submitters.
        #expect(tokens.identity(for: submitToken)?.name != tokens.identity(for: otherSubmitToken)?.name)
        #expect(tokens.identity(for: "submit-0123456789abcdeF") == nil)
        #expect(tokens.identity(for: submitToken + "x") == nil)
        #expect(tokens.identity(for: String(submitToken.dropLast())) == nil)
        // The first 8 bytes of the SHA-256: printf abc | sha256sum starts ba7816bf8f01cfea.
        #expect(AuthTokens.fingerprint(of: "abc") == "ba7816bf8f01cfea")
        let fingerprint = AuthTokens.fingerprint(of: submitToken)
        #expect(fingerprint.count == 16 && fingerprint.allSatisfy(\.isHexDigit))
        #expect(!fingerprint.contains("0123456789abcdef"))
    }

    @Test func windowsLineEndingsAreAccepted() throws {
        let tokens = try AuthTokens(parsing: "admin:\(adminToken)\r\nsubmit:\(submitToken)\r\n", source: "f")
        #expect(tokens.identity(for: adminToken)?.role == .admin)
        #expect(tokens.identity(for: submitToken)?.role == .submit)
    }

    @Test(arguments: [
        ("admin \(adminToken)", "line 1", "role:token"),
        ("root:\(adminToken)", "unknown role `root`", "submit and admin"),
        ("admin:short", "is 5 characters", "openssl rand -hex 32"),
        ("admin:has a space in the token", "printable ASCII", "line 1"),
        ("admin:\(adminToken)\nsubmit:\(adminToken)", "line 2", "same token is on line 1"),
        ("# nothing but a comment\n\n", "no tokens", "admin:TOKEN"),
    ])
    func badFilesNameTheLineAndTheFix(text: String, first: String, second: String) {
        let error = #expect(throws: AuthFileError.self) { try AuthTokens(parsing: text, source: "/etc/sy.auth") }
        let message = error?.description ?? ""
        #expect(message.contains("/etc/sy.auth"), "\(message)")
        #expect(message.contains(first), "\(message)")
        #expect(message.contains(second), "\(message)")
    }
}

@Suite("HELLO token extension")
struct HelloTokenTests {
    @Test func theTokenTravelsInTheTokenExtension() throws {
        var wire = ByteBuffer()
        ClientMessage.hello(minVersion: 1, maxVersion: 1, clientName: "cli", token: "0123456789abcdef")
            .write(requestID: 0, to: &wire)
        let length: UInt32 = 6 + 4 + 4 + 4 + 2 + 6 + 4 + 16
        var expected: [UInt8] = be(length) + [0x01, 0x00] + be(UInt32(0))
        expected += be(WireProtocol.magic) + be(UInt16(1)) + be(UInt16(1)) + short("cli")
        expected += be(UInt16(1)) + short("token") + be(UInt32(16)) + Array("0123456789abcdef".utf8)
        #expect(Array(wire.readableBytesView) == expected)
        #expect(
            try roundTrip(.hello(minVersion: 1, maxVersion: 1, clientName: "cli", token: "0123456789abcdef"))
                == .hello(minVersion: 1, maxVersion: 1, clientName: "cli", token: "0123456789abcdef"))
    }

    @Test func otherExtensionsAreStillIgnored() throws {
        let body = concat(
            be(WireProtocol.magic), be(UInt16(1)), be(UInt16(1)), short("cli"), be(UInt16(2)),
            short("future"), be(UInt32(3)), [1, 2, 3], short("token"), be(UInt32(16)), Array(adminToken.prefix(16).utf8))
        #expect(
            try ClientMessage(frame: frame(.hello, body: body))
                == .hello(minVersion: 1, maxVersion: 1, clientName: "cli", token: String(adminToken.prefix(16))))
    }

    @Test func aTokenGivenTwiceOrOfTheWrongLengthIsABadRequest() {
        let twice = concat(
            be(WireProtocol.magic), be(UInt16(1)), be(UInt16(1)), short("cli"), be(UInt16(2)),
            short("token"), be(UInt32(16)), Array(adminToken.prefix(16).utf8),
            short("token"), be(UInt32(16)), Array(adminToken.prefix(16).utf8))
        expectProtocolError(.badRequest, mentioning: "twice") { _ = try ClientMessage(frame: frame(.hello, body: twice)) }
        let short15 = concat(
            be(WireProtocol.magic), be(UInt16(1)), be(UInt16(1)), short("cli"), be(UInt16(1)),
            short("token"), be(UInt32(15)), Array(adminToken.prefix(15).utf8))
        expectProtocolError(.badRequest, mentioning: "15 bytes", "16-1024") {
            _ = try ClientMessage(frame: frame(.hello, body: short15))
        }
    }
}

@Suite("Roles")
struct RoleTests {
    @Test func submitMayReadSubmitAndCancelButNotChangeTheServer() {
        let submitter = ClientIdentity(role: .submit, name: "aaaa")
        let allowed: [ClientMessage] = [
            .submit(SubmitRequest(handler: "echo", payload: ByteBuffer())), .taskStatus(1), .serverStatus,
            .ping(ByteBuffer()), .wait(1), .cancel(1), .listTasks(TaskListQuery()), .strategyList,
        ]
        for message in allowed { #expect(submitter.refusal(for: message) == nil, "\(message.frameType)") }
        let adminOnly: [ClientMessage] = [
            .reload(nil), .strategySet(StrategySetRequest(name: "round_robin")),
            .strategyLoad(StrategyLoadRequest(path: "/x.so")),
        ]
        for message in adminOnly {
            let refusal = submitter.refusal(for: message)
            #expect(refusal?.code == .forbidden)
            #expect(refusal?.message.contains("\(message.frameType) needs the admin role") == true, "\(refusal?.message ?? "")")
            #expect(refusal?.message.contains("unix:") == true)
            #expect(ClientIdentity.local.refusal(for: message) == nil)
            #expect(ClientIdentity.unauthenticated.refusal(for: message) == nil)
        }
    }

    @Test func onlyTheSubmitterOrAnAdminMayCancel() {
        let submitter = ClientIdentity(role: .submit, name: "aaaa")
        #expect(submitter.mayCancel(taskSubmittedBy: "aaaa"))
        #expect(!submitter.mayCancel(taskSubmittedBy: "bbbb"))
        #expect(!submitter.mayCancel(taskSubmittedBy: nil))
        #expect(!submitter.mayCancel(taskSubmittedBy: "local"))
        #expect(ClientIdentity(role: .admin, name: "cccc").mayCancel(taskSubmittedBy: "aaaa"))
        #expect(ClientIdentity.local.mayCancel(taskSubmittedBy: nil))
        // A submit client without a name (none exists today) may cancel nothing, not every unnamed task.
        #expect(!ClientIdentity(role: .submit, name: nil).mayCancel(taskSubmittedBy: nil))
    }
}

@Suite("AuthThrottle")
struct AuthThrottleTests {
    @Test func theLimitBarsTheAddressForAPenaltyThatDoubles() {
        let throttle = AuthThrottle(policy: .init(maxFailures: 3, penaltyMillis: 10_000, maxPenaltyMillis: 35_000))
        #expect(throttle.recordFailure("10.0.0.1", now: 0) == .tryAgain(left: 2))
        #expect(throttle.recordFailure("10.0.0.1", now: 1) == .tryAgain(left: 1))
        #expect(throttle.barredFor("10.0.0.1", now: 2) == nil)
        #expect(throttle.recordFailure("10.0.0.1", now: 2) == .barred(millis: 10_000))
        #expect(throttle.barredFor("10.0.0.1", now: 3) == 9_999)
        #expect(throttle.barredFor("10.0.0.2", now: 3) == nil, "other addresses are not touched")
        #expect(throttle.barredFor("10.0.0.1", now: 10_002) == nil)
        // Back to the limit: twice as long, then capped.
        for now in Int64(10_003)...10_004 { _ = throttle.recordFailure("10.0.0.1", now: now) }
        #expect(throttle.recordFailure("10.0.0.1", now: 10_005) == .barred(millis: 20_000))
        for now in Int64(30_006)...30_007 { _ = throttle.recordFailure("10.0.0.1", now: now) }
        #expect(throttle.recordFailure("10.0.0.1", now: 30_008) == .barred(millis: 35_000))
    }

    @Test func anAddressQuietForTheLongestPenaltyIsForgotten() {
        let throttle = AuthThrottle(policy: .init(maxFailures: 2, penaltyMillis: 1_000, maxPenaltyMillis: 60_000))
        _ = throttle.recordFailure("a", now: 0)
        #expect(throttle.recordFailure("a", now: 1) == .barred(millis: 1_000))
        _ = throttle.recordFailure("a", now: 2_000)
        #expect(throttle.recordFailure("a", now: 2_001) == .barred(millis: 2_000))
        // A single failure long ago does not count towards the next bar either.
        _ = throttle.recordFailure("a", now: 4_002)
        #expect(throttle.recordFailure("a", now: 4_002 + 60_000) == .tryAgain(left: 1))
        #expect(throttle.recordFailure("a", now: 4_003 + 60_000) == .barred(millis: 1_000))
    }

    @Test func memoryIsBounded() {
        let throttle = AuthThrottle(policy: .init(maxFailures: 3, penaltyMillis: 1_000, maxAddresses: 100))
        for index in 0..<10_000 { _ = throttle.recordFailure("10.1.\(index / 256).\(index % 256)", now: Int64(index)) }
        #expect(throttle.count <= 100)
        // The newest addresses are the ones kept.
        #expect(throttle.recordFailure("10.1.39.15", now: 10_000) == .tryAgain(left: 1))
    }
}

@Suite("ServerHandshake")
struct ServerHandshakeTests {
    static let settings = { () -> ServerHandshake.Settings in
        ServerHandshake.Settings(tokens: try! tokens(), serverName: "test/1", maxFrameSize: 65536)
    }()
    static let welcome = ServerMessage.helloOK(version: 1, maxFrameSize: 65536, serverName: "test/1")

    func handshake(
        _ peer: ServerHandshake.Peer = .network("10.0.0.1"), tokens: AuthTokens?? = .none,
        throttle: AuthThrottle = AuthThrottle()
    ) -> ServerHandshake {
        var settings = Self.settings
        if case .some(let tokens) = tokens { settings.tokens = tokens }
        return ServerHandshake(settings: settings, peer: peer, throttle: throttle)
    }

    func code(_ step: ServerHandshake.Step) -> ErrorCode? {
        switch step {
        case .reply(.error(let code, _, _)), .close(.error(let code, _, _)): code
        default: nil
        }
    }

    func message(_ step: ServerHandshake.Step) -> String {
        switch step {
        case .reply(.error(_, _, let text)), .close(.error(_, _, let text)): text
        default: ""
        }
    }

    @Test func aRightTokenEstablishesItsIdentity() throws {
        var admin = handshake()
        #expect(
            admin.receive(try hello(token: adminToken), now: 0)
                == .established(Self.welcome, ClientIdentity(role: .admin, name: AuthTokens.fingerprint(of: adminToken))))
        var submitter = handshake()
        guard case .established(_, let identity) = submitter.receive(try hello(token: submitToken), now: 0) else {
            Issue.record("not established")
            return
        }
        #expect(identity.role == .submit)
    }

    @Test func noTokenIsAuthRequiredAndCloses() throws {
        var machine = handshake()
        let step = machine.receive(try hello(), now: 0)
        guard case .close = step else { return #expect(Bool(false), "\(step)") }
        #expect(code(step) == .authRequired)
        #expect(message(step).contains("--token-file"))
        #expect(message(step).contains("SWITCHYARD_TOKEN"))
    }

    @Test func aRequestBeforeHelloIsHandshakeRequired() throws {
        var machine = handshake()
        let step = machine.receive(try sent(.serverStatus), now: 0)
        guard case .close = step else { return #expect(Bool(false), "\(step)") }
        #expect(code(step) == .handshakeRequired)
    }

    @Test func wrongTokensMayBeRetriedUntilTheLimitThenTheAddressIsBarred() throws {
        let throttle = AuthThrottle(policy: .init(maxFailures: 3, penaltyMillis: 10_000))
        var machine = handshake(throttle: throttle)
        let first = machine.receive(try hello(token: "wrong-0123456789abcdef"), now: 0)
        guard case .reply = first else { return #expect(Bool(false), "\(first)") }
        #expect(code(first) == .authFailed)
        #expect(message(first).contains("2 more failures from 10.0.0.1"))
        // No request may slip in between.
        var other = handshake(throttle: throttle)
        _ = other.receive(try hello(token: "wrong-0123456789abcdef"), now: 1)
        let request = other.receive(try sent(.serverStatus), now: 1)
        guard case .close = request else { return #expect(Bool(false), "\(request)") }
        #expect(code(request) == .authRequired)
        // The third failure from the address (on either connection) bars it and closes.
        let third = machine.receive(try hello(token: "wrong-0123456789abcdef"), now: 2)
        guard case .close = third else { return #expect(Bool(false), "\(third)") }
        #expect(code(third) == .authFailed)
        #expect(message(third).contains("10.0.0.1 is refused for 10 s"))
        // Now even the right token is refused until the bar ends, with how long to wait.
        var barred = handshake(throttle: throttle)
        let locked = barred.receive(try hello(token: adminToken), now: 5_002)
        guard case .close = locked else { return #expect(Bool(false), "\(locked)") }
        #expect(code(locked) == .authLocked)
        #expect(message(locked).contains("refused for 5 s more"))
        var later = handshake(throttle: throttle)
        guard case .established = later.receive(try hello(token: adminToken), now: 10_002) else {
            Issue.record("not established after the bar")
            return
        }
    }

    @Test func theAdminSocketNeedsNoTokenAndIsNeverThrottled() throws {
        let throttle = AuthThrottle(policy: .init(maxFailures: 1))
        var network = handshake(throttle: throttle)
        _ = network.receive(try hello(token: "wrong-0123456789abcdef"), now: 0)
        var local = handshake(.local, throttle: throttle)
        #expect(local.receive(try hello(), now: 1) == .established(Self.welcome, .local))
    }

    @Test func withoutTokensEveryoneIsUnauthenticatedAdmin() throws {
        var machine = handshake(tokens: .some(nil))
        #expect(machine.receive(try hello(), now: 0) == .established(Self.welcome, .unauthenticated))
        var withToken = handshake(tokens: .some(nil))
        #expect(withToken.receive(try hello(token: "anything-at-all-1234"), now: 0) == .established(Self.welcome, .unauthenticated))
    }

    @Test func noVersionInCommonCloses() throws {
        var machine = handshake()
        let step = machine.receive(try hello(token: adminToken, minVersion: 2, maxVersion: 3), now: 0)
        guard case .close = step else { return #expect(Bool(false), "\(step)") }
        #expect(code(step) == .unsupportedVersion)
    }

    @Test func aMalformedHelloClosesAndABadRequestDoesNot() throws {
        var machine = handshake()
        let truncated = machine.receive(frame(.hello, body: [0x53, 0x57]), now: 0)
        guard case .close = truncated else { return #expect(Bool(false), "\(truncated)") }
        #expect(code(truncated) == .badFrame)
        var again = handshake()
        let body = concat(
            be(WireProtocol.magic), be(UInt16(1)), be(UInt16(1)), short("cli"), be(UInt16(1)),
            short("token"), be(UInt32(3)), [0x61, 0x62, 0x63])
        let short = again.receive(frame(.hello, body: body), now: 0)
        guard case .reply = short else { return #expect(Bool(false), "\(short)") }
        #expect(code(short) == .badRequest)
        guard case .established = again.receive(try hello(token: submitToken), now: 0) else {
            Issue.record("a good HELLO after a bad request should succeed")
            return
        }
    }
}
