import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardHost

@Suite("Listening without authentication")
struct ExposureTests {
    @Test(arguments: ["127.0.0.1", "127.8.9.10", "::1", "localhost"])
    func loopbackAddressesNeedNoAuth(host: String) {
        #expect(HostConfiguration.isLoopback(host))
        #expect(HostConfiguration(host: host).exposureProblem() == nil)
    }

    @Test(arguments: ["0.0.0.0", "::", "192.0.2.1", "2001:db8::1"])
    func otherAddressesNeedAuthOrInsecure(host: String) throws {
        #expect(!HostConfiguration.isLoopback(host))
        let problem = try #require(HostConfiguration(host: host).exposureProblem())
        #expect(problem.contains(host) && problem.contains("--auth FILE") && problem.contains("--insecure"))
        var insecure = HostConfiguration(host: host)
        insecure.allowInsecure = true
        #expect(insecure.exposureProblem() == nil)
        var authenticated = HostConfiguration(host: host)
        authenticated.auth = AuthConfiguration(tokens: try AuthTokens(parsing: "admin:0123456789abcdef", source: "t"))
        #expect(authenticated.exposureProblem() == nil)
    }

    @Test func anAuthFileOthersMayReadIsRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sy-auth-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("admin:0123456789abcdef\n".utf8).write(to: URL(fileURLWithPath: path))
        for mode in [0o644, 0o640, 0o604, 0o602, 0o620] {
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
            let error = #expect(throws: ConfigurationError.self) { try AuthConfiguration.load(file: path) }
            #expect(error?.description.contains("chmod 600 \(path)") == true, "\(error?.description ?? "")")
            #expect(error?.description.contains(String(mode, radix: 8)) == true)
        }
        for mode in [0o600, 0o400] {
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
            #expect(try AuthConfiguration.load(file: path).tokens.count(.admin) == 1)
        }
    }
}
