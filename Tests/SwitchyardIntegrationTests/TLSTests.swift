import Foundation
import NIOCore
import SwitchyardClient
import SwitchyardCore
import Testing

/// A CA and a server certificate it signed (for 127.0.0.1 and localhost),
/// made with the `openssl` command line into a temporary directory.
struct TestCertificates {
    let directory: TemporaryDirectory
    var ca: String { directory.file("ca.pem") }
    var certificate: String { directory.file("server.pem") }
    var key: String { directory.file("server.key") }
    /// A second CA that signed nothing here: trusting it alone must fail.
    var otherCA: String { directory.file("other-ca.pem") }

    static func make() async throws -> TestCertificates {
        let directory = try TemporaryDirectory()
        let script = """
            set -e
            cd '\(directory.path)'
            umask 077
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
              -subj '/CN=Switchyard Test CA' -keyout ca.key -out ca.pem \
              -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
              -subj '/CN=Other Test CA' -keyout other-ca.key -out other-ca.pem \
              -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
              -subj '/CN=localhost' -keyout server.key -out server.csr
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\nbasicConstraints=critical,CA:FALSE\\n' > server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
              -extfile server.ext -out server.pem
            """
        let result = try await run("/bin/sh", ["-c", script])
        guard result.status == 0 else { throw TestFailure("openssl failed: \(result.stderr)") }
        return TestCertificates(directory: directory)
    }

    var serverArguments: [String] { ["--tls-cert", certificate, "--tls-key", key] }
}

@Suite("TLS")
struct TLSTests {
    @Test func aTLSClientSubmitsAndGetsItsResult() async throws {
        let certificates = try await TestCertificates.make()
        let tokens = try TemporaryDirectory()
        let arguments = certificates.serverArguments + ["--auth", try TestTokens.file(in: tokens)]
        try await withServer(extraArguments: arguments) { server in
            try await server.waitForLog { $0.contains("TCP clients must use TLS") }
            let client = try await server.connect(token: TestTokens.submit, tls: ClientTLS(caFile: certificates.ca))
            let payload = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 % 251) }
            #expect(try await client.submit("echo", payload: payload) == payload)
            let id = try await client.submitBackground("sha256", payload: ByteBuffer(string: "abc"))
            #expect(
                String(buffer: try await client.wait(for: id))
                    == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
            try await client.close()

            // The CLI, with --tls-ca, by name (the certificate names localhost too).
            let cli = try await run(
                Paths.switchyard,
                ["submit", "--server", "localhost:\(server.address.port)", "--tls-ca", certificates.ca, "echo", "over TLS"],
                environment: ["SWITCHYARD_TOKEN": TestTokens.submit])
            #expect(cli.status == 0, "\(cli.stderr)")
            #expect(cli.stdout == "over TLS")

            // The admin socket stays plaintext.
            let local = try await SwitchyardClient.connect(to: server.adminSocket, options: ConnectOptions())
            try await local.ping()
            try await local.close()
        }
    }

    @Test func aTLSKeyOthersCanReadStopsTheStart() async throws {
        let certificates = try await TestCertificates.make()
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: certificates.key)
        do {
            let server = try await ServerProcess.start(extraArguments: certificates.serverArguments)
            await server.stop()
            Issue.record("the server started with a TLS key of mode 644")
        } catch let failure as TestFailure {
            let said = failure.description
            #expect(said.contains("the TLS private key \(certificates.key) (--tls-key) has mode 644"), "\(said)")
            #expect(said.contains("chmod 600 \(certificates.key)"), "\(said)")
        }
        // The fix works.
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: certificates.key)
        try await withServer(extraArguments: certificates.serverArguments) { server in
            let client = try await server.connect(token: nil, tls: ClientTLS(caFile: certificates.ca))
            try await client.ping()
            try await client.close()
        }
    }

    @Test func aPlaintextClientOfATLSServerIsToldToUseTLS() async throws {
        let certificates = try await TestCertificates.make()
        try await withServer(extraArguments: certificates.serverArguments) { server in
            await expectRefusal(.tlsRequired, mentioning: "requires TLS", "--tls-ca") { _ = try await server.connect() }
            let cli = try await run(Paths.switchyard, ["status", "--server", "\(server.address)"])
            #expect(cli.status == 3)
            #expect(cli.stderr.contains("TLS_REQUIRED") && cli.stderr.contains("--tls-ca"), "\(cli.stderr)")
            // A client that trusts another CA gets a TLS error, not a hang.
            do {
                _ = try await server.connect(token: nil, tls: ClientTLS(caFile: certificates.otherCA))
                Issue.record("a certificate from an untrusted CA was accepted")
            } catch let error as SwitchyardError {
                #expect(error.code == nil)
                #expect(error.message.contains("TLS failed") && error.message.contains("--tls-ca"), "\(error.message)")
            }
            // The server serves TLS clients on.
            let good = try await server.connect(token: nil, tls: ClientTLS(caFile: certificates.ca))
            try await good.ping()
            try await good.close()
        }
    }

    @Test func aTLSClientOfAPlaintextServerIsToldItDoesNotSpeakTLS() async throws {
        let certificates = try await TestCertificates.make()
        try await withServer { server in
            await expectRefusal(.tlsUnavailable, mentioning: "does not speak TLS", "without --tls-ca") {
                _ = try await server.connect(token: nil, tls: ClientTLS(caFile: certificates.ca))
            }
            let cli = try await run(Paths.switchyard, ["status", "--server", "\(server.address)", "--tls-ca", certificates.ca])
            #expect(cli.status == 3)
            #expect(cli.stderr.contains("TLS_UNAVAILABLE"), "\(cli.stderr)")
            let plain = try await server.connect()
            try await plain.ping()
            try await plain.close()
        }
    }
}
