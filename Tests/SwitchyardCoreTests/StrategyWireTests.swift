import Foundation
import NIOCore
import Testing

@testable import SwitchyardCore

@Suite("Strategy admin messages")
struct StrategyWireTests {
    @Test func strategyListIsAnEmptyFrame() throws {
        var wire = ByteBuffer()
        ClientMessage.strategyList.write(requestID: 9, to: &wire)
        #expect(Array(wire.readableBytesView) == [0, 0, 0, 6, 0x09, 0, 0, 0, 0, 9])
        #expect(try roundTrip(.strategyList) == .strategyList)
    }

    @Test func strategySetLayout() throws {
        let request = StrategySetRequest(name: "ka", handler: "h", config: ["v": "1"])
        var wire = ByteBuffer()
        ClientMessage.strategySet(request).write(requestID: 1, to: &wire)
        let body: [UInt8] = [2] + Array("ka".utf8) + [1] + Array("h".utf8) + [0, 1] + [1] + Array("v".utf8) + [0, 1] + Array("1".utf8)
        #expect(Array(wire.readableBytesView) == [0, 0, 0, UInt8(6 + body.count), 0x0A, 0, 0, 0, 0, 1] + body)
    }

    @Test(arguments: [
        StrategySetRequest(name: "round_robin"),
        StrategySetRequest(name: "key_affinity", handler: "sha256", config: ["vnodes": "100", "seed": "7"]),
        StrategySetRequest(name: "x", handler: nil, config: ["k": String(repeating: "é", count: 300)]),
    ])
    func strategySetRoundTrips(request: StrategySetRequest) throws {
        #expect(try roundTrip(.strategySet(request)) == .strategySet(request))
    }

    @Test func strategySetWithoutANameOrWithARepeatedKeyIsBadRequest() {
        let noName = frame(.strategySet, body: [0, 0, 0, 0])
        #expect(throws: ProtocolError(.badRequest, "STRATEGY_SET needs a strategy name")) { try ClientMessage(frame: noName) }
        let twice: [UInt8] = [1, 0x61, 0, 0, 2] + [1, 0x6B, 0, 1, 0x31] + [1, 0x6B, 0, 1, 0x32]
        let error = #expect(throws: ProtocolError.self) { try ClientMessage(frame: frame(.strategySet, body: twice)) }
        #expect(error?.code == .badRequest)
        #expect(error?.message.contains("`k` twice") == true)
    }

    @Test func strategyLoadLayoutAndRoundTrip() throws {
        let request = StrategyLoadRequest(path: "/s.so", config: ["a": "b"])
        var wire = ByteBuffer()
        ClientMessage.strategyLoad(request).write(requestID: 2, to: &wire)
        let body: [UInt8] = [0, 5] + Array("/s.so".utf8) + [0, 1] + [1] + Array("a".utf8) + [0, 1] + Array("b".utf8)
        #expect(Array(wire.readableBytesView) == [0, 0, 0, UInt8(6 + body.count), 0x0B, 0, 0, 0, 0, 2] + body)
        #expect(try roundTrip(.strategyLoad(request)) == .strategyLoad(request))
        let plain = StrategyLoadRequest(path: "/opt/strategies/libmine.so")
        #expect(try roundTrip(.strategyLoad(plain)) == .strategyLoad(plain))
    }

    @Test func reloadIsAnEmptyFrameAnsweredWithAJSONReport() throws {
        var wire = ByteBuffer()
        ClientMessage.reload(nil).write(requestID: 3, to: &wire)
        #expect(Array(wire.readableBytesView) == [0, 0, 0, 6, 0x0C, 0, 0, 0, 0, 3])
        #expect(try roundTrip(.reload(nil)) == .reload(nil))
        let canary = CanaryOptions(percent: 25, tasks: 200, marginPercent: 5)
        var withCanary = ByteBuffer()
        ClientMessage.reload(canary).write(requestID: 4, to: &withCanary)
        #expect(Array(withCanary.readableBytesView) == [0, 0, 0, 12, 0x0C, 0, 0, 0, 0, 4, 25, 0, 0, 0, 200, 5])
        #expect(try roundTrip(.reload(canary)) == .reload(canary))
        let zero = frame(.reload, body: [0, 0, 0, 0, 1, 0])
        let refused = #expect(throws: ProtocolError.self) { try ClientMessage(frame: zero) }
        #expect(refused?.message.contains("canary_percent") == true)
        let extra = frame(.reload, body: [1])  // too short for the canary options
        #expect(throws: ProtocolError.self) { try ClientMessage(frame: extra) }
        let report = ReloadReport(
            outcome: "reloaded", trigger: "SIGHUP", generation: 3,
            files: [.init(file: "/p/vecho.so", sha256: String(repeating: "a", count: 64), plugin: "v", version: "2", handlers: ["vecho"])],
            added: ["x"], removed: ["y"], drained: 2, killedAtDrainTimeout: 1, startedAt: 1.5, durationMillis: 12.25)
        let parsed = try roundTrip(.reloadInfo(report.encoded()), type: .reloadInfo)
        guard case .reloadInfo(let json) = parsed else {
            Issue.record("expected RELOAD_INFO, got \(parsed)")
            return
        }
        #expect(try ReloadReport(json: json) == report)
        #expect(ErrorCode.reloadFailed.name == "RELOAD_FAILED" && ErrorCode.reloadFailed.rawValue == 42)
    }

    @Test func strategyLoadNeedsAnAbsolutePath() {
        let relative: [UInt8] = [0, 5] + Array("s.so!".utf8) + [0, 0]
        let error = #expect(throws: ProtocolError.self) { try ClientMessage(frame: frame(.strategyLoad, body: relative)) }
        #expect(error?.code == .badRequest)
        #expect(error?.message.contains("absolute path") == true && error?.message.contains("s.so!") == true)
    }

    @Test func strategyInfoCarriesTheReportAsJSON() throws {
        let report = StrategyReport(
            available: [.init(name: "round_robin", source: "built-in")],
            active: [.init(scope: "default", name: "round_robin", config: [:], faults: 3)],
            notices: ["strategy x for default switched off"])
        let parsed = try roundTrip(.strategyInfo(report.encoded()), type: .strategyInfo)
        guard case .strategyInfo(let json) = parsed else {
            Issue.record("expected STRATEGY_INFO, got \(parsed)")
            return
        }
        #expect(try StrategyReport(json: json) == report)
        var withLoad = report
        withLoad.loaded = .init(
            file: "/x.so", plugin: "x", version: "2", strategies: ["a", "b"], notes: ["n"], probePicks: 2406)
        #expect(try StrategyReport(json: withLoad.encoded()) == withLoad)
        #expect(ErrorCode.strategyRefused.name == "STRATEGY_REFUSED" && ErrorCode.strategyRefused.rawValue == 41)
        #expect(ErrorCode.unknownStrategy.name == "UNKNOWN_STRATEGY")
        #expect(ErrorCode.unknownStrategy.rawValue == 40)
    }
}
