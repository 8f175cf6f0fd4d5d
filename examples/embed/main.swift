// Embedding Switchyard: run the host inside your own program, submit a task
// through the client, then shut down gracefully.
import Logging
import SwitchyardClient
import SwitchyardCore
import SwitchyardHost

// The host starts its workers by running this same executable: let them through first.
WorkerProcess.runIfRequested()

let host = SwitchyardHost(configuration: HostConfiguration(port: 0, workers: 2), logger: Logger(label: "embed"))
let address = try await host.start()
let client = try await SwitchyardClient.connect(to: HostPort(host: "127.0.0.1", port: address.port!))
let digest: [UInt8] = try await client.submit("sha256", payload: Array("hello from an embedded host".utf8))
print(String(decoding: digest, as: UTF8.self))
try await client.close()
try await host.shutdown()
